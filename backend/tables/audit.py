from piccolo.columns import JSON, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class AuditLog(Table, tablename="audit_log"):
    """Who did what: logins, exports, deletions, admin actions. No foreign key on purpose:
    entries outlive a deleted account."""

    actor_id = Integer(null=True, default=None, index=True)
    action = Varchar(length=64, index=True)
    target = Varchar(length=128, default="")
    detail = JSON(default="{}")
    ip = Varchar(length=64, default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)

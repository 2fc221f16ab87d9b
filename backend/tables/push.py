from piccolo.columns import (
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from backend.tables.accounts import User


class PushSubscription(Table, tablename="push_subscriptions"):
    """A browser's PushSubscription (one per device)."""

    owner = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    endpoint = Text(unique=True)
    p256dh = Varchar(length=200)
    auth = Varchar(length=64)
    user_agent = Varchar(length=255, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    last_success_at = Timestamptz(null=True, default=None)
    failures = Integer(default=0)


class Reminder(Table, tablename="reminders"):
    """A daily/weekly reminder at a local time; next_due_at is the UTC instant it is due.

    A scheduler claims due rows atomically (claimed_by/claimed_at) so two app processes
    never send one reminder twice."""

    owner = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=32)  # blood_pressure | glucose | weight | ecg | custom
    time_of_day = Varchar(length=5)  # "08:00", local
    timezone = Varchar(length=64, default="UTC")
    days = Varchar(length=32, default="mon,tue,wed,thu,fri,sat,sun")
    enabled = Boolean(default=True)
    next_due_at = Timestamptz(null=True, default=None, index=True)
    claimed_by = Varchar(length=64, default="")
    claimed_at = Timestamptz(null=True, default=None)
    last_sent_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class PushDelivery(Table, tablename="push_deliveries"):
    """One attempt to deliver a notification: feeds the admin's delivery success rate."""

    subscription = ForeignKey(references=PushSubscription, on_delete=OnDelete.set_null, null=True)
    owner = ForeignKey(references=User, on_delete=OnDelete.cascade, null=True)
    topic = Varchar(length=32, default="")
    status_code = Integer(default=0)
    ok = Boolean(default=False)
    detail = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)

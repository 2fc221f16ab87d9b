from piccolo.columns import Boolean, ForeignKey, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class User(Table, tablename="users"):
    email = Varchar(length=320, unique=True, index=True)
    password_hash = Text()
    display_name = Varchar(length=80)
    is_admin = Boolean(default=False)
    is_active = Boolean(default=True)
    locale = Varchar(length=8, default="")
    sex = Varchar(length=1, default="")  # "", "F", "M": used for sex-specific QTc limits
    birth_year = Varchar(length=4, default="")
    timezone = Varchar(length=64, default="UTC")
    # Quiet hours for push notifications, local "HH:MM" (both empty: none).
    quiet_start = Varchar(length=5, default="")
    quiet_end = Varchar(length=5, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    last_seen_at = Timestamptz(null=True, default=None)


class ApiToken(Table, tablename="api_tokens"):
    """Bearer tokens for API clients; only the sha256 of the token is stored."""

    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True, index=True)
    name = Varchar(length=80, default="api")
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)

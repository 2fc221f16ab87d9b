from piccolo.columns import JSON, ForeignKey, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from backend.tables.accounts import User


class Check(Table, tablename="checks"):
    """One ECG, skin or ear check: who, what, which model, the full result, the input file."""

    owner = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=8, index=True)  # ecg | skin | ear
    status = Varchar(length=12, default="queued")  # queued | running | done | failed
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    finished_at = Timestamptz(null=True, default=None)
    model_name = Varchar(length=64, default="")
    model_version = Varchar(length=32, default="")
    model_sha256 = Varchar(length=64, default="")
    result = JSON(null=True, default=None)
    error = Text(default="")
    input_file = Varchar(length=128, default="")  # random name under data/uploads
    input_name = Varchar(length=255, default="")  # the user's file name, for display only
    input_media_type = Varchar(length=64, default="")

from piccolo.columns import DoublePrecision, ForeignKey, OnDelete, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from backend.tables.accounts import User


class Vital(Table, tablename="vitals"):
    """A reading: blood_pressure (value=systolic, value2=diastolic, value3=pulse), glucose,
    weight, height, heart_rate. Units are kept as entered."""

    owner = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    type = Varchar(length=20, index=True)
    value = DoublePrecision()
    value2 = DoublePrecision(null=True, default=None)
    value3 = DoublePrecision(null=True, default=None)
    unit = Varchar(length=16)
    context = Varchar(length=16, default="")  # glucose: fasting | after_meal | random
    measured_at = Timestamptz(index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    source = Varchar(length=16, default="manual")  # manual | ecg_check | import

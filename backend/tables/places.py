from piccolo.columns import DoublePrecision, Text, Varchar
from piccolo.table import Table


class Place(Table, tablename="places"):
    """Hospitals, clinics and pharmacies for the nearest-place search."""

    name = Varchar(length=200)
    kind = Varchar(length=24, index=True)  # hospital|clinic|pharmacy|dermatology|ent|cardiology
    address = Text(default="")
    phone = Varchar(length=40, default="")
    lat = DoublePrecision(index=True)
    lon = DoublePrecision(index=True)
    source = Varchar(length=32, default="")

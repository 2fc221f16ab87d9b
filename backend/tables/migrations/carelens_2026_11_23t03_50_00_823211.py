from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T03:50:00:823211"
VERSION = "1.38.0"
DESCRIPTION = "places: composite (lat, lon) and (kind, lat, lon) indexes for the nearest query"

# The auto generator cannot express composite indexes. With them the bounding-box query of
# backend/services/places.py reads the latitude band from the index and checks longitude
# there too, instead of fetching every row of the band (see bench/bench_places.py).
INDEXES = {
    "places_lat_lon_idx": "places (lat, lon)",
    "places_kind_lat_lon_idx": "places (kind, lat, lon)",
}


async def forwards():
    from backend.tables.places import Place

    manager = MigrationManager(migration_id=ID, app_name="carelens", description=DESCRIPTION)

    async def create_indexes():
        for name, target in INDEXES.items():
            await Place.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    async def drop_indexes():
        for name in INDEXES:
            await Place.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager

"""Migrations run forward on both databases, twice (idempotent), and keep existing rows."""

import asyncio
from dataclasses import replace

from backend.tables.db import configure_database, run_migrations
from tests.conftest import base_settings


def test_sqlite_migrations_create_every_table_and_are_idempotent(tmp_path):
    settings = base_settings(tmp_path)
    asyncio.run(run_migrations(settings))

    async def check() -> None:
        from backend.tables.accounts import User
        from backend.tables.piccolo_app import ALL_TABLES

        configure_database(settings)
        for table in ALL_TABLES:
            assert await table.table_exists(), table._meta.tablename
        await User(email="keep@example.org", password_hash="x", display_name="k").save()

    asyncio.run(check())
    asyncio.run(run_migrations(settings))

    async def still_there() -> int:
        from backend.tables.accounts import User

        configure_database(settings)
        return await User.count()

    assert asyncio.run(still_there()) == 1


def test_postgres_migrations_create_every_table(postgres_settings):
    async def check() -> list[str]:
        from backend.tables.piccolo_app import ALL_TABLES

        configure_database(replace(postgres_settings))
        return [t._meta.tablename for t in ALL_TABLES if not await t.table_exists()]

    asyncio.run(run_migrations(postgres_settings))
    assert asyncio.run(check()) == []


def test_migrations_are_in_sync_with_the_tables():
    """A table change without its migration would silently diverge between databases."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "backend" / "tables" / "migrations"
    before = set(folder.glob("*.py"))
    result = subprocess.run(
        [sys.executable, "-m", "piccolo.main", "migrations", "new", "carelens", "--auto"],
        check=False, capture_output=True, text=True, env={**os.environ, "PICCOLO_CONF": "backend.piccolo_conf"},
    )
    created = set(folder.glob("*.py")) - before
    for path in created:  # never leave a generated file behind
        path.unlink()
    assert "No changes detected" in result.stdout, result.stdout[-2000:]
    assert not created

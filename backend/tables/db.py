"""Engine selection and migrations: SQLite by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine

if TYPE_CHECKING:
    from backend.settings import Settings

os.environ.setdefault("PICCOLO_CONF", "backend.piccolo_conf")


def postgres_config(url: str) -> dict:
    parsed = urlparse(url)
    config = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "database": (parsed.path or "/").lstrip("/") or "postgres",
        "user": unquote(parsed.username) if parsed.username else "postgres",
    }
    if parsed.password:
        config["password"] = unquote(parsed.password)
    return config


def build_engine(settings: Settings) -> Engine:
    if settings.is_postgres:
        return PostgresEngine(config=postgres_config(settings.database_url))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # timeout: concurrent writers wait for the lock instead of failing at once.
    return SQLiteEngine(path=str(settings.sqlite_path), timeout=30)


def configure_database(settings: Settings) -> Engine:
    """Point every table (and Piccolo's migration machinery) at the engine for `settings`."""
    from piccolo.apps.migrations.tables import Migration

    from backend import piccolo_conf
    from backend.tables.piccolo_app import ALL_TABLES

    engine = build_engine(settings)
    piccolo_conf.DB = engine
    # Piccolo's own bookkeeping table caches its engine too.
    for table in (*ALL_TABLES, Migration):
        table._meta._db = engine
    return engine


async def run_migrations(settings: Settings) -> None:
    """Apply every pending migration (Piccolo's own forwards command)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    engine = configure_database(settings)
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool()
    else:
        # WAL lets pages read while a reading is being written; it is a property of the
        # file, so setting it once here covers every later connection. synchronous stays
        # FULL (SQLite's default): an acknowledged write is on disk.
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    try:
        response = await run_forwards(app_name="carelens", migration_id="all", fake=False)
        if not response.success:
            print(response.message, file=sys.stderr)
            raise RuntimeError(f"migrations failed: {response.message}")
    finally:
        if isinstance(engine, PostgresEngine):
            await engine.close_connection_pool()

"""Engine selection and migrations: SQLite by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

import asyncio
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


class ServerSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLite engine opens a new connection (and an aiosqlite thread) for every
    query: ~2.5-3 ms each, which dominated API latency under load (bench/load.py). A running
    server opens one long-lived connection on its event loop and runs plain queries on it,
    one at a time; transactions and any other loop (CLI, tests) keep Piccolo's behaviour."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shared = None
        self._shared_loop = None
        self._shared_lock = None

    async def open_shared_connection(self) -> None:
        self._shared = await self.get_connection()
        self._shared_loop = asyncio.get_running_loop()
        self._shared_lock = asyncio.Lock()

    async def close_shared_connection(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.close()

    async def _run_in_new_connection(self, query, args=None, query_type="generic", table=None):
        if self._shared is None or asyncio.get_running_loop() is not self._shared_loop:
            return await super()._run_in_new_connection(query, args, query_type, table)
        async with self._shared_lock:
            async with self._shared.execute(query, args or []) as cursor:
                rows = await cursor.fetchall()
            await self._shared.commit()
            return rows


def build_engine(settings: Settings) -> Engine:
    if settings.is_postgres:
        return PostgresEngine(config=postgres_config(settings.database_url))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # timeout: concurrent writers wait for the lock instead of failing at once.
    return ServerSQLiteEngine(path=str(settings.sqlite_path), timeout=30)


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

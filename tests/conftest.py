"""Shared fixtures: an app on a throwaway SQLite database (default) or PostgreSQL, real HTTP
through Litestar's test client, and helpers to register users and log in."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("PICCOLO_CONF", "backend.piccolo_conf")
# argon2's cheapest profile keeps hundreds of test sign-ups fast; servers started by tests
# inherit it through the environment.
os.environ.setdefault("CARELENS_ARGON2_PROFILE", "cheapest")

from litestar.testing import AsyncTestClient

from backend.settings import PROJECT_ROOT, Settings

PG_ADMIN_URL = os.environ.get("CARELENS_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple"


def base_settings(data_dir: Path, **overrides) -> Settings:
    return replace(
        Settings(),
        data_dir=data_dir,
        weights_dir=PROJECT_ROOT / "weights",
        secret_key="test-secret-key-for-csrf-and-sessions",
        rate_limit_auth_per_minute=1000,
        rate_limit_upload_per_minute=1000,
        database_pool=False,
        **overrides,
    )


def _migrate(settings: Settings) -> None:
    from backend.tables.db import run_migrations

    asyncio.run(run_migrations(settings))


@pytest.fixture(scope="session")
def sqlite_settings(tmp_path_factory) -> Settings:
    settings = base_settings(tmp_path_factory.mktemp("sqlite-data"))
    _migrate(settings)
    return settings


@pytest.fixture(scope="session")
def postgres_settings(tmp_path_factory):
    """A fresh PostgreSQL database for this test session, migrated, dropped afterwards."""
    import asyncpg

    admin_dsn = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    name = f"carelens_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it (see README)")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    settings = base_settings(tmp_path_factory.mktemp("pg-data"), database_url=f"{base}/{name}")
    _migrate(settings)
    yield settings
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request) -> Settings:
    """Both databases: a test using it runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_settings")


async def _empty_tables() -> None:
    from backend.tables.piccolo_app import ALL_TABLES

    for table in reversed(ALL_TABLES):
        await table.delete(force=True)


async def _client_for(settings: Settings):
    from backend.app import create_app

    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        await _empty_tables()
        yield client


@pytest.fixture
async def client(sqlite_settings):
    """The app on SQLite, tables emptied before the test."""
    async for c in _client_for(sqlite_settings):
        yield c


@pytest.fixture
async def any_db_client(db_settings):
    """The app on SQLite and on PostgreSQL (parametrised)."""
    async for c in _client_for(db_settings):
        yield c


@pytest.fixture
def app_settings(client) -> Settings:
    return client.app.state.settings


async def register_user(client, email: str, password: str = PASSWORD, name: str = "") -> dict:
    """Registers through the API and returns bearer headers for that user."""
    response = await client.post("/api/v1/auth/register",
                                 json={"email": email, "password": password, "display_name": name})
    assert response.status_code == 201, response.text
    response = await client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def csrf_from(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


async def login_form(client, email: str, password: str = PASSWORD) -> str:
    """Logs in through the HTML form (session cookie); returns a CSRF token for later forms."""
    page = await client.get("/login")
    token = csrf_from(page.text)
    response = await client.post("/login", data={"email": email, "password": password,
                                                 "_csrf_token": token, "next": "/"})
    assert response.status_code in (200, 201, 302, 303), response.text
    return csrf_from((await client.get("/")).text)


@pytest.fixture
def make_user(client):
    """Factory: `headers = await make_user("a@example.org")` -> bearer headers."""

    async def factory(email: str, password: str = PASSWORD, name: str = "") -> dict:
        return await register_user(client, email, password, name)

    return factory


async def make_admin(client, email: str = "admin@example.org") -> dict:
    from backend.tables.accounts import User

    headers = await register_user(client, email)
    await User.update({User.is_admin: True}).where(User.email == email)
    return headers

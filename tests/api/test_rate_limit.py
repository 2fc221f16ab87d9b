from dataclasses import replace

from litestar.testing import AsyncTestClient

from backend.app import create_app


async def test_login_is_rate_limited_per_client(sqlite_settings):
    app = create_app(replace(sqlite_settings, rate_limit_auth_per_minute=3))
    async with AsyncTestClient(app=app) as client:
        body = {"email": "nobody@example.org", "password": "wrong password here"}
        codes = [(await client.post("/api/v1/auth/token", json=body)).status_code for _ in range(5)]
        assert codes[:3] == [401, 401, 401]
        assert codes[3:] == [429, 429]
        limited = await client.post("/api/v1/auth/token", json=body)
        assert "Too many attempts" in limited.json()["error"]
        # Pages that are not login or registration are not throttled.
        assert (await client.get("/")).status_code == 200

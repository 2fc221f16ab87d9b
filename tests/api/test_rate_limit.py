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


async def test_failed_logins_are_throttled_per_account_across_addresses(client):
    from tests.conftest import register_user

    await register_user(client, "target@example.org")
    body = {"email": "Target@Example.org", "password": "guess guess guess"}
    for _ in range(10):
        assert (await client.post("/api/v1/auth/token", json=body)).status_code == 401
    blocked = await client.post("/api/v1/auth/token",
                                json={"email": "target@example.org", "password": "correct horse battery staple"})
    assert blocked.status_code == 429
    assert "this account" in blocked.json()["error"]
    # Another account is not affected.
    await register_user(client, "other@example.org")


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    from types import SimpleNamespace

    from backend.api.web import client_ip

    def conn(peer, xff):
        return SimpleNamespace(client=SimpleNamespace(host=peer),
                               headers={"x-forwarded-for": xff})

    assert client_ip(conn("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"
    assert client_ip(conn("203.0.113.9", "1.2.3.4"), ("10.0.0.0/8",)) == "203.0.113.9"
    assert client_ip(conn("10.0.0.2", "1.2.3.4"), ("10.0.0.0/8",)) == "1.2.3.4"
    # A client cannot hide behind a forged left-most entry: the right-most untrusted hop wins.
    assert client_ip(conn("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7"), ("10.0.0.0/8",)) == "1.2.3.4"

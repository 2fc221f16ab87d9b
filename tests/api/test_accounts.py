"""Accounts through real HTTP, on SQLite and PostgreSQL."""

from datetime import UTC

from backend.tables.accounts import ApiToken, User
from backend.tables.audit import AuditLog
from backend.tables.checks import Check
from backend.tables.vitals import Vital
from tests.conftest import PASSWORD, csrf_from, login_form, register_user


async def test_register_then_token_then_me(any_db_client):
    headers = await register_user(any_db_client, "ana@example.org", name="Ana")
    me = await any_db_client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.org"
    assert me.json()["display_name"] == "Ana"
    stored = await User.objects().where(User.email == "ana@example.org").first()
    assert stored.password_hash.startswith("$argon2id$")


async def test_register_rejects_short_password_and_duplicate(any_db_client):
    short = await any_db_client.post("/api/v1/auth/register",
                                     json={"email": "b@example.org", "password": "tooshort"})
    assert short.status_code == 400
    assert "12 characters" in short.json()["error"]
    await register_user(any_db_client, "b@example.org")
    again = await any_db_client.post("/api/v1/auth/register",
                                     json={"email": "B@example.org", "password": PASSWORD})
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]


async def test_wrong_password_gets_401_with_message(any_db_client):
    await register_user(any_db_client, "c@example.org")
    response = await any_db_client.post("/api/v1/auth/token",
                                        json={"email": "c@example.org", "password": "wrong password!"})
    assert response.status_code == 401
    assert response.json() == {"error": "Email or password is not correct."}
    assert await AuditLog.exists().where(AuditLog.action == "login_failed")


async def test_invalid_bearer_token_is_401(client):
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert "error" in response.json()


async def test_form_login_sets_httponly_lax_session_and_logout_ends_it(any_db_client):
    await register_user(any_db_client, "d@example.org")
    token = await login_form(any_db_client, "d@example.org")
    cookie = next(h for h in any_db_client.cookies.jar if h.name == "carelens_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    settings_page = await any_db_client.get("/settings")
    assert settings_page.status_code == 200
    assert "d@example.org" not in settings_page.text or "Settings" in settings_page.text
    await any_db_client.post("/logout", data={"_csrf_token": token})
    after = await any_db_client.get("/settings", follow_redirects=False)
    assert after.status_code in (302, 303)
    assert after.headers["location"].startswith("/login")


async def test_form_post_without_csrf_token_is_rejected(client):
    await client.get("/login")  # gets the csrftoken cookie
    response = await client.post("/login", data={"email": "x@example.org", "password": PASSWORD},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert "form expired" in response.json()["error"]


async def test_form_post_with_csrf_token_is_accepted(client):
    page = await client.get("/register")
    response = await client.post("/register", data={
        "email": "e@example.org", "password": PASSWORD, "display_name": "E",
        "_csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert response.status_code in (302, 303)
    assert await User.exists().where(User.email == "e@example.org")


async def test_session_api_call_needs_csrf_header_but_bearer_does_not(client):
    headers = await register_user(client, "f@example.org")
    token = await login_form(client, "f@example.org")
    no_header = await client.patch("/api/v1/me", json={"display_name": "Eff"})
    assert no_header.status_code == 403
    with_header = await client.patch("/api/v1/me", json={"display_name": "Eff"},
                                     headers={"x-csrftoken": token})
    assert with_header.status_code == 200
    client.cookies.clear()
    bearer = await client.patch("/api/v1/me", json={"display_name": "Eff2"}, headers=headers)
    assert bearer.status_code == 200


async def test_change_password_revokes_tokens(any_db_client):
    headers = await register_user(any_db_client, "g@example.org")
    new = "another long passphrase"
    response = await any_db_client.post("/api/v1/me/password", headers=headers,
                                        json={"current_password": PASSWORD, "new_password": new})
    assert response.status_code == 204
    assert (await any_db_client.get("/api/v1/me", headers=headers)).status_code == 401
    again = await any_db_client.post("/api/v1/auth/token",
                                     json={"email": "g@example.org", "password": new})
    assert again.status_code == 200


async def test_another_users_check_is_404(any_db_client):
    alice = await register_user(any_db_client, "alice@example.org")
    bob = await register_user(any_db_client, "bob@example.org")
    alice_id = (await any_db_client.get("/api/v1/me", headers=alice)).json()["id"]
    check = Check(owner=alice_id, kind="skin", status="done", result={"label": "nv"})
    await check.save()
    mine = await any_db_client.get(f"/api/v1/checks/{check.id}", headers=alice)
    assert mine.status_code == 200
    assert mine.json()["result"]["label"] == "nv"
    theirs = await any_db_client.get(f"/api/v1/checks/{check.id}", headers=bob)
    assert theirs.status_code == 404
    assert theirs.json() == {"error": "This check does not exist."}
    assert (await any_db_client.get(f"/api/v1/checks/{check.id}/input", headers=bob)).status_code == 404
    assert (await any_db_client.delete(f"/api/v1/checks/{check.id}", headers=bob)).status_code == 404
    listing = await any_db_client.get("/api/v1/checks/", headers=bob)
    assert listing.json() == []


async def test_delete_account_removes_the_users_rows(any_db_client):
    from datetime import datetime

    headers = await register_user(any_db_client, "h@example.org")
    other = await register_user(any_db_client, "keep@example.org")
    me = (await any_db_client.get("/api/v1/me", headers=headers)).json()["id"]
    keep = (await any_db_client.get("/api/v1/me", headers=other)).json()["id"]
    for owner in (me, keep):
        await Check(owner=owner, kind="ear", status="done").save()
        await Vital(owner=owner, type="weight", value=70, unit="kg",
                    measured_at=datetime.now(UTC)).save()
    response = await any_db_client.delete("/api/v1/me", headers=headers)
    assert response.status_code == 204
    assert not await User.exists().where(User.id == me)
    assert await Check.count().where(Check.owner == me) == 0
    assert await Vital.count().where(Vital.owner == me) == 0
    assert await ApiToken.count().where(ApiToken.user == me) == 0
    assert await Check.count().where(Check.owner == keep) == 1
    assert await AuditLog.exists().where(AuditLog.action == "account_deleted")


async def test_delete_account_form_needs_the_password(client):
    await register_user(client, "i@example.org")
    token = await login_form(client, "i@example.org")
    wrong = await client.post("/settings/delete", data={"password": "not my password", "_csrf_token": token})
    assert wrong.status_code == 400
    assert await User.exists().where(User.email == "i@example.org")
    right = await client.post("/settings/delete", data={"password": PASSWORD, "_csrf_token": token},
                              follow_redirects=False)
    assert right.status_code in (302, 303)
    assert not await User.exists().where(User.email == "i@example.org")

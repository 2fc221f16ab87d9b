"""Admin console: every admin route refuses non-admins (enumerated from the app's route
table), admin actions land in the audit log, reset links work once."""

import json
import re

import pytest

from backend.inference.registry import ModelRegistry
from backend.services import admin as admin_service
from backend.tables.accounts import User
from backend.tables.audit import AuditLog
from backend.tables.checks import Check
from backend.tables.community import Comment, Post
from backend.tables.push import PushDelivery
from backend.tables.vitals import Vital
from tests.conftest import PASSWORD, csrf_from, login_form, make_admin

ADMIN_PREFIXES = ("/admin", "/api/v1/admin")
PARAM = re.compile(r"\{(\w+):(\w+)\}")
SAMPLE_VALUES = {"int": "1", "str": "disable"}


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the admin area, straight from the router."""
    found = []
    for route in app.routes:
        if not route.path.startswith(ADMIN_PREFIXES):
            continue
        for method in sorted(route.methods):
            if method in ("OPTIONS", "HEAD"):  # Litestar's automatic, body-less replies
                continue
            found.append((method, PARAM.sub(lambda m: SAMPLE_VALUES[m.group(2)], route.path)))
    return found


async def _user_id(email: str) -> int:
    return (await User.select(User.id).where(User.email == email).first())["id"]


async def test_route_table_enumeration_finds_the_admin_area(client):
    routes = admin_routes(client.app)
    paths = {p for _, p in routes}
    assert {"/admin", "/admin/members", "/admin/moderation", "/admin/models", "/admin/audit",
            "/api/v1/admin/stats", "/api/v1/admin/users", "/api/v1/admin/reports"} <= paths
    assert len(routes) >= 15


async def test_every_admin_route_refuses_a_member(client, make_user):
    member = await make_user("member@example.org")
    victim_headers = await make_user("victim@example.org")
    victim_id = await _user_id("victim@example.org")
    post = await client.post("/api/v1/posts", headers=victim_headers,
                             json={"title": "Keep me", "body": "text"})
    assert post.json()["id"] == 1 and victim_id in (1, 2)
    await login_form(client, "member@example.org")  # and a session cookie, for the pages
    token = csrf_from((await client.get("/")).text)
    checked = 0
    for method, path in admin_routes(client.app):
        for headers in (member, {"x-csrftoken": token}):
            kwargs = {"json": {"reason": "x"}} if method == "POST" else {}
            response = await client.request(method, path, headers=headers, **kwargs)
            assert response.status_code in (403, 404), (method, path, response.status_code)
            checked += 1
    assert checked >= 30
    # Nothing changed: nobody disabled, promoted or hidden, no admin entries in the log.
    assert await User.count().where((User.is_active == False) | (User.is_admin == True)) == 0
    assert (await Post.select(Post.hidden).first())["hidden"] is False
    assert not await AuditLog.exists().where(AuditLog.action.like("admin_%"))


async def test_every_admin_route_refuses_anonymous_callers(client):
    for method, path in admin_routes(client.app):
        response = await client.request(method, path, follow_redirects=False)
        if path.startswith("/api/"):
            assert response.status_code in (401, 403), (method, path, response.status_code)
        else:  # pages send people to the login form (or refuse a POST without CSRF)
            assert response.status_code in (302, 303, 401, 403), (method, path)


async def test_member_management_is_audited(client, make_user):
    admin = await make_admin(client)
    await make_user("ana@example.org", name="Ana Kim")
    ana_id = await _user_id("ana@example.org")
    found = await client.get("/api/v1/admin/users", params={"q": "kim"}, headers=admin)
    assert [u["email"] for u in found.json()] == ["ana@example.org"]

    for action in ("disable", "enable", "promote", "demote"):
        response = await client.post(f"/api/v1/admin/users/{ana_id}/{action}", headers=admin)
        assert response.status_code == 200, response.text
    await client.post(f"/api/v1/admin/users/{ana_id}/disable", headers=admin)
    login = await client.post("/api/v1/auth/token",
                              json={"email": "ana@example.org", "password": PASSWORD})
    assert login.status_code == 401  # a disabled member cannot log in

    admin_id = await _user_id("admin@example.org")
    self_disable = await client.post(f"/api/v1/admin/users/{admin_id}/disable", headers=admin)
    assert self_disable.status_code == 400
    actions = [r["action"] for r in await AuditLog.select(AuditLog.action).where(
        (AuditLog.actor_id == admin_id) & AuditLog.action.like("admin_%")).order_by(AuditLog.id)]
    assert actions == ["admin_view", "admin_disable_user", "admin_enable_user",
                       "admin_promote_user", "admin_demote_user", "admin_disable_user"]
    entry = await AuditLog.select().where(AuditLog.action == "admin_promote_user").first()
    assert entry["target"] == "ana@example.org"


async def test_reset_link_works_once_and_is_audited(client, make_user):
    admin = await make_admin(client)
    await make_user("ben@example.org")
    ben_id = await _user_id("ben@example.org")
    response = await client.post(f"/api/v1/admin/users/{ben_id}/reset-link", headers=admin)
    assert response.status_code == 200
    url = response.json()["url"]
    path = url[url.index("/reset-password/"):]
    page = await client.get(path)
    assert page.status_code == 200 and "ben@example.org" in page.text
    new_password = "a brand new passphrase"
    done = await client.post(path, data={"_csrf_token": csrf_from(page.text),
                                         "new_password": new_password}, follow_redirects=False)
    assert done.status_code in (302, 303)
    assert (await client.post("/api/v1/auth/token", json={
        "email": "ben@example.org", "password": new_password})).status_code == 200
    again = await client.get(path)
    assert again.status_code == 400 and "invalid, used or expired" in again.text
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert (await client.get(tampered)).status_code == 400
    assert await AuditLog.exists().where(AuditLog.action == "admin_reset_link")
    assert await AuditLog.exists().where(AuditLog.action == "password_reset")


async def test_moderation_actions_are_audited_with_reason(client, make_user):
    admin = await make_admin(client)
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    post = (await client.post("/api/v1/posts", headers=ana, json={"title": "t", "body": "b"})).json()
    comment = (await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ben,
                                 json={"body": "rude words"})).json()
    await client.post(f"/api/v1/comments/{comment['id']}/report", headers=ana,
                      json={"reason": "insult"})
    queue = (await client.get("/api/v1/admin/reports", headers=admin)).json()
    assert queue[0]["type"] == "comment" and queue[0]["reasons"] == ["insult"]

    await client.post(f"/api/v1/admin/comments/{comment['id']}/hide", headers=admin,
                      json={"reason": "insulting"})
    detail = (await client.get(f"/api/v1/posts/{post['id']}", headers=ana)).json()
    assert detail["comments"] == [] and detail["comment_count"] == 0
    await client.post(f"/api/v1/admin/posts/{post['id']}/hide", headers=admin,
                      json={"reason": "spam"})
    await client.post(f"/api/v1/admin/posts/{post['id']}/restore", headers=admin,
                      json={"reason": "mistake"})
    await client.post(f"/api/v1/admin/posts/{post['id']}/delete", headers=admin,
                      json={"reason": "author asked"})
    assert await Post.count() == 0 and await Comment.count() == 0
    rows = await AuditLog.select(AuditLog.action, AuditLog.detail, AuditLog.target).where(
        AuditLog.action.like("admin_%")).order_by(AuditLog.id)
    assert [r["action"] for r in rows] == ["admin_hide_comment", "admin_hide_post",
                                           "admin_restore_post", "admin_delete_post"]
    reasons = [(json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"])["reason"]
               for r in rows]
    assert reasons == ["insulting", "spam", "mistake", "author asked"]
    assert rows[1]["target"] == f"post:{post['id']}"
    audit = await client.get("/api/v1/admin/audit?action=admin_hide_post", headers=admin)
    assert [e["detail"]["reason"] for e in audit.json()] == ["spam"]


async def test_unknown_moderation_action_is_404_and_changes_nothing(client, make_user):
    admin = await make_admin(client)
    ana = await make_user("ana@example.org")
    post = (await client.post("/api/v1/posts", headers=ana, json={"title": "t", "body": "b"})).json()
    comment = (await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ana,
                                 json={"body": "hello"})).json()
    for path in (f"/api/v1/admin/posts/{post['id']}/purge",
                 f"/api/v1/admin/comments/{comment['id']}/purge",
                 "/api/v1/admin/posts/999999/purge"):
        response = await client.post(path, headers=admin, json={"reason": "x"})
        assert response.status_code == 404, path
        assert "moderation action" in response.json()["error"]
    assert await Post.count() == 1 and await Comment.count() == 1
    assert not await AuditLog.exists().where(AuditLog.action.like("admin_%"))


async def test_moderation_page_forms(client, make_user):
    await make_admin(client)
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    post = (await client.post("/api/v1/posts", headers=ana,
                              json={"title": "<i>t</i>", "body": "b"})).json()
    await client.post(f"/api/v1/posts/{post['id']}/report", headers=ben, json={"reason": "<b>x"})
    token = await login_form(client, "admin@example.org")
    page = await client.get("/admin/moderation")
    assert page.status_code == 200 and "&lt;i&gt;t&lt;/i&gt;" in page.text
    assert "&lt;b&gt;x" in page.text
    response = await client.post(f"/admin/posts/{post['id']}/hide",
                                 data={"_csrf_token": token, "reason": "off topic"},
                                 follow_redirects=False)
    assert response.status_code in (302, 303)
    assert (await Post.select(Post.hidden, Post.hidden_reason).first()) == {
        "hidden": True, "hidden_reason": "off topic"}
    assert "No open reports" in (await client.get("/admin/moderation")).text
    for url in ("/admin", "/admin/members", "/admin/models", "/admin/audit"):
        assert (await client.get(url)).status_code == 200, url
    assert "admin_hide_post" in (await client.get("/admin/audit")).text


async def test_dashboard_counts_and_latency(client, make_user):
    admin = await make_admin(client)
    await make_user("ana@example.org")
    ana_id = await _user_id("ana@example.org")
    for kind in ("ecg", "ecg", "skin"):
        await Check(owner=ana_id, kind=kind, status="done").save()
    from datetime import UTC, datetime

    await Vital(owner=ana_id, type="weight", value=70, unit="kg",
                measured_at=datetime.now(UTC)).save()
    await PushDelivery.insert(PushDelivery(owner=ana_id, ok=True, status_code=201),
                              PushDelivery(owner=ana_id, ok=True, status_code=201),
                              PushDelivery(owner=ana_id, ok=False, status_code=500))
    pool = client.app.state.pool
    pool.latencies["ecg"].extend([0.2, 0.4, 0.3])
    stats = (await client.get("/api/v1/admin/stats", headers=admin)).json()
    assert stats["users_total"] == 2 and stats["signups"] == 2
    assert stats["checks"] == {"ecg": 2, "skin": 1, "ear": 0}
    today = stats["days"][-1]
    assert stats["checks_per_kind_per_day"]["ecg"][today] == 2
    assert stats["vitals"] == 1
    assert stats["push"] == {"attempts": 3, "delivered": 2, "success_rate": 0.667}
    assert stats["latency_ms"]["ecg"]["n"] == 3 and stats["latency_ms"]["ecg"]["p50_ms"] == 300.0
    assert stats["active_users_7d"] >= 1


def test_model_status_reports_versions_hashes_and_mismatches(tmp_path):
    (tmp_path / "good.onnx").write_bytes(b"onnx bytes")
    from backend.inference.registry import sha256_of

    (tmp_path / "good.json").write_text(json.dumps({
        "name": "good", "version": "2.1", "task": "classification",
        "sha256": sha256_of(tmp_path / "good.onnx"), "metrics": {"auroc": 0.93}}))
    (tmp_path / "bad.onnx").write_bytes(b"changed")
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "version": "1",
                                                   "sha256": "0" * 64}))
    status = {m.name: m for m in admin_service.model_status(ModelRegistry(tmp_path))}
    assert status["good"].version == "2.1" and status["good"].problem == ""
    assert status["good"].metrics == {"auroc": 0.93} and status["good"].loaded is False
    assert "does not match" in status["bad"].problem


@pytest.mark.parametrize("token", ["", "abc", "e30.sig", "WzEsIDF9.sig"])
async def test_garbage_reset_tokens_are_refused(client, token):
    response = await client.get(f"/reset-password/{token or 'x'}")
    assert response.status_code == 400

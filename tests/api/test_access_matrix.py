"""The access-control matrix, generated from the app's route table: anonymous / user /
other user / admin x every route. A route missing from the policy below fails the test, so a
new route cannot ship without a decision about who may call it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from litestar.routes import HTTPRoute

from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.community import Comment, Post
from backend.tables.push import Reminder
from backend.tables.vitals import Vital
from tests.conftest import login_form, register_user

# Reachable without logging in.
PUBLIC = [
    r"GET /", r"GET /healthz", r"GET /offline", r"GET /sw\.js", r"GET /manifest\.webmanifest",
    r"(GET|POST) /login", r"(GET|POST) /register", r"POST /lang", r"POST /logout",
    r"POST /api/v1/auth/(register|token)", r"GET /api/v1/push/vapid-public-key",
    r"GET /places", r"GET /api/v1/places/nearest", r"(GET|HEAD) /static/.*", r"GET /schema.*",
    r"(GET|POST) /reset-password/\{token\}",
]
# Logged-in members may read or act on other members' items here, by design (the board).
SHARED = [
    r"GET /community(/.*)?", r"GET /api/v1/posts(/\{post_id\})?",
    r"POST /(api/v1/posts|community)/\{post_id\}/(like|comments|report)",
    r"POST /(api/v1/comments|community/comments)/\{comment_id\}/report",
    r"GET /community/\{post_id\}/(image|photo)",
]
# Act on the caller's own account only: checked for anonymous callers, then not called by
# the intruder (it would end the intruder's own session mid-test).
SELF = [r"DELETE /api/v1/me", r"DELETE /api/v1/auth/token"]
ADMIN = re.compile(r"^(/admin|/api/v1/admin)(/|$)")

BODIES = {
    "PATCH": {"json": {"title": "taken over", "body": "taken over", "display_name": "x"}},
    "PUT": {"json": {"title": "taken over", "body": "taken over"}},
}


def route_table(app) -> list[tuple[str, str]]:
    pairs = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                pairs.append((method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)))
    return sorted(set(pairs))


def matches(patterns, method, path) -> bool:
    return any(re.fullmatch(p, f"{method} {path}") for p in patterns)


async def owned_resources(client, owner_headers) -> dict[str, int]:
    me = (await client.get("/api/v1/me", headers=owner_headers)).json()["id"]
    check = Check(owner=me, kind="skin", status="done", result={
        "kind": "skin", "label": "nv", "probabilities": {"nv": 1.0}, "confidence": 1.0,
        "urgency": "routine", "model": {"name": "m", "version": "1", "sha256": "0"},
        "quality": {"ok": True, "issues": []}, "explanation": "", "disclaimer": ""})
    await check.save()
    vital = Vital(owner=me, type="weight", value=70.0, unit="kg", measured_at=datetime.now(UTC))
    await vital.save()
    post = Post(author=me, title="mine", body="mine")
    await post.save()
    comment = Comment(post=post.id, author=me, body="mine")
    await comment.save()
    reminder = Reminder(owner=me, kind="blood_pressure", time_of_day="08:00")
    await reminder.save()
    return {"check_id": check.id, "vital_id": vital.id, "post_id": post.id,
            "comment_id": comment.id, "reminder_id": reminder.id, "user_id": me,
            "kind": "skin", "file_path": "css/app.css", "path": "openapi.json",
            "token": "not-a-valid-token", "action": "hide"}


def fill(path: str, ids: dict) -> str:
    def sub(match):
        name = match.group(1)
        assert name in ids, f"no test resource for path parameter {{{name}}} in {path}"
        return str(ids[name])

    return re.sub(r"\{(\w+)\}", sub, path)


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc0f01f0005000201e2e1d1b70000000049454e44ae426082")


async def call(client, method, url, headers=None, csrf=None):
    kwargs = dict(BODIES.get(method, {}))
    if method == "POST" and url.endswith("/image"):
        kwargs = {"files": {"file": ("x.png", PNG_1PX, "image/png")}}
    hdrs = dict(headers or {})
    if csrf:
        hdrs["x-csrftoken"] = csrf
    return await client.request(method, url, headers=hdrs, follow_redirects=False, **kwargs)


def refused_anonymous(path: str, response) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code in (302, 303) and response.headers["location"].startswith("/login")


async def test_access_control_matrix(client):
    app = client.app
    owner = await register_user(client, "owner@example.org")
    intruder = await register_user(client, "intruder@example.org")
    admin = await register_user(client, "root@example.org")
    await User.update({User.is_admin: True}).where(User.email == "root@example.org")
    ids = await owned_resources(client, owner)
    problems = []

    routes = route_table(app)
    assert len(routes) > 40
    for method, path in routes:
        url = fill(path, ids)
        if matches(PUBLIC, method, path):
            response = await call(client, method, url)
            if response.status_code >= 500:
                problems.append(f"anonymous {method} {path}: {response.status_code}")
            continue
        client.cookies.clear()
        response = await call(client, method, url)
        if not refused_anonymous(path, response) and response.status_code != 403:
            problems.append(f"anonymous {method} {path}: {response.status_code}, not refused")

        if matches(SELF, method, path):
            continue
        is_admin_route = bool(ADMIN.match(path))
        response = await call(client, method, url, headers=intruder)
        if is_admin_route:
            if response.status_code not in (403, 404):
                problems.append(f"member {method} {path}: {response.status_code}, not 403/404")
            response = await call(client, method, url, headers=admin)
            if response.status_code in (401, 403) or response.status_code >= 500:
                problems.append(f"admin {method} {path}: {response.status_code}")
        elif "{" in path and not matches(SHARED, method, path) and "{kind}" not in path:
            if response.status_code not in (403, 404):
                problems.append(f"other user {method} {path}: {response.status_code}, not 403/404")
        elif response.status_code >= 500:
            problems.append(f"member {method} {path}: {response.status_code}")

    # Nothing the intruder tried changed the owner's data.
    assert await Check.exists().where(Check.id == ids["check_id"])
    assert await Vital.exists().where(Vital.id == ids["vital_id"])
    assert await Reminder.exists().where(Reminder.id == ids["reminder_id"])
    post = await Post.objects().where(Post.id == ids["post_id"]).first()
    assert post is not None and post.title == "mine"
    assert problems == [], "\n".join(problems)


async def test_session_identity_is_checked_too(client):
    """The same rules hold for a browser session (cookie + CSRF), not only bearer tokens."""
    owner = await register_user(client, "o2@example.org")
    ids = await owned_resources(client, owner)
    await register_user(client, "i2@example.org")
    token = await login_form(client, "i2@example.org")
    for url in (f"/checks/{ids['check_id']}", f"/api/v1/checks/{ids['check_id']}"):
        assert (await client.get(url)).status_code == 404
    response = await client.post(f"/checks/{ids['check_id']}/delete", headers={"x-csrftoken": token})
    assert response.status_code == 404
    assert await Check.exists().where(Check.id == ids["check_id"])

"""Administration: usage figures, member management, moderation, model status, and the
signed one-time password-reset links. Every action is written to the audit log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backend.i18n import N_
from backend.inference.errors import ModelIntegrityError
from backend.inference.registry import ModelRegistry, sha256_of
from backend.services import accounts
from backend.services import community as board
from backend.services.errors import NotFoundError, ServiceError
from backend.tables.accounts import ApiToken, User
from backend.tables.audit import AuditLog
from backend.tables.checks import Check
from backend.tables.community import Comment, Post, Report
from backend.tables.push import PushDelivery
from backend.tables.vitals import Vital

RESET_TTL_S = 24 * 3600
DASHBOARD_DAYS = 14


# ----------------------------------------------------------------- dashboard


def _day(value: datetime | str | None) -> str:
    if isinstance(value, str):
        return value[:10]
    return value.astimezone(UTC).date().isoformat() if value else ""


async def usage(pool: Any = None, days: int = DASHBOARD_DAYS) -> dict[str, Any]:
    """Counts over the last `days` days plus live model latency from the inference pool."""
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    day_keys = [(since + timedelta(days=i + 1)).date().isoformat() for i in range(days)]

    signups = await User.select(User.created_at).where(User.created_at >= since)
    signups_per_day = dict.fromkeys(day_keys, 0)
    for row in signups:
        key = _day(row["created_at"])
        if key in signups_per_day:
            signups_per_day[key] += 1

    checks = await Check.select(Check.kind, Check.created_at, Check.status, Check.owner).where(
        Check.created_at >= since)
    per_kind: dict[str, dict[str, int]] = {k: dict.fromkeys(day_keys, 0)
                                           for k in ("ecg", "skin", "ear")}
    for row in checks:
        key = _day(row["created_at"])
        per_kind.setdefault(row["kind"], dict.fromkeys(day_keys, 0))
        if key in per_kind[row["kind"]]:
            per_kind[row["kind"]][key] += 1

    vitals = await Vital.select(Vital.owner, Vital.created_at).where(Vital.created_at >= since)
    vitals_per_day = dict.fromkeys(day_keys, 0)
    for row in vitals:
        key = _day(row["created_at"])
        if key in vitals_per_day:
            vitals_per_day[key] += 1

    # Active: did something that leaves a row (a login, a check, a reading, a post) lately.
    week = now - timedelta(days=7)
    logins = await AuditLog.select(AuditLog.actor_id).where(
        (AuditLog.created_at >= week) & (AuditLog.action == "login"))
    active = {r["actor_id"] for r in logins if r["actor_id"]}
    active |= {r["owner"] for r in checks if _day(r["created_at"]) >= week.date().isoformat()}
    active |= {r["owner"] for r in vitals if _day(r["created_at"]) >= week.date().isoformat()}
    posts = await Post.select(Post.author).where(Post.created_at >= week)
    active |= {r["author"] for r in posts}

    deliveries = await PushDelivery.select(PushDelivery.ok).where(PushDelivery.created_at >= since)
    delivered = sum(1 for r in deliveries if r["ok"])
    latency = pool.latency_percentiles() if pool is not None else {}

    return {
        "days": day_keys,
        "users_total": await User.count(),
        "users_disabled": await User.count().where(User.is_active == False),
        "signups_per_day": signups_per_day,
        "signups": sum(signups_per_day.values()),
        "active_users_7d": len(active),
        "checks_per_kind_per_day": per_kind,
        "checks": {k: sum(v.values()) for k, v in per_kind.items()},
        "checks_failed": sum(1 for r in checks if r["status"] == "failed"),
        "vitals_per_day": vitals_per_day,
        "vitals": sum(vitals_per_day.values()),
        "push": {"attempts": len(deliveries), "delivered": delivered,
                 "success_rate": round(delivered / len(deliveries), 3) if deliveries else None},
        "latency_ms": latency,
        "open_reports": await Report.count().where(Report.resolved == False),
        "posts": await Post.count(),
    }


# ----------------------------------------------------------------- members


def _member(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "email": row["email"], "display_name": row["display_name"],
            "is_admin": row["is_admin"], "is_active": row["is_active"],
            "created_at": row["created_at"].isoformat() if row["created_at"] else None}


async def search_members(query: str = "", limit: int = 50, offset: int = 0) -> list[dict]:
    select = User.select(User.id, User.email, User.display_name, User.is_admin, User.is_active,
                         User.created_at)
    query = query.strip()
    if query:
        pattern = f"%{query.replace('%', '').replace('_', '')}%"
        select = select.where(User.email.ilike(pattern) | User.display_name.ilike(pattern))
    rows = await select.order_by(User.id, ascending=False).limit(max(1, min(limit, 200))).offset(
        max(0, offset))
    return [_member(r) for r in rows]


async def _member_row(user_id: int) -> User:
    user = await User.objects().where(User.id == user_id).first()
    if user is None:
        raise NotFoundError(N_("This member does not exist."))
    return user


async def set_active(admin: User, user_id: int, active: bool, ip: str = "") -> dict:
    user = await _member_row(user_id)
    if user.id == admin.id and not active:
        raise ServiceError(N_("You cannot disable your own account."), 400)
    await User.update({User.is_active: active}).where(User.id == user_id)
    if not active:
        # A disabled member's API tokens stop at once (sessions check is_active per request).
        await ApiToken.delete().where(ApiToken.user == user_id)
    await accounts.record_audit("admin_enable_user" if active else "admin_disable_user",
                                actor_id=admin.id, target=user.email, ip=ip)
    user.is_active = active
    return _member(user.to_dict())


async def set_admin(admin: User, user_id: int, make_admin: bool, ip: str = "") -> dict:
    user = await _member_row(user_id)
    if user.id == admin.id and not make_admin:
        raise ServiceError(N_("You cannot remove your own administrator role."), 400)
    await User.update({User.is_admin: make_admin}).where(User.id == user_id)
    await accounts.record_audit("admin_promote_user" if make_admin else "admin_demote_user",
                                actor_id=admin.id, target=user.email, ip=ip)
    user.is_admin = make_admin
    return _member(user.to_dict())


# A reset token is signed with the app secret and bound to the current password hash, so it
# works once: setting the new password changes the hash and voids the token.


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _reset_signature(secret: str, user_id: int, expires: int, password_hash: str) -> str:
    message = f"reset:{user_id}:{expires}:{password_hash}".encode()
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest())


def make_reset_token(secret: str, user: User, now: float | None = None) -> str:
    expires = int((now or time.time()) + RESET_TTL_S)
    payload = _b64(json.dumps([user.id, expires]).encode())
    return f"{payload}.{_reset_signature(secret, user.id, expires, user.password_hash)}"


async def user_for_reset_token(secret: str, token: str) -> User:
    invalid = ServiceError(N_("This password reset link is invalid, used or expired. Ask an "
                              "administrator for a new one."), 400)
    try:
        payload, signature = token.split(".", 1)
        user_id, expires = json.loads(_unb64(payload))
        user_id, expires = int(user_id), int(expires)
    except (ValueError, TypeError):
        raise invalid from None
    if expires < time.time():
        raise invalid
    user = await User.objects().where(User.id == user_id).first()
    if user is None or not user.is_active:
        raise invalid
    expected = _reset_signature(secret, user_id, expires, user.password_hash)
    if not hmac.compare_digest(expected, signature):
        raise invalid
    return user


async def reset_link(admin: User, user_id: int, secret: str, base_url: str = "",
                     ip: str = "") -> str:
    user = await _member_row(user_id)
    await accounts.record_audit("admin_reset_link", actor_id=admin.id, target=user.email, ip=ip)
    return f"{base_url.rstrip('/')}/reset-password/{make_reset_token(secret, user)}"


async def complete_reset(secret: str, token: str, new_password: str, ip: str = "") -> User:
    user = await user_for_reset_token(secret, token)
    accounts.validate_password(new_password)
    user.password_hash = accounts.hash_password(new_password)
    await user.save([User.password_hash])
    await ApiToken.delete().where(ApiToken.user == user.id)
    await accounts.record_audit("password_reset", actor_id=user.id, target=user.email, ip=ip)
    return user


# ----------------------------------------------------------------- moderation


async def report_queue(include_resolved: bool = False) -> list[dict[str, Any]]:
    """Open reports grouped by reported post or comment, most reported first."""
    query = Report.select(Report.id, Report.reporter, Report.post, Report.comment, Report.reason,
                          Report.resolved, Report.created_at)
    if not include_resolved:
        query = query.where(Report.resolved == False)
    rows = await query.order_by(Report.id)
    groups: dict[tuple, dict[str, Any]] = {}
    post_ids = {r["post"] for r in rows if r["post"]}
    comment_ids = {r["comment"] for r in rows if r["comment"]}
    posts = {p["id"]: p for p in await Post.select(
        Post.id, Post.title, Post.body, Post.author, Post.hidden, Post.hidden_reason).where(
        Post.id.is_in(list(post_ids) or [0]))}
    comments = {c["id"]: c for c in await Comment.select(
        Comment.id, Comment.body, Comment.author, Comment.hidden, Comment.post).where(
        Comment.id.is_in(list(comment_ids) or [0]))}
    authors = {u["id"]: u for u in await User.select(User.id, User.display_name, User.email)
               .where(User.id.is_in([*(p["author"] for p in posts.values()),
                                     *(c["author"] for c in comments.values())] or [0]))}
    for r in rows:
        key = ("comment", r["comment"]) if r["comment"] else ("post", r["post"])
        group = groups.get(key)
        if group is None:
            item = comments.get(r["comment"]) if r["comment"] else posts.get(r["post"])
            if item is None:
                continue
            author = authors.get(item["author"], {})
            group = groups[key] = {
                "type": key[0], "id": key[1],
                "post": {"id": r["post"], "title": posts.get(r["post"], {}).get("title", "")},
                "text": item.get("body", "")[:500], "hidden": item["hidden"],
                "author": {"id": item["author"], "display_name": author.get("display_name", ""),
                           "email": author.get("email", "")},
                "reports": 0, "reasons": [], "first_reported_at": r["created_at"].isoformat(),
            }
        group["reports"] += 1
        if r["reason"]:
            group["reasons"].append(r["reason"])
    return sorted(groups.values(), key=lambda g: (-g["reports"], g["first_reported_at"]))


async def _resolve_reports(*, post_id: int | None = None, comment_id: int | None = None) -> None:
    where = (Report.comment == comment_id) if comment_id else (
        (Report.post == post_id) & Report.comment.is_null())
    await Report.update({Report.resolved: True}).where(where)


ACTIONS = ("hide", "restore", "delete")


def _check_action(action: str) -> None:
    """An action outside ACTIONS names no moderation route: 404, before anything is looked up."""
    if action not in ACTIONS:
        raise ServiceError(N_("Unknown moderation action."), 404)


async def moderate_post(admin: User, post_id: int, action: str, reason: str = "",
                        uploads_dir: Path | None = None, ip: str = "") -> None:
    _check_action(action)
    post = await Post.objects().where(Post.id == post_id).first()
    if post is None:
        raise NotFoundError(N_("This post does not exist or was removed."))
    reason = (reason or "").strip()[:1000]
    if action == "hide":
        await Post.update({Post.hidden: True, Post.hidden_reason: reason}).where(Post.id == post_id)
    elif action == "restore":
        await Post.update({Post.hidden: False, Post.hidden_reason: ""}).where(Post.id == post_id)
    else:  # delete
        await board.remove_post(post_id, uploads_dir)
    if action != "delete":
        await _resolve_reports(post_id=post_id)
    await accounts.record_audit(f"admin_{action}_post", actor_id=admin.id, target=f"post:{post_id}",
                                ip=ip, detail={"reason": reason, "title": post.title[:100],
                                               "author_id": post.author})


async def moderate_comment(admin: User, comment_id: int, action: str, reason: str = "",
                           ip: str = "") -> None:
    _check_action(action)
    comment = await Comment.objects().where(Comment.id == comment_id).first()
    if comment is None:
        raise NotFoundError(N_("This comment does not exist."))
    reason = (reason or "").strip()[:1000]
    if action in ("hide", "restore"):
        await Comment.update({Comment.hidden: action == "hide"}).where(Comment.id == comment_id)
        await _resolve_reports(comment_id=comment_id)
    else:  # delete
        await Comment.delete().where(Comment.id == comment_id)
    count = await Comment.count().where((Comment.post == comment.post)
                                        & (Comment.hidden == False))
    await Post.update({Post.comment_count: count}).where(Post.id == comment.post)
    await accounts.record_audit(f"admin_{action}_comment", actor_id=admin.id,
                                target=f"comment:{comment_id}", ip=ip,
                                detail={"reason": reason, "post_id": comment.post,
                                        "author_id": comment.author})


# ----------------------------------------------------------------- models and audit


@dataclass
class ModelStatus:
    name: str
    loaded: bool
    version: str
    task: str
    sha256: str
    size_bytes: int | None
    created_at: str
    metrics: dict
    problem: str


def model_status(registry: ModelRegistry) -> list[ModelStatus]:
    """Every model with a card in weights/, whether the running app has it loaded, and the
    card's version and sha256 (the registry refuses a file whose hash differs)."""
    loaded = {m.name: m for m in registry.loaded()}
    names = sorted(set(registry.available()) | set(loaded))
    out = []
    for name in names:
        problem = ""
        try:
            card = loaded[name].card if name in loaded else registry.read_card(name)
        except (ModelIntegrityError, ValueError, OSError) as exc:
            card, problem = {}, str(exc)
        onnx = registry.onnx_path(name)
        if not onnx.exists():
            problem = problem or "weights file missing"
        elif name not in loaded and card.get("sha256") and sha256_of(onnx) != card["sha256"]:
            # The registry would refuse it; say so before a member's check fails.
            problem = problem or "sha256 of the .onnx does not match its card"
        metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
        out.append(ModelStatus(
            name=name, loaded=name in loaded, version=str(card.get("version", "")),
            task=str(card.get("task", "")), sha256=str(card.get("sha256", "")),
            size_bytes=card.get("size_bytes"), created_at=str(card.get("created_at", "")),
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
            problem=problem))
    return out


async def audit_entries(limit: int = 100, action: str = "") -> list[dict[str, Any]]:
    query = AuditLog.select(AuditLog.id, AuditLog.actor_id, AuditLog.action, AuditLog.target,
                            AuditLog.detail, AuditLog.ip, AuditLog.created_at)
    if action:
        query = query.where(AuditLog.action == action)
    rows = await query.order_by(AuditLog.id, ascending=False).limit(max(1, min(limit, 500)))
    names = defaultdict(str)
    ids = [r["actor_id"] for r in rows if r["actor_id"]]
    if ids:
        for u in await User.select(User.id, User.email).where(User.id.is_in(ids)):
            names[u["id"]] = u["email"]
    out = []
    for r in rows:
        detail = r["detail"]
        if isinstance(detail, str):
            try:
                detail = json.loads(detail or "{}")
            except ValueError:
                detail = {"raw": detail}
        out.append({"id": r["id"], "actor_id": r["actor_id"], "actor": names[r["actor_id"]],
                    "action": r["action"], "target": r["target"], "detail": detail,
                    "ip": r["ip"], "created_at": r["created_at"].isoformat()})
    return out


async def record_view(admin: User, what: str, ip: str = "") -> None:
    """Reading member data is an admin action too."""
    await accounts.record_audit("admin_view", actor_id=admin.id, target=what[:128], ip=ip)

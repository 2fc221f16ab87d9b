"""Web push (RFC 8030/8291/8292) with pywebpush and VAPID: keys, subscriptions, sending.

Sending is synchronous in pywebpush (requests), so each POST runs in a worker thread with a
short timeout; the event loop never waits on a push service.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from backend.i18n import gettext as _
from backend.services.errors import ServiceError
from backend.tables.accounts import User
from backend.tables.push import PushDelivery, PushSubscription

log = logging.getLogger("carelens.push")

# RFC 8291: a push message body is at most 4096 bytes; aes128gcm adds a 86-byte header and a
# 16-byte tag plus one padding delimiter, leaving 3993 bytes of plaintext. Stay well below.
MAX_PAYLOAD_BYTES = 3800
VAPID_FILE = "vapid_private.pem"
URGENCIES = ("very-low", "low", "normal", "high")
TOPIC_RE = re.compile(r"[^A-Za-z0-9_-]")
RETRY_STATUSES = {429, 500, 502, 503, 504}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_vapid(data_dir: Path, configured: str = "") -> Vapid:
    """The server's VAPID key: from settings (PEM, or base64url raw/DER), else the PEM kept
    in data_dir, generated on first start. Two processes starting at once agree on one key:
    the file is created exclusively and the loser reads the winner's."""
    if configured.strip():
        text = configured.strip()
        if text.startswith("-----BEGIN"):
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    path = data_dir / VAPID_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        vapid = Vapid()
        vapid.generate_keys()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(vapid.private_pem())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: fails if another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return Vapid.from_pem(path.read_bytes())


def public_key_b64(vapid: Vapid) -> str:
    """The applicationServerKey a browser passes to pushManager.subscribe()."""
    return b64url(vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


# ---------------------------------------------------------------------------------------
# Subscriptions


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, production: bool) -> str:
    """The server POSTs to this URL, so it must look like a push service: https to a public
    host. Plain http is accepted only for a loopback push service outside production (tests
    and local development)."""
    parsed = urlparse(endpoint or "")
    host = parsed.hostname or ""
    if not host or len(endpoint) > 2000:
        raise ServiceError(_("This push subscription has no valid endpoint."), 422)
    if parsed.scheme == "https":
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (ip.is_private or ip.is_loopback or ip.is_link_local) and production:
            raise ServiceError(_("This push subscription has no valid endpoint."), 422)
        return endpoint
    if parsed.scheme == "http" and not production and _is_loopback(host):
        return endpoint
    raise ServiceError(_("This push subscription has no valid endpoint."), 422)


def _check_key(value: str, size: int) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != size:
        raise ServiceError(_("This push subscription's keys are not valid."), 422)
    return value


async def subscribe(user: User, endpoint: str, p256dh: str, auth: str, user_agent: str = "",
                    production: bool = False) -> PushSubscription:
    """Stores a browser's PushSubscription (one per endpoint, i.e. per device)."""
    check_endpoint(endpoint, production)
    _check_key(p256dh, 65)
    _check_key(auth, 16)
    existing = await PushSubscription.objects().where(
        PushSubscription.endpoint == endpoint).first()
    if existing is not None:
        # The same browser re-subscribing (perhaps after another account used it): it now
        # belongs to whoever is logged in on it.
        existing.owner = user.id
        existing.p256dh = p256dh
        existing.auth = auth
        existing.user_agent = user_agent[:255]
        existing.failures = 0
        await existing.save()
        return existing
    row = PushSubscription(owner=user.id, endpoint=endpoint, p256dh=p256dh, auth=auth,
                           user_agent=user_agent[:255])
    await row.save()
    return row


async def unsubscribe(user: User, endpoint: str) -> bool:
    rows = await PushSubscription.delete().where(
        (PushSubscription.owner == user.id) & (PushSubscription.endpoint == endpoint)
    ).returning(PushSubscription.id)
    return bool(rows)


async def subscriptions_of(user_id: int) -> list[PushSubscription]:
    return await PushSubscription.objects().where(PushSubscription.owner == user_id)


# ---------------------------------------------------------------------------------------
# Sending


@dataclass
class Notification:
    title: str
    body: str
    url: str = "/"
    topic: str = ""  # collapses an undelivered earlier message with the same topic
    urgency: str = "normal"
    ttl: int = 24 * 3600
    tag: str = ""
    silent: bool = False

    def payload(self) -> bytes:
        """JSON for the service worker, cut to fit RFC 8291's size limit."""
        body = {"title": self.title, "body": self.body, "url": self.url,
                "tag": self.tag or self.topic, "silent": self.silent}
        data = json.dumps(body, ensure_ascii=False).encode()
        while len(data) > MAX_PAYLOAD_BYTES and body["body"]:
            body["body"] = body["body"][: max(0, len(body["body"]) - 200)].rstrip() + "…"
            if len(body["body"]) <= 1:
                body["body"] = ""
            data = json.dumps(body, ensure_ascii=False).encode()
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ValueError("notification title/url too long for a push message")
        return data


def topic_header(topic: str) -> str:
    # RFC 8030 5.4: at most 32 characters of the URL-safe base64 alphabet.
    return TOPIC_RE.sub("-", topic)[:32]


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "removed": self.removed}


class PushService:
    """Sends notifications to a user's subscriptions and records every attempt."""

    def __init__(self, vapid: Vapid, subject: str, *, timeout_s: float = 10.0,
                 max_attempts: int = 3, backoff_s: float = 1.0, max_backoff_s: float = 30.0):
        if not (subject.startswith("mailto:") and "@" in subject) and not subject.startswith(
                "https://"):
            raise ValueError("VAPID subject must be mailto:someone@domain.tld or an https URL")
        self.vapid = vapid
        self.subject = subject
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    @property
    def public_key(self) -> str:
        return public_key_b64(self.vapid)

    def _post(self, sub: PushSubscription, data: bytes, note: Notification) -> int:
        headers = {"Urgency": note.urgency if note.urgency in URGENCIES else "normal"}
        topic = topic_header(note.topic)
        if topic:
            headers["Topic"] = topic
        try:
            response = webpush(
                subscription_info={"endpoint": sub.endpoint,
                                   "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                data=data,
                vapid_private_key=self.vapid,
                # pywebpush writes aud and exp into this dict: a fresh one per call, or the
                # first endpoint's origin would be signed for every later one.
                vapid_claims={"sub": self.subject},
                content_encoding="aes128gcm",
                timeout=self.timeout_s,
                ttl=note.ttl,
                headers=headers,
            )
            return response.status_code
        except WebPushException as exc:
            if exc.response is not None:
                return exc.response.status_code
            raise

    def _retry_after(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * (2 ** attempt))

    async def send_one(self, sub: PushSubscription, note: Notification) -> str:
        """'sent', 'removed' (404/410: the browser dropped it) or 'failed'."""
        data = note.payload()
        status, detail = 0, ""
        for attempt in range(self.max_attempts):
            try:
                status = await asyncio.to_thread(self._post, sub, data, note)
                detail = ""
            except Exception as exc:  # noqa: BLE001 (refused, timeout: retried like a 503)
                status, detail = 0, f"{type(exc).__name__}: {exc}"[:500]
            retry = status in RETRY_STATUSES or status == 0
            if retry and attempt + 1 < self.max_attempts:
                await asyncio.sleep(self._retry_after(attempt))
                continue
            break
        now = datetime.now(UTC)
        ok = 200 <= status < 300
        await PushDelivery.insert(PushDelivery(
            subscription=None if status in (404, 410) else sub.id, owner=sub.owner,
            topic=topic_header(note.topic), status_code=status, ok=ok, detail=detail))
        if ok:
            await PushSubscription.update({PushSubscription.last_success_at: now,
                                           PushSubscription.failures: 0}).where(
                PushSubscription.id == sub.id)
            return "sent"
        if status in (404, 410):
            await PushSubscription.delete().where(PushSubscription.id == sub.id)
            return "removed"
        await PushSubscription.update(
            {PushSubscription.failures: PushSubscription.failures + 1}).where(
            PushSubscription.id == sub.id)
        log.warning("push to subscription %s failed: %s %s", sub.id, status, detail)
        return "failed"

    async def send_to_user(self, user_id: int, note: Notification) -> SendReport:
        report = SendReport()
        subs = await subscriptions_of(user_id)
        outcomes = await asyncio.gather(*(self.send_one(s, note) for s in subs))
        for outcome in outcomes:
            if outcome == "sent":
                report.sent += 1
            elif outcome == "removed":
                report.removed += 1
            else:
                report.failed += 1
        return report


def results_ready(check: Any) -> Notification:
    kinds = {"ecg": _("ECG"), "skin": _("skin"), "ear": _("ear")}
    kind = kinds.get(check.kind, check.kind)
    if check.status == "failed":
        return Notification(title=_("Your %(kind)s check could not be analysed", kind=kind),
                            body=_("Open CareLens to see why and try again."),
                            url=f"/checks/{check.id}", topic=f"check-{check.id}",
                            urgency="normal", tag=f"check-{check.id}")
    return Notification(title=_("Your %(kind)s result is ready", kind=kind),
                        body=_("Tap to see the result."), url=f"/checks/{check.id}",
                        topic=f"check-{check.id}", urgency="high", tag=f"check-{check.id}")


def parse_hhmm(value: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", (value or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def in_quiet_hours(user: User, moment: datetime) -> bool:
    """Whether `moment` falls in the user's quiet hours (local time; may wrap midnight)."""
    from backend.services.local_time import user_zone

    start, end = parse_hhmm(user.quiet_start), parse_hhmm(user.quiet_end)
    if not start or not end or start == end:
        return False
    local = moment.astimezone(user_zone(user.timezone))
    minute = local.hour * 60 + local.minute
    a, b = start[0] * 60 + start[1], end[0] * 60 + end[1]
    return a <= minute < b if a < b else (minute >= a or minute < b)

"""Request plumbing shared by every controller: who is calling, in which language, from
where, and the response headers every page gets. Wired in backend/app.py only."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.i18n import current_locale, pick_locale
from backend.services import accounts
from backend.settings import Settings

LANG_COOKIE = "lang"
SESSION_USER_KEY = "user_id"


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def client_ip(connection: ASGIConnection, trusted_proxies: tuple[str, ...]) -> str:
    """The caller's address; X-Forwarded-For is believed only from a configured proxy."""
    peer = connection.client.host if connection.client else "127.0.0.1"
    if not trusted_proxies or not _in_networks(peer, trusted_proxies):
        return peer
    forwarded = [p.strip() for p in connection.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([p for p in forwarded if p]):
        if not _in_networks(hop, trusted_proxies):
            return hop
    return peer


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def is_static_file(scope: Scope) -> bool:
    """Static files need no user and no language. Tested on the request's path: Litestar's
    exclude_path_pattern is matched against the route handler's path from Litestar 3 on, and the
    static router's handler path is not the file's."""
    return scope["path"].startswith("/static/")


class CurrentUserMiddleware(ASGIMiddleware):
    """Sets scope["user"] (a User or None) from a bearer token or the session cookie, and
    scope["auth"] to "bearer"/"session"/None. Guards decide what anonymous callers may do."""

    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(is_static_file)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request: Request = Request(scope)
        user = None
        auth = None
        token = bearer_token(request.headers)
        if token:
            user = await accounts.user_for_token(token)
            if user is None:
                raise NotAuthorizedException("This API token is not valid. Log in again.")
            auth = "bearer"
        else:
            session = scope.get("session") or {}
            user_id = session.get(SESSION_USER_KEY) if isinstance(session, dict) else None
            if user_id is not None:
                user = await accounts.user_by_id(int(user_id))
                auth = "session" if user else None
        scope["user"] = user
        scope["auth"] = auth
        await next_app(scope, receive, send)


class LocaleMiddleware(ASGIMiddleware):
    """Picks the UI language (cookie, then the user's setting, then Accept-Language)."""

    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(is_static_file)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request: Request = Request(scope)
        user = scope.get("user")
        cookie = request.cookies.get(LANG_COOKIE) or (getattr(user, "locale", "") or None)
        token = current_locale.set(pick_locale(cookie, request.headers.get("accept-language")))
        try:
            await next_app(scope, receive, send)
        finally:
            current_locale.reset(token)


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    """Litestar's CSRF check, skipped for bearer-token API calls (a cross-site page cannot
    attach an Authorization header without a CORS preflight we never grant)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            for key, value in scope.get("headers", []):
                if key == b"authorization" and value[:7].lower() == b"bearer ":
                    await self.app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        # No inline script anywhere: every script is a file under /static/js.
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(self), geolocation=(self), microphone=(), payment=()",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.production:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return headers


class SecurityHeadersMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for key, value in self.headers:
                    if key.decode() not in headers:
                        headers.add(key.decode(), value.decode())
            await send(message)

        await next_app(scope, receive, send_with_headers)


def requires_login(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if connection.scope.get("user") is None:
        raise NotAuthorizedException("Please log in first.")


def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    requires_login(connection, handler)
    if not connection.scope["user"].is_admin:
        raise PermissionDeniedException("This page is for administrators only.")

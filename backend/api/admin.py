"""Admin console (administrators only, every action audited): JSON under /api/v1/admin,
pages under /admin; plus the public page behind a signed one-time password-reset link."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK

from backend.api.web import client_ip, requires_admin
from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.registry import ModelRegistry
from backend.services import admin as admin_service
from backend.services.errors import ServiceError
from backend.settings import Settings
from backend.tables.accounts import User

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MEMBER_ACTIONS = ("disable", "enable", "promote", "demote")


@dataclass
class ReasonIn:
    reason: str = ""


@dataclass
class ResetLinkOut:
    url: str
    expires_in_s: int


def _ip(request: Request, settings: Settings) -> str:
    return client_ip(request, settings.trusted_proxies)


async def _member_action(admin: User, user_id: int, action: str, ip: str) -> dict:
    if action in ("disable", "enable"):
        return await admin_service.set_active(admin, user_id, action == "enable", ip)
    if action in ("promote", "demote"):
        return await admin_service.set_admin(admin, user_id, action == "promote", ip)
    raise ServiceError(N_("Unknown member action."), 404)


class AdminApiController(Controller):
    path = "/api/v1/admin"
    tags = ("admin",)
    guards = (requires_admin,)

    @get("/stats")
    async def stats(self, request: Request) -> dict[str, Any]:
        """Sign-ups, active users, checks per kind per day, vitals, push delivery rate and
        model latency percentiles of this running app."""
        return await admin_service.usage(request.app.state.pool)

    @get("/users")
    async def users(
        self,
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        q: FromQuery[str] = "",
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> list[dict[str, Any]]:
        await admin_service.record_view(current_user, f"users?q={q}", _ip(request, settings))
        return await admin_service.search_members(q, limit, offset)

    @post("/users/{user_id:int}/{action:str}", status_code=HTTP_200_OK)
    async def user_action(
        self,
        user_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        """disable | enable | promote | demote."""
        return await _member_action(current_user, user_id, action, _ip(request, settings))

    @post("/users/{user_id:int}/reset-link", status_code=HTTP_200_OK)
    async def reset_link(
        self,
        user_id: FromPath[int],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> ResetLinkOut:
        """A signed link, valid once for 24 hours, to give the member by a trusted channel."""
        url = await admin_service.reset_link(current_user, user_id,
                                             settings.resolved_secret_key(),
                                             str(request.base_url), _ip(request, settings))
        return ResetLinkOut(url=url, expires_in_s=admin_service.RESET_TTL_S)

    @get("/reports")
    async def reports(self) -> list[dict[str, Any]]:
        return await admin_service.report_queue()

    @post("/posts/{post_id:int}/{action:str}", status_code=HTTP_200_OK)
    async def post_action(
        self,
        post_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: JSONBody[ReasonIn | None] = None,
    ) -> dict[str, str]:
        """hide | restore | delete, with a reason for the audit log (and the author)."""
        await admin_service.moderate_post(current_user, post_id, action,
                                          data.reason if data else "", settings.uploads_dir,
                                          _ip(request, settings))
        return {"status": action}

    @post("/comments/{comment_id:int}/{action:str}", status_code=HTTP_200_OK)
    async def comment_action(
        self,
        comment_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: JSONBody[ReasonIn | None] = None,
    ) -> dict[str, str]:
        await admin_service.moderate_comment(current_user, comment_id, action,
                                             data.reason if data else "", _ip(request, settings))
        return {"status": action}

    @get("/models")
    async def models(self, registry: NamedDependency[ModelRegistry]) -> list[dict[str, Any]]:
        return [asdict(m) for m in admin_service.model_status(registry)]

    @get("/audit")
    async def audit(self, limit: FromQuery[int] = 100,
                    action: FromQuery[str] = "") -> list[dict[str, Any]]:
        return await admin_service.audit_entries(limit, action)


# ----------------------------------------------------------------- pages


@dataclass
class ReasonForm:
    reason: str = ""
    next: str = "/admin/moderation"


@dataclass
class NewPasswordForm:
    new_password: str = ""


class AdminPagesController(Controller):
    path = "/admin"
    guards = (requires_admin,)
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request, current_user: NamedDependency[User]) -> Template:
        stats = await admin_service.usage(request.app.state.pool)
        return Template("admin/dashboard.html", context={
            "user": current_user, "stats": stats, "section": "dashboard",
            "chart": _checks_chart(stats)})

    async def _members_page(self, user: User, q: str, **context: Any) -> Template:
        members = await admin_service.search_members(q)
        return Template("admin/members.html", context={
            "user": user, "members": members, "q": q, "section": "members", **context})

    @get("/members")
    async def members(
        self,
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        q: FromQuery[str] = "",
        done: FromQuery[str] = "",
    ) -> Template:
        await admin_service.record_view(current_user, f"members?q={q}", _ip(request, settings))
        notice = {"disable": _("The member was disabled."), "enable": _("The member was enabled."),
                  "promote": _("The member is now an administrator."),
                  "demote": _("The member is no longer an administrator.")}.get(done)
        return await self._members_page(current_user, q, notice=notice)

    @post("/members/{user_id:int}/reset-link")
    async def member_reset_link(
        self,
        user_id: FromPath[int],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> Template:
        url = await admin_service.reset_link(current_user, user_id,
                                             settings.resolved_secret_key(),
                                             str(request.base_url), _ip(request, settings))
        return await self._members_page(current_user, "", reset_url=url, reset_user=user_id)

    @post("/members/{user_id:int}/{action:str}")
    async def member_action(
        self,
        user_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> Redirect | Template:
        try:
            await _member_action(current_user, user_id, action, _ip(request, settings))
        except ServiceError as exc:
            if exc.status_code != 400:
                raise
            return await self._members_page(current_user, "", error=exc.localized(_))
        return Redirect(f"/admin/members?done={quote(action)}")

    @get("/moderation")
    async def moderation(
        self,
        current_user: NamedDependency[User],
        done: FromQuery[str] = "",
    ) -> Template:
        return Template("admin/moderation.html", context={
            "user": current_user, "queue": await admin_service.report_queue(),
            "section": "moderation", "done": done})

    @post("/posts/{post_id:int}/{action:str}")
    async def post_action(
        self,
        post_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: Annotated[ReasonForm, Form],
    ) -> Redirect:
        await admin_service.moderate_post(current_user, post_id, action, data.reason,
                                          settings.uploads_dir, _ip(request, settings))
        return Redirect(f"/admin/moderation?done={quote(action)}")

    @post("/comments/{comment_id:int}/{action:str}")
    async def comment_action(
        self,
        comment_id: FromPath[int],
        action: FromPath[str],
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: Annotated[ReasonForm, Form],
    ) -> Redirect:
        await admin_service.moderate_comment(current_user, comment_id, action, data.reason,
                                             _ip(request, settings))
        return Redirect(f"/admin/moderation?done={quote(action)}")

    @get("/models")
    async def models(
        self,
        current_user: NamedDependency[User],
        registry: NamedDependency[ModelRegistry],
    ) -> Template:
        return Template("admin/models.html", context={
            "user": current_user, "models": admin_service.model_status(registry),
            "section": "models"})

    @get("/audit")
    async def audit(
        self,
        current_user: NamedDependency[User],
        action: FromQuery[str] = "",
    ) -> Template:
        return Template("admin/audit.html", context={
            "user": current_user, "entries": await admin_service.audit_entries(200, action),
            "action": action, "section": "audit"})


def _checks_chart(stats: dict[str, Any]) -> dict[str, Any]:
    """Stacked bars (one per day) as numbers for an inline SVG: no script, no style attribute."""
    days = stats["days"]
    per_kind = stats["checks_per_kind_per_day"]
    totals = [sum(per_kind[k][d] for k in per_kind) for d in days]
    peak = max([*totals, 1])
    height, bar_w, gap = 100, 16, 6
    bars = []
    for i, day in enumerate(days):
        y = height
        for kind in ("ecg", "skin", "ear"):
            value = per_kind.get(kind, {}).get(day, 0)
            h = round(value / peak * (height - 4), 1)
            if h:
                y -= h
                bars.append({"x": i * (bar_w + gap), "y": round(y, 1), "w": bar_w, "h": h,
                             "kind": kind, "day": day, "value": value})
    return {"bars": bars, "width": len(days) * (bar_w + gap), "height": height, "peak": peak,
            "first": days[0] if days else "", "last": days[-1] if days else ""}


class PasswordResetController(Controller):
    """The page behind an administrator's reset link; the token itself is the credential."""

    path = "/reset-password"
    include_in_schema = False

    @get("/{token:str}")
    async def page(self, token: FromPath[str], settings: NamedDependency[Settings]) -> Template:
        try:
            user = await admin_service.user_for_reset_token(settings.resolved_secret_key(), token)
        except ServiceError as exc:
            return Template("admin/reset_password.html", status_code=400,
                            context={"user": None, "invalid": exc.localized(_)})
        return Template("admin/reset_password.html",
                        context={"user": None, "email": user.email, "token": token})

    @post("/{token:str}")
    async def reset(
        self,
        token: FromPath[str],
        request: Request,
        settings: NamedDependency[Settings],
        data: Annotated[NewPasswordForm, Form],
    ) -> Template | Redirect:
        try:
            await admin_service.complete_reset(settings.resolved_secret_key(), token,
                                               data.new_password, _ip(request, settings))
        except ServiceError as exc:
            return Template("admin/reset_password.html", status_code=400, context={
                "user": None, "token": token, "error": exc.localized(_)})
        return Redirect("/login?reset=1")

"""Server-rendered pages of the PWA shell: home, log in/out, register, settings, offline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlparse

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import File, Redirect, Template

from backend.api.web import LANG_COOKIE, SESSION_USER_KEY, client_ip, requires_login
from backend.i18n import SUPPORTED_LOCALES
from backend.i18n import gettext as _
from backend.services import accounts
from backend.services import history as history_service
from backend.services.errors import ServiceError
from backend.settings import PROJECT_ROOT, Settings
from backend.tables.accounts import User

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
STATIC_DIR = PROJECT_ROOT / "pwa" / "static"


@dataclass
class LoginForm:
    email: str = ""
    password: str = ""
    next: str = "/"


@dataclass
class RegisterForm:
    email: str = ""
    password: str = ""
    display_name: str = ""
    timezone: str = "UTC"  # filled in by the browser (app.js), so times read in the member's zone


@dataclass
class PasswordForm:
    current_password: str = ""
    new_password: str = ""


@dataclass
class DeleteForm:
    password: str = ""


@dataclass
class LanguageForm:
    lang: str = "en"
    next: str = "/"


@dataclass
class ProfileForm:
    display_name: str = ""
    sex: str = ""
    birth_year: str = ""
    timezone: str = "UTC"


def safe_next(target: str) -> str:
    """Only same-site relative redirects (no //evil.example)."""
    parsed = urlparse(target or "/")
    if parsed.scheme or parsed.netloc or not (target or "/").startswith("/") or target.startswith("//"):
        return "/"
    return target


def log_in(request: Request, user: User) -> None:
    request.set_session({SESSION_USER_KEY: user.id})


class PagesController(Controller):
    include_in_schema = False

    @get("/")
    async def home(self, current_user: NamedDependency[User | None]) -> Template:
        entries = await history_service.timeline(current_user, limit=3) if current_user else []
        return Template("home.html", context={"user": current_user, "entries": entries},
                        headers={"Cache-Control": "private, no-store"} if current_user else None)

    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/offline")
    async def offline(self) -> Template:
        return Template("offline.html", context={"user": None})

    @get("/sw.js")
    async def service_worker(self) -> File:
        # Served from the root so its scope covers the whole app.
        return File(path=STATIC_DIR / "sw.js", media_type="text/javascript",
                    content_disposition_type="inline",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})

    @get("/manifest.webmanifest")
    async def manifest(self) -> File:
        return File(path=STATIC_DIR / "manifest.webmanifest",
                    media_type="application/manifest+json", content_disposition_type="inline")

    @get("/login")
    async def login_page(
        self,
        current_user: NamedDependency[User | None],
        next: FromQuery[str] = "/",
    ) -> Template | Redirect:
        if current_user:
            return Redirect(safe_next(next))
        return Template("login.html", context={"user": None, "next": safe_next(next)})

    @post("/login")
    async def login(self, request: Request, settings: NamedDependency[Settings],
                    data: Annotated[LoginForm, Form]) -> Template | Redirect:
        ip = client_ip(request, settings.trusted_proxies)
        try:
            await accounts.ensure_login_allowed(data.email)
        except ServiceError as exc:
            return Template("login.html", status_code=exc.status_code, context={
                "user": None, "next": safe_next(data.next), "email": data.email,
                "error": exc.localized(_)})
        user = await accounts.authenticate(data.email, data.password)
        if user is None:
            await accounts.record_audit("login_failed", actor_id=None,
                                        target=accounts.normalise_email(data.email)[:128], ip=ip)
            return Template("login.html", status_code=400, context={
                "user": None, "next": safe_next(data.next), "email": data.email,
                "error": _("Email or password is not correct.")})
        log_in(request, user)
        await accounts.record_audit("login", actor_id=user.id, detail={"via": "form"}, ip=ip)
        return Redirect(safe_next(data.next))

    @post("/logout")
    async def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect("/")

    @get("/register")
    async def register_page(self) -> Template:
        return Template("register.html", context={"user": None})

    @post("/register")
    async def register(self, request: Request, settings: NamedDependency[Settings],
                       data: Annotated[RegisterForm, Form]) -> Template | Redirect:
        try:
            user = await accounts.register_user(data.email, data.password, data.display_name,
                                                timezone=data.timezone)
        except ServiceError as exc:
            return Template("register.html", status_code=exc.status_code, context={
                "user": None, "error": exc.localized(_), "email": data.email,
                "display_name": data.display_name})
        await accounts.record_audit("register", actor_id=user.id,
                                    ip=client_ip(request, settings.trusted_proxies))
        log_in(request, user)
        return Redirect("/")

    @post("/lang")
    async def set_language(self, data: Annotated[LanguageForm, Form],
                           current_user: NamedDependency[User | None]) -> Redirect:
        lang = data.lang if data.lang in SUPPORTED_LOCALES else "en"
        if current_user:
            await accounts.update_profile(current_user, locale=lang)
        response = Redirect(safe_next(data.next))
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
        return response


class SettingsController(Controller):
    path = "/settings"
    guards = [requires_login]
    include_in_schema = False

    def _page(self, user: User, status: int = 200, **context) -> Template:
        return Template("settings.html", status_code=status, context={"user": user, **context})

    @get("/")
    async def page(self, current_user: NamedDependency[User]) -> Template:
        return self._page(current_user)

    @post("/profile")
    async def profile(
        self,
        current_user: NamedDependency[User],
        data: Annotated[ProfileForm, Form],
    ) -> Template:
        try:
            await accounts.update_profile(current_user, display_name=data.display_name,
                                          sex=data.sex, birth_year=data.birth_year,
                                          timezone=data.timezone or "UTC")
        except ServiceError as exc:
            return self._page(current_user, exc.status_code, error=exc.localized(_))
        return self._page(current_user, notice=_("Your profile was saved."))

    @post("/password")
    async def password(
        self,
        current_user: NamedDependency[User],
        data: Annotated[PasswordForm, Form],
    ) -> Template:
        try:
            await accounts.change_password(current_user, data.current_password, data.new_password)
        except ServiceError as exc:
            return self._page(current_user, exc.status_code, error=exc.localized(_))
        await accounts.record_audit("password_changed", actor_id=current_user.id)
        return self._page(current_user, notice=_("Your password was changed."))

    @post("/delete")
    async def delete_account(
        self,
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: Annotated[DeleteForm, Form],
    ) -> Template | Redirect:
        if not accounts.verify_password(current_user.password_hash, data.password):
            return self._page(current_user, 400,
                              error=_("The password is not correct; nothing was deleted."))
        await accounts.delete_account(current_user, settings.uploads_dir)
        await accounts.record_audit("account_deleted", actor_id=current_user.id,
                                    target=current_user.email,
                                    ip=client_ip(request, settings.trusted_proxies))
        request.clear_session()
        return Redirect("/?deleted=1")

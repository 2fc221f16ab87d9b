"""JSON API for accounts: register, tokens, my profile, password, deleting my account."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from backend.api.web import bearer_token, client_ip, requires_login
from backend.i18n import N_
from backend.services import accounts
from backend.services.errors import ServiceError
from backend.settings import Settings
from backend.tables.accounts import User


@dataclass
class RegisterRequest:
    email: str
    password: str
    display_name: str = ""
    timezone: str = "UTC"  # an IANA name such as Asia/Seoul; anything else counts as UTC


@dataclass
class TokenRequest:
    email: str
    password: str


@dataclass
class TokenResponse:
    token: str
    token_type: str = "bearer"


@dataclass
class UserOut:
    id: int
    email: str
    display_name: str
    is_admin: bool
    locale: str
    sex: str
    birth_year: str
    timezone: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, display_name=user.display_name,
                   is_admin=user.is_admin, locale=user.locale, sex=user.sex,
                   birth_year=user.birth_year, timezone=user.timezone)


@dataclass
class ProfileUpdate:
    display_name: str | None = None
    locale: str | None = None
    sex: str | None = None
    birth_year: str | None = None
    timezone: str | None = None


@dataclass
class PasswordChange:
    current_password: str
    new_password: str


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/register")
    async def register(
        self,
        data: JSONBody[RegisterRequest],
        request: Request,
        settings: NamedDependency[Settings],
    ) -> UserOut:
        user = await accounts.register_user(data.email, data.password, data.display_name,
                                            timezone=data.timezone)
        await accounts.record_audit("register", actor_id=user.id,
                                    ip=client_ip(request, settings.trusted_proxies))
        return UserOut.of(user)

    @post("/token", status_code=HTTP_200_OK)
    async def token(
        self,
        data: JSONBody[TokenRequest],
        request: Request,
        settings: NamedDependency[Settings],
    ) -> TokenResponse:
        ip = client_ip(request, settings.trusted_proxies)
        await accounts.ensure_login_allowed(data.email)
        user = await accounts.authenticate(data.email, data.password)
        if user is None:
            await accounts.record_audit("login_failed", actor_id=None,
                                        target=accounts.normalise_email(data.email)[:128], ip=ip)
            raise ServiceError(N_("Email or password is not correct."), 401)
        await accounts.record_audit("login", actor_id=user.id, detail={"via": "token"}, ip=ip)
        return TokenResponse(token=await accounts.issue_api_token(user))

    @delete("/token", guards=[requires_login], status_code=HTTP_204_NO_CONTENT)
    async def revoke_token(self, request: Request) -> None:
        token = bearer_token(request.headers)
        if token:
            await accounts.revoke_api_token(token)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["account"]
    guards = [requires_login]

    @get("/")
    async def me(self, current_user: NamedDependency[User]) -> UserOut:
        return UserOut.of(current_user)

    @patch("/")
    async def update(
        self,
        data: JSONBody[ProfileUpdate],
        current_user: NamedDependency[User],
    ) -> UserOut:
        await accounts.update_profile(current_user, **{
            k: v for k, v in data.__dict__.items() if v is not None})
        return UserOut.of(current_user)

    @post("/password", status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self,
        data: JSONBody[PasswordChange],
        current_user: NamedDependency[User],
    ) -> None:
        await accounts.change_password(current_user, data.current_password, data.new_password)
        await accounts.record_audit("password_changed", actor_id=current_user.id)

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def delete_me(
        self,
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> None:
        await accounts.delete_account(current_user, settings.uploads_dir)
        await accounts.record_audit("account_deleted", actor_id=current_user.id,
                                    target=current_user.email,
                                    ip=client_ip(request, settings.trusted_proxies))

"""Accounts: registration, password hashing (argon2id), login, API tokens, deletion."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2 import profiles as argon2_profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.i18n import N_
from backend.services.errors import ServiceError
from backend.services.local_time import user_zone
from backend.tables.accounts import ApiToken, User
from backend.tables.audit import AuditLog
from backend.tables.checks import Check

MIN_PASSWORD_LENGTH = 12
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
# Tests set CARELENS_ARGON2_PROFILE=cheapest (argon2's own test profile); never in production.
_hasher = (
    PasswordHasher.from_parameters(argon2_profiles.CHEAPEST)
    if os.environ.get("CARELENS_ARGON2_PROFILE") == "cheapest"
    else PasswordHasher()
)
# Verifying against a fixed hash when the email is unknown keeps login timing uniform.
_DUMMY_HASH = _hasher.hash("carelens-timing-equaliser")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(N_("Passwords need at least 12 characters."), 400)
    if len(password) > 1024:
        raise ServiceError(N_("That password is too long (1024 characters at most)."), 400)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def register_user(
    email: str, password: str, display_name: str, *, is_admin: bool = False,
    timezone: str = "UTC",
) -> User:
    """A new account; `timezone` is the browser's guess, and UTC when it is not a zone name."""
    email = normalise_email(email)
    if not _EMAIL_RE.match(email):
        raise ServiceError(N_("Please enter a valid email address."), 400)
    validate_password(password)
    display_name = display_name.strip() or email.split("@")[0]
    if len(display_name) > 80:
        raise ServiceError(N_("The display name can have at most 80 characters."), 400)
    if await User.exists().where(User.email == email):
        raise ServiceError(N_("An account with this email already exists."), 409)
    user = User(
        email=email,
        password_hash=hash_password(password),
        display_name=display_name,
        is_admin=is_admin,
        timezone=user_zone(timezone).key,
    )
    await user.save()
    return user


# Per-account throttle on top of the per-address rate limit: an attacker spreading guesses
# over many addresses still gets at most this many tries per account per window.
ACCOUNT_FAILURES_ALLOWED = 10
ACCOUNT_FAILURE_WINDOW = timedelta(minutes=15)


async def ensure_login_allowed(email: str) -> None:
    since = utcnow() - ACCOUNT_FAILURE_WINDOW
    failures = await AuditLog.count().where(
        (AuditLog.action == "login_failed")
        & (AuditLog.target == normalise_email(email)[:128])
        & (AuditLog.created_at >= since)
    )
    if failures >= ACCOUNT_FAILURES_ALLOWED:
        raise ServiceError(
            N_("Too many failed logins for this account. Please wait 15 minutes and try again."),
            429,
        )


async def authenticate(email: str, password: str) -> User | None:
    user = await User.objects().where(User.email == normalise_email(email)).first()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        await user.save([User.password_hash])
    return user


async def change_password(user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise ServiceError(N_("The current password is not correct."), 400)
    validate_password(new)
    user.password_hash = hash_password(new)
    await user.save([User.password_hash])
    # A changed password ends every API token issued with the old one.
    await ApiToken.delete().where(ApiToken.user == user.id)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_api_token(user: User, name: str = "api") -> str:
    token = secrets.token_urlsafe(32)
    await ApiToken(user=user.id, token_hash=_token_digest(token), name=name[:80]).save()
    return token


async def revoke_api_token(token: str) -> None:
    await ApiToken.delete().where(ApiToken.token_hash == _token_digest(token))


async def user_for_token(token: str) -> User | None:
    # One query (token joined to its user): it runs on every API request.
    row = await ApiToken.objects(ApiToken.user).where(
        ApiToken.token_hash == _token_digest(token)).first()
    if row is None or row.user is None or not row.user.is_active:
        return None
    return row.user


async def user_by_id(user_id: int) -> User | None:
    user = await User.objects().where(User.id == user_id).first()
    if user is None or not user.is_active:
        return None
    return user


async def delete_account(user: User, uploads_dir) -> None:
    """Delete the user and, through ON DELETE CASCADE, every row they own; then their files."""
    files = await Check.select(Check.input_file).where(Check.owner == user.id)
    await User.delete().where(User.id == user.id)
    for row in files:
        if row["input_file"]:
            (uploads_dir / row["input_file"]).unlink(missing_ok=True)


async def record_audit(action: str, *, actor_id: int | None, target: str = "", ip: str = "",
                       detail: dict | None = None) -> None:
    await AuditLog(
        actor_id=actor_id, action=action, target=target[:128], ip=ip[:64], detail=detail or {}
    ).save()


def utcnow() -> datetime:
    return datetime.now(UTC)


SEX_VALUES = {"", "F", "M"}


async def update_profile(user: User, **fields: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from backend.i18n import SUPPORTED_LOCALES

    if "display_name" in fields:
        name = fields["display_name"].strip()
        if not name or len(name) > 80:
            raise ServiceError(N_("The display name needs 1 to 80 characters."), 400)
        user.display_name = name
    if "locale" in fields:
        if fields["locale"] not in (*SUPPORTED_LOCALES, ""):
            raise ServiceError(N_("Language must be 'en' or 'ko'."), 400)
        user.locale = fields["locale"]
    if "sex" in fields:
        if fields["sex"] not in SEX_VALUES:
            raise ServiceError(N_("Sex must be 'F', 'M' or empty."), 400)
        user.sex = fields["sex"]
    if "birth_year" in fields:
        year = fields["birth_year"].strip()
        if year and not (year.isdigit() and 1900 <= int(year) <= utcnow().year):
            raise ServiceError(N_("Birth year must be a year like 1980."), 400)
        user.birth_year = year
    if "timezone" in fields:
        try:
            ZoneInfo(fields["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ServiceError(N_("Unknown time zone; use a name like Asia/Seoul."), 400) from None
        user.timezone = fields["timezone"]
    await user.save()

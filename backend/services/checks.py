"""Running a check: analyse in the bounded pool, keep the input, store the full result."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.dispatch import KINDS, analyze_files
from backend.inference.errors import UnusableInputError
from backend.inference.registry import ModelRegistry
from backend.services.errors import NotFoundError, ServiceError
from backend.services.inference_pool import InferencePool
from backend.services.uploads import store_input
from backend.tables.accounts import User
from backend.tables.checks import Check

log = logging.getLogger("carelens.checks")
_background: set[asyncio.Task] = set()


def profile_of(user: User) -> dict[str, Any]:
    age = None
    if user.birth_year and user.birth_year.isdigit():
        age = datetime.now(UTC).year - int(user.birth_year)
    return {"age": age, "sex": user.sex or None}


def _apply_result(check: Check, result: dict[str, Any]) -> None:
    model = result.get("model") or {}
    check.status = "done"
    check.result = result
    check.model_name = str(model.get("name", ""))[:64]
    check.model_version = str(model.get("version", ""))[:32]
    check.model_sha256 = str(model.get("sha256", ""))[:64]
    check.finished_at = datetime.now(UTC)


async def create_check(
    *,
    user: User,
    kind: str,
    files: dict[str, bytes],
    uploads_dir: Path,
    registry: ModelRegistry,
    pool: InferencePool,
    wait: bool = True,
    on_done=None,
) -> Check:
    """wait=True analyses before returning (the result is in the reply); wait=False stores a
    queued check and analyses in the background (the client polls GET /checks/{id})."""
    if kind not in KINDS:
        raise NotFoundError(N_("Unknown kind of check; use ecg, skin or ear."))
    if not files or not any(files.values()):
        raise ServiceError(N_("No file was received. Please choose a photo or a file."), 400)
    profile = profile_of(user)
    if wait:
        result = await pool.run(kind, analyze_files, kind, files, registry, **profile)
        # Re-encoding a 12 MP photo takes ~200 ms of CPU: off the event loop, as below.
        stored, media_type = await asyncio.to_thread(store_input, files, uploads_dir)
        check = Check(owner=user.id, kind=kind, input_file=stored, input_media_type=media_type,
                      input_name=next(iter(files))[:255])
        _apply_result(check, result)
        await check.save()
        if on_done:
            await on_done(check)
        return check

    stored, media_type = await asyncio.to_thread(store_input, files, uploads_dir)
    check = Check(owner=user.id, kind=kind, status="queued", input_file=stored,
                  input_media_type=media_type, input_name=next(iter(files))[:255])
    await check.save()

    async def analyse_later() -> None:
        check.status = "running"
        await check.save([Check.status])
        try:
            result = await pool.run(kind, analyze_files, kind, files, registry, **profile)
            _apply_result(check, result)
        except (UnusableInputError, ServiceError) as exc:
            check.status = "failed"
            # the task runs in the request's context: the message is in the user's language
            check.error = exc.localized(_)
            check.finished_at = datetime.now(UTC)
        except Exception:  # a real fault: keep the check, tell the user it failed
            log.exception("check %s failed", check.id)
            check.status = "failed"
            check.error = _("The analysis failed on our side. Please try again.")
            check.finished_at = datetime.now(UTC)
        await check.save()
        if on_done:
            await on_done(check)

    task = asyncio.create_task(analyse_later())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return check


async def get_own_check(user: User, check_id: int) -> Check:
    check = await Check.objects().where((Check.id == check_id) & (Check.owner == user.id)).first()
    if check is None:
        raise NotFoundError(N_("This check does not exist."))
    return check


async def delete_own_check(user: User, check_id: int, uploads_dir: Path) -> None:
    check = await get_own_check(user, check_id)
    await Check.delete().where(Check.id == check.id)
    if check.input_file:
        (uploads_dir / check.input_file).unlink(missing_ok=True)


def check_to_json(check: Check) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": check.id,
        "kind": check.kind,
        "status": check.status,
        "created_at": check.created_at.isoformat() if check.created_at else None,
    }
    if check.status == "done":
        body["result"] = check.result if isinstance(check.result, dict) else _loads(check.result)
    if check.status == "failed":
        body["error"] = check.error
    return body


def result_of(check: Check) -> dict[str, Any]:
    """The check's stored result as a dict (SQLite hands JSON columns back as text); {} if none."""
    return _loads(check.result) or {}


def recorded_at(check: Check, tz_name: str | None) -> datetime | None:
    """When the ECG of a check was recorded, where its file says so (the result's recorded_at),
    in UTC, read as a vitals reading's time is (vitals.parse_measured_at: a time without an offset
    is the member's zone). None when the file does not say, or says a time in the future (a
    recorder's clock set wrong)."""
    from backend.services.vitals import parse_measured_at

    raw = result_of(check).get("recorded_at")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return parse_measured_at(raw, tz_name or "UTC")
    except ServiceError:
        return None


def _loads(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) and value else value

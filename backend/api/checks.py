"""JSON API for checks: upload a photo or ECG file, read my checks, fetch my input file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, Parameter
from litestar.response import File
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.api.web import requires_login
from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.registry import ModelRegistry
from backend.services import checks as check_service
from backend.services.errors import NotFoundError, ServiceError
from backend.services.inference_pool import InferencePool
from backend.settings import Settings
from backend.tables.accounts import User
from backend.tables.checks import Check

# Per-kind byte limits: photos are downscaled by the app before upload; ECG files can be
# long Holter-like exports, so they get more room.
CheckId = Annotated[int, Parameter(ge=1, le=2**31 - 1, description="the check's id")]

MAX_BYTES = {"skin": 12 * 1024 * 1024, "ear": 12 * 1024 * 1024, "ecg": 15 * 1024 * 1024}


@dataclass
class CheckUpload:
    """One photo or ECG file; a WFDB record sends its .hea and .dat as two `file` parts."""

    file: list[UploadFile]


async def read_uploads(request: Request, kind: str) -> dict[str, bytes]:
    """All parts named `file` (a WFDB record may come as .hea + .dat), size-checked."""
    form = await request.form()
    parts = [p for p in form.getall("file") if isinstance(p, UploadFile)] if "file" in form else []
    if not parts:
        raise ServiceError(N_("Please attach the photo or ECG file in the form field 'file'."), 400)
    files: dict[str, bytes] = {}
    total = 0
    for part in parts[:8]:
        data = await part.read()
        total += len(data)
        if total > MAX_BYTES.get(kind, 12 * 1024 * 1024):
            raise ServiceError(
                _("The upload is too large (over %(mb)s MB).",
                  mb=MAX_BYTES.get(kind, 0) // (1024 * 1024)),
                413,
            )
        files[part.filename or f"upload{len(files)}"] = data
    return files


class ChecksController(Controller):
    path = "/api/v1/checks"
    tags = ["checks"]
    guards = [requires_login]

    @post("/{kind:str}", status_code=HTTP_201_CREATED)
    async def create(
        self,
        kind: FromPath[str],
        request: Request,
        data: Annotated[CheckUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        registry: NamedDependency[ModelRegistry],
        pool: NamedDependency[InferencePool],
        wait: FromQuery[bool] = True,
    ) -> dict[str, Any]:
        """Analyse a photo (ecg/skin/ear) or an ECG file. `wait=false` returns at once with
        status `queued`; poll GET /api/v1/checks/{id}."""
        if kind not in MAX_BYTES:
            raise NotFoundError(N_("Unknown kind of check; use ecg, skin or ear."))
        files = await read_uploads(request, kind)
        on_done = getattr(request.app.state, "on_check_done", None)
        check = await check_service.create_check(
            user=current_user, kind=kind, files=files, uploads_dir=settings.uploads_dir,
            registry=registry, pool=pool, wait=wait, on_done=on_done,
        )
        return check_service.check_to_json(check)

    @get("/")
    async def list_checks(
        self,
        current_user: NamedDependency[User],
        kind: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> list[dict[str, Any]]:
        query = Check.objects().where(Check.owner == current_user.id)
        if kind:
            query = query.where(Check.kind == kind)
        rows = await query.order_by(Check.id, ascending=False).limit(
            max(1, min(limit, 200))).offset(max(0, offset))
        return [check_service.check_to_json(c) for c in rows]

    @get("/{check_id:int}")
    async def read(self, check_id: CheckId, current_user: NamedDependency[User]) -> dict[str, Any]:
        return check_service.check_to_json(
            await check_service.get_own_check(current_user, check_id))

    @get("/{check_id:int}/input", media_type="application/octet-stream")
    async def input_file(
        self,
        check_id: CheckId,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> File:
        check = await check_service.get_own_check(current_user, check_id)
        path = settings.uploads_dir / check.input_file
        if not check.input_file or not path.exists():
            raise NotFoundError(N_("The input file of this check is no longer stored."))
        return File(path=path, media_type=check.input_media_type or "application/octet-stream",
                    headers={"Cache-Control": "private, max-age=3600"})

    @delete("/{check_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self,
        check_id: CheckId,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> None:
        await check_service.delete_own_check(current_user, check_id, settings.uploads_dir)

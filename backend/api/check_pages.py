"""HTML pages of the check flow: capture (camera with JS, a plain file form without), the
result page per kind, history, and the take-away files (PNG card, PDF, ECG SVG, outline)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from backend.api.checks import MAX_BYTES
from backend.api.web import requires_login
from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.errors import ModelIntegrityError, UnusableInputError
from backend.inference.registry import ModelRegistry
from backend.services import checks as check_service
from backend.services import ecg_plot, result_cards
from backend.services import history as history_service
from backend.services import places as place_service
from backend.services import vitals as vital_service
from backend.services.errors import NotFoundError, ServiceError
from backend.services.inference_pool import InferencePool
from backend.services.local_time import in_user_zone
from backend.settings import Settings
from backend.tables.accounts import User
from backend.tables.checks import Check

ECG_FILE_TYPES = ".hea,.dat,.h5,.hdf5,.npy,.npz,.pkl,.csv,.edf,.xml,.dcm,.zip,.pdf"
NO_STORE = {"Cache-Control": "private, no-store"}


async def read_form_files(request: Request, kind: str) -> dict[str, bytes]:
    """The non-empty `file` parts of a page form (an unused second file input sends an empty
    part), size-checked like the API."""
    form = await request.form()
    parts = [p for p in form.getall("file") if isinstance(p, UploadFile)] if "file" in form else []
    files: dict[str, bytes] = {}
    total = 0
    for part in parts[:8]:
        data = await part.read()
        if not data:
            continue
        total += len(data)
        if total > MAX_BYTES[kind]:
            raise ServiceError(N_("The upload is too large. Choose a smaller photo or file."), 413)
        files[part.filename or f"upload{len(files)}"] = data
    if not files:
        raise ServiceError(N_("No file was received. Please choose a photo or a file."), 400)
    return files


def _capture(kind: str, user: User, status: int = 200, error: str | None = None) -> Template:
    return Template("checks/capture.html", status_code=status, context={
        "user": user, "kind": kind, "title": _(result_cards.KIND_TITLES[kind]),
        "ecg_file_types": ECG_FILE_TYPES, "error": error,
        "max_side": 2000 if kind == "ecg" else 1024,
    }, headers=NO_STORE)


def _photo_size(check: Check, settings: Settings) -> tuple[int, int]:
    """Width and height for the <img> tags, so the page does not jump when the photo loads."""
    path = settings.uploads_dir / check.input_file
    if check.input_media_type.startswith("image/") and check.input_file and path.exists():
        from PIL import Image

        with Image.open(path) as img:
            return img.size
    return 1024, 768


def _result_context(check: Check) -> dict[str, Any]:
    result = check_service.result_of(check)
    kind = check.kind
    probs = sorted((result.get("probabilities") or {}).items(), key=lambda kv: -kv[1])
    urgency = str(result.get("urgency", "routine"))
    model = result.get("model") or {}
    return {
        "check": check, "kind": kind, "result": result,
        "title": _(result_cards.KIND_TITLES.get(kind, N_("Check"))),
        "label_name": result_cards.label_name(kind, str(result.get("label", ""))),
        "headline_detail": result_cards.headline_detail(result),
        "confidence_pct": round(100 * float(result.get("confidence", 0.0))),
        "urgency": urgency,
        "urgency_name": result_cards.urgency_name(urgency) or _("Routine"),
        "next_steps": _(result_cards.next_steps(kind, urgency)),
        "explanation": result_cards.explanation_for(result),
        "probabilities": [
            {"label": label, "name": result_cards.label_name(kind, label), "value": float(p),
             "pct": f"{100 * float(p):.1f}"} for label, p in probs
        ],
        "headline_outweighs_model": result_cards.headline_outweighs_model(result),
        "headline_from_pacing": result_cards.headline_from_pacing(result),
        "model_name": model.get("name", ""), "model_version": model.get("version", ""),
        "quality_notes": result_cards.quality_notes(result),
        "quality_notes_title": result_cards.quality_notes_title(result),
        "disclaimer": result_cards.disclaimer_for(result),
        "intervals": result_cards.interval_rows(result) if kind == "ecg" else [],
        "has_trace": bool(result.get("trace")),
        "has_photo": check.input_media_type.startswith("image/"),
        "has_outline": bool(result.get("mask_png_base64")),
        "saliency": result.get("saliency_png_base64"),
        "leads": result.get("leads") or [],
        "input_type": result.get("input_type"),
        "nearby": _nearby_specialist(kind, urgency),
    }


def _nearby_specialist(kind: str, urgency: str) -> dict[str, str] | None:
    """Where the result says to see a doctor, a link to the nearest fitting clinics."""
    specialty = place_service.SPECIALTY_FOR_CHECK.get(kind)
    if urgency not in ("soon", "urgent") or specialty is None:
        return None
    return {"href": f"/places?kind={specialty}",
            "specialty": _(place_service.KIND_LABELS[specialty])}


async def _heart_rate_offer(user: User, check: Check) -> dict[str, Any] | None:
    """An ECG result's heart rate, offered as a vitals reading (or shown as already saved)."""
    hr = vital_service.ecg_heart_rate(check)
    if hr is None:
        return None
    saved = await vital_service.heart_rate_saved_from_check(user, check)
    return {"bpm": round(hr), "saved": saved is not None}


def _created(check: Check, user: User) -> datetime | None:
    """When the check was made, in the member's time zone (the PDF and the card print it)."""
    return in_user_zone(check.created_at, user.timezone)


class CheckPagesController(Controller):
    guards = [requires_login]
    include_in_schema = False

    @get(["/checks/ecg", "/checks/skin", "/checks/ear"])
    async def capture_page(self, request: Request, current_user: NamedDependency[User]) -> Template:
        return _capture(request.url.path.rsplit("/", 1)[-1], current_user)

    @post(["/checks/ecg", "/checks/skin", "/checks/ear"], status_code=303)
    async def submit(
        self,
        request: Request,
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        registry: NamedDependency[ModelRegistry],
        pool: NamedDependency[InferencePool],
    ) -> Template | Redirect:
        """The no-JavaScript path: analyse now, then show the result page."""
        kind = request.url.path.rsplit("/", 1)[-1]
        try:
            files = await read_form_files(request, kind)
            check = await check_service.create_check(
                user=current_user, kind=kind, files=files, uploads_dir=settings.uploads_dir,
                registry=registry, pool=pool, wait=True,
                on_done=getattr(request.app.state, "on_check_done", None),
            )
        except UnusableInputError as exc:
            return _capture(kind, current_user, exc.status_code, exc.localized(_))
        except ModelIntegrityError:
            return _capture(kind, current_user, 503,
                            _("This check is unavailable right now (model not loaded)."))
        except ServiceError as exc:
            return _capture(kind, current_user, exc.status_code, exc.localized(_))
        return Redirect(f"/checks/{check.id}", status_code=303)

    @get("/checks/{check_id:int}")
    async def result_page(self, check_id: FromPath[int], current_user: NamedDependency[User],
                          settings: NamedDependency[Settings]) -> Template:
        check = await check_service.get_own_check(current_user, check_id)
        if check.status != "done":
            return Template("checks/pending.html", context={
                "user": current_user, "check": check, "kind": check.kind,
                "title": _(result_cards.KIND_TITLES.get(check.kind, N_("Check"))),
                "error": _(check.error) if check.error else "",
            }, headers=NO_STORE)
        return Template("checks/result.html",
                        context={"user": current_user, **_result_context(check),
                                 "photo_size": _photo_size(check, settings),
                                 "heart_rate_offer": await _heart_rate_offer(current_user, check),
                                 "recorded_at": check_service.recorded_at(
                                     check, current_user.timezone)},
                        headers=NO_STORE)

    async def _done_check(self, user: User, check_id: int) -> Check:
        check = await check_service.get_own_check(user, check_id)
        if check.status != "done":
            raise NotFoundError(N_("This check has no result yet."))
        return check

    def _input_bytes(self, check: Check, settings: Settings) -> bytes | None:
        if not check.input_media_type.startswith("image/"):
            return None
        path = settings.uploads_dir / check.input_file
        return path.read_bytes() if check.input_file and path.exists() else None

    @get("/checks/{check_id:int}/card.png")
    async def card_png(
        self,
        check_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> Response:
        check = await self._done_check(current_user, check_id)
        png = result_cards.render_card_png(check_service.result_of(check),
                                           _created(check, current_user),
                                           self._input_bytes(check, settings))
        return Response(png, media_type="image/png", headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="carelens-{check.kind}-{check.id}.png"'})

    @get("/checks/{check_id:int}/report.pdf")
    async def report_pdf(
        self,
        check_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> Response:
        check = await self._done_check(current_user, check_id)
        pdf = result_cards.render_report_pdf(
            check_service.result_of(check), created_at=_created(check, current_user),
            patient=current_user.display_name, input_image=self._input_bytes(check, settings),
            check_id=check.id, recorded_at=in_user_zone(
                check_service.recorded_at(check, current_user.timezone), current_user.timezone))
        return Response(pdf, media_type="application/pdf", headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="carelens-{check.kind}-{check.id}.pdf"'})

    @get("/checks/{check_id:int}/ecg.svg")
    async def ecg_svg(
        self,
        check_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> Response:
        check = await self._done_check(current_user, check_id)
        trace = check_service.result_of(check).get("trace")
        if check.kind != "ecg" or not trace:
            raise NotFoundError(N_("This check has no ECG trace."))
        label = _("Where the rhythm model looked (lead %(lead)s)",
                  lead=trace.get("saliency_lead") or "II")
        return Response(ecg_plot.render_svg(trace, title=_("ECG trace"), saliency_label=label),
                        media_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=3600"})

    @get("/checks/{check_id:int}/outline.png")
    async def outline(
        self,
        check_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> Response:
        check = await self._done_check(current_user, check_id)
        png = result_cards.outline_png(check_service.result_of(check).get("mask_png_base64"))
        if png is None:
            raise NotFoundError(N_("This check has no lesion outline."))
        return Response(png, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @post("/checks/{check_id:int}/delete", status_code=303)
    async def delete_check(self, check_id: FromPath[int], current_user: NamedDependency[User],
                           settings: NamedDependency[Settings]) -> Redirect:
        await check_service.delete_own_check(current_user, check_id, settings.uploads_dir)
        return Redirect("/history?deleted=1", status_code=303)

    @get("/history")
    async def history(self, current_user: NamedDependency[User], kind: FromQuery[str] = "all",
                      deleted: FromQuery[int] = 0, page: FromQuery[int] = 1) -> Template:
        kind = kind if kind in {k for k, _n in history_service.FILTERS} else "all"
        entries, older = await history_service.timeline_page(current_user, kind, page)
        return Template("history.html", context={
            "user": current_user, "entries": entries, "kind": kind,
            "page": max(page, 1), "older": older,
            "filters": [(k, _(n)) for k, n in history_service.FILTERS], "deleted": bool(deleted),
        }, headers=NO_STORE)

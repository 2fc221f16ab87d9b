"""Vitals and the health record: JSON API (/api/v1/vitals, /api/v1/record) and the pages
/vitals (10-second log form, trends, averages) and /record (latest, export, import)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.api.web import requires_login
from backend.i18n import gettext as _
from backend.services import health_record
from backend.services import vitals as vital_service
from backend.services.errors import ServiceError
from backend.services.local_time import user_zone
from backend.tables.accounts import User
from backend.tables.vitals import Vital

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
BMI_COOKIE = "bmi_scale"
PERIODS = (7, 30, 90)


@dataclass
class VitalIn:
    """One reading. blood_pressure uses systolic + diastolic (+ pulse); the others use
    value. measured_at is ISO 8601; without an offset it is read in the user's time zone."""

    type: str
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    pulse: float | None = None
    unit: str | None = None
    context: str | None = None
    measured_at: str | None = None


@dataclass
class CategoryOut:
    key: str
    label: str
    severity: str
    source: str


@dataclass
class VitalOut:
    id: int
    type: str
    unit: str
    context: str
    measured_at: str
    source: str
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    pulse: float | None = None
    bmi: float | None = None
    category: CategoryOut | None = None


@dataclass
class ImportOut:
    imported: int
    duplicates: int
    errors: list[str]
    error_count: int


@dataclass
class VitalForm:
    type: str = "blood_pressure"
    value: str = ""
    systolic: str = ""
    diastolic: str = ""
    pulse: str = ""
    unit: str = ""
    context: str = ""
    measured_at: str = ""


@dataclass
class ScaleForm:
    bmi_scale: str = "who"
    next: str = "/vitals"


@dataclass
class ImportUpload:
    file: UploadFile


def bmi_scale_for(request: Request, user: User, override: str | None = None) -> str:
    scale = override or request.cookies.get(BMI_COOKIE) or ""
    return scale if scale in vital_service.BMI_SCALES else vital_service.default_bmi_scale(user)


async def vitals_out(user: User, rows: list[Vital], scale: str) -> list[VitalOut]:
    height = await vital_service.latest_height_cm(user.id)
    out = []
    for row in rows:
        body = vital_service.vital_to_json(row, bmi_scale=scale, height_cm=height,
                                           translate=_)
        category = body.pop("category")
        out.append(VitalOut(**body, category=CategoryOut(**category) if category else None))
    return out


def _form_data(data: VitalForm) -> dict[str, Any]:
    return {k: v for k, v in asdict(data).items() if v not in ("", None)}


class VitalsApiController(Controller):
    path = "/api/v1/vitals"
    tags = ("vitals",)
    guards = (requires_login,)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self,
        request: Request,
        data: JSONBody[VitalIn],
        current_user: NamedDependency[User],
    ) -> VitalOut:
        """Log a reading; 422 with a readable message for an implausible one (300/20 mmHg)."""
        reading = vital_service.validate_reading(asdict(data), current_user.timezone)
        row = await vital_service.add_reading(current_user, reading)
        return (await vitals_out(current_user, [row], bmi_scale_for(request, current_user)))[0]

    @get("/")
    async def list_vitals(
        self,
        request: Request,
        current_user: NamedDependency[User],
        type: FromQuery[str | None] = None,
        days: FromQuery[int | None] = None,
        limit: FromQuery[int] = 500,
        bmi_scale: FromQuery[str | None] = None,
    ) -> list[VitalOut]:
        """My readings, newest first, each with its guideline category and source."""
        rows = await vital_service.list_readings(current_user, type, days, limit)
        return await vitals_out(current_user, rows, bmi_scale_for(request, current_user,
                                                                  bmi_scale))

    @delete("/{vital_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, vital_id: FromPath[int], current_user: NamedDependency[User]) -> None:
        await vital_service.delete_reading(current_user, vital_id)

    @post("/from-check/{check_id:int}", status_code=HTTP_201_CREATED, responses={
        HTTP_200_OK: ResponseSpec(data_container=VitalOut, generate_examples=False,
                                  description="The reading saved from this check before"),
    })
    async def from_check(self, request: Request, check_id: FromPath[int],
                         current_user: NamedDependency[User]) -> Response[VitalOut]:
        """A heart_rate reading (source ecg_check) from an ECG check's measured heart rate:
        201 with the new reading, or 200 with the one saved from this check before."""
        row, created = await vital_service.heart_rate_from_check(current_user, check_id)
        out = (await vitals_out(current_user, [row], bmi_scale_for(request, current_user)))[0]
        return Response(out, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class RecordApiController(Controller):
    path = "/api/v1/record"
    tags = ("health record",)
    guards = (requires_login,)

    @get("/export.csv", media_type="text/csv")
    async def export_csv(self, current_user: NamedDependency[User]) -> Response:
        rows = await health_record.all_readings(current_user)
        return Response(health_record.vitals_to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 'attachment; filename="carelens-vitals.csv"',
                                 "Cache-Control": "private, no-store"})

    @get("/export.fhir.json", media_type="application/fhir+json")
    async def export_fhir(self, current_user: NamedDependency[User]) -> Response:
        """A FHIR R4 transaction Bundle of Observations (LOINC codes, UCUM units)."""
        rows = await health_record.all_readings(current_user)
        bundle = health_record.fhir_bundle(current_user, rows)
        return Response(json.dumps(bundle, ensure_ascii=False, indent=1),
                        media_type="application/fhir+json",
                        headers={"Content-Disposition":
                                 'attachment; filename="carelens-fhir-bundle.json"',
                                 "Cache-Control": "private, no-store"})

    @post("/import", status_code=HTTP_201_CREATED)
    async def import_csv(
        self, current_user: NamedDependency[User],
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> ImportOut:
        """Import a CSV exported by CareLens (multipart field `file`); duplicates are skipped."""
        content = await data.file.read()
        report = await health_record.import_csv(current_user, content)
        return ImportOut(**report.to_json())


class VitalsPagesController(Controller):
    guards = (requires_login,)
    include_in_schema = False

    async def _page(self, request: Request, user: User, status: int = 200,
                    **extra: Any) -> Template:
        days = extra.pop("days", 30)
        days = days if days in PERIODS else 30
        scale = bmi_scale_for(request, user)
        height = await vital_service.latest_height_cm(user.id)
        charts = []
        for vtype in ("blood_pressure", "glucose", "weight", "heart_rate"):
            rows = await vital_service.list_readings(user, vtype, days)
            summary = vital_service.summarise(rows, user.timezone)
            charts.append({"type": vtype, "summary": summary,
                           "chart": vital_service.trend_svg(rows, days)})
        recent = await vital_service.list_readings(user, None, None, 15)
        latest = await health_record.latest_by_type(user)
        return Template("vitals/vitals.html", status_code=status, context={
            "user": user, "days": days, "periods": PERIODS, "charts": charts,
            "recent": [vital_service.vital_to_json(v, bmi_scale=scale, height_cm=height,
                                                   translate=_) for v in recent],
            "latest": {k: vital_service.vital_to_json(v, bmi_scale=scale, height_cm=height,
                                                      translate=_) for k, v in latest.items()},
            "bmi_scale": scale, "height_cm": height, "units": vital_service.UNITS,
            "now_local": datetime.now(UTC).astimezone(
                user_zone(user.timezone)).strftime("%Y-%m-%dT%H:%M"),
            "form": extra.pop("form", {}), **extra})

    @get("/vitals")
    async def vitals_page(
        self,
        request: Request,
        current_user: NamedDependency[User],
        days: FromQuery[int] = 30,
        saved: FromQuery[str] = "",
        type: FromQuery[str] = "",
    ) -> Template:
        notice = _("Saved.") if saved else ""
        return await self._page(request, current_user, days=days, notice=notice,
                                form={"type": type} if type in vital_service.TYPES else {})

    @post("/vitals")
    async def log_reading(self, request: Request, current_user: NamedDependency[User],
                          data: Annotated[VitalForm, Form]) -> Template | Redirect:
        try:
            reading = vital_service.validate_reading(_form_data(data), current_user.timezone)
        except ServiceError as exc:
            return await self._page(request, current_user, 422, error=exc.message,
                                    form=asdict(data))
        await vital_service.add_reading(current_user, reading)
        return Redirect("/vitals?" + urlencode({"saved": 1, "type": reading.type}))

    @post("/vitals/{vital_id:int}/delete")
    async def delete_reading(
        self,
        current_user: NamedDependency[User],
        vital_id: FromPath[int],
    ) -> Redirect:
        await vital_service.delete_reading(current_user, vital_id)
        return Redirect("/vitals")

    @post("/vitals/from-check/{check_id:int}")
    async def from_check(
        self,
        current_user: NamedDependency[User],
        check_id: FromPath[int],
    ) -> Redirect:
        await vital_service.heart_rate_from_check(current_user, check_id)
        return Redirect("/vitals?" + urlencode({"saved": 1, "type": "heart_rate"}))

    @post("/vitals/bmi-scale")
    async def bmi_scale(self, data: Annotated[ScaleForm, Form]) -> Redirect:
        scale = data.bmi_scale if data.bmi_scale in vital_service.BMI_SCALES else "who"
        target = data.next if data.next in ("/vitals", "/record") else "/vitals"
        response = Redirect(target)
        response.set_cookie(BMI_COOKIE, scale, max_age=365 * 86400, samesite="lax",
                            httponly=True)
        return response

    @get("/record")
    async def record_page(self, request: Request, current_user: NamedDependency[User],
                          imported: FromQuery[str] = "") -> Template:
        return await self._record(request, current_user, notice=imported)

    async def _record(self, request: Request, user: User, status: int = 200,
                      **extra: Any) -> Template:
        scale = bmi_scale_for(request, user)
        height = await vital_service.latest_height_cm(user.id)
        latest = await health_record.latest_by_type(user)
        timeline = await vital_service.list_readings(user, None, None, 100)
        return Template("vitals/record.html", status_code=status, context={
            "user": user, "bmi_scale": scale,
            "latest": {k: vital_service.vital_to_json(v, bmi_scale=scale, height_cm=height,
                                                      translate=_) for k, v in latest.items()},
            "timeline": [vital_service.vital_to_json(v, bmi_scale=scale, height_cm=height,
                                                     translate=_) for v in timeline],
            "types": vital_service.TYPES, **extra})

    @post("/record/import")
    async def import_page(
        self, request: Request, current_user: NamedDependency[User],
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Template:
        try:
            report = await health_record.import_csv(current_user, await data.file.read())
        except ServiceError as exc:
            return await self._record(request, current_user, exc.status_code,
                                      error=exc.message)
        notice = _("%(n)s readings imported, %(d)s already stored.", n=report.imported,
                   d=report.duplicates)
        return await self._record(request, current_user, notice=notice,
                                  import_errors=report.errors[:20])

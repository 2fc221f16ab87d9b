"""Nearest hospitals and pharmacies: a JSON endpoint and a page that works without JS
(latitude/longitude in the query) and asks the browser for its location with JS."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from backend.i18n import gettext as _
from backend.services import places as place_service
from backend.services.errors import ServiceError
from backend.tables.accounts import User


@dataclass
class NearestResponse:
    lat: float
    lon: float
    kind: str | None
    places: list[place_service.NearPlace]


class PlacesApiController(Controller):
    path = "/api/v1/places"
    tags = ("places",)

    @get("/nearest")
    async def nearest(self, lat: FromQuery[float], lon: FromQuery[float],
                      kind: FromQuery[str | None] = None,
                      limit: FromQuery[int] = 10) -> NearestResponse:
        """The nearest places by distance; `kind` is a place kind (hospital, clinic, pharmacy,
        dermatology, ent, cardiology) or a check kind (skin, ear, ecg -> its specialty)."""
        found = await place_service.nearest(lat, lon, kind=kind, limit=limit)
        return NearestResponse(lat=lat, lon=lon, kind=place_service.resolve_kind(kind),
                               places=found)


def _parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


class PlacesPageController(Controller):
    include_in_schema = False

    @get("/places")
    async def page(
        self,
        current_user: NamedDependency[User | None],
        lat: FromQuery[str | None] = None,
        lon: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
    ) -> Template:
        context: dict = {
            "user": current_user,
            "kinds": [(k, _(place_service.KIND_LABELS[k])) for k in place_service.KINDS],
            "kind": "", "lat": lat or "", "lon": lon or "", "results": None,
            "kind_labels": {k: _(v) for k, v in place_service.KIND_LABELS.items()},
        }
        status = 200
        try:
            context["kind"] = place_service.resolve_kind(kind) or ""
            flat, flon = _parse_float(lat), _parse_float(lon)
            if flat is not None and flon is not None:
                context["results"] = await place_service.nearest(flat, flon, kind=kind, limit=20)
            elif lat or lon:
                raise ServiceError(_("The location is not valid (latitude -90..90, "
                                     "longitude -180..180)."), 400)
        except ServiceError as exc:
            context["error"] = exc.localized(_)
            status = exc.status_code
        return Template("places.html", context=context, status_code=status)

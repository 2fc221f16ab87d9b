"""Nearest hospitals and pharmacies, and importing place lists.

The nearest query narrows the table with a latitude/longitude bounding box (the `lat` and
`lon` columns are indexed, so the database only hands back rows in the box) and ranks those
few rows by great-circle (haversine) distance. The box grows until it holds enough places.

Importers read an OpenStreetMap extract (GeoJSON or CSV, e.g. from Overpass or osmium) or
the Korean public data layout (HIRA 병원정보서비스 / 약국정보서비스 CSV: 요양기관명,
종별코드명, 주소, 전화번호, 좌표(X), 좌표(Y)), in UTF-8 (with or without BOM) or CP949.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from backend.i18n import N_
from backend.services.errors import ServiceError
from backend.tables.places import Place

KINDS = ("hospital", "clinic", "pharmacy", "dermatology", "ent", "cardiology")
KIND_LABELS = {
    "hospital": N_("Hospital"),
    "clinic": N_("Clinic"),
    "pharmacy": N_("Pharmacy"),
    "dermatology": N_("Dermatology"),
    "ent": N_("Ear, nose and throat"),
    "cardiology": N_("Cardiology"),
}
# The specialist that fits each check: skin -> dermatologist, ear -> ENT, ECG -> cardiologist.
SPECIALTY_FOR_CHECK = {"skin": "dermatology", "ear": "ent", "ecg": "cardiology"}

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = 111.32
START_RADIUS_KM = 1.0
MAX_RADIUS_KM = 100.0
MAX_LIMIT = 50


@dataclass
class NearPlace:
    id: int
    name: str
    kind: str
    address: str
    phone: str
    lat: float
    lon: float
    distance_km: float
    geo_uri: str
    osm_url: str

    def to_json(self) -> dict:
        return asdict(self)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) holding every point within radius_km."""
    dlat = radius_km / KM_PER_DEGREE_LAT
    cos_lat = max(math.cos(math.radians(lat)), 0.01)
    dlon = min(180.0, radius_km / (KM_PER_DEGREE_LAT * cos_lat))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def map_links(name: str, lat: float, lon: float) -> tuple[str, str]:
    """A geo: URI (opens the phone's map app) and an OpenStreetMap link (any browser)."""
    geo = f"geo:{lat:.6f},{lon:.6f}?q={lat:.6f},{lon:.6f}({quote(name)})"
    osm = f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}"
    return geo, osm


def resolve_kind(kind: str | None) -> str | None:
    """A place kind, or a check kind mapped to its specialty; None means every kind."""
    if not kind:
        return None
    kind = kind.strip().lower()
    kind = SPECIALTY_FOR_CHECK.get(kind, kind)
    if kind not in KINDS:
        raise ServiceError(N_("Unknown place kind. Use hospital, clinic, pharmacy, dermatology, "
                              "ent or cardiology."), 400)
    return kind


def validate_position(lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ServiceError(N_("The location is not valid (latitude -90..90, longitude -180..180)."),
                           400)


async def nearest(lat: float, lon: float, *, kind: str | None = None, limit: int = 10,
                  max_radius_km: float = MAX_RADIUS_KM) -> list[NearPlace]:
    """The `limit` nearest places (of `kind`), closest first, within max_radius_km."""
    validate_position(lat, lon)
    kind = resolve_kind(kind)
    limit = max(1, min(int(limit), MAX_LIMIT))
    radius = START_RADIUS_KM
    while True:
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, radius)
        query = Place.select(Place.id, Place.name, Place.kind, Place.address, Place.phone,
                             Place.lat, Place.lon).where(
            (Place.lat >= min_lat) & (Place.lat <= max_lat)
            & (Place.lon >= min_lon) & (Place.lon <= max_lon))
        if kind:
            query = query.where(Place.kind == kind)
        rows = await query
        ranked = sorted(
            ((haversine_km(lat, lon, r["lat"], r["lon"]), r) for r in rows), key=lambda x: x[0])
        # Only places inside the circle are certain to beat anything outside the box.
        inside = [(d, r) for d, r in ranked if d <= radius]
        if len(inside) >= limit or radius >= max_radius_km:
            return [_near_place(r, d) for d, r in inside[:limit]]
        # Grow the circle by the density seen so far (area ~ r^2), so a dense city does not
        # jump to a box with thousands of rows; at most x4 when nothing was found yet.
        growth = math.sqrt(limit / max(len(inside), 0.5)) * 1.3
        radius = min(max_radius_km, radius * min(4.0, max(1.5, growth)))


def _near_place(row: dict, distance: float) -> NearPlace:
    geo, osm = map_links(row["name"], row["lat"], row["lon"])
    return NearPlace(id=row["id"], name=row["name"], kind=row["kind"], address=row["address"],
                     phone=row["phone"], lat=row["lat"], lon=row["lon"],
                     distance_km=round(distance, 3), geo_uri=geo, osm_url=osm)


async def count_places() -> int:
    return await Place.count()


# --------------------------------------------------------------------------- importing

@dataclass
class PlaceRow:
    name: str
    kind: str
    address: str
    phone: str
    lat: float
    lon: float


@dataclass
class ImportReport:
    imported: int
    skipped: int
    format: str


# Name fragments that say which specialty a clinic practises (Korean clinic names carry it).
_NAME_SPECIALTY = (
    ("피부", "dermatology"), ("dermatolog", "dermatology"), ("skin", "dermatology"),
    ("이비인후", "ent"), ("otolaryng", "ent"), ("ent clinic", "ent"), (" ent", "ent"),
    ("심장", "cardiology"), ("순환기", "cardiology"), ("cardio", "cardiology"),
    ("heart", "cardiology"),
)
_OSM_SPECIALTY = {"dermatology": "dermatology", "otolaryngology": "ent", "ent": "ent",
                  "cardiology": "cardiology"}
_OSM_AMENITY = {"hospital": "hospital", "clinic": "clinic", "doctors": "clinic",
                "pharmacy": "pharmacy", "chemist": "pharmacy"}


def specialty_from_name(name: str) -> str | None:
    lowered = f" {name.lower()}"
    for fragment, kind in _NAME_SPECIALTY:
        if fragment in lowered:
            return kind
    return None


def kind_from_korean_type(type_name: str, name: str) -> str | None:
    """종별코드명 -> kind. Dental and oriental-medicine clinics are left out: no check of ours
    points to them."""
    t = type_name.strip()
    if "약국" in t:
        return "pharmacy"
    if "치과" in t or "한의" in t or "한방" in t:
        return None
    special = specialty_from_name(name)
    if special:
        return special
    if "의원" in t or "보건" in t:
        return "clinic"
    if "병원" in t:
        return "hospital"
    return None


def kind_from_osm(props: dict) -> str | None:
    specialty = str(props.get("healthcare:speciality") or props.get("healthcare_speciality") or "")
    for part in specialty.replace(",", ";").split(";"):
        if part.strip().lower() in _OSM_SPECIALTY:
            return _OSM_SPECIALTY[part.strip().lower()]
    for key in ("amenity", "healthcare", "shop"):
        value = str(props.get(key) or "").strip().lower()
        if value in _OSM_AMENITY:
            name_specialty = specialty_from_name(str(props.get("name") or ""))
            if value != "pharmacy" and value != "chemist" and name_specialty:
                return name_specialty
            return _OSM_AMENITY[value]
    return None


def osm_address(props: dict) -> str:
    if props.get("addr:full"):
        return str(props["addr:full"])
    parts = [props.get(k) for k in ("addr:province", "addr:city", "addr:district",
                                    "addr:street", "addr:housenumber")]
    return " ".join(str(p) for p in parts if p)


def detect_encoding(path: Path) -> str:
    """utf-8-sig when the head decodes as UTF-8, else cp949 (Korean public data files)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp949"


def _float(value) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _valid(lat: float | None, lon: float | None) -> bool:
    return lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180 and (
        lat, lon) != (0.0, 0.0)


def _first(row: dict, *keys: str) -> str:
    for key in keys:
        if row.get(key):
            return str(row[key]).strip()
    return ""


def _csv_rows(fh: Iterable[str]) -> tuple[str, Iterator[PlaceRow | None]]:
    reader = csv.DictReader(fh)
    fields = {f.strip() for f in (reader.fieldnames or [])}
    reader.fieldnames = [f.strip() for f in (reader.fieldnames or [])]

    if "요양기관명" in fields:
        def korean() -> Iterator[PlaceRow | None]:
            for row in reader:
                name = _first(row, "요양기관명")
                kind = kind_from_korean_type(_first(row, "종별코드명"), name)
                lon, lat = _float(row.get("좌표(X)")), _float(row.get("좌표(Y)"))
                if not name or not kind or not _valid(lat, lon):
                    yield None
                    continue
                yield PlaceRow(name[:200], kind, _first(row, "주소")[:500],
                               _first(row, "전화번호")[:40], lat, lon)
        return "korean-public-data-csv", korean()

    if {"name", "kind", "lat", "lon"} <= fields:
        def native() -> Iterator[PlaceRow | None]:
            for row in reader:
                kind = _first(row, "kind").lower()
                lat, lon = _float(row.get("lat")), _float(row.get("lon"))
                if not row.get("name") or kind not in KINDS or not _valid(lat, lon):
                    yield None
                    continue
                yield PlaceRow(_first(row, "name")[:200], kind, _first(row, "address")[:500],
                               _first(row, "phone")[:40], lat, lon)
        return "carelens-csv", native()

    if "name" in fields and ({"lat", "lon"} <= fields or {"@lat", "@lon"} <= fields
                             or {"latitude", "longitude"} <= fields):
        def osm_csv() -> Iterator[PlaceRow | None]:
            for row in reader:
                lat = _float(_first(row, "lat", "@lat", "latitude"))
                lon = _float(_first(row, "lon", "@lon", "longitude"))
                kind = kind_from_osm(row)
                if not row.get("name") or not kind or not _valid(lat, lon):
                    yield None
                    continue
                yield PlaceRow(_first(row, "name")[:200], kind, osm_address(row)[:500],
                               _first(row, "phone", "contact:phone")[:40], lat, lon)
        return "osm-csv", osm_csv()

    raise ServiceError(N_("Unknown CSV layout: expected the Korean public data columns "
                          "(요양기관명, 종별코드명, 좌표(X), 좌표(Y)), OpenStreetMap columns "
                          "(name, amenity, lat, lon) or name, kind, lat, lon."), 400)


def _geometry_point(geometry: dict | None) -> tuple[float | None, float | None]:
    """(lat, lon) of a Point, or the mean of a polygon's outer ring (buildings)."""
    if not geometry:
        return None, None
    coords = geometry.get("coordinates")
    kind = geometry.get("type")
    try:
        if kind == "Point":
            return _float(coords[1]), _float(coords[0])
        if kind == "Polygon":
            ring = coords[0]
        elif kind == "MultiPolygon":
            ring = coords[0][0]
        else:
            return None, None
        return (sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring))
    except (TypeError, IndexError, ZeroDivisionError):
        return None, None


def _geojson_rows(data: dict) -> Iterator[PlaceRow | None]:
    for feature in data.get("features") or []:
        props = feature.get("properties") or {}
        lat, lon = _geometry_point(feature.get("geometry"))
        kind = kind_from_osm(props)
        name = str(props.get("name:ko") or props.get("name") or "").strip()
        if not name or not kind or not _valid(lat, lon):
            yield None
            continue
        yield PlaceRow(name[:200], kind, osm_address(props)[:500],
                       str(props.get("phone") or props.get("contact:phone") or "")[:40], lat, lon)


class _CountingReader:
    """Wraps a text file to report how many bytes were read (for the progress bar)."""

    def __init__(self, raw, encoding: str, on_bytes: Callable[[int], None]):
        self._raw = raw
        self._text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        self._on_bytes = on_bytes

    def __iter__(self):
        for line in self._text:
            self._on_bytes(self._raw.tell())
            yield line


def read_places(path: Path, progress: Callable[[int, int], None] | None = None
                ) -> tuple[str, Iterator[PlaceRow | None]]:
    """(format name, rows); a row is None when it was skipped (no name, kind or position)."""
    path = Path(path)
    if not path.exists():
        raise ServiceError(N_("File not found."), 400)
    total = path.stat().st_size
    encoding = detect_encoding(path)
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        try:
            data = json.loads(path.read_bytes().decode(encoding))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ServiceError(N_("The GeoJSON file could not be read."), 400) from exc
        if progress:
            progress(total, total)
        return "osm-geojson", _geojson_rows(data)
    raw = path.open("rb")
    reader = _CountingReader(raw, encoding,
                             (lambda n: progress(n, total)) if progress else (lambda n: None))
    fmt, rows = _csv_rows(reader)

    def closing() -> Iterator[PlaceRow | None]:
        try:
            yield from rows
        finally:
            raw.close()

    return fmt, closing()


async def import_places(path: Path, *, source: str = "", replace: bool = False,
                        progress: Callable[[int, int], None] | None = None,
                        batch_size: int = 1000) -> ImportReport:
    """Reads a places file into the places table; `replace` first removes rows of `source`."""
    path = Path(path)
    source = (source or path.stem)[:32]
    fmt, rows = read_places(path, progress)
    if replace:
        await Place.delete().where(Place.source == source)
    imported = skipped = 0
    batch: list[Place] = []
    for row in rows:
        if row is None:
            skipped += 1
            continue
        batch.append(Place(name=row.name, kind=row.kind, address=row.address, phone=row.phone,
                           lat=row.lat, lon=row.lon, source=source))
        if len(batch) >= batch_size:
            await Place.insert(*batch)
            imported += len(batch)
            batch = []
    if batch:
        await Place.insert(*batch)
        imported += len(batch)
    return ImportReport(imported=imported, skipped=skipped, format=fmt)

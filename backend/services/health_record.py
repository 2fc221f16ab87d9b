"""The health record: latest readings, CSV export/import (round trip) and a FHIR R4 Bundle
of Observations a clinic can import (LOINC codes, UCUM units, vital-signs profiles)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.i18n import gettext as _
from backend.services import vitals as vital_service
from backend.services.errors import ServiceError
from backend.tables.accounts import User
from backend.tables.vitals import Vital

CSV_COLUMNS = ["type", "measured_at", "value", "systolic", "diastolic", "pulse", "unit",
               "context", "source"]
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PROFILE = "http://hl7.org/fhir/StructureDefinition/"

# LOINC code, display, FHIR vital-signs profile (None: not a vital sign).
CODES = {
    "blood_pressure": ("85354-9", "Blood pressure panel with all children optional", "bp"),
    "systolic": ("8480-6", "Systolic blood pressure", None),
    "diastolic": ("8462-4", "Diastolic blood pressure", None),
    "glucose": ("2339-0", "Glucose [Mass/volume] in Blood", None),
    "weight": ("29463-7", "Body weight", "bodyweight"),
    "height": ("8302-2", "Body height", "bodyheight"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "bmi"),
    "heart_rate": ("8867-4", "Heart rate", "heartrate"),
}
# Our unit -> (UCUM code, human unit). The vital-signs profiles allow exactly these.
UCUM_UNITS = {
    "mmHg": ("mm[Hg]", "mmHg"), "mg/dL": ("mg/dL", "mg/dL"), "kg": ("kg", "kg"),
    "lb": ("[lb_av]", "lb"), "cm": ("cm", "cm"), "in": ("[in_i]", "in"),
    "bpm": ("/min", "beats/minute"), "kg/m2": ("kg/m2", "kg/m2"),
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if abs(value) < 1e15 else str(value)


# ---------------------------------------------------------------------------------------
# Latest of everything


async def latest_by_type(user: User) -> dict[str, Vital]:
    latest: dict[str, Vital] = {}
    for vtype in vital_service.TYPES:
        row = await Vital.objects().where(
            (Vital.owner == user.id) & (Vital.type == vtype)
        ).order_by(Vital.measured_at, ascending=False).first()
        if row is not None:
            latest[vtype] = row
    return latest


async def all_readings(user: User) -> list[Vital]:
    return await Vital.objects().where(Vital.owner == user.id).order_by(Vital.measured_at)


# ---------------------------------------------------------------------------------------
# CSV


def vitals_to_csv(rows: list[Vital]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for v in rows:
        bp = v.type == "blood_pressure"
        writer.writerow({
            "type": v.type, "measured_at": _iso(v.measured_at),
            "value": "" if bp else _num(v.value),
            "systolic": _num(v.value) if bp else "", "diastolic": _num(v.value2) if bp else "",
            "pulse": _num(v.value3) if bp else "", "unit": v.unit, "context": v.context,
            "source": v.source,
        })
    return out.getvalue()


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "duplicates": self.duplicates,
                "errors": self.errors[:50], "error_count": len(self.errors)}


def _key(vtype: str, measured_at: datetime, value: float, value2: float | None) -> tuple:
    return (vtype, _iso(measured_at), round(value, 3),
            None if value2 is None else round(value2, 3))


async def import_csv(user: User, text: str | bytes) -> ImportReport:
    """Imports a CSV written by vitals_to_csv (or by hand with the same header). Rows that
    are already stored (same type, time and values) are skipped, so importing twice is
    harmless. Invalid rows are reported by line number; valid rows are kept."""
    if isinstance(text, bytes):
        if len(text) > MAX_IMPORT_BYTES:
            raise ServiceError(_("The file is too large to import (over 2 MB)."), 413)
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ServiceError(_("The file is not a UTF-8 CSV file."), 422)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"type", "measured_at", "unit"} <= set(reader.fieldnames):
        raise ServiceError(_("This CSV has no CareLens header (type, measured_at, value, "
                             "systolic, diastolic, pulse, unit, context, source)."), 422)
    existing = {
        _key(v.type, v.measured_at, v.value, v.value2) for v in await all_readings(user)
    }
    report = ImportReport()
    batch: list[Vital] = []
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_IMPORT_ROWS:
            report.errors.append(_("Only the first %(n)s rows were read.", n=MAX_IMPORT_ROWS))
            break
        try:
            data = {k: (v or "").strip() for k, v in row.items() if k}
            source = data.get("source") or "import"
            data["source"] = source if source in vital_service.SOURCES else "import"
            reading = vital_service.validate_reading(data, user.timezone or "UTC")
        except ServiceError as exc:
            report.errors.append(_("Line %(line)s: %(error)s", line=line, error=exc.message))
            continue
        key = _key(reading.type, reading.measured_at, reading.value, reading.value2)
        if key in existing:
            report.duplicates += 1
            continue
        existing.add(key)
        batch.append(Vital(owner=user.id, type=reading.type, value=reading.value,
                           value2=reading.value2, value3=reading.value3, unit=reading.unit,
                           context=reading.context, measured_at=reading.measured_at,
                           source=reading.source))
    for start in range(0, len(batch), 500):
        await Vital.insert(*batch[start:start + 500])
    report.imported = len(batch)
    return report


# ---------------------------------------------------------------------------------------
# FHIR R4


def _coding(key: str) -> dict[str, Any]:
    code, display, _profile = CODES[key]
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    code, human = UCUM_UNITS[unit]
    return {"value": round(value, 2), "unit": human, "system": UCUM, "code": code}


def _fhir_value(vital: Vital) -> tuple[float, str]:
    """Value and unit as exported: glucose in mg/dL (LOINC 2339-0 is a mass concentration),
    height in metres as cm (the bodyheight profile allows cm and [in_i] only)."""
    if vital.type == "glucose":
        return vital_service.canonical_value(vital), "mg/dL"
    if vital.type == "height" and vital.unit == "m":
        return vital.value * 100.0, "cm"
    return vital.value, vital.unit


def _observation(key: str, patient_ref: str, effective: datetime, *,
                 category: str = "vital-signs") -> dict[str, Any]:
    profile = CODES[key][2]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category,
                                  "display": "Vital Signs" if category == "vital-signs"
                                  else "Laboratory"}]}],
        "code": _coding(key),
        "subject": {"reference": patient_ref},
        "effectiveDateTime": _iso(effective),
    }
    if profile:
        resource["meta"] = {"profile": [PROFILE + profile]}
    return resource


def fhir_bundle(user: User, rows: list[Vital], now: datetime | None = None) -> dict[str, Any]:
    """A FHIR R4 transaction Bundle: one Patient and one Observation per reading (a BP
    reading's pulse becomes its own heart-rate Observation; every weight with a known height
    adds a BMI Observation derived from both)."""
    now = now or datetime.now(UTC)
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [{
        "fullUrl": patient_url,
        "resource": {"resourceType": "Patient", "name": [{"text": user.display_name}],
                     "telecom": [{"system": "email", "value": user.email}]},
        "request": {"method": "POST", "url": "Patient"},
    }]

    def add(resource: dict[str, Any]) -> str:
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": url, "resource": resource,
                        "request": {"method": "POST", "url": "Observation"}})
        return url

    last_height: tuple[float, str] | None = None  # (cm, fullUrl)
    heights = [v for v in rows if v.type == "height"]
    for vital in sorted(rows, key=lambda v: v.measured_at):
        if vital.type == "blood_pressure":
            obs = _observation("blood_pressure", patient_url, vital.measured_at)
            obs["component"] = [
                {"code": _coding("systolic"), "valueQuantity": _quantity(vital.value, "mmHg")},
                {"code": _coding("diastolic"),
                 "valueQuantity": _quantity(vital.value2 or 0, "mmHg")},
            ]
            add(obs)
            if vital.value3:
                hr = _observation("heart_rate", patient_url, vital.measured_at)
                hr["valueQuantity"] = _quantity(vital.value3, "bpm")
                add(hr)
            continue
        value, unit = _fhir_value(vital)
        category = "laboratory" if vital.type == "glucose" else "vital-signs"
        obs = _observation(vital.type, patient_url, vital.measured_at, category=category)
        obs["valueQuantity"] = _quantity(value, unit)
        if vital.type == "glucose" and vital.context:
            obs["note"] = [{"text": {"fasting": "fasting", "after_meal": "about 2 h after a meal",
                                     "random": "random (non-fasting)"}[vital.context]}]
        if vital.source == "ecg_check":
            obs["method"] = {"text": "measured from an ECG recording (CareLens)"}
        url = add(obs)
        if vital.type == "height":
            last_height = (vital_service.canonical_value(vital), url)
        if vital.type == "weight":
            if last_height is None and heights:  # a height logged later still applies
                first = heights[0]
                last_height = (vital_service.canonical_value(first), "")
            if last_height is not None:
                value_bmi = vital_service.bmi(vital_service.canonical_value(vital),
                                              last_height[0])
                bmi_obs = _observation("bmi", patient_url, vital.measured_at)
                bmi_obs["valueQuantity"] = _quantity(value_bmi, "kg/m2")
                bmi_obs["derivedFrom"] = [{"reference": url}] + (
                    [{"reference": last_height[1]}] if last_height[1] else [])
                add(bmi_obs)
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": _iso(now),
        "entry": entries,
    }

"""Vitals: validation, units, BMI and guideline categories, and the queries behind the pages.

Every clinical threshold lives in GUIDELINES below, with its source. Readings are stored in
the unit the person entered (Vital.unit); categories, charts and averages use the canonical
unit of each type (CANONICAL_UNITS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.i18n import N_
from backend.i18n import gettext as _
from backend.services.errors import ServiceError
from backend.services.local_time import user_zone
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.vitals import Vital

TYPES = ("blood_pressure", "glucose", "weight", "height", "heart_rate")
GLUCOSE_CONTEXTS = ("fasting", "after_meal", "random")
SOURCES = ("manual", "ecg_check", "import")

CANONICAL_UNITS = {
    "blood_pressure": "mmHg", "glucose": "mg/dL", "weight": "kg", "height": "cm",
    "heart_rate": "bpm",
}
# Accepted spellings -> (stored unit, factor to the canonical unit).
UNITS: dict[str, dict[str, tuple[str, float]]] = {
    "blood_pressure": {"mmhg": ("mmHg", 1.0)},
    # 1 mmol/L glucose = 18.016 mg/dL (molar mass of glucose 180.16 g/mol).
    "glucose": {"mg/dl": ("mg/dL", 1.0), "mmol/l": ("mmol/L", 18.016)},
    "weight": {"kg": ("kg", 1.0), "lb": ("lb", 0.45359237), "lbs": ("lb", 0.45359237)},
    "height": {"cm": ("cm", 1.0), "m": ("m", 100.0), "in": ("in", 2.54)},
    "heart_rate": {"bpm": ("bpm", 1.0), "/min": ("bpm", 1.0)},
}

# Plausible ranges in canonical units. A value outside is far more likely a typo (300/20)
# than a reading, so it is refused with a message instead of stored.
RANGES = {
    "systolic": (50.0, 260.0),
    "diastolic": (30.0, 160.0),
    "pulse": (25.0, 250.0),
    "glucose": (20.0, 800.0),
    "weight": (2.0, 350.0),
    "height": (40.0, 250.0),
    "heart_rate": (25.0, 250.0),
}


@dataclass(frozen=True)
class Band:
    key: str
    label: str
    low: float  # lower bound in the canonical unit
    severity: str  # ok | info | warn | urgent
    low_inclusive: bool = True


@dataclass(frozen=True)
class Guideline:
    source: str
    bands: tuple[Band, ...]

    def band_for(self, value: float) -> Band:
        chosen = self.bands[0]
        for band in self.bands:
            if value > band.low or (band.low_inclusive and value == band.low):
                chosen = band
        return chosen


# The one table of clinical thresholds. Bands are ordered; a value falls in the last band
# whose lower bound it reaches.
ACC_AHA_2017 = ("2017 ACC/AHA Guideline for High Blood Pressure in Adults "
                "(Whelton et al., Hypertension 2018;71:e13-e115)")
ADA_2024 = ("ADA Standards of Care in Diabetes 2024, section 2 and 6 "
            "(Diabetes Care 2024;47 Suppl 1)")
WHO_BMI = "WHO BMI classification (WHO Technical Report Series 894, 2000)"
ASIAN_BMI = ("WHO Western Pacific Region 2000 / WHO Expert Consultation (Lancet 2004;363:157-163); "
             "Korean Society for the Study of Obesity guideline 2022")
AHA_HR = "AHA: normal resting heart rate 60-100 beats per minute"

GUIDELINES: dict[str, Guideline] = {
    # The BP category is the higher of the systolic and the diastolic category.
    "systolic": Guideline(ACC_AHA_2017, (
        Band("normal", N_("Normal"), 0, "ok"),
        Band("elevated", N_("Elevated"), 120, "info"),
        Band("stage1", N_("Hypertension stage 1"), 130, "warn"),
        Band("stage2", N_("Hypertension stage 2"), 140, "warn"),
        # "Hypertensive crisis": >180 and/or >120 diastolic.
        Band("crisis", N_("Hypertensive crisis"), 180, "urgent", low_inclusive=False),
    )),
    "diastolic": Guideline(ACC_AHA_2017, (
        Band("normal", N_("Normal"), 0, "ok"),
        Band("stage1", N_("Hypertension stage 1"), 80, "warn"),
        Band("stage2", N_("Hypertension stage 2"), 90, "warn"),
        Band("crisis", N_("Hypertensive crisis"), 120, "urgent", low_inclusive=False),
    )),
    # Fasting plasma glucose: <100 normal, 100-125 prediabetes (IFG), >=126 diabetes range;
    # <70 level 1 and <54 level 2 hypoglycaemia (ADA section 6).
    "glucose_fasting": Guideline(ADA_2024, (
        Band("hypo2", N_("Very low (level 2 hypoglycaemia)"), 0, "urgent"),
        Band("hypo1", N_("Low (level 1 hypoglycaemia)"), 54, "warn"),
        Band("normal", N_("Normal"), 70, "ok"),
        Band("prediabetes", N_("Prediabetes range"), 100, "warn"),
        Band("diabetes", N_("Diabetes range"), 126, "warn"),
    )),
    # 2-hour value (OGTT; used for readings taken about 2 h after a meal): <140 normal,
    # 140-199 prediabetes (IGT), >=200 diabetes range.
    "glucose_after_meal": Guideline(ADA_2024, (
        Band("hypo2", N_("Very low (level 2 hypoglycaemia)"), 0, "urgent"),
        Band("hypo1", N_("Low (level 1 hypoglycaemia)"), 54, "warn"),
        Band("normal", N_("Normal"), 70, "ok"),
        Band("prediabetes", N_("Prediabetes range"), 140, "warn"),
        Band("diabetes", N_("Diabetes range"), 200, "warn"),
    )),
    # Random glucose: only >=200 mg/dL (with symptoms) is a diagnostic threshold.
    "glucose_random": Guideline(ADA_2024, (
        Band("hypo2", N_("Very low (level 2 hypoglycaemia)"), 0, "urgent"),
        Band("hypo1", N_("Low (level 1 hypoglycaemia)"), 54, "warn"),
        Band("unclassified", N_("No category for a random reading"), 70, "ok"),
        Band("diabetes", N_("Diabetes range"), 200, "warn"),
    )),
    "bmi_who": Guideline(WHO_BMI, (
        Band("underweight", N_("Underweight"), 0, "info"),
        Band("normal", N_("Normal weight"), 18.5, "ok"),
        Band("overweight", N_("Overweight"), 25.0, "info"),
        Band("obese1", N_("Obesity class I"), 30.0, "warn"),
        Band("obese2", N_("Obesity class II"), 35.0, "warn"),
        Band("obese3", N_("Obesity class III"), 40.0, "warn"),
    )),
    "bmi_asian": Guideline(ASIAN_BMI, (
        Band("underweight", N_("Underweight"), 0, "info"),
        Band("normal", N_("Normal weight"), 18.5, "ok"),
        Band("overweight", N_("Overweight (pre-obese)"), 23.0, "info"),
        Band("obese1", N_("Obesity class I"), 25.0, "warn"),
        Band("obese2", N_("Obesity class II"), 30.0, "warn"),
        Band("obese3", N_("Obesity class III"), 35.0, "warn"),
    )),
    "heart_rate": Guideline(AHA_HR, (
        Band("low", N_("Below the usual resting range"), 0, "info"),
        Band("normal", N_("Normal resting range"), 60, "ok"),
        Band("high", N_("Above the usual resting range"), 100, "info", low_inclusive=False),
    )),
}

BMI_SCALES = ("who", "asian")


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    severity: str
    source: str

    def to_json(self, translate=None) -> dict[str, str]:
        label = translate(self.label) if translate else self.label
        return {"key": self.key, "label": label, "severity": self.severity,
                "source": self.source}


def _category(guideline_key: str, value: float) -> Category:
    guideline = GUIDELINES[guideline_key]
    band = guideline.band_for(value)
    return Category(band.key, band.label, band.severity, guideline.source)


def classify_bp(systolic: float, diastolic: float) -> Category:
    sys_band = GUIDELINES["systolic"].band_for(systolic)
    dia_band = GUIDELINES["diastolic"].band_for(diastolic)
    order = ["normal", "elevated", "stage1", "stage2", "crisis"]
    band = max(sys_band, dia_band, key=lambda b: order.index(b.key))
    return Category(band.key, band.label, band.severity, ACC_AHA_2017)


def classify_glucose(mg_dl: float, context: str) -> Category:
    context = context if context in GLUCOSE_CONTEXTS else "random"
    return _category(f"glucose_{context}", mg_dl)


def bmi(weight_kg: float, height_cm: float) -> float:
    """Body-mass index, rounded to one decimal as it is shown and classified."""
    metres = height_cm / 100.0
    return round(weight_kg / (metres * metres), 1)


def classify_bmi(value: float, scale: str = "who") -> Category:
    return _category("bmi_asian" if scale == "asian" else "bmi_who", round(value, 1))


def classify_heart_rate(bpm: float) -> Category:
    return _category("heart_rate", bpm)


def default_bmi_scale(user: User | None) -> str:
    """Asian cut-offs for people in Asian time zones, WHO otherwise (changeable on the page)."""
    tz = getattr(user, "timezone", "") or ""
    return "asian" if tz.startswith("Asia/") else "who"


# ---------------------------------------------------------------------------------------
# Validation


@dataclass
class Reading:
    """A validated reading, ready to store (values in the unit the person used)."""

    type: str
    value: float
    unit: str
    measured_at: datetime
    value2: float | None = None
    value3: float | None = None
    context: str = ""
    source: str = "manual"
    problems: list[str] = field(default_factory=list)


def normalise_unit(vtype: str, unit: str | None) -> tuple[str, float]:
    table = UNITS[vtype]
    if not unit:
        return table[next(iter(table))]
    key = unit.strip().lower().replace(" ", "")
    if key not in table:
        allowed = ", ".join(sorted({u for u, _ in table.values()}))
        raise ServiceError(_("Unknown unit %(unit)s for this reading; use %(allowed)s.",
                             unit=unit, allowed=allowed), 422)
    return table[key]


def _num(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ServiceError(_("Please enter a number for %(field)s.", field=name), 422)
    if not math.isfinite(number):
        raise ServiceError(_("Please enter a number for %(field)s.", field=name), 422)
    return number


def _fmt(x: float) -> str:
    return f"{x:g}"


def CHECK_READING() -> str:
    return _("Please check the reading; nothing was saved.")


def _check_range(name: str, key: str, canonical: float, shown: float, unit: str,
                 factor: float) -> str | None:
    low, high = RANGES[key]
    if low <= canonical <= high:
        return None
    return _("%(field)s %(value)s %(unit)s is outside the possible range "
             "(%(low)s-%(high)s %(unit)s).",
             field=name, value=_fmt(shown), unit=unit,
             low=_fmt(round(low / factor, 1)), high=_fmt(round(high / factor, 1)))


def parse_measured_at(raw: Any, tz_name: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    if raw in (None, ""):
        return now
    if isinstance(raw, datetime):
        moment = raw
    else:
        try:
            moment = datetime.fromisoformat(str(raw).strip())
        except ValueError:
            raise ServiceError(_("The time of the reading is not a valid date and time."), 422)
    if moment.tzinfo is None:  # a local time from a form: the person's own time zone
        moment = moment.replace(tzinfo=user_zone(tz_name))
    moment = moment.astimezone(UTC)
    if moment > now + timedelta(minutes=10):
        raise ServiceError(_("The time of the reading is in the future."), 422)
    if moment.year < 1900:
        raise ServiceError(_("The time of the reading is too far in the past."), 422)
    return moment


def validate_reading(data: dict[str, Any], tz_name: str = "UTC",
                     now: datetime | None = None) -> Reading:
    """Checks a reading given as a dict (API body, form, CSV row); raises ServiceError(422)
    with a message a person understands."""
    vtype = str(data.get("type") or "").strip()
    if vtype not in TYPES:
        raise ServiceError(_("Unknown reading type; use blood_pressure, glucose, weight, "
                              "height or heart_rate."), 422)
    unit, factor = normalise_unit(vtype, data.get("unit"))
    measured_at = parse_measured_at(data.get("measured_at"), tz_name, now)
    source = str(data.get("source") or "manual")
    if source not in SOURCES:
        source = "manual"
    problems: list[str] = []
    if vtype == "blood_pressure":
        if data.get("systolic") in (None, "") or data.get("diastolic") in (None, ""):
            raise ServiceError(_("Blood pressure needs both numbers: systolic (upper) and "
                                  "diastolic (lower)."), 422)
        systolic = _num("systolic", data["systolic"])
        diastolic = _num("diastolic", data["diastolic"])
        pulse = None if data.get("pulse") in (None, "") else _num("pulse", data["pulse"])
        for name, key, v in ((_("Systolic"), "systolic", systolic),
                             (_("Diastolic"), "diastolic", diastolic),
                             (_("Pulse"), "pulse", pulse)):
            if v is not None:
                message = _check_range(name, key, v, v, "bpm" if key == "pulse" else unit, 1.0)
                if message:
                    problems.append(message)
        if not problems and diastolic >= systolic:
            problems.append(_("The systolic (upper) number must be higher than the diastolic "
                              "(lower) number."))
        if problems:
            raise ServiceError(" ".join([*problems, CHECK_READING()]), 422)
        return Reading(vtype, systolic, unit, measured_at, value2=diastolic, value3=pulse,
                       source=source)
    raw = data.get("value")
    if raw in (None, ""):
        raise ServiceError(_("Please enter the value of the reading."), 422)
    value = _num("value", raw)
    names = {"glucose": _("Glucose"), "weight": _("Weight"), "height": _("Height"),
             "heart_rate": _("Heart rate")}
    message = _check_range(names[vtype], vtype, value * factor, value, unit, factor)
    if message:
        raise ServiceError(f"{message} {CHECK_READING()}", 422)
    context = ""
    if vtype == "glucose":
        context = str(data.get("context") or "random")
        if context not in GLUCOSE_CONTEXTS:
            raise ServiceError(_("Glucose context must be fasting, after_meal or random."), 422)
    return Reading(vtype, value, unit, measured_at, context=context, source=source)


# ---------------------------------------------------------------------------------------
# Storage and presentation


def canonical_value(vital: Vital) -> float:
    _, factor = UNITS[vital.type].get(vital.unit.lower(), (vital.unit, 1.0))
    return vital.value * factor


async def add_reading(user: User, reading: Reading) -> Vital:
    vital = Vital(owner=user.id, type=reading.type, value=reading.value, value2=reading.value2,
                  value3=reading.value3, unit=reading.unit, context=reading.context,
                  measured_at=reading.measured_at, source=reading.source)
    await vital.save()
    return vital


async def latest_height_cm(user_id: int, before: datetime | None = None) -> float | None:
    query = Vital.objects().where((Vital.owner == user_id) & (Vital.type == "height"))
    if before is not None:
        query = query.where(Vital.measured_at <= before)
    row = await query.order_by(Vital.measured_at, ascending=False).first()
    if row is None and before is not None:  # a height logged later still describes an adult
        return await latest_height_cm(user_id)
    return canonical_value(row) if row else None


def category_of(vital: Vital, bmi_scale: str = "who",
                height_cm: float | None = None) -> Category | None:
    if vital.type == "blood_pressure":
        return classify_bp(vital.value, vital.value2 or 0)
    if vital.type == "glucose":
        return classify_glucose(canonical_value(vital), vital.context)
    if vital.type == "heart_rate":
        return classify_heart_rate(vital.value)
    if vital.type == "weight" and height_cm:
        return classify_bmi(bmi(canonical_value(vital), height_cm), bmi_scale)
    return None


def vital_to_json(vital: Vital, *, bmi_scale: str = "who", height_cm: float | None = None,
                  translate=None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": vital.id, "type": vital.type, "unit": vital.unit, "context": vital.context,
        "measured_at": vital.measured_at.isoformat(), "source": vital.source,
    }
    if vital.type == "blood_pressure":
        body.update(systolic=vital.value, diastolic=vital.value2, pulse=vital.value3)
    else:
        body["value"] = vital.value
    if vital.type == "weight" and height_cm:
        body["bmi"] = bmi(canonical_value(vital), height_cm)
    category = category_of(vital, bmi_scale, height_cm)
    body["category"] = category.to_json(translate) if category else None
    return body


async def list_readings(user: User, vtype: str | None = None, days: int | None = None,
                        limit: int = 500) -> list[Vital]:
    query = Vital.objects().where(Vital.owner == user.id)
    if vtype:
        if vtype not in TYPES:
            raise ServiceError(_("Unknown reading type; use blood_pressure, glucose, weight, "
                                  "height or heart_rate."), 422)
        query = query.where(Vital.type == vtype)
    if days:
        query = query.where(Vital.measured_at >= datetime.now(UTC) - timedelta(days=days))
    return await query.order_by(Vital.measured_at, ascending=False).limit(max(1, min(limit, 5000)))


async def delete_reading(user: User, vital_id: int) -> None:
    row = await Vital.objects().where((Vital.id == vital_id) & (Vital.owner == user.id)).first()
    if row is None:
        raise ServiceError(_("This reading does not exist."), 404)
    await Vital.delete().where(Vital.id == row.id)


def ecg_heart_rate(check: Check) -> float | None:
    """The heart rate an ECG check measured (bpm), None for other checks or when unmeasured."""
    from backend.services.checks import result_of

    hr = (result_of(check).get("intervals") or {}).get("hr_bpm") if check.kind == "ecg" else None
    return None if hr is None else float(hr)


def _time_of(check: Check, tz_name: str) -> datetime | None:
    """The time a reading saved from the check carries: when the ECG was recorded, where its
    file says (a time without an offset is the member's local time), else when it was checked."""
    from backend.services.checks import recorded_at

    return recorded_at(check, tz_name) or check.finished_at or check.created_at


async def heart_rate_saved_from_check(user: User, check: Check) -> Vital | None:
    """The heart_rate reading already saved from this ECG check, if any (its reading carries the
    check's time, see _time_of; a second of slack for databases that round timestamps). Another
    check of the same recorded ECG finds it too: one recording, one reading."""
    when = _time_of(check, user.timezone)
    if when is None:
        return None
    slack = timedelta(seconds=1)
    return await Vital.objects().where(
        (Vital.owner == user.id)
        & (Vital.type == "heart_rate")
        & (Vital.source == "ecg_check")
        & (Vital.measured_at >= when - slack)
        & (Vital.measured_at <= when + slack)
    ).first()


async def heart_rate_from_check(user: User, check_id: int) -> tuple[Vital, bool]:
    """A heart_rate reading (source ecg_check) from an ECG check's measured rate, and whether it
    is new: saving the same check twice (a double tap, a reload) returns the first reading."""
    from backend.services.checks import get_own_check

    check = await get_own_check(user, check_id)
    already = await heart_rate_saved_from_check(user, check)
    if already is not None:
        return already, False
    hr = ecg_heart_rate(check)
    if hr is None:
        raise ServiceError(_("This check has no measured heart rate."), 422)
    # Whole beats per minute, as the result page offers it and as a pulse reading is written.
    reading = validate_reading({"type": "heart_rate", "value": round(hr), "unit": "bpm",
                                "measured_at": _time_of(check, user.timezone),
                                "source": "ecg_check"})
    return await add_reading(user, reading), True


# ---------------------------------------------------------------------------------------
# Trends


@dataclass
class Summary:
    count: int
    average: float | None
    average2: float | None = None
    morning: tuple[float, float, int] | None = None  # BP: (sys, dia, n) 04:00-11:59 local
    evening: tuple[float, float, int] | None = None  # BP: (sys, dia, n) 18:00-23:59 local


def summarise(vitals: list[Vital], tz_name: str) -> Summary:
    if not vitals:
        return Summary(0, None)
    values = [canonical_value(v) for v in vitals]
    summary = Summary(len(vitals), round(sum(values) / len(values), 1))
    if vitals[0].type == "blood_pressure":
        summary.average2 = round(sum(v.value2 or 0 for v in vitals) / len(vitals), 1)
        zone = user_zone(tz_name)
        # Home BP is measured morning and evening (ESH 2021 practice guideline); the split
        # shows morning surges that a single average hides.
        for name, hours in (("morning", range(4, 12)), ("evening", range(18, 24))):
            part = [v for v in vitals if v.measured_at.astimezone(zone).hour in hours]
            if part:
                setattr(summary, name, (round(sum(v.value for v in part) / len(part), 1),
                                        round(sum(v.value2 or 0 for v in part) / len(part), 1),
                                        len(part)))
    return summary


def trend_svg(vitals: list[Vital], days: int, now: datetime | None = None,
              width: int = 340, height: int = 160) -> dict[str, Any]:
    """Points and polylines for a server-rendered SVG chart (the template draws them)."""
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    rows = sorted((v for v in vitals if v.measured_at >= start), key=lambda v: v.measured_at)
    if not rows:
        return {"empty": True, "width": width, "height": height}
    series = [[canonical_value(v) for v in rows]]
    if rows[0].type == "blood_pressure":
        series.append([v.value2 or 0 for v in rows])
    all_values = [x for s in series for x in s]
    low, high = min(all_values), max(all_values)
    pad = max(1.0, (high - low) * 0.1)
    low, high = math.floor(low - pad), math.ceil(high + pad)
    left, right, top, bottom = 36, width - 8, 8, height - 20

    def x_of(t: datetime) -> float:
        return round(left + (right - left) * (t - start).total_seconds() / (days * 86400), 1)

    def y_of(v: float) -> float:
        return round(bottom - (bottom - top) * (v - low) / (high - low), 1)

    lines = []
    for values in series:
        points = [(x_of(v.measured_at), y_of(val)) for v, val in zip(rows, values)]
        lines.append({"points": " ".join(f"{x},{y}" for x, y in points),
                      "dots": points})
    return {"empty": False, "width": width, "height": height, "lines": lines,
            "y_low": low, "y_high": high, "y_low_px": y_of(low), "y_high_px": y_of(high),
            "left": left, "right": right, "top": top, "bottom": bottom}

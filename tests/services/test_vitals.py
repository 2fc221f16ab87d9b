"""Vitals: plausibility checks with clear messages, units, guideline categories at their
boundaries, BMI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.services import vitals as v
from backend.services.errors import ServiceError


def test_implausible_blood_pressure_is_refused_with_a_clear_message():
    with pytest.raises(ServiceError) as info:
        v.validate_reading({"type": "blood_pressure", "systolic": 300, "diastolic": 20})
    message = info.value.message
    assert info.value.status_code == 422
    assert "Systolic 300 mmHg is outside the possible range (50-260 mmHg)" in message
    assert "Diastolic 20 mmHg is outside the possible range (30-160 mmHg)" in message
    assert "nothing was saved" in message


def test_diastolic_above_systolic_and_missing_numbers():
    with pytest.raises(ServiceError, match="systolic .* must be higher"):
        v.validate_reading({"type": "blood_pressure", "systolic": 80, "diastolic": 120})
    with pytest.raises(ServiceError, match="needs both numbers"):
        v.validate_reading({"type": "blood_pressure", "systolic": 120})
    with pytest.raises(ServiceError, match="Please enter a number"):
        v.validate_reading({"type": "blood_pressure", "systolic": "abc", "diastolic": 80})


def test_units_are_kept_and_ranges_checked_in_the_unit_entered():
    reading = v.validate_reading({"type": "glucose", "value": 5.4, "unit": "mmol/l",
                                  "context": "fasting"})
    assert (reading.value, reading.unit, reading.context) == (5.4, "mmol/L", "fasting")
    with pytest.raises(ServiceError, match=r"Glucose 60 mmol/L .*\(1.1-44.4 mmol/L\)"):
        v.validate_reading({"type": "glucose", "value": 60, "unit": "mmol/L"})
    assert v.validate_reading({"type": "weight", "value": 154, "unit": "lb"}).unit == "lb"
    with pytest.raises(ServiceError, match="Unknown unit stone"):
        v.validate_reading({"type": "weight", "value": 11, "unit": "stone"})
    with pytest.raises(ServiceError, match="Unknown reading type"):
        v.validate_reading({"type": "temperature", "value": 37})


def test_times_are_time_zone_aware():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    local = v.validate_reading({"type": "heart_rate", "value": 70,
                                "measured_at": "2026-03-01T08:00"}, "Asia/Seoul", now)
    assert local.measured_at == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    explicit = v.validate_reading({"type": "heart_rate", "value": 70,
                                   "measured_at": "2026-03-01T08:00Z"}, "Asia/Seoul", now)
    assert explicit.measured_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    with pytest.raises(ServiceError, match="in the future"):
        v.validate_reading({"type": "heart_rate", "value": 70,
                            "measured_at": (now + timedelta(hours=2)).isoformat()}, "UTC", now)


@pytest.mark.parametrize(("systolic", "diastolic", "key"), [
    (119, 79, "normal"),
    (120, 79, "elevated"),
    (129, 79, "elevated"),
    (130, 79, "stage1"),
    (119, 80, "stage1"),
    (139, 89, "stage1"),
    (140, 70, "stage2"),
    (125, 90, "stage2"),
    (180, 120, "stage2"),
    (181, 100, "crisis"),
    (150, 121, "crisis"),
])
def test_blood_pressure_categories_at_the_acc_aha_boundaries(systolic, diastolic, key):
    category = v.classify_bp(systolic, diastolic)
    assert category.key == key
    assert "2017 ACC/AHA" in category.source


@pytest.mark.parametrize(("mg_dl", "context", "key"), [
    (53, "fasting", "hypo2"), (54, "fasting", "hypo1"), (69, "fasting", "hypo1"),
    (70, "fasting", "normal"), (99, "fasting", "normal"), (100, "fasting", "prediabetes"),
    (125, "fasting", "prediabetes"), (126, "fasting", "diabetes"),
    (139, "after_meal", "normal"), (140, "after_meal", "prediabetes"),
    (199, "after_meal", "prediabetes"), (200, "after_meal", "diabetes"),
    (180, "random", "unclassified"), (200, "random", "diabetes"),
])
def test_glucose_categories_at_the_ada_boundaries(mg_dl, context, key):
    category = v.classify_glucose(mg_dl, context)
    assert category.key == key
    assert "ADA" in category.source


def test_glucose_in_mmol_is_classified_after_conversion():
    reading = v.Vital(type="glucose", value=7.0, unit="mmol/L", context="fasting")
    assert v.canonical_value(reading) == pytest.approx(126.1, abs=0.1)
    assert v.category_of(reading).key == "diabetes"
    reading.value = 5.5
    assert v.category_of(reading).key == "normal"


def test_bmi_and_categories_who_and_asian():
    assert v.bmi(70, 175) == 22.9
    assert v.bmi(81.0, 180) == 25.0
    for value, who, asian in [(18.4, "underweight", "underweight"), (18.5, "normal", "normal"),
                              (22.9, "normal", "normal"), (23.0, "normal", "overweight"),
                              (24.9, "normal", "overweight"), (25.0, "overweight", "obese1"),
                              (29.9, "overweight", "obese1"), (30.0, "obese1", "obese2"),
                              (35.0, "obese2", "obese3"), (40.0, "obese3", "obese3")]:
        assert v.classify_bmi(value, "who").key == who, value
        assert v.classify_bmi(value, "asian").key == asian, value
    assert "WHO" in v.classify_bmi(22, "who").source
    assert "Korean" in v.classify_bmi(22, "asian").source
    # Classified on the shown (rounded) value: 24.96 shows as 25.0 and is overweight.
    assert v.classify_bmi(24.96, "who").key == "overweight"


def test_weight_in_pounds_gets_bmi_with_height():
    weight = v.Vital(type="weight", value=154.32, unit="lb")
    body = v.vital_to_json(v.Vital(id=1, type="weight", value=154.3, unit="lb",
                                   measured_at=datetime.now(UTC), context="",
                                   source="manual"), height_cm=175)
    assert v.canonical_value(weight) == pytest.approx(70.0, abs=0.01)  # 154.32 lb
    assert body["bmi"] == 22.9
    assert body["category"]["key"] == "normal"


def test_heart_rate_categories():
    assert v.classify_heart_rate(59).key == "low"
    assert v.classify_heart_rate(60).key == "normal"
    assert v.classify_heart_rate(100).key == "normal"
    assert v.classify_heart_rate(101).key == "high"


def test_every_guideline_band_is_ordered_and_cited():
    for name, guideline in v.GUIDELINES.items():
        lows = [band.low for band in guideline.bands]
        assert lows == sorted(lows), name
        assert guideline.source, name


def test_trend_chart_and_morning_evening_split():
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    rows = []
    for day in range(5):
        # 07:00 and 20:00 in Seoul (UTC+9)
        rows.append(v.Vital(type="blood_pressure", value=140, value2=90, unit="mmHg",
                            measured_at=datetime(2026, 3, 5 + day, 22, 0, tzinfo=UTC)))
        rows.append(v.Vital(type="blood_pressure", value=120, value2=80, unit="mmHg",
                            measured_at=datetime(2026, 3, 5 + day, 11, 0, tzinfo=UTC)))
    summary = v.summarise(rows, "Asia/Seoul")
    assert summary.average == 130.0 and summary.average2 == 85.0
    assert summary.morning == (140.0, 90.0, 5)
    assert summary.evening == (120.0, 80.0, 5)
    chart = v.trend_svg(rows, 7, now=now)
    assert not chart["empty"] and len(chart["lines"]) == 2
    assert len(chart["lines"][0]["dots"]) == 10
    assert v.trend_svg(rows, 7, now=now + timedelta(days=30))["empty"]

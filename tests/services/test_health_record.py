"""Health record: FHIR R4 Bundle validity (structure, LOINC codes, UCUM units) and the CSV
export/import round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.services import health_record as hr
from backend.services import vitals as v
from backend.tables.accounts import User
from backend.tables.vitals import Vital

T0 = datetime(2026, 2, 1, 7, 30, tzinfo=UTC)


async def _user(make_user, email="record@example.org") -> User:
    await make_user(email, name="Kim Minji")
    return await User.objects().where(User.email == email).first()


async def _log(user: User, **data) -> Vital:
    return await v.add_reading(user, v.validate_reading(data, "UTC"))


async def _sample(user: User) -> None:
    await _log(user, type="height", value=1.72, unit="m", measured_at=T0.isoformat())
    await _log(user, type="blood_pressure", systolic=128, diastolic=82, pulse=66,
               measured_at=(T0 + timedelta(hours=1)).isoformat())
    await _log(user, type="glucose", value=5.9, unit="mmol/L", context="fasting",
               measured_at=(T0 + timedelta(hours=2)).isoformat())
    await _log(user, type="weight", value=68.4, unit="kg",
               measured_at=(T0 + timedelta(hours=3)).isoformat())
    await _log(user, type="heart_rate", value=72, unit="bpm", source="ecg_check",
               measured_at=(T0 + timedelta(hours=4)).isoformat())


LOINC_UNITS = {
    "85354-9": None, "2339-0": "mg/dL", "29463-7": "kg", "8302-2": "cm", "39156-5": "kg/m2",
    "8867-4": "/min",
}


def _validate_bundle(bundle: dict) -> list[dict]:
    """Structural checks of FHIR R4: Bundle/entry/request, Observation required elements,
    coding systems, UCUM quantities, references that resolve inside the bundle."""
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    datetime.fromisoformat(bundle["timestamp"])
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])
    observations = []
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        resource = entry["resource"]
        assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
        if resource["resourceType"] != "Observation":
            assert resource["resourceType"] == "Patient"
            continue
        observations.append(resource)
        assert resource["status"] == "final"
        assert resource["subject"]["reference"] in urls
        [coding] = resource["code"]["coding"]
        assert coding["system"] == "http://loinc.org" and coding["code"] in LOINC_UNITS
        assert resource["category"][0]["coding"][0]["system"] == (
            "http://terminology.hl7.org/CodeSystem/observation-category")
        assert datetime.fromisoformat(resource["effectiveDateTime"]).tzinfo is not None
        quantities = [resource["valueQuantity"]] if "valueQuantity" in resource else [
            c["valueQuantity"] for c in resource["component"]]
        for q in quantities:
            assert q["system"] == "http://unitsofmeasure.org"
            assert isinstance(q["value"], (int, float))
        if coding["code"] == "85354-9":
            assert "valueQuantity" not in resource
            codes = [c["code"]["coding"][0]["code"] for c in resource["component"]]
            assert codes == ["8480-6", "8462-4"]
            assert {c["valueQuantity"]["code"] for c in resource["component"]} == {"mm[Hg]"}
        else:
            assert resource["valueQuantity"]["code"] == LOINC_UNITS[coding["code"]]
        for ref in resource.get("derivedFrom", []):
            assert ref["reference"] in urls
    return observations


async def test_fhir_bundle_has_loinc_codes_and_ucum_units(client, make_user):
    user = await _user(make_user)
    await _sample(user)
    bundle = hr.fhir_bundle(user, await hr.all_readings(user))
    observations = _validate_bundle(bundle)
    by_code = {}
    for obs in observations:
        by_code.setdefault(obs["code"]["coding"][0]["code"], []).append(obs)
    # BP panel, its pulse as a heart rate, glucose, weight, height, derived BMI, ECG heart rate.
    assert sorted((k, len(x)) for k, x in by_code.items()) == [
        ("2339-0", 1), ("29463-7", 1), ("39156-5", 1), ("8302-2", 1), ("85354-9", 1),
        ("8867-4", 2)]
    bp = by_code["85354-9"][0]
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [128, 82]
    assert bp["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/bp"]
    glucose = by_code["2339-0"][0]
    assert glucose["valueQuantity"]["value"] == round(5.9 * 18.016, 2)
    assert glucose["category"][0]["coding"][0]["code"] == "laboratory"
    assert by_code["8302-2"][0]["valueQuantity"] == {
        "value": 172.0, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}
    bmi = by_code["39156-5"][0]
    assert bmi["valueQuantity"]["value"] == v.bmi(68.4, 172)
    assert len(bmi["derivedFrom"]) == 2


async def test_csv_round_trip(client, make_user):
    user = await _user(make_user)
    await _sample(user)
    before = await hr.all_readings(user)
    exported = hr.vitals_to_csv(before)
    assert exported.splitlines()[0] == ",".join(hr.CSV_COLUMNS)

    # Into another account: the same readings come back.
    other = await _user(make_user, "other@example.org")
    report = await hr.import_csv(other, exported.encode())
    assert report.to_json()["imported"] == 5 and report.errors == []
    after = await hr.all_readings(other)

    def shape(rows):
        return [(r.type, r.measured_at, r.value, r.value2, r.value3, r.unit, r.context, r.source)
                for r in rows]

    assert shape(after) == shape(before)
    assert hr.vitals_to_csv(after) == exported
    # Importing again adds nothing.
    again = await hr.import_csv(other, exported)
    assert (again.imported, again.duplicates) == (0, 5)


async def test_csv_import_reports_bad_rows_and_keeps_good_ones(client, make_user):
    user = await _user(make_user)
    text = ("type,measured_at,value,systolic,diastolic,pulse,unit,context,source\n"
            "blood_pressure,2026-01-05T08:00:00Z,,300,20,,mmHg,,manual\n"
            "weight,2026-01-05T08:00:00Z,71.5,,,,kg,,manual\n"
            "glucose,not a date,100,,,,mg/dL,fasting,manual\n")
    report = await hr.import_csv(user, text)
    assert report.imported == 1
    assert len(report.errors) == 2
    assert report.errors[0].startswith("Line 2: Systolic 300 mmHg is outside")
    assert report.errors[1].startswith("Line 4:")

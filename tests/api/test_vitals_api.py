"""Vitals over HTTP: the JSON API (contract), the /vitals and /record pages, exports, import,
and a heart-rate reading from an ECG check."""

from __future__ import annotations

from backend.tables.accounts import User
from backend.tables.checks import Check
from tests.conftest import csrf_from, login_form, register_user


async def test_log_and_list_vitals(client, make_user):
    headers = await make_user("vitals@example.org")
    response = await client.post("/api/v1/vitals", headers=headers, json={
        "type": "blood_pressure", "systolic": 132, "diastolic": 84, "pulse": 70,
        "unit": "mmHg", "measured_at": "2026-01-10T07:30:00+09:00"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["systolic"] == 132 and body["diastolic"] == 84
    assert body["category"]["key"] == "stage1"
    assert "ACC/AHA" in body["category"]["source"]
    assert body["measured_at"].startswith("2026-01-09T22:30")

    await client.post("/api/v1/vitals", headers=headers, json={
        "type": "glucose", "value": 99, "unit": "mg/dL", "context": "fasting"})
    listed = await client.get("/api/v1/vitals", headers=headers, params={"type": "glucose"})
    assert [v["value"] for v in listed.json()] == [99]
    assert listed.json()[0]["category"]["key"] == "normal"


async def test_implausible_reading_gets_a_clear_422(client, make_user):
    headers = await make_user("typo@example.org")
    response = await client.post("/api/v1/vitals", headers=headers, json={
        "type": "blood_pressure", "systolic": 300, "diastolic": 20})
    assert response.status_code == 422
    assert "Systolic 300 mmHg is outside the possible range" in response.json()["error"]
    listed = await client.get("/api/v1/vitals", headers=headers)
    assert listed.json() == []


async def test_bmi_with_asian_cut_offs(client, make_user):
    headers = await make_user("bmi@example.org")
    await client.post("/api/v1/vitals", headers=headers,
                      json={"type": "height", "value": 170, "unit": "cm"})
    await client.post("/api/v1/vitals", headers=headers,
                      json={"type": "weight", "value": 69, "unit": "kg"})
    who = (await client.get("/api/v1/vitals?type=weight&bmi_scale=who", headers=headers)).json()
    asian = (await client.get("/api/v1/vitals?type=weight&bmi_scale=asian",
                              headers=headers)).json()
    assert who[0]["bmi"] == 23.9
    assert who[0]["category"]["key"] == "normal"
    assert asian[0]["category"]["key"] == "overweight"


async def test_heart_rate_from_an_ecg_check(any_db_client):
    """On both databases: the saved-once lookup compares timestamps."""
    client = any_db_client
    headers = await register_user(client, "ecg@example.org")
    user = await User.objects().where(User.email == "ecg@example.org").first()
    check = Check(owner=user.id, kind="ecg", status="done",
                  result={"kind": "ecg", "intervals": {"hr_bpm": 63.7, "pr_ms": 160}})
    await check.save()
    response = await client.post(f"/api/v1/vitals/from-check/{check.id}", headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["value"] == 64 and response.json()["source"] == "ecg_check"
    again = await client.post(f"/api/v1/vitals/from-check/{check.id}", headers=headers)
    assert again.status_code == 200  # the reading saved the first time, not a second one
    assert again.json()["id"] == response.json()["id"]
    other = await client.post(f"/api/v1/vitals/from-check/{check.id}",
                              headers=await register_user(client, "someone@example.org"))
    assert other.status_code == 404


async def test_heart_rate_from_an_ecg_file_carries_the_time_it_was_recorded(any_db_client):
    client = any_db_client
    headers = await register_user(client, "recorded@example.org")
    user = await User.objects().where(User.email == "recorded@example.org").first()
    await User.update({User.timezone: "Asia/Seoul"}).where(User.id == user.id)

    async def hr_from(recorded_at: str) -> dict:
        check = Check(owner=user.id, kind="ecg", status="done",
                      result={"kind": "ecg", "intervals": {"hr_bpm": 58},
                              "recorded_at": recorded_at})
        await check.save()
        response = await client.post(f"/api/v1/vitals/from-check/{check.id}", headers=headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    with_offset = await hr_from("2026-11-20T09:30:00+09:00")
    assert with_offset["measured_at"].startswith("2026-11-20T00:30:00")
    # The recorder's own clock (no offset) is the member's zone; the same recording checked
    # twice is one reading.
    local_clock = await hr_from("2026-11-20T09:30:00")
    assert local_clock["id"] == with_offset["id"]
    # A recorder's clock set years ahead: the reading takes the check's time instead.
    future = await hr_from("2031-01-01T00:00:00+00:00")
    assert future["id"] != with_offset["id"] and future["measured_at"] < "2031"


async def test_exports_and_import_over_http(client, make_user):
    headers = await make_user("export@example.org")
    await client.post("/api/v1/vitals", headers=headers, json={
        "type": "weight", "value": 60.5, "unit": "kg", "measured_at": "2026-01-02T08:00:00Z"})
    csv_response = await client.get("/api/v1/record/export.csv", headers=headers)
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert "weight,2026-01-02T08:00:00Z,60.5" in csv_response.text
    fhir = await client.get("/api/v1/record/export.fhir.json", headers=headers)
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert fhir.json()["entry"][1]["resource"]["code"]["coding"][0]["code"] == "29463-7"

    importer = await make_user("import@example.org")
    response = await client.post("/api/v1/record/import", headers=importer,
                                 files={"file": ("v.csv", csv_response.content, "text/csv")})
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 1
    assert (await client.get("/api/v1/vitals", headers=importer)).json()[0]["value"] == 60.5


async def test_vitals_pages_log_form_and_record(client, make_user):
    await make_user("page@example.org")
    csrf = await login_form(client, "page@example.org")
    page = await client.get("/vitals")
    assert page.status_code == 200 and 'name="systolic"' in page.text
    bad = await client.post("/vitals", data={"_csrf_token": csrf, "type": "blood_pressure",
                                             "systolic": "300", "diastolic": "20"})
    assert bad.status_code == 422 and "outside the possible range" in bad.text
    good = await client.post("/vitals", data={"_csrf_token": csrf, "type": "blood_pressure",
                                              "systolic": "118", "diastolic": "76"},
                             follow_redirects=True)
    assert good.status_code == 200
    assert "118/76" in good.text and "<svg" in good.text and "Normal" in good.text
    for days in (7, 30, 90):
        assert (await client.get(f"/vitals?days={days}")).status_code == 200
    record = await client.get("/record")
    assert "/api/v1/record/export.fhir.json" in record.text and "118/76" in record.text
    client.cookies.set("lang", "ko")
    korean = await client.get("/vitals", headers={"Accept-Language": "ko"})
    assert "혈압" in korean.text


async def test_notification_settings_pages(client, make_user):
    await make_user("notif@example.org")
    await login_form(client, "notif@example.org")
    settings_page = await client.get("/settings")
    assert 'id="push-subscribe"' in settings_page.text
    page = await client.get("/settings/notifications")
    csrf = csrf_from(page.text)
    saved = await client.post("/settings/reminders", data={
        "_csrf_token": csrf, "kind": "glucose", "time_of_day": "07:15",
        "timezone": "Asia/Seoul"}, follow_redirects=True)
    assert "07:15" in saved.text and "Asia/Seoul" in saved.text
    quiet = await client.post("/settings/quiet-hours", data={
        "_csrf_token": csrf, "quiet_start": "22:00", "quiet_end": "07:00"},
        follow_redirects=True)
    assert "Quiet hours were saved" in quiet.text
    user = await User.objects().where(User.email == "notif@example.org").first()
    assert (user.quiet_start, user.quiet_end) == ("22:00", "07:00")

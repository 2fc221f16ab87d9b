"""POST /api/v1/checks/{kind} and GET /api/v1/checks/{id} with the real models."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import wfdb
from PIL import Image

from backend.inference.ecg.analyze import analyze_ecg_record
from backend.services.result_cards import render_report_pdf
from tests.conftest import register_user
from tests.contract import assert_contract_result
from tests.held_out import EARDRUM_NORMAL, SKIN_MEL, SKIN_NOT_EARDRUM, SKIN_NV
from tests.inference.ecg.ecg_synth import synthetic_ecg
from tests.inference.ecg.test_readers import apple_watch_csv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def with_gps_exif(path: Path) -> bytes:
    img = Image.open(path)
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 0.0)}  # GPSInfo
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


async def test_skin_check_returns_contract_json_and_is_stored(client):
    headers = await register_user(client, "skin@example.org")
    photo = with_gps_exif(SKIN_MEL)
    response = await client.post("/api/v1/checks/skin", headers=headers,
                                 files={"file": ("mole.jpg", photo, "image/jpeg")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "done"
    assert_contract_result(body["result"], "skin")
    stored = await client.get(f"/api/v1/checks/{body['id']}", headers=headers)
    assert stored.json()["result"] == body["result"]
    original = await client.get(f"/api/v1/checks/{body['id']}/input", headers=headers)
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(original.content)).getexif().get(0x8825) is None  # GPS gone


async def test_ear_check_and_not_an_eardrum_is_422(client):
    headers = await register_user(client, "ear@example.org")
    ok = await client.post("/api/v1/checks/ear", headers=headers, files={"file": (
        "ear.jpg", EARDRUM_NORMAL.read_bytes(), "image/jpeg")})
    assert ok.status_code == 201, ok.text
    assert_contract_result(ok.json()["result"], "ear")
    refused = await client.post("/api/v1/checks/ear", headers=headers, files={"file": (
        "skin.jpg", SKIN_NOT_EARDRUM.read_bytes(), "image/jpeg")})
    assert refused.status_code == 422
    assert refused.json()["is_eardrum"] is False and refused.json()["error"]


async def test_ecg_wfdb_upload_as_hea_and_dat(client, tmp_path):
    headers = await register_user(client, "ecg@example.org")
    record = synthetic_ecg(hr=55)
    n = len(record.lead_names)
    wfdb.wrsamp("r1", fs=500, units=["mV"] * n, sig_name=list(record.lead_names),
                p_signal=np.asarray(record.signal), fmt=["16"] * n, adc_gain=[1000.0] * n,
                baseline=[0] * n, write_dir=str(tmp_path))
    response = await client.post("/api/v1/checks/ecg", headers=headers, files=[
        ("file", ("r1.hea", (tmp_path / "r1.hea").read_bytes(), "text/plain")),
        ("file", ("r1.dat", (tmp_path / "r1.dat").read_bytes(), "application/octet-stream"))])
    assert response.status_code == 201, response.text
    result = response.json()["result"]
    assert_contract_result(result, "ecg")
    assert result["rhythm"] == "sinus_bradycardia"
    assert abs(result["intervals"]["hr_bpm"] - 55) <= 2


async def test_ecg_from_an_apple_watch_export(client):
    headers = await register_user(client, "watch@example.org")
    lead_i = synthetic_ecg(hr=55, duration_s=30, fs=512, leads=("I",)).signal[:, 0]
    response = await client.post("/api/v1/checks/ecg", headers=headers, files={"file": (
        "ecg_2026-11-20.csv", apple_watch_csv(lead_i * 1000), "text/csv")})
    assert response.status_code == 201, response.text
    result = response.json()["result"]
    assert_contract_result(result, "ecg")
    assert result["leads"] == ["I"] and result["rhythm"] == "sinus_bradycardia"
    assert abs(result["intervals"]["hr_bpm"] - 55) <= 2
    assert result["recorded_at"] == "2026-11-20T09:30:00+09:00"  # the file's Recorded Date


async def test_ecg_from_a_pdf_print(client):
    headers = await register_user(client, "pdf@example.org")
    pdf = render_report_pdf(analyze_ecg_record(synthetic_ecg(hr=55)), patient="Min")
    response = await client.post("/api/v1/checks/ecg", headers=headers, files={"file": (
        "ecg-print.pdf", pdf, "application/pdf")})
    assert response.status_code == 201, response.text
    result = response.json()["result"]
    assert_contract_result(result, "ecg")
    assert result["rhythm"] == "sinus_bradycardia" and len(result["leads"]) == 12
    damaged = await client.post("/api/v1/checks/ecg", headers=headers, files={"file": (
        "ecg-print.pdf", pdf[:2000], "application/pdf")})
    assert damaged.status_code == 422 and "could not be opened" in damaged.json()["error"]


async def poll_until_finished(client, headers: dict, check_id: int) -> dict:
    """GET the check every 50 ms (10 s at most) until it is done or failed."""
    for _ in range(200):
        polled = (await client.get(f"/api/v1/checks/{check_id}", headers=headers)).json()
        if polled["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    return polled


async def test_queued_check_is_polled_until_done(client):
    headers = await register_user(client, "queue@example.org")
    response = await client.post("/api/v1/checks/skin?wait=false", headers=headers, files={
        "file": ("a.jpg", SKIN_NV.read_bytes(), "image/jpeg")})
    assert response.status_code == 201
    assert response.json()["status"] in ("queued", "running")
    check_id = response.json()["id"]
    polled = await poll_until_finished(client, headers, check_id)
    assert polled["status"] == "done"
    assert_contract_result(polled["result"], "skin")


async def test_queued_unusable_photo_ends_failed_with_the_reason(client):
    headers = await register_user(client, "queue2@example.org")
    white = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(white, format="JPEG")
    response = await client.post("/api/v1/checks/skin?wait=false", headers=headers,
                                 files={"file": ("white.jpg", white.getvalue(), "image/jpeg")})
    check_id = response.json()["id"]
    polled = await poll_until_finished(client, headers, check_id)
    assert polled["status"] == "failed" and polled["error"]


async def test_refusals_reach_a_korean_user_in_korean_now_and_after_queueing(client):
    headers = {**await register_user(client, "ko-ear@example.org"), "accept-language": "ko"}
    skin_photo = SKIN_NOT_EARDRUM.read_bytes()
    refused = await client.post("/api/v1/checks/ear", headers=headers,
                                files={"file": ("skin.jpg", skin_photo, "image/jpeg")})
    assert refused.status_code == 422 and refused.json()["is_eardrum"] is False
    assert refused.json()["error"].startswith("고막 사진으로 보이지 않습니다")
    white = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(white, format="JPEG")
    queued = await client.post("/api/v1/checks/skin?wait=false", headers=headers,
                               files={"file": ("white.jpg", white.getvalue(), "image/jpeg")})
    polled = await poll_until_finished(client, headers, queued.json()["id"])
    assert polled["status"] == "failed" and polled["error"].startswith("사진이")
    english = await client.post("/api/v1/checks/ear", headers={**headers, "accept-language": "en"},
                                files={"file": ("skin.jpg", skin_photo, "image/jpeg")})
    assert english.json()["error"].startswith("This does not look like an eardrum photo")


async def test_an_iphone_heic_photo_is_analysed_and_kept_as_jpeg(client):
    headers = await register_user(client, "heic@example.org")
    heic = io.BytesIO()
    Image.open(SKIN_MEL).save(heic, format="HEIF", quality=90)
    response = await client.post("/api/v1/checks/skin", headers=headers,
                                 files={"file": ("IMG_0001.HEIC", heic.getvalue(), "image/heic")})
    assert response.status_code == 201, response.text
    assert_contract_result(response.json()["result"], "skin")
    kept = await client.get(f"/api/v1/checks/{response.json()['id']}/input", headers=headers)
    assert kept.headers["content-type"].startswith("image/jpeg")
    assert kept.content.startswith(b"\xff\xd8\xff")

"""The check flow's HTML pages through real HTTP: capture pages without JavaScript, result
pages per kind, the take-away files (PNG, PDF, SVG, outline), history and deleting a check."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backend.inference.result import make_result
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.vitals import Vital
from tests.conftest import csrf_from, login_form, register_user


def ecg_trace(seconds: float = 4.0, fs: int = 250) -> dict:
    t = np.arange(int(seconds * fs)) / fs
    beat = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.012**2))
    lead_ii = (1.2 * beat - 0.1).round(3).tolist()
    lead_v1 = [None] * len(t)
    lead_v1[fs : 2 * fs] = (-0.8 * beat[fs : 2 * fs]).round(3).tolist()
    return {"fs": fs, "lead_names": ["II", "V1"], "signals": [lead_ii, lead_v1],
            "r_peaks_s": [0.4 + 0.8 * k for k in range(5)], "saliency": None}


def photo_and_mask() -> tuple[bytes, str]:
    photo = Image.new("RGB", (320, 240), (205, 165, 145))
    ImageDraw.Draw(photo).ellipse([120, 80, 200, 160], fill=(80, 55, 40))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    mask = Image.new("L", (320, 240), 0)
    ImageDraw.Draw(mask).ellipse([120, 80, 200, 160], fill=255)
    mbuf = io.BytesIO()
    mask.save(mbuf, format="PNG")
    return buffer.getvalue(), base64.b64encode(mbuf.getvalue()).decode()


MODEL = {"name": "test_model", "version": "0.1.0", "sha256": "0" * 64}


def ecg_result() -> dict:
    return make_result(
        kind="ecg", label="atrial_fibrillation",
        probabilities={"atrial_fibrillation": 0.8, "sinus_rhythm": 0.2}, urgency="soon",
        model=MODEL, explanation="Irregular rhythm.", explanation_ko="불규칙한 리듬입니다.",
        rhythm="atrial_fibrillation", leads=["II", "V1"], trace=ecg_trace(),
        intervals={"hr_bpm": 112, "pr_ms": None, "qrs_ms": 96, "qt_ms": 330, "qtc_ms": 452},
    )


def skin_result(mask_b64: str) -> dict:
    return make_result(
        kind="skin", label="mel", probabilities={"mel": 0.6, "nv": 0.4}, urgency="urgent",
        model=MODEL, explanation="Resembles melanoma.", lesion_area_fraction=0.08,
        mask_png_base64=mask_b64, saliency_png_base64=mask_b64,
    )


def ear_result() -> dict:
    return make_result(kind="ear", label="acute_otitis_media",
                       probabilities={"acute_otitis_media": 0.7, "normal": 0.3}, urgency="soon",
                       model=MODEL, explanation="Signs of infection.", is_eardrum=True)


async def logged_in(client, email: str = "pat@example.org") -> tuple[User, str]:
    await register_user(client, email, name="Pat")
    token = await login_form(client, email)
    user = await User.objects().where(User.email == email).first()
    return user, token


async def stored_check(user: User, kind: str, result: dict, uploads_dir, photo: bytes | None = None) -> Check:
    name, media = "", ""
    if photo:
        uploads_dir.mkdir(parents=True, exist_ok=True)
        name, media = f"test-{kind}-{user.id}.jpg", "image/jpeg"
        (uploads_dir / name).write_bytes(photo)
    check = Check(owner=user.id, kind=kind, status="done", result=result, input_file=name,
                  input_media_type=media, model_name=MODEL["name"], model_version=MODEL["version"])
    await check.save()
    return check


@pytest.mark.parametrize("kind", ["ecg", "skin", "ear"])
async def test_capture_page_has_a_form_that_works_without_javascript(client, kind):
    await logged_in(client)
    page = await client.get(f"/checks/{kind}")
    assert page.status_code == 200
    html = page.text
    assert 'enctype="multipart/form-data"' in html and f'action="/checks/{kind}"' in html
    assert 'type="file" name="file" accept="image/*" capture="environment"' in html
    assert 'name="_csrf_token"' in html
    assert ("multiple accept=\".hea,.dat" in html) == (kind == "ecg")
    assert "<script>" not in html and "style=" not in html


async def test_capture_page_needs_login(client):
    page = await client.get("/checks/skin", follow_redirects=False)
    assert page.status_code in (302, 303) and "/login" in page.headers["location"]


async def test_form_post_with_unusable_file_shows_the_readable_message(client):
    _user, token = await logged_in(client)
    page = await client.post("/checks/skin", data={"_csrf_token": token},
                             files={"file": ("note.jpg", b"this is not a picture", "image/jpeg")})
    assert page.status_code == 422
    assert 'role="alert"' in page.text and "form" in page.text
    message = re.search(r'id="capture-error" class="error" role="alert"\s*>([^<]+)<', page.text)
    assert message and len(message.group(1).strip()) > 10


async def test_form_post_without_file_asks_for_one(client):
    _user, token = await logged_in(client)
    page = await client.post("/checks/ear", data={"_csrf_token": token},
                             files={"file": ("", b"", "application/octet-stream")})
    assert page.status_code == 400
    assert "choose a photo" in page.text


async def test_form_post_without_csrf_token_is_refused(client):
    await logged_in(client)
    photo, _mask = photo_and_mask()
    page = await client.post("/checks/ear", files={"file": ("a.jpg", photo, "image/jpeg")})
    assert page.status_code == 403


async def test_ecg_result_page_shows_trace_intervals_and_actions(client, app_settings):
    user, _token = await logged_in(client)
    check = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    html = (await client.get(f"/checks/{check.id}")).text
    assert "Atrial fibrillation" in html and "See a doctor soon" in html
    assert f'src="/checks/{check.id}/ecg.svg"' in html
    assert "120–200 ms" in html and "not measurable" in html  # PR is None
    assert "(high)" in html  # HR 112 and QTc 452 is within 350-460, HR flagged
    assert f"/checks/{check.id}/card.png" in html and f"/checks/{check.id}/report.pdf" in html
    assert f"/community/new?check={check.id}" in html
    assert "not a medical device" in html and "test_model" in html and "0.1.0" in html
    svg = await client.get(f"/checks/{check.id}/ecg.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count("<polyline") == 2 and svg.text.count("<path d=\"M") >= 5


async def test_the_time_an_ecg_file_was_recorded_is_on_its_result(client, app_settings):
    user, _token = await logged_in(client)
    await User.update({User.timezone: "Asia/Seoul"}).where(User.id == user.id)
    recorded = {**ecg_result(), "recorded_at": "2026-11-20T09:30:00"}  # the recorder's clock
    check = await stored_check(user, "ecg", recorded, app_settings.uploads_dir)
    html = (await client.get(f"/checks/{check.id}")).text
    assert ('Recorded by the device: <time datetime="2026-11-20T00:30:00+00:00">'
            "2026-11-20 09:30 KST</time>") in html
    assert (await client.get(f"/checks/{check.id}/report.pdf")).status_code == 200
    plain = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    assert "Recorded by the device" not in (await client.get(f"/checks/{plain.id}")).text


async def test_an_uncertain_ecg_result_says_so_under_its_headline(client, app_settings):
    user, _token = await logged_in(client)
    sure = await stored_check(user, "ecg", {**ecg_result(), "uncertain": False},
                              app_settings.uploads_dir)
    assert 'id="result-uncertain"' not in (await client.get(f"/checks/{sure.id}")).text
    unsure = await stored_check(user, "ecg", {**ecg_result(), "uncertain": True},
                                app_settings.uploads_dir)
    html = (await client.get(f"/checks/{unsure.id}")).text
    headline = html.index('id="result-label"')
    note = html.index('id="result-uncertain"')
    assert headline < note < html.index('id="next-title"')
    assert "Have a doctor read this ECG." in html[note:]
    client.cookies.set("lang", "ko")
    korean = (await client.get(f"/checks/{unsure.id}")).text
    client.cookies.delete("lang")
    assert "불확실한 결과입니다." in korean and "Uncertain result" not in korean


async def test_early_beats_counted_by_the_analysis_are_named_under_the_headline(
    client, app_settings
):
    user, _token = await logged_in(client)
    sinus = {**ecg_result(), "label": "sinus_rhythm", "rhythm": "sinus_rhythm",
             "intervals_detail": {"early_beats": 2}}
    check = await stored_check(user, "ecg", sinus, app_settings.uploads_dir)
    html = (await client.get(f"/checks/{check.id}")).text
    assert html.index('id="result-label"') < html.index('id="result-detail"')
    assert "with 2 early beats" in html
    client.cookies.set("lang", "ko")
    korean = (await client.get(f"/checks/{check.id}")).text
    client.cookies.delete("lang")
    assert "조기 박동 2회 동반" in korean
    none_counted = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    assert 'id="result-detail"' not in (await client.get(f"/checks/{none_counted.id}")).text


async def test_ecg_result_offers_its_heart_rate_as_a_vitals_reading_once(client, app_settings):
    user, token = await logged_in(client)
    check = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    html = (await client.get(f"/checks/{check.id}")).text
    assert f'action="/vitals/from-check/{check.id}"' in html
    assert "Add my heart rate (112 bpm) to vitals" in html
    for _tap in range(2):  # a double tap saves one reading
        saved = await client.post(f"/vitals/from-check/{check.id}", data={"_csrf_token": token},
                                  follow_redirects=False)
        assert saved.status_code in (302, 303) and "type=heart_rate" in saved.headers["location"]
    rows = await Vital.objects().where(Vital.owner == user.id)
    assert [(r.type, r.value, r.source) for r in rows] == [("heart_rate", 112, "ecg_check")]
    html = (await client.get(f"/checks/{check.id}")).text
    assert "Your heart rate (112 bpm) is saved in your vitals." in html
    assert "/vitals/from-check/" not in html
    skin = await stored_check(user, "skin", skin_result(photo_and_mask()[1]), app_settings.uploads_dir)
    assert "/vitals/from-check/" not in (await client.get(f"/checks/{skin.id}")).text


async def test_a_result_that_says_see_a_doctor_links_to_the_nearest_specialists(
        client, app_settings):
    user, _token = await logged_in(client)
    photo, mask = photo_and_mask()
    skin = await stored_check(user, "skin", skin_result(mask), app_settings.uploads_dir, photo)
    assert 'href="/places?kind=dermatology"' in (await client.get(f"/checks/{skin.id}")).text
    ecg = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    html = (await client.get(f"/checks/{ecg.id}")).text
    assert 'href="/places?kind=cardiology"' in html and "(Cardiology)" in html
    routine = {**ear_result(), "urgency": "routine"}
    ear = await stored_check(user, "ear", routine, app_settings.uploads_dir, photo)
    assert "/places?kind=" not in (await client.get(f"/checks/{ear.id}")).text
    page = await client.get("/places?kind=dermatology")
    assert page.status_code == 200 and 'value="dermatology" selected' in page.text


async def test_korean_result_page_uses_the_korean_explanation(client, app_settings):
    user, _token = await logged_in(client)
    check = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    client.cookies.set("lang", "ko")
    html = (await client.get(f"/checks/{check.id}")).text
    client.cookies.delete("lang")
    assert "불규칙한 리듬입니다." in html and "다음에 할 일" in html and "심방세동" in html
    assert "CareLens는 의료기기가 아니며" in html and "not a medical device" not in html


async def test_a_korean_user_reads_the_quality_notes_in_korean(client, app_settings):
    from backend.inference.ecg import analyze, quality

    user, _token = await logged_in(client)
    flat = quality._advice("flat", ["V1"])
    result = {**ecg_result(), "input_type": "photo",
              "quality": {"ok": True, "issues": [flat, analyze.PHOTO_INTERVALS_NOTE]}}
    check = await stored_check(user, "ecg", result, app_settings.uploads_dir)
    english = (await client.get(f"/checks/{check.id}")).text
    assert "Photo quality notes:" in english and "Lead V1: flat, no signal" in english
    client.cookies.set("lang", "ko")
    html = (await client.get(f"/checks/{check.id}")).text
    client.cookies.delete("lang")
    assert "사진 품질 참고" in html and "유도 V1: 신호가 없는 평탄한 선입니다" in html
    assert "간격은 디지털로 변환한 사진에서" in html
    assert "flat, no signal" not in html and "digitised photo" not in html


async def test_skin_result_page_overlays_outline_and_saliency(client, app_settings):
    user, _token = await logged_in(client)
    photo, mask = photo_and_mask()
    check = await stored_check(user, "skin", skin_result(mask), app_settings.uploads_dir, photo)
    html = (await client.get(f"/checks/{check.id}")).text
    assert f'src="/api/v1/checks/{check.id}/input"' in html
    assert f'src="/checks/{check.id}/outline.png"' in html
    assert 'id="saliency-toggle"' in html and "data:image/png;base64," in html
    assert html.count("<meter") == 2 and "Urgent" in html
    outline = await client.get(f"/checks/{check.id}/outline.png")
    ring = np.array(Image.open(io.BytesIO(outline.content)))
    assert ring.shape == (240, 320, 4)
    assert ring[120, 160, 3] == 0 and ring[120, 120, 3] == 255  # centre clear, edge drawn


async def test_urgent_advice_names_the_warning_signs_of_the_check_kind(client, app_settings):
    user, _token = await logged_in(client)
    photo, mask = photo_and_mask()
    skin = await stored_check(user, "skin", skin_result(mask), app_settings.uploads_dir, photo)
    ecg = await stored_check(user, "ecg", {**ecg_result(), "urgency": "urgent"},
                             app_settings.uploads_dir)
    skin_html = (await client.get(f"/checks/{skin.id}")).text
    assert "dermatologist within the next few days" in skin_html
    assert "call emergency services now" not in skin_html  # the heart's urgent advice
    ecg_html = (await client.get(f"/checks/{ecg.id}")).text
    assert "call emergency services now" in ecg_html
    client.cookies.set("lang", "ko")
    skin_ko = (await client.get(f"/checks/{skin.id}")).text
    client.cookies.delete("lang")
    assert "피부과 전문의" in skin_ko and "지금 119에 연락하세요" not in skin_ko


async def test_ear_result_page_and_take_away_files(client, app_settings):
    user, _token = await logged_in(client)
    photo, _mask = photo_and_mask()
    check = await stored_check(user, "ear", ear_result(), app_settings.uploads_dir, photo)
    html = (await client.get(f"/checks/{check.id}")).text
    assert "Acute middle ear infection" in html and "Signs of infection." in html
    png = await client.get(f"/checks/{check.id}/card.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png.content)).size == (1080, 1350)
    assert "attachment" in png.headers["content-disposition"]
    pdf = await client.get(f"/checks/{check.id}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_another_users_check_is_not_found(client, app_settings):
    user, _token = await logged_in(client)
    check = await stored_check(user, "ear", ear_result(), app_settings.uploads_dir)
    client.cookies.clear()
    await logged_in(client, "other@example.org")
    for path in ("", "/card.png", "/report.pdf", "/ecg.svg", "/outline.png"):
        response = await client.get(f"/checks/{check.id}{path}")
        assert response.status_code == 404, path


async def test_pending_and_failed_checks(client, app_settings):
    user, _token = await logged_in(client)
    queued = Check(owner=user.id, kind="skin", status="queued")
    failed = Check(owner=user.id, kind="ear", status="failed",
                   error="This does not look like an eardrum photo.")
    await queued.save()
    await failed.save()
    html = (await client.get(f"/checks/{queued.id}")).text
    assert f'data-poll-check="{queued.id}"' in html
    html = (await client.get(f"/checks/{failed.id}")).text
    assert "does not look like an eardrum" in html and 'href="/checks/ear"' in html
    assert (await client.get(f"/checks/{queued.id}/card.png")).status_code == 404


async def test_history_timeline_filters_and_delete(client, app_settings):
    from datetime import datetime

    user, token = await logged_in(client)
    photo, mask = photo_and_mask()
    ecg = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    skin = await stored_check(user, "skin", skin_result(mask), app_settings.uploads_dir, photo)
    await Vital(owner=user.id, type="blood_pressure", value=128, value2=82, unit="mmHg",
                measured_at=datetime.now(UTC)).save()
    html = (await client.get("/history")).text
    assert f'href="/checks/{ecg.id}"' in html and f'href="/checks/{skin.id}"' in html
    assert "128/82 mmHg" in html
    html = (await client.get("/history?kind=skin")).text
    assert f'href="/checks/{skin.id}"' in html and f'href="/checks/{ecg.id}"' not in html
    assert "mmHg" not in html and 'aria-current="page"' in html
    html = (await client.get("/history?kind=vitals")).text
    assert "mmHg" in html and "/checks/" not in html.split("<main")[1].split("timeline")[-1]
    token = csrf_from((await client.get(f"/checks/{skin.id}")).text)
    response = await client.post(f"/checks/{skin.id}/delete", data={"_csrf_token": token},
                                 follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/history?deleted=1"
    assert (await client.get(f"/checks/{skin.id}")).status_code == 404
    assert not (app_settings.uploads_dir / skin.input_file).exists()


async def test_capture_and_history_pages_in_korean(client):
    await logged_in(client)
    client.cookies.set("lang", "ko")
    capture = (await client.get("/checks/skin")).text
    history = (await client.get("/history")).text
    client.cookies.delete("lang")
    assert "피부 검사" in capture and "사진 찍기" in capture and "분석하기" in capture
    assert "data-too-dark=\"너무 어둡습니다" in capture
    assert "아직 기록이 없습니다." in history and "종류별 보기" in history


async def test_result_page_says_why_the_headline_is_not_the_longest_bar(client, app_settings):
    user, _token = await logged_in(client)
    result = ecg_result()
    result.update(label="sinus_rhythm", rhythm="sinus_rhythm",
                  probabilities={"other": 0.44, "sinus_rhythm": 0.42, "atrial_fibrillation": 0.14})
    overruled = await stored_check(user, "ecg", result, app_settings.uploads_dir)
    agreeing = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    note = "which is why it can differ from the longest bar"
    assert note in (await client.get(f"/checks/{overruled.id}")).text
    assert note not in (await client.get(f"/checks/{agreeing.id}")).text
    client.cookies.set("lang", "ko")
    html = (await client.get(f"/checks/{overruled.id}")).text
    client.cookies.delete("lang")
    assert "가장 긴 막대와 다를 수 있습니다" in html


async def test_a_paced_result_names_the_pacemaker_and_says_where_its_headline_comes_from(
    client, app_settings
):
    user, _token = await logged_in(client)
    result = ecg_result()
    result.update(label="paced_rhythm", rhythm="paced_rhythm", confidence=1.0,
                  intervals_detail={"n_beats": 10, "pacing": {"paced": True, "paced_beats": 10}})
    check = await stored_check(user, "ecg", result, app_settings.uploads_dir)
    html = (await client.get(f"/checks/{check.id}")).text
    assert "Paced rhythm (pacemaker)" in html and "10 of 10 beats started by the pacemaker" in html
    assert 'id="paced-note"' in html and "which is why it can differ" not in html
    client.cookies.set("lang", "ko")
    korean = (await client.get(f"/checks/{check.id}")).text
    client.cookies.delete("lang")
    assert "심박조율 리듬" in korean and "인공심박동기 자극 신호에서 나온 것입니다" in korean


async def test_home_greets_a_new_member_and_then_lists_the_latest_entries(client, app_settings):
    user, _token = await logged_in(client)
    home = (await client.get("/")).text
    assert "Welcome, Pat. Start with a check" in home and "Welcome back" not in home
    assert 'class="timeline"' not in home
    ecg = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    for hours in range(4):  # three newer readings push the check out of the home list
        await Vital(owner=user.id, type="weight", value=70 + hours, unit="kg",
                    measured_at=datetime.now(UTC) + timedelta(hours=hours)).save()
    home = (await client.get("/")).text
    assert "Welcome back, Pat." in home and home.count('class="entry ') == 3
    assert "73 kg" in home and "71 kg" in home and "70 kg" not in home
    assert f'href="/checks/{ecg.id}"' not in home and 'href="/history"' in home
    history = (await client.get("/history")).text
    assert history.count('class="entry ') == 5 and f'href="/checks/{ecg.id}"' in history


async def test_times_read_in_the_zone_the_browser_gave_at_sign_up(client, app_settings):
    page = await client.get("/register")
    assert 'name="timezone" value="UTC" data-detect-timezone' in page.text
    await client.post("/register", data={
        "email": "seoul@example.org", "password": "correct horse battery staple",
        "display_name": "Min", "timezone": "Asia/Seoul", "_csrf_token": csrf_from(page.text)})
    user = await User.objects().where(User.email == "seoul@example.org").first()
    assert user.timezone == "Asia/Seoul"
    check = await stored_check(user, "ecg", ecg_result(), app_settings.uploads_dir)
    await Check.update({Check.created_at: datetime(2026, 11, 24, 0, 27, tzinfo=UTC)}).where(
        Check.id == check.id)
    for path in (f"/checks/{check.id}", "/history", "/"):
        html = (await client.get(path)).text
        assert ">2026-11-24 09:27 KST<" in html and "2026-11-24 00:27" not in html, path
    page = await client.get("/register")
    await client.post("/register", data={
        "email": "nowhere@example.org", "password": "correct horse battery staple",
        "timezone": "Mars/Olympus", "_csrf_token": csrf_from(page.text)})
    nowhere = await User.objects().where(User.email == "nowhere@example.org").first()
    assert nowhere.timezone == "UTC"


async def test_history_links_to_older_entries_past_the_first_page(client):
    user, _token = await logged_in(client)
    for i in range(51):
        await Vital(owner=user.id, type="weight", value=60 + i, unit="kg",
                    measured_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i)).save()
    first = (await client.get("/history")).text
    assert first.count('class="entry ') == 50 and 'href="/history?kind=all&amp;page=2"' in first
    second = (await client.get("/history?page=2")).text
    assert second.count('class="entry ') == 1 and ">60 kg<" in second
    assert 'page=1"' in second and "page=3" not in second
    assert (await client.get("/history?page=abc")).status_code == 400

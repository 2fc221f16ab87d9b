"""The take-away files: a PNG card to share and an A4 PDF for the doctor (ECG at true scale),
plus the words shown with a result (label names, normal ranges, explanation language)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from backend.i18n import current_locale
from backend.inference.ecg.analyze import interval_flags
from backend.services import result_cards
from tests.api.test_check_pages import ear_result, ecg_result, photo_and_mask, skin_result
from tests.services.test_ecg_plot import sheet_3x4_trace

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def pdf_pages(data: bytes) -> list[tuple[float, float]]:
    """MediaBox sizes (points) of every page."""
    return [(float(w), float(h)) for w, h in
            re.findall(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)]


def test_card_is_a_1080x1350_png_for_every_kind():
    photo, mask = photo_and_mask()
    for result, image in ((ecg_result(), None), (skin_result(mask), photo), (ear_result(), photo)):
        png = result_cards.render_card_png(result, WHEN, image)
        card = Image.open(io.BytesIO(png))
        assert card.format == "PNG" and card.size == (1080, 1350)
        top = np.asarray(card.convert("RGB"))[20, 540]
        assert tuple(top) == (11, 110, 110)  # the teal header band


def test_skin_card_draws_the_outline_over_the_photo():
    photo, mask = photo_and_mask()
    card = np.asarray(Image.open(io.BytesIO(
        result_cards.render_card_png(skin_result(mask), WHEN, photo))).convert("RGB"))
    yellow = (card[:, :, 0] > 220) & (card[:, :, 1] > 190) & (card[:, :, 2] < 60)
    assert yellow.sum() > 500


def test_doctor_pdf_is_a4_with_a_landscape_true_scale_ecg_page():
    result = ecg_result()
    result["trace"] = sheet_3x4_trace()
    pdf = result_cards.render_report_pdf(result, created_at=WHEN, patient="Min", check_id=7)
    assert pdf.startswith(b"%PDF")
    pages = pdf_pages(pdf)
    assert len(pages) == 2
    a4 = (210 / 25.4 * 72, 297 / 25.4 * 72)
    assert abs(pages[0][0] - a4[0]) < 2 and abs(pages[0][1] - a4[1]) < 2
    assert abs(pages[1][0] - a4[1]) < 2 and abs(pages[1][1] - a4[0]) < 2


def test_photo_report_is_one_page():
    photo, _mask = photo_and_mask()
    pdf = result_cards.render_report_pdf(ear_result(), created_at=WHEN, input_image=photo)
    assert len(pdf_pages(pdf)) == 1


def test_outline_is_a_ring_around_the_mask():
    _photo, mask = photo_and_mask()
    ring = np.asarray(Image.open(io.BytesIO(result_cards.outline_png(mask))))
    alpha = ring[:, :, 3]
    assert alpha[120, 160] == 0 and alpha[5, 5] == 0  # inside and far outside are clear
    assert alpha[120, 120] == 255 and alpha[80, 160] == 255  # on the edge
    assert result_cards.outline_png(None) is None and result_cards.outline_png("not base64!") is None


def test_interval_rows_show_the_ranges_and_flags_the_analysis_gave():
    # A man's QTc of 452 ms: the analysis calls it prolonged (>= 450 ms for men) and says so in
    # the explanation; the table used to print it unflagged next to "350-460 ms".
    result = ecg_result()
    flags, ranges = interval_flags(result["intervals"], "M")
    result["intervals_detail"] = {"flags": flags, "normal_ranges": ranges}
    rows = {r["key"]: r for r in result_cards.interval_rows(result)}
    assert rows["qtc_ms"]["flag"] == "high" and rows["qtc_ms"]["range"] == "390–450 ms"
    assert rows["hr_bpm"]["flag"] == "high" and rows["hr_bpm"]["value"] == 112
    assert rows["qrs_ms"]["flag"] is None and rows["qrs_ms"]["range"] == "≤ 110 ms"
    assert rows["pr_ms"]["value"] is None and rows["pr_ms"]["flag"] is None
    assert rows["qt_ms"]["range"] == "—"


def test_interval_rows_of_a_result_saved_without_flags_are_judged_the_same_way():
    rows = {r["key"]: r for r in result_cards.interval_rows(ecg_result())}
    # no sex known: between the men's and the women's limit is borderline
    assert rows["qtc_ms"]["flag"] == "borderline" and rows["qtc_ms"]["range"] == "390–460 ms"
    assert rows["hr_bpm"]["flag"] == "high"


def test_the_qtc_row_names_the_formula_its_value_came_from():
    result = ecg_result()
    result["intervals_detail"] = {"qtc_formula": "fridericia", "qtc_bazett_ms": 480.0}
    rows = {r["key"]: r for r in result_cards.interval_rows(result)}
    assert rows["qtc_ms"]["title"] == "QTc (Fridericia)"
    # saved before the analysis switched formulas: the stored QTc is Bazett's, and says so
    rows = {r["key"]: r for r in result_cards.interval_rows(ecg_result())}
    assert rows["qtc_ms"]["title"] == "QTc (Bazett)"
    token = current_locale.set("ko")
    try:
        rows = {r["key"]: r for r in result_cards.interval_rows(result)}
        assert rows["qtc_ms"]["title"] == "QTc (Fridericia 보정)"
    finally:
        current_locale.reset(token)


def test_words_follow_the_ui_language():
    result = ecg_result()
    token = current_locale.set("ko")
    try:
        assert result_cards.explanation_for(result) == "불규칙한 리듬입니다."
        assert result_cards.label_name("ecg", "atrial_fibrillation").startswith("심방세동")
        assert result_cards.label_name("skin", "unknown_label") == "unknown label"
    finally:
        current_locale.reset(token)
    assert result_cards.explanation_for(result) == "Irregular rhythm."
    assert result_cards.label_name("ear", "otitis_externa") == "Outer ear infection"


def test_cards_fall_back_to_english_without_a_hangul_font(monkeypatch):
    monkeypatch.setattr(result_cards, "HANGUL_FONTS", ("/nonexistent/font.ttf",))
    token = current_locale.set("ko")
    try:
        assert result_cards._card_locale() == "en"
    finally:
        current_locale.reset(token)


def test_twelve_full_length_leads_are_paginated_not_shrunk():
    fs, n = 250, 2500
    t = np.arange(n) / fs
    wave = (np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.02**2))).round(3).tolist()
    trace = {"fs": fs, "lead_names": [f"L{i}" for i in range(12)], "signals": [wave] * 12,
             "r_peaks_s": []}
    result = ecg_result()
    result["trace"] = trace
    pages = pdf_pages(result_cards.render_report_pdf(result))
    assert len(pages) == 1 + 3  # 5 rows of 30 mm per landscape page


def test_note_under_the_bars_only_when_the_evidence_overrules_the_model():
    # ECG sinus by P waves and regular beats while the rhythm CNN leaned to "other"
    overruled = {"label": "sinus_rhythm", "probabilities": {"other": 0.44, "sinus_rhythm": 0.42,
                                                             "atrial_fibrillation": 0.1}}
    assert result_cards.headline_outweighs_model(overruled)
    assert not result_cards.headline_outweighs_model(ecg_result())
    assert not result_cards.headline_outweighs_model(ear_result())
    assert not result_cards.headline_outweighs_model({"label": "mel", "probabilities": {}})


def test_early_beats_are_named_with_a_sinus_or_other_rhythm_only():
    def ecg(label, early_beats):
        return {**ecg_result(), "label": label, "intervals_detail": {"early_beats": early_beats}}

    assert result_cards.headline_detail(ecg("sinus_rhythm", 1)) == "with 1 early beat"
    assert result_cards.headline_detail(ecg("other", 3)) == "with 3 early beats"
    assert result_cards.headline_detail(ecg("sinus_rhythm", 0)) is None
    # in AF "early" means nothing, and a noisy trace's beats are not trusted
    assert result_cards.headline_detail(ecg("atrial_fibrillation", 2)) is None
    assert result_cards.headline_detail(ecg("noisy", 2)) is None
    assert result_cards.headline_detail(ecg_result()) is None  # saved before the count existed
    bigeminy = {**ecg("other", 6), "intervals_detail": {"early_beats": 6, "bigeminy": True}}
    assert result_cards.headline_detail(bigeminy) == "with bigeminy: every other beat early (6)"
    token = current_locale.set("ko")
    try:
        assert result_cards.headline_detail(ecg("sinus_rhythm", 2)) == "조기 박동 2회 동반"
        assert result_cards.headline_detail(bigeminy) == "이단맥 동반: 한 박동 걸러 조기 박동(6회)"
    finally:
        current_locale.reset(token)


def test_a_paced_rhythm_says_how_many_beats_the_pacemaker_started_and_why_not_the_bars():
    paced = {**ecg_result(), "label": "paced_rhythm", "rhythm": "paced_rhythm",
             "intervals_detail": {"n_beats": 10, "early_beats": 1,
                                  "pacing": {"paced": True, "paced_beats": 9}}}
    assert result_cards.headline_from_pacing(paced)
    assert not result_cards.headline_from_pacing(ecg_result())
    assert result_cards.headline_detail(paced) == "9 of 10 beats started by the pacemaker"
    assert result_cards.label_name("ecg", "paced_rhythm") == "Paced rhythm (pacemaker)"
    token = current_locale.set("ko")
    try:
        assert result_cards.headline_detail(paced) == "인공심박동기가 시작한 박동: 10회 중 9회"
        assert result_cards.label_name("ecg", "paced_rhythm") == "심박조율 리듬 (인공심박동기)"
    finally:
        current_locale.reset(token)


def test_every_rhythm_the_analysis_can_name_has_a_translated_name():
    from tests.contract import ECG_RHYTHMS

    token = current_locale.set("ko")
    try:
        for rhythm in ECG_RHYTHMS:
            name = result_cards.label_name("ecg", rhythm)
            assert rhythm in result_cards.LABEL_NAMES["ecg"] and re.search("[가-힣]", name), rhythm
    finally:
        current_locale.reset(token)


def test_quality_notes_and_disclaimer_follow_the_ui_language():
    from backend.inference import ear
    from backend.inference.ecg import analyze

    photo = {**ecg_result(), "input_type": "photo",
             "quality": {"ok": True, "issues": [analyze.PHOTO_INTERVALS_NOTE]}}
    saved_ear = {**ear_result(), "quality": {"ok": False, "issues": ["low_confidence"]}}
    file_record = {**ecg_result(), "input_type": "file",
                   "quality": {"ok": True, "issues": [analyze.CLIPPED_NOTE]}}
    token = current_locale.set("ko")
    try:
        assert result_cards.quality_notes(photo)[0].startswith("간격은 디지털로 변환한 사진에서")
        assert result_cards.quality_notes(saved_ear) == ["모델이 소견 사이에서 확신하지 못합니다"]
        assert result_cards.quality_notes(file_record) == ["기록의 처음 60초만 분석했습니다"]
        assert result_cards.quality_notes_title(file_record) == "기록 품질 참고"
        assert result_cards.quality_notes_title({"input_type": "pdf"}) == "디지털로 변환한 출력물 참고"
        assert result_cards.disclaimer_for(photo).startswith("CareLens는 의료기기가 아니며")
    finally:
        current_locale.reset(token)
    # English: the stored text, and readable words instead of an old result's code
    assert result_cards.quality_notes(saved_ear) == [ear.LOW_CONFIDENCE_NOTE]
    assert result_cards.quality_notes_title(photo) == "Photo quality notes"
    assert result_cards.disclaimer_for(photo).startswith("CareLens is not a medical device")


def test_every_fixed_quality_note_has_korean_text():
    from backend.i18n import translations_for
    from backend.inference import ear
    from backend.inference.ecg import analyze
    from backend.inference.ecg.readers.normalise import (
        ASSUMED_EIGHT_LEAD_ORDER,
        ASSUMED_LEAD_I,
        ASSUMED_RATE,
        ASSUMED_TWELVE_LEAD_ORDER,
    )
    from backend.inference.result import DISCLAIMER, DISCLAIMERS

    READER_ASSUMPTIONS = (ASSUMED_RATE, ASSUMED_LEAD_I, ASSUMED_TWELVE_LEAD_ORDER,
                          ASSUMED_EIGHT_LEAD_ORDER)

    korean = translations_for("ko").gettext
    notes = [analyze.PHOTO_INTERVALS_NOTE, analyze.PDF_INTERVALS_NOTE, analyze.CLIPPED_NOTE,
             analyze.NOISY_NOTE, *READER_ASSUMPTIONS,
             ear.LOW_CONFIDENCE_NOTE, ear.SLIGHTLY_BLURRY_NOTE, DISCLAIMER, *DISCLAIMERS.values()]
    missing = [n for n in notes if not re.search(r"[\uac00-\ud7a3]", korean(n))]
    assert missing == []


def test_each_kind_of_check_names_its_own_warning_signs_in_the_disclaimer():
    from backend.inference.result import DISCLAIMER

    # An ear result used to end with "always for chest pain, fainting or shortness of breath".
    saved_before = {**ear_result(), "disclaimer": DISCLAIMER}
    assert "fever" in result_cards.disclaimer_for(saved_before)
    assert "chest pain" not in result_cards.disclaimer_for(saved_before)
    assert "bleeding" in result_cards.disclaimer_for({"kind": "skin"})
    assert "chest pain" in result_cards.disclaimer_for(ecg_result())
    for kind in ("ecg", "skin", "ear"):
        assert result_cards.disclaimer_for({"kind": kind}).startswith(
            "CareLens is not a medical device")
    token = current_locale.set("ko")
    try:
        assert "청력 저하" in result_cards.disclaimer_for(saved_before)
    finally:
        current_locale.reset(token)

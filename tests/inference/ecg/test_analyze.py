"""analyze_ecg_record end to end: contract keys, AF -> PR null, brady/tachy, refusal, model integrity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import ModelIntegrityError, UnusableInputError
from backend.inference.registry import ModelRegistry
from backend.settings import PROJECT_ROOT
from tests.contract import assert_contract_result
from tests.inference.ecg.ecg_synth import synthetic_ecg

RHYTHMS = {
    "sinus_rhythm",
    "sinus_bradycardia",
    "sinus_tachycardia",
    "atrial_fibrillation",
    "atrial_flutter",
    "supraventricular_tachycardia",
    "paced_rhythm",
    "other",
    "noisy",
}


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry(PROJECT_ROOT / "weights", threads=1)


def test_result_has_the_contract_keys_and_a_plot_trace(registry):
    record = synthetic_ecg(hr=72)
    result = analyze_ecg_record(record, registry, age=50, sex="F")
    assert_contract_result(result, "ecg")
    assert (
        result["kind"] == "ecg"
        and result["rhythm"] == result["label"]
        and result["label"] in RHYTHMS
    )
    assert set(result["intervals"]) == {"hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms"}
    assert result["urgency"] in {"routine", "soon", "urgent"}
    assert set(result["model"]) == {"name", "version", "sha256"}
    assert result["leads"] == record.lead_names
    detail = result["intervals_detail"]
    assert detail["qtc_formula"] == "fridericia"
    assert result["intervals"]["qtc_ms"] == detail["qtc_fridericia_ms"]
    rr_s = 60.0 / result["intervals"]["hr_bpm"]
    qt = result["intervals"]["qt_ms"]
    assert detail["qtc_fridericia_ms"] == pytest.approx(qt / rr_s ** (1 / 3), abs=1.0)
    assert detail["qtc_bazett_ms"] == pytest.approx(qt / rr_s**0.5, abs=1.0)
    assert result["intervals_detail"]["normal_ranges"]["qtc_ms"][1] == 460.0  # women's upper limit
    trace = result["trace"]
    assert trace["fs"] == 250 and trace["lead_names"] == record.lead_names
    assert all(len(s) == 2500 for s in trace["signals"])
    assert len(trace["saliency"]) == 2500
    assert len(trace["r_peaks_s"]) == len(record.meta["qrs_onsets_s"])
    assert result["explanation"] and result["explanation_ko"]
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no numpy types


def test_sinus_at_72_bpm(registry):
    result = analyze_ecg_record(synthetic_ecg(hr=72, qrs_ms=70), registry)
    assert result["rhythm"] == "sinus_rhythm"
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=1)
    assert result["intervals"]["pr_ms"] is not None
    assert result["urgency"] == "routine"
    assert "regular RR" in result["explanation"] and "P waves before" in result["explanation"]
    assert result["probabilities"]["sinus_rhythm"] == result["confidence"]
    assert not result["uncertain"]


def test_one_premature_beat_leaves_a_sinus_rhythm_sinus_and_says_so(registry):
    # the rhythm CNN calls this strip "other" (as CinC 2017's annotators filed such strips);
    # the P waves and the one dominant interval make it a sinus rhythm with an early beat
    result = analyze_ecg_record(synthetic_ecg(hr=72, premature_beats=(4,)), registry)
    assert result["rhythm"] == "sinus_rhythm"
    assert not result["uncertain"]
    assert result["urgency"] == "routine"
    assert result["intervals_detail"]["early_beats"] == 1
    assert "interrupted by an early beat followed by a pause" in result["explanation"]
    assert "early beats are common" in result["explanation"]
    assert "조기 박동 1회" in result["explanation_ko"]


def test_bigeminy_is_named_as_a_pattern_and_asks_for_a_doctor_within_days(registry):
    result = analyze_ecg_record(synthetic_ecg(hr=70, premature_beats=(1, 3, 5, 7, 9)), registry)
    assert result["intervals_detail"]["early_beats"] == 6
    assert "every other beat comes early" in result["explanation"]
    assert "irregularly irregular" not in result["explanation"]
    assert "이단맥" in result["explanation_ko"]
    assert "Early beats this frequent (6 of 12 beats here)" in result["explanation"]
    assert result["urgency"] == "soon"


@pytest.mark.parametrize(
    ("early", "urgency", "advice"),
    [((3, 8), "routine", "Occasional early beats"), ((2, 6, 10), "soon", "Early beats this frequent")],
)
def test_how_often_early_beats_come_sets_the_advice(registry, early, urgency, advice):
    result = analyze_ecg_record(synthetic_ecg(hr=70, premature_beats=early), registry)
    assert result["rhythm"] == "sinus_rhythm"
    assert result["urgency"] == urgency
    assert advice in result["explanation"]


def test_two_early_beats_in_ten_seconds_are_counted_not_called_irregularly_irregular(registry):
    # two early beats leave under 70 % of the intervals at the usual one (4 of 11 disturbed):
    # the short-then-long signature of each still shows a regular rhythm with early beats
    result = analyze_ecg_record(synthetic_ecg(hr=72, premature_beats=(3, 8)), registry)
    assert result["intervals_detail"]["early_beats"] == 2
    assert result["rhythm"] == "sinus_rhythm"
    assert not result["uncertain"]
    assert "2 early beats, each followed by a pause" in result["explanation"]
    assert "irregularly irregular" not in result["explanation"]
    assert "조기 박동 2회" in result["explanation_ko"]


def test_a_dropped_beat_is_not_taken_for_an_early_beat(registry):
    # a P wave without its QRS (second-degree AV block) leaves one pause of two intervals: that
    # needs a doctor's reading, not "sinus rhythm with early beats"
    result = analyze_ecg_record(synthetic_ecg(hr=72, dropped_beats=(5,)), registry)
    assert result["intervals_detail"]["p_wave_fraction"] >= 0.8
    assert result["rhythm"] == "other"
    assert result["urgency"] == "soon"
    assert "early beats are common" not in result["explanation"]


@pytest.mark.parametrize(("hr", "label"), [(48, "sinus_bradycardia"), (118, "sinus_tachycardia")])
def test_brady_and_tachy_split_by_measured_rate(registry, hr, label):
    result = analyze_ecg_record(synthetic_ecg(hr=hr, qt_ms=330 if hr > 100 else 420), registry)
    assert result["intervals"]["hr_bpm"] == pytest.approx(hr, abs=1)
    assert result["rhythm"] == label


def test_af_has_null_pr_and_says_why(registry):
    record = synthetic_ecg(hr=100, p_waves=False, f_waves=True, rr_jitter=0.35, seed=5)
    result = analyze_ecg_record(record, registry)
    assert result["intervals"]["pr_ms"] is None
    assert result["intervals_detail"]["p_wave_fraction"] < 0.3
    if result["rhythm"] == "atrial_fibrillation":
        assert result["urgency"] in {"soon", "urgent"}
        assert "irregular" in result["explanation"] and "P waves" in result["explanation"]
    else:  # the classifier may call a synthetic strip 'other', never sinus without P waves
        assert not result["rhythm"].startswith("sinus") or result["uncertain"]


def test_too_short_or_flat_record_is_refused(registry):
    with pytest.raises(UnusableInputError):
        analyze_ecg_record(synthetic_ecg(duration_s=3.0), registry)
    flat = EcgRecord(signal=np.zeros((5000, 12)), fs=500.0, lead_names=synthetic_ecg().lead_names)
    with pytest.raises(UnusableInputError) as err:
        analyze_ecg_record(flat, registry)
    assert err.value.extra["quality"]["issues"]


@pytest.mark.parametrize("tampered", ["ecg_rhythm", "ecg_rhythm_stack"])
def test_tampered_rhythm_weights_are_refused(tmp_path, tampered):
    for name in ("ecg_rhythm", "ecg_rhythm_stack", "ecg_delineate"):
        for ext in (".onnx", ".json"):
            shutil.copy(PROJECT_ROOT / "weights" / f"{name}{ext}", tmp_path / f"{name}{ext}")
    clean = ModelRegistry(tmp_path, threads=1)
    assert (
        clean.get(tampered).sha256
        == json.loads((tmp_path / f"{tampered}.json").read_text())["sha256"]
    )
    onnx = tmp_path / f"{tampered}.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        ModelRegistry(tmp_path, threads=1).get(tampered)
    with pytest.raises(ModelIntegrityError):
        analyze_ecg_record(synthetic_ecg(), ModelRegistry(tmp_path, threads=1))


def test_digitised_sheet_layout_with_partial_leads(registry):
    # a 3x4 paper sheet: each lead printed for 2.5 s (NaN elsewhere), lead II as a 10 s strip
    record = synthetic_ecg(hr=72, qrs_ms=70)
    for j, name in enumerate(record.lead_names):
        if name != "II":
            column = j // 3
            keep = np.zeros(record.signal.shape[0], dtype=bool)
            keep[column * 1250 : (column + 1) * 1250] = True
            record.signal[~keep, j] = np.nan
    result = analyze_ecg_record(record, registry)
    assert result["rhythm_leads"] == ["II"]
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=1)
    assert result["trace"]["saliency_lead"] == "II"
    lead_i = result["trace"]["signals"][result["trace"]["lead_names"].index("I")]
    assert lead_i[0] is not None and lead_i[-1] is None
    json.dumps(result, allow_nan=False)


def test_single_lead_strip(registry):
    result = analyze_ecg_record(
        synthetic_ecg(hr=80, qrs_ms=70, leads=("I",), duration_s=30), registry
    )
    assert result["leads"] == ["I"] and result["rhythm_leads"] == ["I"]
    assert result["intervals"]["hr_bpm"] == pytest.approx(80, abs=1)
    assert len(result["trace"]["saliency"]) == 30 * 250


def test_long_recording_is_cut_to_its_first_minute(registry):
    result = analyze_ecg_record(
        synthetic_ecg(hr=70, qrs_ms=70, leads=("II",), duration_s=90), registry
    )
    assert len(result["trace"]["signals"][0]) == 60 * 250
    assert any("first 60 s" in issue for issue in result["quality"]["issues"])


def test_fast_sinus_rhythm_with_p_waves_near_the_t_waves_is_sinus_tachycardia(registry):
    # the P waves are found on the slowed record (delineate.SLOWED_RATE_BPM): they say sinus,
    # but their edges are not measured there, so PR stays null and the explanation says why
    result = analyze_ecg_record(synthetic_ecg(hr=120, qt_ms=360, pr_ms=140), registry)
    assert result["rhythm"] == "sinus_tachycardia"
    assert result["intervals_detail"]["p_wave_fraction"] >= 0.8
    assert result["intervals"]["pr_ms"] is None
    assert "too close to the T waves" in result["explanation"]
    assert "PR 간격은 재지 않음" in result["explanation_ko"]


def test_a_fast_heart_with_a_normal_qt_is_not_called_long_qt(registry):
    # Bazett's formula over-corrects at fast rates: it would call this QT long at 118 bpm
    result = analyze_ecg_record(synthetic_ecg(hr=118, qt_ms=315, pr_ms=140), registry, sex="M")
    detail = result["intervals_detail"]
    assert detail["qtc_bazett_ms"] >= 450 > detail["qtc_fridericia_ms"]
    assert detail["flags"]["qtc"] == "normal"
    assert "corrected QT" not in result["explanation"]


def test_a_paced_rhythm_is_named_and_its_wide_qrs_and_long_qt_do_not_make_it_urgent(registry):
    record = synthetic_ecg(hr=60, pacing="ventricular", p_waves=False, qrs_ms=170, qt_ms=530)
    result = analyze_ecg_record(record, registry, sex="F")
    assert_contract_result(result, "ecg")
    assert result["label"] == result["rhythm"] == "paced_rhythm"
    assert result["intervals"]["qtc_ms"] > 500  # urgent in an unpaced heart
    assert result["urgency"] == "routine" and not result["uncertain"]
    pacing = result["intervals_detail"]["pacing"]
    assert pacing["paced"] and pacing["chambers"] == "ventricular"
    assert pacing["paced_beats"] == result["intervals_detail"]["n_beats"]
    assert result["confidence"] == 1.0
    assert "paced_rhythm" not in result["probabilities"]  # the model's families stay its own
    assert result["explanation"].startswith("Pacemaker spikes before 10 of 10 beats")
    assert "keep your pacemaker check-ups" in result["explanation"]
    assert "인공심박동기" in result["explanation_ko"]


def test_the_same_paced_record_unpaced_is_urgent_for_its_long_qt(registry):
    record = synthetic_ecg(hr=60, p_waves=False, qrs_ms=170, qt_ms=530)
    result = analyze_ecg_record(record, registry, sex="F")
    assert result["label"] != "paced_rhythm" and not result["intervals_detail"]["pacing"]["paced"]
    assert result["urgency"] == "urgent"


def test_pacing_spikes_are_not_looked_for_on_a_digitised_photo(registry):
    record = synthetic_ecg(hr=60, pacing="ventricular", p_waves=False, qrs_ms=170, qt_ms=430)
    record.source = "photo"
    result = analyze_ecg_record(record, registry)
    assert result["label"] != "paced_rhythm"
    assert result["intervals_detail"]["pacing"]["spikes"] == 0


def test_a_very_fast_heart_on_a_photo_is_urgent_even_with_a_long_qtc(registry):
    from backend.inference.ecg.analyze import _urgency

    flags = {"qtc": "markedly_prolonged"}
    assert _urgency("other", 80.0, flags, from_photo=True, qtc_ms=510.0) == "soon"
    assert _urgency("other", 170.0, flags, from_photo=True, qtc_ms=510.0) == "urgent"
    assert _urgency("paced_rhythm", 30.0, {}, from_photo=False) == "urgent"


@pytest.mark.parametrize(
    ("hr", "qtc", "urgency"),
    [(70.0, 560.0, "urgent"), (70.0, 515.0, "soon"), (120.0, 560.0, "soon")],
)
def test_a_long_qtc_on_a_photo_is_urgent_when_clear_of_what_a_photo_misreads(hr, qtc, urgency):
    """Rendered photos read the QTc at most 18 ms long at <= 100 bpm (thresholds.py): a photo's
    QTc of 560 ms is as urgent as the file's; 515 ms, or 560 ms at 120 bpm, where photos read
    the QT up to 74 ms long, asks for a proper ECG soon. A file's QTc over 500 ms is urgent."""
    from backend.inference.ecg.analyze import _urgency

    flags = {"qtc": "markedly_prolonged"}
    assert _urgency("sinus_rhythm", hr, flags, from_photo=True, qtc_ms=qtc) == urgency
    assert _urgency("sinus_rhythm", hr, flags, from_photo=False, qtc_ms=qtc) == "urgent"


def test_what_a_reader_assumed_is_among_the_results_quality_notes(registry):
    # A file without a rate is read at 500 Hz; if it was not, every interval is off, so the
    # result has to say the rate was a guess instead of looking as sure as any other.
    from backend.inference.ecg.readers import read_ecg_files
    from backend.inference.ecg.readers.normalise import ASSUMED_LEAD_I, ASSUMED_RATE

    lead_ii = synthetic_ecg(hr=72).signal[:, 1]
    text = "ECG (mV)\n" + "\n".join(f"{v:.4f}" for v in lead_ii)
    result = analyze_ecg_record(read_ecg_files({"strip.csv": text.encode()}), registry)
    assert {ASSUMED_RATE, ASSUMED_LEAD_I} <= set(result["quality"]["issues"])
    assert result["quality"]["ok"] is True
    stated = analyze_ecg_record(synthetic_ecg(hr=72), registry)
    assert not {ASSUMED_RATE, ASSUMED_LEAD_I} & set(stated["quality"]["issues"])

"""Rhythm: the CNN and its RR second stage on synthetic regular vs irregular strips, the R-peak
detector and RR features, and the label rules."""

from __future__ import annotations

import numpy as np
import pytest

from backend.inference.ecg import rhythm as rh
from backend.inference.ecg.explain import Agreement, agreement, explain, reasons
from backend.inference.ecg.preprocess import RHYTHM_FS, bandpass, resample
from backend.inference.ecg.rr_features import FEATURE_NAMES, detect_r_peaks, rr_features
from backend.inference.registry import ModelRegistry
from backend.settings import PROJECT_ROOT
from tests.inference.ecg.ecg_synth import synthetic_ecg


@pytest.fixture(scope="module")
def model():
    return ModelRegistry(PROJECT_ROOT / "weights", threads=1).get(rh.MODEL_NAME)


@pytest.fixture(scope="module")
def stack():
    return ModelRegistry(PROJECT_ROOT / "weights", threads=1).get(rh.STACK_MODEL_NAME)


def _leads_250(record):
    x = bandpass(resample(record.signal, record.fs, RHYTHM_FS), RHYTHM_FS)
    return {name: x[:, j] for j, name in enumerate(record.lead_names)}


def _evidence(hr, irr=0.02, p=1.0, qrs=90.0):
    return rh.RhythmEvidence(
        hr_bpm=hr, rr_irregularity=irr, p_wave_fraction=p, qrs_ms=qrs, n_beats=12
    )


def test_cnn_separates_regular_sinus_from_irregular_rhythm_without_p(model):
    regular = rh.classify(model, _leads_250(synthetic_ecg(hr=72, leads=("I", "II", "V1"), seed=1)))
    irregular = rh.classify(
        model,
        _leads_250(
            synthetic_ecg(
                hr=95, p_waves=False, f_waves=True, rr_jitter=0.35, leads=("I", "II", "V1"), seed=2
            )
        ),
    )
    assert regular.probabilities["normal"] > irregular.probabilities["normal"]
    assert (
        irregular.probabilities["atrial_fibrillation"]
        > regular.probabilities["atrial_fibrillation"]
    )
    assert max(regular.probabilities, key=regular.probabilities.get) == "normal"
    assert regular.leads_used == ["II"]
    assert sum(regular.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_saliency_covers_the_classified_lead_between_zero_and_one(model):
    record = synthetic_ecg(hr=72, leads=("I", "II"))
    out = rh.classify(model, _leads_250(record))
    assert out.saliency_lead == "II"
    assert out.saliency.shape == (int(record.duration_s * RHYTHM_FS),)
    assert np.nanmin(out.saliency) >= 0 and np.nanmax(out.saliency) == pytest.approx(1.0)


def test_partial_leads_use_the_longest_recorded_stretch(model):
    leads = _leads_250(synthetic_ecg(hr=72, leads=("I", "II")))
    leads["II"][: 5 * RHYTHM_FS] = np.nan  # only 5 s of lead II, as on a 3x4 sheet
    assert rh.choose_leads(leads) == ["I"]
    out = rh.classify(model, leads)
    assert out.leads_used == ["I"]
    assert out.saliency_lead == "I"
    assert np.isfinite(out.saliency).all()


def _printed_in_columns(leads, columns, gap_s=0.0):
    """NaN every lead outside its column's time, as a sheet without a rhythm strip prints
    them; `gap_s` unread at the start of each later column, as a digitiser can leave."""
    n = len(next(iter(leads.values())))
    width = n // len(columns)
    for k, column in enumerate(columns):
        first = k * width + (round(gap_s * RHYTHM_FS) if k else 0)
        for name in column:
            leads[name][:first] = np.nan
            leads[name][(k + 1) * width :] = np.nan
    return leads


SIX_BY_TWO = (("I", "II", "III", "aVR", "aVL", "aVF"), ("V1", "V2", "V3", "V4", "V5", "V6"))
THREE_BY_FOUR = (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))


@pytest.mark.parametrize(
    ("columns", "joined"),
    [(SIX_BY_TWO, ["I", "V5"]), (THREE_BY_FOUR, ["I", "aVF", "V3", "V5"])],
)
def test_a_sheet_without_a_rhythm_strip_is_joined_across_its_columns(model, columns, joined):
    leads = _printed_in_columns(_leads_250(synthetic_ecg(hr=72, seed=3)), columns, gap_s=0.04)
    strip = rh.rhythm_strip(leads)
    assert strip.leads == joined
    assert (strip.start, strip.end) == (0, 10 * RHYTHM_FS)
    assert np.isfinite(strip.signal).all()
    # every piece scaled to the first's height: V5's 1.4 mV R waves read as lead I's 0.8 mV
    piece = len(strip.signal) // len(joined)
    heights = [np.abs(strip.signal[k * piece : (k + 1) * piece]).max() for k in range(len(joined))]
    assert max(heights) / min(heights) == pytest.approx(1.0, abs=0.1)
    # the RR features see the beats of all 10 s, not of the first column alone
    assert len(detect_r_peaks(strip.signal, RHYTHM_FS)) >= 11
    out = rh.classify(model, leads)
    assert out.leads_used == joined
    assert out.saliency_lead == " + ".join(joined)
    assert np.isfinite(out.saliency).all()


def test_a_full_length_lead_is_not_joined_and_columns_too_far_apart_are_not_either():
    leads = _printed_in_columns(_leads_250(synthetic_ecg(hr=72, seed=4)), THREE_BY_FOUR)
    leads["II"] = _leads_250(synthetic_ecg(hr=72, seed=4))["II"]  # the 3x4's rhythm row
    assert rh.rhythm_strip(leads).leads == ["II"]
    apart = _printed_in_columns(_leads_250(synthetic_ecg(hr=72, seed=4)), SIX_BY_TWO, gap_s=0.5)
    strip = rh.rhythm_strip(apart)
    assert strip.leads == ["I"] and len(strip.signal) == 5 * RHYTHM_FS


def test_rr_irregularity_regular_vs_irregular():
    rng = np.random.default_rng(0)
    regular = np.full(12, 0.8) + rng.normal(0, 0.005, 12)
    irregular = 0.8 * (1 + rng.uniform(-0.3, 0.3, 12))
    assert rh.rr_irregularity(regular) < 0.06
    assert rh.rr_irregularity(irregular) > 0.10
    assert rh.rr_irregularity(np.array([0.8, 0.8])) is None


@pytest.mark.parametrize(
    ("hr", "label"),
    [
        (45, "sinus_bradycardia"),
        (59.5, "sinus_bradycardia"),
        (60, "sinus_rhythm"),
        (100, "sinus_rhythm"),
        (101, "sinus_tachycardia"),
        (140, "sinus_tachycardia"),
    ],
)
def test_sinus_is_split_by_heart_rate(hr, label):
    assert rh.final_rhythm("normal", _evidence(hr)) == label


def test_narrow_regular_tachycardia_without_p_is_svt():
    assert (
        rh.final_rhythm("normal", _evidence(180, irr=0.01, p=0.0, qrs=80))
        == "supraventricular_tachycardia"
    )
    assert (
        rh.final_rhythm("other", _evidence(180, irr=0.01, p=0.0, qrs=80))
        == "supraventricular_tachycardia"
    )
    # with P waves it stays sinus tachycardia; wide QRS is not called SVT
    assert rh.final_rhythm("normal", _evidence(160, irr=0.01, p=1.0, qrs=80)) == "sinus_tachycardia"
    assert rh.final_rhythm("other", _evidence(180, irr=0.01, p=0.0, qrs=150)) == "other"


def test_af_family_stays_af_and_disagreement_is_detected():
    assert (
        rh.final_rhythm("atrial_fibrillation", _evidence(110, irr=0.2, p=0.0))
        == "atrial_fibrillation"
    )
    assert agreement("atrial_fibrillation", _evidence(110, irr=0.2, p=0.0)).agrees
    assert not agreement("atrial_fibrillation", _evidence(70, irr=0.02, p=1.0)).agrees
    assert not agreement("sinus_rhythm", _evidence(70, irr=0.25, p=0.0)).agrees
    assert agreement("sinus_rhythm", _evidence(70, irr=0.02, p=1.0)).agrees


def test_other_with_p_waves_and_regular_rr_is_reported_as_sinus():
    # bundle branch block: the single-lead CNN says "other", the rhythm is sinus
    assert rh.final_rhythm("other", _evidence(55, irr=0.02, p=1.0, qrs=160)) == "sinus_bradycardia"
    assert rh.final_rhythm("other", _evidence(75, irr=0.02, p=0.9, qrs=160)) == "sinus_rhythm"
    # irregular beats without one dominant interval stay "other"
    assert rh.final_rhythm("other", _evidence(75, irr=0.2, p=1.0)) == "other"


def _early_beats_evidence(hr, p=0.9, dominant=0.8, longest=1.3):
    return rh.RhythmEvidence(
        hr_bpm=hr,
        rr_irregularity=0.25,
        p_wave_fraction=p,
        qrs_ms=90,
        n_beats=11,
        rr_dominant_share=dominant,
        rr_longest_ratio=longest,
    )


@pytest.mark.parametrize(
    ("hr", "p", "dominant", "longest", "label"),
    [
        (75, 0.9, 0.8, 1.3, "sinus_rhythm"),  # one premature beat in a sinus rhythm
        (52, 1.0, 0.75, 1.3, "sinus_bradycardia"),
        (118, 0.9, 0.8, 1.3, "sinus_tachycardia"),
        (75, 0.9, 0.5, 1.3, "other"),  # no dominant interval: not "a few" early beats
        (75, 0.6, 0.8, 1.3, "other"),  # P waves before too few beats for sinus
        (165, 0.9, 0.8, 1.3, "other"),  # over 150 bpm: not assumed sinus
        (75, 0.9, 0.8, 1.9, "other"),  # a pause of two intervals: a dropped beat, not an early one
    ],
)
def test_a_sinus_rhythm_with_a_few_early_beats_is_named_by_its_rhythm(
    hr, p, dominant, longest, label
):
    # cardiologists name the rhythm (sinus) and the extrasystoles apart; the CNN learnt CinC
    # 2017's habit of filing such strips under "other"
    assert rh.final_rhythm("other", _early_beats_evidence(hr, p, dominant, longest)) == label


def test_other_with_af_like_evidence_stays_other_and_is_uncertain():
    af_like = rh.RhythmEvidence(
        hr_bpm=90,
        rr_irregularity=0.25,
        p_wave_fraction=0.1,
        qrs_ms=90,
        n_beats=14,
        rr_dominant_share=0.3,
    )
    assert rh.final_rhythm("other", af_like) == "other"
    verdict = agreement("other", af_like)
    assert not verdict.agrees
    assert "atrial fibrillation" in verdict.conflicts_en[0]
    assert "심방세동" in verdict.conflicts_ko[0]
    # premature beats in a regular rhythm are not AF-like, nor are P waves before the beats
    assert agreement("other", _early_beats_evidence(90, p=0.1, dominant=0.8)).agrees
    assert agreement("other", _evidence(90, irr=0.25, p=0.9)).agrees


def test_early_beats_in_a_sinus_result_come_with_advice_in_both_languages():
    ev = _early_beats_evidence(75)
    en, ko = explain(
        "sinus_rhythm", ev, {}, {}, Agreement(True), 0.9, "routine", sinus_override=True
    )
    assert "early beats are common" in en and "palpitations" in en
    assert "interrupted by early or late beats" in en
    assert "The shape of the beats is unusual" not in en  # the override is about timing here
    assert "조기 박동" in ko
    regular = _evidence(75, irr=0.02, p=1.0)
    en, _ = explain("sinus_rhythm", regular, {}, {}, Agreement(True), 0.9, "routine")
    assert "early beats" not in en


def _rhythm_lead(record, lead="II"):
    return _leads_250(record)[lead]


def test_r_peak_detector_finds_every_synthetic_beat():
    record = synthetic_ecg(hr=95, rr_jitter=0.3, p_waves=False, f_waves=True, seed=4)
    r = detect_r_peaks(_rhythm_lead(record), RHYTHM_FS)
    onsets = np.array(record.meta["qrs_onsets_s"])
    onsets = onsets[onsets < record.duration_s - 0.1]
    assert len(r) == len(onsets)
    # the R peak sits inside its QRS (onset .. onset + 90 ms)
    delay = r / RHYTHM_FS - onsets
    assert np.all((delay >= 0) & (delay <= 0.09))


def test_rr_features_tell_irregularly_irregular_from_regular():
    names = list(FEATURE_NAMES)
    regular = rr_features(_rhythm_lead(synthetic_ecg(hr=80, seed=1)), RHYTHM_FS)
    af = rr_features(
        _rhythm_lead(synthetic_ecg(hr=95, rr_jitter=0.35, p_waves=False, f_waves=True, seed=2)),
        RHYTHM_FS,
    )
    assert regular[names.index("hr_bpm")] == pytest.approx(80, abs=2)
    for irregularity in ("rr_cv", "rr_nrmssd", "rr_pnn8", "rr_diff_entropy"):
        assert af[names.index(irregularity)] > regular[names.index(irregularity)]
    assert regular[names.index("rr_within_10pct")] == 1.0
    assert af[names.index("rr_within_10pct")] < 0.7
    # sinus P waves repeat before every QRS; AF's f waves do not
    assert regular[names.index("p_window_corr")] > af[names.index("p_window_corr")]
    short = rr_features(_rhythm_lead(synthetic_ecg(hr=60, duration_s=3.0)), RHYTHM_FS)
    assert short[names.index("rr_cv")] == 0.0  # under MIN_BEATS: no RR statistics, no error


def test_rr_stage_raises_af_probability_for_irregular_rr_at_equal_cnn_scores(stack):
    neutral = np.zeros((1, 4), dtype=np.float32)  # the CNN undecided: only the RR pattern differs
    regular = rr_features(_rhythm_lead(synthetic_ecg(hr=90, seed=1)), RHYTHM_FS)
    irregular = rr_features(
        _rhythm_lead(synthetic_ecg(hr=90, rr_jitter=0.35, p_waves=False, f_waves=True, seed=2)),
        RHYTHM_FS,
    )
    p_reg = rh._softmax(stack.run({"cnn_logits": neutral, "features": regular[None]})["logits"][0])
    p_irr = rh._softmax(
        stack.run({"cnn_logits": neutral, "features": irregular[None]})["logits"][0]
    )
    af = rh.FAMILIES.index("atrial_fibrillation")
    assert p_irr[af] > p_reg[af] + 0.3
    assert np.argmax(p_irr) == af
    normal = rh.FAMILIES.index("normal")
    assert p_reg[normal] > p_irr[normal]


def test_classify_with_rr_stage_reports_both_stages(model, stack):
    leads = _leads_250(
        synthetic_ecg(hr=95, p_waves=False, f_waves=True, rr_jitter=0.35, leads=("II",), seed=2)
    )
    out = rh.classify(model, leads, stack)
    alone = rh.classify(model, leads)
    assert alone.probabilities == pytest.approx(out.cnn_probabilities)
    assert out.probabilities != pytest.approx(out.cnn_probabilities)
    assert sum(out.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(out.probabilities, key=out.probabilities.get) == "atrial_fibrillation"
    assert out.rr_features["rr_cv"] > 0.1
    assert rh.dominant_rr_share(out) == pytest.approx(out.rr_features["rr_within_10pct"])


@pytest.mark.parametrize(
    ("hr", "p", "dominant", "label"),
    [
        (118, 0.6, 0.8, "sinus_tachycardia"),  # P waves partly hidden in T, a few premature beats
        (118, 0.6, 0.5, "other"),  # no dominant regular rhythm
        (118, 0.2, 0.9, "other"),  # no P waves: not sinus
        (90, 0.6, 0.9, "other"),  # the relaxed rule is for tachycardia only
        (165, 0.6, 0.9, "other"),  # over 150 bpm: not assumed sinus
    ],
)
def test_other_with_dominant_regular_rhythm_and_p_waves_over_100_is_sinus_tachycardia(
    hr, p, dominant, label
):
    assert rh.final_rhythm("other", _early_beats_evidence(hr, p, dominant)) == label


def test_premature_beats_in_a_regular_rhythm_do_not_contradict_sinus():
    def ev(dominant):
        return rh.RhythmEvidence(
            hr_bpm=115,
            rr_irregularity=0.25,
            p_wave_fraction=0.9,
            qrs_ms=90,
            n_beats=18,
            rr_dominant_share=dominant,
        )

    assert agreement("sinus_tachycardia", ev(0.85)).agrees
    assert not agreement("sinus_tachycardia", ev(0.4)).agrees
    en, _ = reasons("sinus_tachycardia", ev(0.85), {}, {})
    assert any("regular underlying rhythm" in r for r in en)
    en, _ = reasons("other", ev(0.4), {}, {})
    assert any(r.startswith("irregular RR intervals") for r in en)
    # with P waves before the beats the words for atrial fibrillation are not used
    assert not any("irregularly irregular" in r for r in en)


def _rr_with_early_beats(early_at=(), usual=0.8, n=12, early=0.7, pause=1.3):
    rr = np.full(n, usual)
    for i in early_at:
        rr[i], rr[i + 1] = early * usual, pause * usual
    return rr


def test_early_beats_are_found_each_followed_by_its_pause():
    # interval i ends at beat i + 1: that beat came early
    assert rh.early_beat_indices(_rr_with_early_beats((2, 7))) == [3, 8]
    # an atrial premature beat resets the sinus node: a shorter pause still counts
    assert rh.early_beat_indices(_rr_with_early_beats((4,), early=0.65, pause=1.15)) == [5]


def _sinus_arrhythmia():
    return 0.8 * (1 + 0.2 * np.sin(2 * np.pi * np.arange(14) / 7))


def _extra_beat_detected_in_a_t_wave():
    rr = np.full(12, 0.8)
    rr[5], rr[6] = 0.25 * 0.8, 0.75 * 0.8  # one usual interval split in two
    return rr


def _af():
    return np.random.default_rng(3).uniform(0.45, 1.25, 14)


@pytest.mark.parametrize(
    "rr",
    [
        np.full(12, 0.8),
        _sinus_arrhythmia(),  # gradual changes, no short-then-long pair
        _extra_beat_detected_in_a_t_wave(),  # the two parts add up to one interval, no pause
        _rr_with_early_beats((5,), early=1.0, pause=2.0),  # a dropped beat: a pause alone
        _af(),  # short-long pairs happen, but the rest is not regular
        _rr_with_early_beats((1,), n=4),  # too few intervals to say
    ],
    ids=["regular", "sinus-arrhythmia", "false-extra-beat", "dropped-beat", "af", "short"],
)
def test_no_early_beats_without_the_early_then_pause_signature(rr):
    assert rh.early_beat_indices(rr) == []


def _bigeminy(n_pairs=6, start_short=True, short=0.56, long=1.04):
    pair = [short, long] if start_short else [long, short]
    return np.array(pair * n_pairs)


def test_every_other_beat_early_is_bigeminy():
    assert rh.bigeminy_early_indices(_bigeminy()) == [1, 3, 5, 7, 9, 11]
    assert rh.bigeminy_early_indices(_bigeminy(start_short=False)) == [2, 4, 6, 8, 10, 12]
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, 12)
    assert len(rh.bigeminy_early_indices(_bigeminy() + jitter)) == 6


@pytest.mark.parametrize(
    "rr",
    [
        np.full(12, 0.8),
        _rr_with_early_beats((2, 7)),  # a few early beats: early_beat_indices' case
        np.array([0.56, 1.04, 0.8] * 4),  # every third beat early (trigeminy)
        _af(),  # short and long intervals, but not in turn
        _bigeminy(n_pairs=3),  # too few pairs to call a pattern
        np.r_[_bigeminy(n_pairs=5), 0.8, 0.8],  # the alternation breaks at the end
    ],
    ids=["regular", "two-early", "trigeminy", "af", "three-pairs", "broken"],
)
def test_no_bigeminy_unless_the_intervals_alternate_throughout(rr):
    assert rh.bigeminy_early_indices(rr) == []


def test_frequent_early_beats_are_one_in_five_or_more():
    def ev(early, beats, bigeminy=False):
        return rh.RhythmEvidence(
            hr_bpm=72, rr_irregularity=0.3, p_wave_fraction=1.0, qrs_ms=90, n_beats=beats,
            rr_dominant_share=0.5, early_beats=early, bigeminy=bigeminy,
        )

    assert not rh.frequent_early_beats(ev(2, 12)) and rh.frequent_early_beats(ev(3, 12))
    assert not rh.frequent_early_beats(ev(0, 12))
    # early beats each followed by its pause show a regular rhythm underneath; in bigeminy the
    # strip shows no usual interval, so the rhythm rules leave it to the classifier
    assert rh.regular_but_for_early_beats(ev(3, 12))
    assert not rh.regular_but_for_early_beats(ev(6, 12, bigeminy=True))
    # an AF label over bigeminy is called uncertain, with the pattern as the reason
    against_af = agreement("atrial_fibrillation", ev(6, 12, bigeminy=True))
    assert not against_af.agrees and "bigeminy" in against_af.conflicts_en[0]


def test_irregularly_irregular_is_said_only_without_p_waves_or_of_af():
    def ev(p):
        return rh.RhythmEvidence(
            hr_bpm=80, rr_irregularity=0.3, p_wave_fraction=p, qrs_ms=90, n_beats=13,
            rr_dominant_share=0.3,
        )

    assert any("irregularly irregular" in r for r in reasons("other", ev(0.1), {}, {})[0])
    assert any("irregularly irregular" in r for r in reasons("atrial_fibrillation", ev(0.9), {}, {})[0])
    assert not any("irregularly irregular" in r for r in reasons("other", ev(0.9), {}, {})[0])


def _two_early_beats_evidence(p=0.9):
    # two early beats in 10 s: 4 of 11 intervals disturbed, under DOMINANT_RR_SHARE
    return rh.RhythmEvidence(
        hr_bpm=75,
        rr_irregularity=0.3,
        p_wave_fraction=p,
        qrs_ms=90,
        n_beats=12,
        rr_dominant_share=0.6,
        rr_longest_ratio=1.3,
        early_beats=2,
    )


def test_two_early_beats_are_a_sinus_rhythm_with_early_beats_not_an_irregular_one():
    ev = _two_early_beats_evidence()
    assert rh.final_rhythm("other", ev) == "sinus_rhythm"
    assert agreement("sinus_rhythm", ev).agrees
    en, ko = reasons("sinus_rhythm", ev, {}, {})
    assert any("interrupted by 2 early beats, each followed by a pause" in r for r in en)
    assert not any("irregularly irregular" in r for r in en)
    assert any("조기 박동 2회" in r for r in ko)
    # without P waves the rhythm is not named sinus, but it is not AF-like either
    no_p = _two_early_beats_evidence(p=0.1)
    assert rh.final_rhythm("other", no_p) == "other"
    assert agreement("other", no_p).agrees


def test_an_af_label_over_early_beats_with_their_pauses_is_uncertain():
    ev = _two_early_beats_evidence(p=0.1)
    verdict = agreement("atrial_fibrillation", ev)
    assert not verdict.agrees
    assert "early beats rather than atrial fibrillation" in verdict.conflicts_en[0]
    assert "조기 박동" in verdict.conflicts_ko[0]
    en, _ = reasons("atrial_fibrillation", ev, {}, {})
    assert not any("regular underlying rhythm" in r for r in en)  # not said under an AF label

"""Delineation and global intervals on synthetic ECGs whose intervals are known by construction.

The accuracy claim against cardiologists' marks is training/ecg/eval_intervals.py on held-out
LUDB records; these tests pin the behaviour (beats found, intervals in range, PR null without P).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.inference.ecg import delineate as dl
from backend.inference.ecg.preprocess import DELINEATION_FS, bandpass, standard_lead_matrix
from backend.inference.registry import ModelRegistry
from backend.settings import PROJECT_ROOT
from tests.inference.ecg.ecg_synth import synthetic_ecg


@pytest.fixture(scope="module")
def model():
    return ModelRegistry(PROJECT_ROOT / "weights", threads=1).get(dl.MODEL_NAME)


def _delineate(model, record):
    mat, _ = standard_lead_matrix(record.signal, record.lead_names)
    return dl.delineate(model, bandpass(mat, DELINEATION_FS))


@pytest.mark.parametrize(("hr", "pr", "qt"), [(70, 160, 380), (50, 180, 420), (110, 140, 330)])
def test_synthetic_twelve_lead_intervals_match_construction(model, hr, pr, qt):
    record = synthetic_ecg(hr=hr, pr_ms=pr, qt_ms=qt)
    d = _delineate(model, record)
    assert len(d.beats) == len(record.meta["qrs_onsets_s"])
    r_s = d.r_peaks / DELINEATION_FS
    assert np.all(np.abs(r_s - (np.array(record.meta["qrs_onsets_s"]) + 0.04)) < 0.05)
    got = dl.global_intervals(d)
    assert got["hr_bpm"] == pytest.approx(hr, abs=1.0)
    assert got["pr_ms"] == pytest.approx(pr, abs=25)
    # synthetic raised-cosine QRS and T edges are softer than real ones: wider tolerances here
    assert got["qrs_ms"] == pytest.approx(90, abs=35)
    assert got["qt_ms"] == pytest.approx(qt, abs=30)


def test_single_lead_is_delineated_too(model):
    record = synthetic_ecg(hr=75, leads=("II",))
    got = dl.global_intervals(_delineate(model, record))
    assert got["hr_bpm"] == pytest.approx(75, abs=1.0)
    assert got["pr_ms"] is not None and got["qt_ms"] is not None


def test_no_p_waves_gives_null_pr(model):
    record = synthetic_ecg(hr=90, p_waves=False, f_waves=True, rr_jitter=0.25, seed=3)
    d = _delineate(model, record)
    assert dl.p_wave_fraction(d) < 0.3
    assert dl.global_intervals(d)["pr_ms"] is None


def _labels_with_beats(n: int, onsets: list[int], qrs: int = 50) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int8)
    for on in onsets:
        labels[on - 80 : on - 30] = dl.P
        labels[on : on + qrs] = dl.QRS
        labels[on + qrs + 60 : on + qrs + 160] = dl.T
    return labels


def test_a_qrs_fragment_far_shorter_than_the_record_s_qrs_is_not_a_beat():
    # wide (paced-like, 180 ms) beats every second; a 32 ms QRS-labelled fragment in one T wave,
    # as the model gives for a sharp T or an artefact, must not become an extra beat
    onsets = [400, 900, 1400, 1900, 2400]
    labels = _labels_with_beats(3000, onsets, qrs=90)
    labels[1120:1136] = dl.QRS
    d = dl.beats_from_labels(labels, np.ones((3000, 12)))
    assert [b.qrs_on for b in d.beats] == onsets
    got = dl.global_intervals(d)
    assert got["hr_bpm"] == pytest.approx(60.0)
    assert got["qrs_ms"] == pytest.approx(178.0)


def test_the_lone_p_wave_of_a_non_conducted_beat_is_not_a_beat(model):
    # second-degree AV block: beat 5's P wave comes without its QRS. The model labels that P
    # QRS (it has learnt that one follows a P); its amplitude says it is none.
    record = synthetic_ecg(hr=72, dropped_beats=(5,))
    d = _delineate(model, record)
    onsets = np.delete(np.array(record.meta["qrs_onsets_s"]), 5)
    assert len(d.beats) == len(onsets)
    assert np.all(np.abs(d.r_peaks / DELINEATION_FS - (onsets + 0.04)) < 0.05)
    rr = dl.rr_intervals_s(d)
    assert rr.max() == pytest.approx(2 * 60 / 72, abs=0.05)  # the pause shows


def test_p_wave_fraction_can_leave_out_early_beats():
    # two ventricular premature beats (no P wave) among ten: a sinus rhythm's P waves are
    # counted over its own beats
    onsets = [400 + 500 * k for k in range(10)]
    labels = _labels_with_beats(5400, onsets)
    for k in (3, 7):
        labels[onsets[k] - 80 : onsets[k] - 30] = 0
    d = dl.beats_from_labels(labels, np.ones((5400, 12)))
    assert dl.p_wave_fraction(d) == pytest.approx(0.8)
    assert dl.p_wave_fraction(d, skip_beats=[3, 7]) == 1.0


def test_qrs_cut_by_the_record_edge_is_kept_however_short():
    labels = _labels_with_beats(2600, [400, 900, 1400, 1900, 2400], qrs=90)
    labels[:20] = dl.QRS  # the end of a beat that started before the recording
    d = dl.beats_from_labels(labels, np.ones((2600, 12)))
    assert d.beats[0].qrs_on == 0 and not d.beats[0].complete
    assert len(d.beats) == 6


def test_a_beat_labelled_twice_in_misaligned_leads_counts_once():
    # 120 bpm; in the first 2.5 s a photo's rhythm strip lagged the leads above it by 130 ms,
    # so each of those beats has a second, weaker QRS run: the rate stays 120, not ~150 bpm
    onsets = [200 + 250 * k for k in range(19)]
    labels = _labels_with_beats(5000, onsets, qrs=45)
    signal = np.ones((5000, 12))
    for on in onsets[:5]:
        labels[on + 65 : on + 95] = dl.QRS
        signal[on + 65 : on + 95, 4:] = 0.0  # fewer leads there: the lagging strip's
    d = dl.beats_from_labels(labels, signal)
    assert [b.qrs_on for b in d.beats] == onsets
    assert dl.global_intervals(d)["hr_bpm"] == pytest.approx(120.0)


def test_an_artefact_in_one_lead_before_each_qrs_barely_widens_the_global_qrs(model):
    record = synthetic_ecg(hr=70)
    clean = dl.global_intervals(_delineate(model, record))
    t = np.arange(len(record.signal)) / DELINEATION_FS
    j = record.lead_names.index("aVL")
    for on in record.meta["qrs_onsets_s"]:  # a 16 ms, 1 mV spike 30 ms before every QRS
        x = (t - (on - 0.03)) / 0.016
        record.signal[:, j] += np.where((x >= 0) & (x <= 1), np.sin(np.pi * x), 0.0)
    got = dl.global_intervals(_delineate(model, record))
    assert got["hr_bpm"] == pytest.approx(clean["hr_bpm"], abs=0.5)
    assert abs(got["qrs_ms"] - clean["qrs_ms"]) <= 20


def test_p_onset_is_where_the_p_probability_reaches_its_threshold():
    onsets = [400, 900, 1400, 1900]
    labels = _labels_with_beats(2200, onsets)  # P runs start 80 samples before each QRS
    p_prob = np.zeros(2200)
    for on in onsets:  # probability rising over 20 samples before the argmax run starts
        p_prob[on - 100 : on - 80] = np.linspace(0.0, 0.5, 20, endpoint=False)
        p_prob[on - 80 : on - 30] = 0.9
    d = dl.beats_from_labels(labels, np.ones((2200, 12)), p_prob=p_prob)
    crossing = 20 * dl.P_ONSET_PROB / 0.5  # samples after the ramp's start
    for b, on in zip(d.beats, onsets, strict=True):
        assert b.p_on == pytest.approx(on - 100 + crossing, abs=0.01)
    assert dl.global_intervals(d)["pr_ms"] == pytest.approx(2 * (100 - crossing), abs=0.1)
    plain = dl.beats_from_labels(labels, np.ones((2200, 12)))
    assert [b.p_on for b in plain.beats] == [on - 80 for on in onsets]


def test_p_onset_search_stops_at_the_previous_qrs_and_within_50_ms():
    labels = np.zeros(1200, dtype=np.int8)
    labels[300:350] = dl.P
    labels[400:450] = dl.QRS
    labels[462:512] = dl.P  # 12 samples after the previous QRS: a fast rate
    labels[540:590] = dl.QRS
    p_prob = np.full(1200, 0.9)  # a model that sees P everywhere
    d = dl.beats_from_labels(labels, np.ones((1200, 12)), p_prob=p_prob)
    assert d.beats[0].p_on == 300 - 25
    assert d.beats[1].p_on == 450


def test_a_complete_twelve_lead_record_is_also_read_as_limb_and_chest_leads_alone():
    filt = np.random.default_rng(0).normal(size=(1000, 12))
    full, limb, chest = dl.lead_views(filt)
    assert np.array_equal(full, filt)
    assert np.array_equal(limb[:, :6], filt[:, :6]) and np.isnan(limb[:, 6:]).all()
    assert np.array_equal(chest[:, 6:], filt[:, 6:]) and np.isnan(chest[:, :6]).all()
    sheet = filt.copy()
    sheet[:500, 6:] = np.nan  # a paper layout: chest leads printed over part of the time only
    assert len(dl.lead_views(sheet)) == 1
    lead_ii_only = np.full_like(filt, np.nan)
    lead_ii_only[:, 1] = filt[:, 1]
    assert len(dl.lead_views(lead_ii_only)) == 1


class _ViewModel:
    """Stands in for the ONNX model: view k says class k+1 everywhere, the full view P only."""

    def run(self, x):
        logits = np.zeros((x.shape[0], 4, x.shape[2]), dtype=np.float32)
        for k in range(x.shape[0]):
            logits[k, k + 1] = 20.0
        return {"logits": logits}


def test_wave_probabilities_are_the_mean_over_the_views():
    probs = dl.wave_probabilities(_ViewModel(), np.ones((1000, 12)))
    assert probs.shape == (4, 1000)
    assert np.allclose(probs[1:], 1 / 3, atol=1e-6) and np.allclose(probs[0], 0, atol=1e-6)
    single = dl.wave_probabilities(
        _ViewModel(), np.where(np.arange(12) == 1, 1.0, np.nan) * np.ones((1000, 1))
    )
    assert np.allclose(single[dl.P], 1, atol=1e-6)


def test_flat_line_has_no_beats(model):
    d = dl.beats_from_labels(np.zeros(5000, dtype=np.int8), np.zeros((5000, 12)))
    assert d.beats == []
    assert dl.global_intervals(d) == {"hr_bpm": None, "pr_ms": None, "qrs_ms": None, "qt_ms": None}


def test_corrected_qt_bazett_and_fridericia():
    bazett, fridericia = dl.corrected_qt(400.0, 0.64)
    assert bazett == pytest.approx(400 / math.sqrt(0.64))
    assert fridericia == pytest.approx(400 / 0.64 ** (1 / 3))
    assert dl.corrected_qt(None, 0.8) == (None, None)
    assert dl.corrected_qt(400.0, None) == (None, None)


def test_slowed_record_plays_longer_and_keeps_absent_stretches_absent():
    t = np.arange(1000) / DELINEATION_FS
    x = np.stack([np.sin(2 * np.pi * 5 * t)] * 2, axis=1)
    x[200:300, 1] = np.nan  # a lead seen only part of the time (a 3x4 paper sheet)
    slow = dl.slowed(x, 1.5)
    assert slow.shape == (1500, 2)
    crossings = np.sum(np.diff(np.sign(slow[:, 0])) != 0)
    assert crossings == pytest.approx(2 * 5 * 2.0, abs=1)  # 5 Hz over 2 s -> 5/1.5 Hz over 3 s
    absent = np.flatnonzero(np.isnan(slow[:, 1]))
    assert absent.min() == pytest.approx(300, abs=2) and absent.max() == pytest.approx(450, abs=2)


def test_p_waves_seen_only_on_the_slowed_record_count_for_presence_not_for_pr():
    onsets = [400 + 300 * k for k in range(10)]
    labels = _labels_with_beats(3400, onsets)
    for k in range(3, 10):  # the P waves of seven beats lost in the T waves before them
        labels[onsets[k] - 80 : onsets[k] - 30] = 0
    d = dl.beats_from_labels(labels, np.ones((3400, 12)))
    for beat in d.beats[3:]:
        beat.p_seen_slowed = True
    assert dl.p_wave_fraction(d) == 1.0
    assert dl.p_wave_fraction(d, measured_only=True) == pytest.approx(0.3)
    assert dl.global_intervals(d)["pr_ms"] is None  # three measured P waves are too few


def test_a_fast_sinus_rhythm_s_p_waves_are_found_on_the_slowed_record(model):
    # at 120 bpm with a long QT the P wave runs into the T wave before it: the model, which
    # learnt from slower hearts, misses most of them at the real rate
    record = synthetic_ecg(hr=120, qt_ms=360, pr_ms=140)
    mat, _ = standard_lead_matrix(record.signal, record.lead_names)
    filtered = bandpass(mat, DELINEATION_FS)
    assert dl.p_wave_fraction(dl._delineate_as_given(model, filtered)) < 0.5
    d = dl.delineate(model, filtered)
    assert dl.p_wave_fraction(d) >= 0.8
    assert any(b.p_seen_slowed for b in d.beats)


@pytest.mark.parametrize("hr", [120, 135])
def test_fast_atrial_fibrillation_shows_no_p_waves_on_the_slowed_record_either(model, hr):
    record = synthetic_ecg(hr=hr, p_waves=False, f_waves=True, rr_jitter=0.25, seed=4)
    d = _delineate(model, record)
    assert dl.global_intervals(d)["hr_bpm"] > 100
    assert dl.p_wave_fraction(d) < 0.3


@pytest.mark.parametrize(
    ("hr", "qt", "slowed"),
    [
        (85, 380, False),  # under 100 bpm the P waves are clear of the T waves
        (120, 360, True),  # the P waves run into the T waves: most are missed at the real rate
        (120, 300, False),  # found before every beat at the real rate: nothing left to find
        (165, 300, False),  # over 150 bpm a regular rhythm without P waves may be SVT
    ],
)
def test_the_record_is_read_slowed_only_when_fast_and_p_waves_are_missing(
    model, monkeypatch, hr, qt, slowed
):
    calls = []
    monkeypatch.setattr(dl, "mark_p_waves_of_slowed_record", lambda *a: calls.append(a[3]))
    _delineate(model, synthetic_ecg(hr=hr, qt_ms=qt, pr_ms=140))
    assert bool(calls) is slowed
    if slowed:
        assert calls[0] == pytest.approx(hr / dl.SLOWED_RATE_BPM, rel=0.02)

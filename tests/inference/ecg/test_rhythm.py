"""Rhythm: the CNN on synthetic regular vs irregular strips, RR evidence, and the label rules."""

from __future__ import annotations

import numpy as np
import pytest

from backend.inference.ecg import rhythm as rh
from backend.inference.ecg.explain import agreement
from backend.inference.ecg.preprocess import RHYTHM_FS, bandpass, resample
from backend.inference.registry import ModelRegistry
from backend.settings import PROJECT_ROOT
from tests.inference.ecg.ecg_synth import synthetic_ecg


@pytest.fixture(scope="module")
def model():
    return ModelRegistry(PROJECT_ROOT / "weights", threads=1).get(rh.MODEL_NAME)


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
    # irregular beats (ectopy, sinus arrhythmia) stay "other"
    assert rh.final_rhythm("other", _evidence(75, irr=0.2, p=1.0)) == "other"


def test_other_with_af_runner_up_and_af_evidence_is_af():
    probs = {"normal": 0.05, "atrial_fibrillation": 0.4, "other": 0.5, "noisy": 0.05}
    assert rh.final_rhythm("other", _evidence(90, irr=0.25, p=0.1), probs) == "atrial_fibrillation"
    assert rh.final_rhythm("other", _evidence(90, irr=0.25, p=0.9), probs) == "other"
    low_af = {**probs, "atrial_fibrillation": 0.1, "other": 0.8}
    assert rh.final_rhythm("other", _evidence(90, irr=0.25, p=0.1), low_af) == "other"

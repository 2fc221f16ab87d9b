"""Signal quality: damaged leads are named with advice, clean records pass, hopeless ones refuse."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backend.inference.ecg.quality import SignalQuality, assess_signal_quality
from backend.inference.ecg.readers import read_ecg_path
from backend.inference.ecg.record import STANDARD_LEADS, EcgRecord
from backend.inference.errors import UnusableInputError
from tests.held_out import LUDB_001

FS = 500.0

# Per-lead (P, R, S, T) amplitudes in mV of a normal adult 12-lead ECG (LUDB-like morphology).
_LEAD_SHAPES = {
    "I": (0.08, 0.7, -0.1, 0.2),
    "II": (0.12, 1.1, -0.15, 0.3),
    "III": (0.05, 0.5, -0.2, 0.1),
    "aVR": (-0.1, -0.8, 0.1, -0.25),
    "aVL": (0.03, 0.3, -0.1, 0.05),
    "aVF": (0.08, 0.8, -0.15, 0.2),
    "V1": (0.06, 0.3, -1.0, -0.1),
    "V2": (0.07, 0.6, -1.4, 0.4),
    "V3": (0.07, 0.9, -0.9, 0.45),
    "V4": (0.07, 1.4, -0.5, 0.4),
    "V5": (0.07, 1.3, -0.3, 0.3),
    "V6": (0.07, 1.0, -0.15, 0.25),
}


def clean_record(seconds: float = 10.0, hr_bpm: float = 72.0, seed: int = 1) -> EcgRecord:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    rr = 60.0 / hr_bpm
    beats = np.arange(0.35, seconds, rr)
    signal = np.zeros((t.size, 12))
    for j, lead in enumerate(STANDARD_LEADS):
        p, r, s, tw = _LEAD_SHAPES[lead]
        for b in beats:
            signal[:, j] += p * np.exp(-(((t - b + 0.16) / 0.022) ** 2))
            signal[:, j] += r * np.exp(-(((t - b) / 0.010) ** 2))
            signal[:, j] += s * np.exp(-(((t - b - 0.025) / 0.010) ** 2))
            signal[:, j] += tw * np.exp(-(((t - b - 0.30) / 0.045) ** 2))
        # Respiration-like drift and amplifier noise of a good resting recording.
        signal[:, j] += 0.08 * np.sin(2 * np.pi * 0.25 * t + j) + rng.normal(0, 0.008, t.size)
    return EcgRecord(signal=signal, fs=FS, lead_names=list(STANDARD_LEADS), source="test")


def with_lead(record: EcgRecord, lead: str, values: np.ndarray) -> EcgRecord:
    signal = record.signal.copy()
    signal[:, record.lead_names.index(lead)] = values
    return EcgRecord(signal=signal, fs=record.fs, lead_names=record.lead_names, source="test")


def issue_about(quality: SignalQuality, word: str) -> str:
    matches = [i for i in quality.issues if word in i.lower()]
    assert matches, quality.issues
    return matches[0]


def test_clean_twelve_lead_record_passes():
    quality = assess_signal_quality(clean_record())
    assert quality.ok and quality.issues == [] and quality.lead_notes == {}
    assert quality.usable_leads == list(STANDARD_LEADS)
    assert quality.as_contract() == {"ok": True, "issues": []}


def test_real_ludb_record_passes():
    quality = assess_signal_quality(read_ecg_path(LUDB_001))
    assert quality.ok and quality.issues == [], quality.issues


def test_flat_lead_is_named_and_excluded():
    record = with_lead(clean_record(), "V2", np.full(5000, 0.12))
    quality = assess_signal_quality(record)
    assert quality.ok and "V2" not in quality.usable_leads and len(quality.usable_leads) == 11
    assert quality.lead_notes == {"V2": ["flat"]}
    text = issue_about(quality, "flat")
    assert "Lead V2" in text and "electrode" in text


def test_clipped_lead_is_flagged():
    record = clean_record()
    clipped = np.clip(record.lead("II"), -0.3, 0.45)  # R waves of 1.1 mV cut at 0.45 mV
    quality = assess_signal_quality(with_lead(record, "II", clipped))
    assert "clipped" in quality.lead_notes["II"]
    assert "range" in issue_about(quality, "clipp")


def test_noisy_leads_are_unusable_and_all_noisy_is_refused():
    record = clean_record()
    rng = np.random.default_rng(5)
    noisy = record.lead("I") + rng.normal(0, 0.25, 5000)  # EMG-like broadband noise
    quality = assess_signal_quality(with_lead(record, "I", noisy))
    assert quality.ok and "I" not in quality.usable_leads
    assert "mains" in issue_about(quality, "noise")

    drowned = record.signal + rng.normal(0, 0.3, record.signal.shape)
    hopeless = EcgRecord(signal=drowned, fs=FS, lead_names=list(STANDARD_LEADS))
    quality = assess_signal_quality(hopeless)
    assert not quality.ok and quality.usable_leads == []
    with pytest.raises(UnusableInputError) as info:
        quality.raise_if_unusable()
    assert "too poor to read" in info.value.message
    assert info.value.extra["quality"]["ok"] is False
    assert "Leads I, II, III" in info.value.message and "mains" in info.value.message
    from backend.i18n import translations_for

    korean = info.value.localized(translations_for("ko").gettext)
    assert korean.startswith("심전도 품질이 너무 낮아 읽을 수 없습니다: 유도 I, II, III")
    assert "고주파 잡음" in korean and "mains" not in korean


def test_baseline_wander_warns_but_keeps_the_lead():
    record = clean_record()
    t = np.arange(5000) / FS
    wandering = record.lead("V1") + 1.5 * np.sin(2 * np.pi * 0.15 * t)
    quality = assess_signal_quality(with_lead(record, "V1", wandering))
    assert quality.lead_notes == {"V1": ["wander"]}
    assert quality.ok and "V1" in quality.usable_leads
    assert "Breathe calmly" in issue_about(quality, "wander")


def test_lead_off_flat_stretches_with_jumps():
    record = clean_record()
    x = record.lead("V4").copy()
    x[1500:3000] = 4.0  # electrode pops off: the amplifier rails, then recovers
    x[3500:4200] = -3.5
    quality = assess_signal_quality(with_lead(record, "V4", x))
    assert "lead-off" in quality.lead_notes["V4"] and "V4" not in quality.usable_leads
    assert "cable" in issue_about(quality, "contact")


def test_every_lead_flat_is_refused():
    record = EcgRecord(signal=np.zeros((5000, 3)), fs=FS, lead_names=["I", "II", "V1"])
    quality = assess_signal_quality(record)
    assert not quality.ok
    assert quality.issues[-1] == "No lead is readable: record the ECG again."


def test_partial_leads_of_a_digitised_sheet_are_judged_on_their_samples():
    record = clean_record()
    signal = record.signal.copy()
    signal[:3750, :6] = np.nan  # 3x4 layout: limb leads printed for the last 2.5 s only
    partial = EcgRecord(signal=signal, fs=FS, lead_names=record.lead_names, source="photo")
    quality = assess_signal_quality(partial)
    assert quality.ok and quality.issues == [] and len(quality.usable_leads) == 12


def test_low_sampling_rate_strip_passes():
    record = clean_record(seconds=30)
    strip = EcgRecord(signal=record.signal[::5, [1]], fs=100.0, lead_names=["II"])
    quality = assess_signal_quality(strip)
    assert quality.ok and quality.issues == [], quality.issues


@pytest.mark.parametrize("leads", [["V1"], ["I", "II", "aVF"]])
def test_every_lead_advice_reads_in_korean_with_the_same_leads(leads):
    from backend.i18n import translations_for
    from backend.inference.ecg import quality

    korean = translations_for("ko").gettext
    for problem in quality._ADVICE:
        issue = quality._advice(problem, leads)
        assert issue.startswith(("Lead " if len(leads) == 1 else "Leads ") + ", ".join(leads))
        shown = quality.localize_issue(issue, korean)
        assert shown.startswith("유도 " + ", ".join(leads) + ": "), shown
        assert re.search(r"[\uac00-\ud7a3]", shown.split(": ", 1)[1]), shown
        assert quality.localize_issue(issue, translations_for("en").gettext) == issue


def test_a_flat_lead_of_a_real_record_is_advised_in_korean():
    from backend.i18n import translations_for
    from backend.inference.ecg import quality

    issues = assess_signal_quality(with_lead(clean_record(), "V1", np.full(5000, 0.12))).issues
    assert issues[0].startswith("Lead V1: flat")
    assert quality.localize_issue(issues[0], translations_for("ko").gettext).startswith(
        "유도 V1: 신호가 없는 평탄한 선입니다")
    other = "Lead V1 is fine: nothing to see"
    assert quality.localize_issue(other, translations_for("ko").gettext) == other

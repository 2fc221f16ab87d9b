"""Pacemaker spikes: found where a stimulus is, tied to the beats it starts, and not made up from
sharp QRS edges, one lead's artefact or a noisy strip."""

from __future__ import annotations

import numpy as np
import pytest

from backend.inference.ecg import pacing
from backend.inference.ecg.record import STANDARD_LEADS
from tests.inference.ecg.ecg_synth import synthetic_ecg


def _spikes(record):
    return pacing.spike_times_s(record.signal, record.fs, record.lead_names)


@pytest.mark.parametrize("fs", [250, 500, 1000])
def test_one_spike_per_ventricular_paced_beat_at_its_qrs_onset(fs):
    record = synthetic_ecg(hr=60, pacing="ventricular", p_waves=False, qrs_ms=160, qt_ms=480,
                           fs=fs)
    onsets = np.asarray(record.meta["qrs_onsets_s"])
    spikes = _spikes(record)
    assert len(spikes) == len(onsets)
    assert np.abs(spikes - (onsets - 0.004)).max() <= max(0.003, 1.5 / fs)
    evidence = pacing.pacing_evidence(spikes, onsets)
    assert evidence.paced and evidence.chambers == "ventricular"
    assert evidence.paced_beats == len(onsets) and evidence.tied_spikes == len(spikes)


def test_atrial_spikes_a_pr_interval_before_the_qrs_are_atrial_pacing():
    record = synthetic_ecg(hr=70, pr_ms=180, pacing="atrial")
    onsets = np.asarray(record.meta["qrs_onsets_s"])
    evidence = pacing.pacing_evidence(_spikes(record), onsets)
    assert evidence.paced and evidence.chambers == "atrial"
    assert evidence.ventricular_paced == []


@pytest.mark.parametrize("hr, qrs_ms", [(72, 90), (110, 80), (50, 150)])
def test_an_unpaced_heart_has_no_spikes_even_with_steep_qrs_edges(hr, qrs_ms):
    # R waves of 1.5 mV over a third of a narrow QRS: steep, but reached through steep samples
    record = synthetic_ecg(hr=hr, qrs_ms=qrs_ms, noise_mv=0.02, seed=3)
    assert len(_spikes(record)) == 0


def test_a_spike_in_one_limb_lead_and_the_leads_derived_from_it_is_one_lead_not_four():
    record = synthetic_ecg(hr=60)
    signal = record.signal.copy()
    onsets = record.meta["qrs_onsets_s"]
    for on in onsets:  # an artefact on the left-arm electrode: I, III, aVR, aVL, aVF see it
        i = round((on - 0.004) * record.fs)
        for lead, share in (("I", 1.0), ("III", -1.0), ("aVR", -0.5), ("aVL", 1.0), ("aVF", -0.5)):
            signal[i, STANDARD_LEADS.index(lead)] += 0.8 * share
    assert len(pacing.spike_times_s(signal, record.fs, record.lead_names)) == 0
    # the same spikes in independent leads (I, II and three chest leads) are a stimulus
    for on in onsets:
        i = round((on - 0.004) * record.fs)
        for lead in ("II", "V2", "V5"):
            signal[i, STANDARD_LEADS.index(lead)] += 0.8
    assert len(pacing.spike_times_s(signal, record.fs, record.lead_names)) == len(onsets)


def test_a_noise_burst_in_a_single_lead_strip_is_not_a_paced_rhythm():
    record = synthetic_ecg(hr=75, leads=("I",), duration_s=30)
    rng = np.random.default_rng(5)
    signal = record.signal.copy()
    burst = rng.choice(signal.shape[0], size=60, replace=False)  # electrode pops all over
    signal[burst, 0] += rng.choice([-1.0, 1.0], size=60) * 0.9
    spikes = pacing.spike_times_s(signal, record.fs, record.lead_names)
    assert len(spikes) >= 30
    evidence = pacing.pacing_evidence(spikes, np.asarray(record.meta["qrs_onsets_s"]))
    assert evidence.paced_beats > 0  # some fall near beats by chance
    assert not evidence.paced


def test_a_few_paced_beats_among_many_own_beats_is_not_a_paced_rhythm():
    onsets = np.arange(0.5, 10.0, 0.8)
    evidence = pacing.pacing_evidence(onsets[:3] - 0.004, onsets)
    assert evidence.paced_beats == 3 and not evidence.paced
    assert evidence.as_detail()["paced"] is False and evidence.chambers is None


def test_too_slow_a_sampling_rate_is_not_searched():
    record = synthetic_ecg(hr=60, pacing="ventricular", fs=200)
    assert len(_spikes(record)) == 0


def test_independent_channels_of_a_twelve_lead_record_are_two_limb_leads_and_six_chest_leads():
    chosen = [STANDARD_LEADS[j] for j in pacing.independent_channels(list(STANDARD_LEADS))]
    assert chosen == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert pacing.independent_channels(["III", "aVF", "aVR"]) == [0, 1]


def test_an_unrecorded_limb_lead_leaves_the_next_one_to_count():
    record = synthetic_ecg(hr=60)
    signal = record.signal.copy()
    signal[:, STANDARD_LEADS.index("I")] = np.nan  # lead I off: II and III are independent
    onsets = record.meta["qrs_onsets_s"]
    for on in onsets:  # a stimulus small in every lead but II, III and V1
        i = round((on - 0.004) * record.fs)
        for lead in ("II", "III", "V1"):
            signal[i, STANDARD_LEADS.index(lead)] += 0.8
    assert len(pacing.spike_times_s(signal, record.fs, record.lead_names)) == len(onsets)

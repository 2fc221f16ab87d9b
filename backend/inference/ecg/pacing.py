"""Pacemaker spikes, and the beats they start.

A pacemaker's stimulus lasts 0.5-1 ms: in a recording it is a spike of one or two samples
(0.2-1.5 mV here), usually followed by the recorder's own decay back to the baseline. Nothing
the heart makes is that narrow, and the 0.5-40 Hz band-pass the analysis uses removes it, so the
spikes are looked for on the record as read, before any filtering. Written by hand: NeuroKit2,
wfdb and SciPy have no pacing-spike detector (ECG machines detect pacing in their own hardware,
before the samples are stored).

A spike at sample i of a lead: the second difference |x[i-k] - 2 x[i] + x[i+k]| (k samples of
2 ms) is at least SPIKE_MIN_MV and SPIKE_OVER_BACKGROUND times the largest one over the 4-10 ms
before it (a spike rises from a quiet baseline; the steep edge of a tall R wave is reached
through samples that are already steep). A stimulus reaches every lead at the same instant, so a
spike counts when INDEPENDENT leads show it at the same sample: limb leads count as two (the other
four are sums of those two), the chest leads one each. On the LUDB records marked "pacing" or
"P-synchrony" the spikes come within 16 ms of the QRS onset of the beat they start; LUDB's
unpaced records show a few step artefacts (at most 7 in 10 s), none tied to the beats. So
a beat is paced when a spike comes within VENTRICULAR_WINDOW_S of its QRS onset (ventricular
pacing) or within ATRIAL_WINDOW_S before it (an atrial stimulus, a PR interval before the QRS),
and the rhythm is paced when PACED_BEAT_SHARE of the beats are (training/ecg/eval_pacing.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MIN_FS = 250.0  # below this a 1 ms spike is smeared into its neighbours by the anti-alias filter
SPIKE_MIN_MV = 0.15
SPIKE_OVER_BACKGROUND = 5.0
MIN_CHANNELS = 3  # independent leads showing the spike (all of them when fewer are recorded)
_BACKGROUND_MS = (4.0, 10.0)  # the quiet stretch before a spike
_MERGE_S = 0.05  # spikes closer than this are one stimulus (and its ringing)
VENTRICULAR_WINDOW_S = (-0.04, 0.025)  # spike time - QRS onset
ATRIAL_WINDOW_S = (-0.35, -0.08)
PACED_BEAT_SHARE = 0.5
# and most spikes start a beat: noise bursts in a handheld strip make dozens of spikes, some of
# which fall near beats by chance (CinC 2017 noisy strips: up to 62 spikes in 30 s)
TIED_SPIKE_SHARE = 0.6
MIN_PACED_BEATS = 3
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
_LIMB_PREFERENCE = ("I", "II", "III", "aVF", "aVL", "aVR")


def independent_channels(lead_names: list[str]) -> list[int]:
    """Column indices of the leads that carry independent information: two limb leads (any two
    determine the other four) and every other lead."""
    limb = [lead_names.index(n) for n in _LIMB_PREFERENCE if n in lead_names][:2]
    other = [j for j, n in enumerate(lead_names) if n not in _LIMB]
    return limb + other


def spike_times_s(signal: np.ndarray, fs: float, lead_names: list[str]) -> np.ndarray:
    """Times (s) of pacing spikes in a record's signal as read (mV, unfiltered, NaN where a lead
    was not recorded or is unusable); empty below MIN_FS."""
    if fs < MIN_FS:
        return np.zeros(0)
    signal = np.asarray(signal, dtype=np.float64)
    recorded = [j for j in range(signal.shape[1]) if np.isfinite(signal[:, j]).any()]
    channels = independent_channels([lead_names[j] for j in recorded])
    x = np.nan_to_num(signal[:, [recorded[c] for c in channels]])
    n_samples, n_channels = x.shape
    k = max(1, round(fs / 500.0))
    if n_channels == 0 or n_samples < 20 * k:
        return np.zeros(0)
    d2 = np.zeros_like(x)
    d2[k:-k] = np.abs(x[: -2 * k] - 2 * x[k:-k] + x[2 * k :])
    lo, hi = (round(ms * fs / 1000.0) for ms in _BACKGROUND_MS)
    # background[i] = max d2[i-hi .. i-lo]
    padded = np.vstack([np.zeros((hi, n_channels)), d2])
    background = sliding_window_view(padded, hi - lo + 1, axis=0)[:n_samples].max(axis=-1)
    spike = (d2 >= SPIKE_MIN_MV) & (d2 >= SPIKE_OVER_BACKGROUND * background)
    aligned = spike.copy()  # the same stimulus within k samples in every lead
    for shift in range(1, k + 1):
        aligned[shift:] |= spike[:-shift]
        aligned[:-shift] |= spike[shift:]
    hits = np.flatnonzero(aligned.sum(axis=1) >= min(MIN_CHANNELS, n_channels))
    if not len(hits):
        return np.zeros(0)
    # one stimulus per group of hits; it sits where the leads' summed second difference peaks
    groups = np.split(hits, np.flatnonzero(np.diff(hits) > _MERGE_S * fs) + 1)
    summed = d2.sum(axis=1)
    times = [g[0] + int(np.argmax(summed[g[0] : g[-1] + 1])) for g in groups]
    return np.asarray(times, dtype=np.float64) / fs


@dataclass
class PacingEvidence:
    n_spikes: int
    n_beats: int
    tied_spikes: int = 0  # spikes within a beat's ventricular or atrial window
    ventricular_paced: list[int] = field(default_factory=list)  # beat indices
    atrial_paced: list[int] = field(default_factory=list)

    @property
    def paced_beats(self) -> int:
        return len(set(self.ventricular_paced) | set(self.atrial_paced))

    @property
    def paced(self) -> bool:
        """A paced rhythm: PACED_BEAT_SHARE of the beats (and MIN_PACED_BEATS) paced."""
        return (
            self.n_beats > 0
            and self.paced_beats >= MIN_PACED_BEATS
            and self.paced_beats >= PACED_BEAT_SHARE * self.n_beats
            and self.tied_spikes >= TIED_SPIKE_SHARE * self.n_spikes
        )

    @property
    def chambers(self) -> str | None:
        """"ventricular", "atrial" or "dual" (both in the same record); None when not paced."""
        if not self.paced:
            return None
        if self.ventricular_paced and self.atrial_paced:
            return "dual"
        return "ventricular" if self.ventricular_paced else "atrial"

    def as_detail(self) -> dict:
        return {
            "paced": self.paced,
            "chambers": self.chambers,
            "spikes": self.n_spikes,
            "paced_beats": self.paced_beats,
            "ventricular_paced_beats": len(self.ventricular_paced),
            "atrial_paced_beats": len(self.atrial_paced),
        }


def pacing_evidence(spikes_s: np.ndarray, qrs_onsets_s: np.ndarray) -> PacingEvidence:
    """Which beats (by QRS onset, s) a spike started."""
    spikes = np.asarray(spikes_s, dtype=np.float64)
    onsets = np.asarray(qrs_onsets_s, dtype=np.float64)
    ventricular, atrial = [], []
    tied = np.zeros(len(spikes), dtype=bool)
    for i, onset in enumerate(onsets):
        offsets = spikes - onset
        in_ventricular = (offsets >= VENTRICULAR_WINDOW_S[0]) & (offsets <= VENTRICULAR_WINDOW_S[1])
        in_atrial = (offsets >= ATRIAL_WINDOW_S[0]) & (offsets <= ATRIAL_WINDOW_S[1])
        if in_ventricular.any():
            ventricular.append(i)
        if in_atrial.any():
            atrial.append(i)
        tied |= in_ventricular | in_atrial
    return PacingEvidence(
        n_spikes=len(spikes),
        n_beats=len(onsets),
        tied_spikes=int(tied.sum()),
        ventricular_paced=ventricular,
        atrial_paced=atrial,
    )

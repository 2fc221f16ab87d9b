"""Synthetic ECGs with known intervals for the analysis tests (no data files needed).

Every wave is a raised-cosine bump (or three for the QRS) whose support is exactly the interval
the test expects: P from QRS onset - PR for 100 ms, QRS for `qrs_ms`, T ending at QRS onset + QT.
"""

from __future__ import annotations

import numpy as np

from backend.inference.ecg.record import STANDARD_LEADS, EcgRecord

# Rough amplitude of P, R, T per standard lead (mV): enough that every lead looks like an ECG.
_GAIN = {
    "I": (0.1, 0.8, 0.25),
    "II": (0.15, 1.2, 0.35),
    "III": (0.08, 0.5, 0.12),
    "aVR": (-0.12, -0.9, -0.3),
    "aVL": (0.05, 0.3, 0.1),
    "aVF": (0.1, 0.8, 0.22),
    "V1": (0.08, 0.4, 0.1),
    "V2": (0.1, 0.8, 0.4),
    "V3": (0.1, 1.1, 0.45),
    "V4": (0.1, 1.5, 0.45),
    "V5": (0.1, 1.4, 0.35),
    "V6": (0.1, 1.1, 0.28),
}


def _bump(t: np.ndarray, start: float, width: float) -> np.ndarray:
    x = (t - start) / width
    return np.where((x >= 0) & (x <= 1), 0.5 - 0.5 * np.cos(2 * np.pi * x), 0.0)


def synthetic_ecg(
    *,
    hr: float = 70.0,
    pr_ms: float = 160.0,
    qrs_ms: float = 90.0,
    qt_ms: float = 380.0,
    rr_jitter: float = 0.0,
    p_waves: bool = True,
    f_waves: bool = False,
    duration_s: float = 10.0,
    fs: int = 500,
    leads: tuple[str, ...] = STANDARD_LEADS,
    noise_mv: float = 0.01,
    seed: int = 0,
    premature_beats: tuple[int, ...] = (),
    dropped_beats: tuple[int, ...] = (),
    pacing: str | None = None,
    spike_mv: float = 0.8,
) -> EcgRecord:
    """`premature_beats`: indices of beats that come 30 % of an RR early (premature atrial beats,
    P wave included); the beat after each keeps its time, so a short then a long interval.
    `dropped_beats`: beats whose P wave is not conducted (no QRS, no T), as in second-degree AV
    block: one interval of two RR.
    `pacing`: "ventricular" puts a pacemaker spike 4 ms before each QRS onset, "atrial" one at
    each P wave's onset: one sample of `spike_mv` (its sign and size vary by lead, as a unipolar
    stimulus seen from each lead's direction does), then the recorder's decay back to the
    baseline (time constant 4 ms)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * fs)) / fs
    rr_mean = 60.0 / hr
    onsets, t0 = [], 0.35
    while t0 < duration_s - 0.1:
        onsets.append(t0)
        t0 += rr_mean * (1 + rr_jitter * rng.uniform(-1, 1))
    for k in premature_beats:
        onsets[k] -= 0.3 * rr_mean
    qrs, pr, qt = qrs_ms / 1000, pr_ms / 1000, qt_ms / 1000
    sig = np.zeros((len(t), len(leads)))
    for j, name in enumerate(leads):
        gp, gr, gt = _GAIN[name]
        x = np.zeros_like(t)
        for k, on in enumerate(onsets):
            if p_waves:
                x += gp * _bump(t, on - pr, 0.10)
            if k in dropped_beats:
                continue
            x += -0.12 * abs(gr) * _bump(t, on, 0.3 * qrs)
            x += gr * _bump(t, on + 0.15 * qrs, 0.55 * qrs)
            x += -0.3 * abs(gr) * _bump(t, on + 0.6 * qrs, 0.4 * qrs)
            x += gt * _bump(t, on + qt - 0.18, 0.18)
        if pacing is not None:
            sign_size = 1.0 if j % 3 else -0.6
            for on in onsets:
                at = on - 0.004 if pacing == "ventricular" else on - pr
                i = round(at * fs)
                if 0 <= i < len(t):
                    tail = np.exp(-np.arange(len(t) - i) / (0.004 * fs))
                    x[i:] += sign_size * spike_mv * tail
        if f_waves:  # fibrillatory baseline, about 6 Hz
            x += (
                0.04
                * np.sin(2 * np.pi * 6.3 * t + rng.uniform(0, 6))
                * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
            )
        sig[:, j] = x + noise_mv * rng.standard_normal(len(t))
    return EcgRecord(
        signal=sig,
        fs=float(fs),
        lead_names=list(leads),
        source="synthetic",
        meta={"qrs_onsets_s": onsets},
    )

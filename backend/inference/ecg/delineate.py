"""Wave delineation (R peaks, P/QRS/T onsets and offsets per beat) and the global intervals.

The ONNX model `ecg_delineate` (a 1-D U-Net trained on LUDB, training/ecg/delineate_train.py)
labels every sample at 500 Hz as background / P / QRS / T of the *global* wave extent over all
leads given to it. Global intervals are then taken the standard way (IEC 60601-2-51): per beat
from the earliest onset to the latest offset, and the median over beats.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from backend.inference.ecg.preprocess import DELINEATION_FS, delineation_input
from backend.inference.ecg.thresholds import (
    HR_TACHY_BPM,
    P_PRESENT_FRACTION,
    SINUS_P_FRACTION,
    SVT_MIN_HR_BPM,
)
from backend.inference.registry import LoadedModel

MODEL_NAME = "ecg_delineate"
BG, P, QRS, T = 0, 1, 2, 3
_MIN_SAMPLES = {P: 10, QRS: 15, T: 20}  # 20 / 30 / 40 ms at 500 Hz: shorter runs are noise
_JOIN_GAP = 15  # 30 ms
_MAX_PR_S = 0.45  # P onset to QRS onset beyond this is not this beat's P
_MAX_QT_S = 0.70
# A QRS run under 40 % of the record's median QRS length is a fragment (a sharp T wave, a pacing
# artefact or noise in one lead), not a beat: even the narrowest real QRS is not that much
# narrower than its neighbours, while bundle-branch and paced beats are wider, never narrower.
_MIN_QRS_OF_MEDIAN = 0.4
# Likewise a QRS run whose largest summed |amplitude| over the leads is under a quarter of the
# record's median is not a beat: the model, which has learnt that a QRS follows a P wave, labels
# the lone P wave of a non-conducted beat (second-degree AV block) QRS, and the pause that shows
# the block would vanish. P waves are about a tenth of the QRS; real QRS complexes of one record
# differ far less (ectopic ones are larger, not smaller).
_MIN_QRS_AMPLITUDE_OF_MEDIAN = 0.25
# Two QRS runs starting closer than this are one beat seen twice: no conducted or ventricular
# rhythm beats faster than 300 bpm. On a phone photo whose rows were not straightened alike, the
# rhythm strip's QRS came 50-160 ms from the same beat's in the column leads above it, the model
# labelled both, and a 123 bpm sinus tachycardia read 138 bpm with its QRS and QTc too long
# (tuning photo georgia_E07501, seed 0; 125 bpm with this rule). The run with the larger summed
# amplitude is kept. LUDB's held-out intervals, the twelve-lead rhythm output and the served
# labels of the CinC 2017 test strips came out identical with it.
_MIN_QRS_SPACING_S = 0.2
# The model's P runs (argmax) start late: the P wave's first, lowest-amplitude samples are where
# its probability is still rising. P onset is taken where P's probability first reaches 0.3
# (linear interpolation between samples, at most 50 ms before the run). Chosen on the tuning
# fold's val records with models trained on the fit fold (training/ecg/eval_intervals.py
# --split val): PR mean -7.9 / -2.6 ms at argmax, -1.4 / +2.9 ms at 0.3, SD unchanged or lower.
P_ONSET_PROB = 0.3
_P_ONSET_SEARCH = 25
# Between 100 and 150 bpm, where a sinus tachycardia is told from other fast rhythms by its P waves
# (rhythm._sinus_tachycardia), the P wave runs into the preceding T wave and the model (LUDB
# records, mostly 55-95 bpm, time-stretched by at most 20 % in training) finds it before fewer
# beats: before 9-35 % of them in 7 of Ningbo's 12 twelve-lead sinus tachycardias (107-137 bpm).
# So, unless P waves were found before SINUS_P_FRACTION of the beats already, the record is also
# read slowed to SLOWED_RATE_BPM (linear interpolation of the band-passed samples), where the beats
# come at rates the model learnt, and a beat counts as having a P wave when either reading finds
# one. On fast CinC 2017 training and validation strips (lead I, over 100 bpm) no atrial
# fibrillation strip reached P waves before half of its beats this way (162 strips, at most 47 %),
# while "other" strips, which hold sinus tachycardia, went from 31 % to 47 %. The slowed reading
# only says that a P wave is there: slowing stretches the QRS and QT too, so its edges are not
# those of a slower heart, and no fast record here has annotated ones to check them against. PR is
# measured on the P waves found at the real rate.
SLOWED_RATE_BPM = 75.0
_SLOWED_BAND_BPM = (HR_TACHY_BPM, SVT_MIN_HR_BPM)
_SLOWED_R_MATCH_S = 0.04  # a beat of the slowed reading is the same beat if its R is this close
LIMB_LEADS = slice(0, 6)  # I II III aVR aVL aVF in the model's lead order
CHEST_LEADS = slice(6, 12)


@dataclass
class Beat:
    """Sample indices at 500 Hz (P onset fractional); None where the wave was not found."""

    r: int
    qrs_on: int
    qrs_off: int
    complete: bool = True  # QRS not cut by the record's edge
    p_on: float | None = None
    p_off: int | None = None
    t_on: int | None = None
    t_off: int | None = None
    p_seen_slowed: bool = False  # a P wave found before it on the slowed record (SLOWED_RATE_BPM)

    @property
    def has_p(self) -> bool:
        return self.p_on is not None or self.p_seen_slowed


@dataclass
class Delineation:
    fs: int
    n_samples: int
    beats: list[Beat] = field(default_factory=list)

    @property
    def r_peaks(self) -> np.ndarray:
        return np.array([b.r for b in self.beats], dtype=int)


def _runs(labels: np.ndarray, cls: int) -> list[tuple[int, int]]:
    """(start, end) inclusive of every run of `cls`, fragments closer than 30 ms joined, at least
    the minimum length."""
    is_cls = np.concatenate([[False], labels == cls, [False]])
    edges = np.flatnonzero(np.diff(is_cls.astype(np.int8)))
    runs: list[list[int]] = []
    for a, b in zip(edges[::2], edges[1::2] - 1):
        if runs and a - runs[-1][1] <= _JOIN_GAP:
            runs[-1][1] = int(b)
        else:
            runs.append([int(a), int(b)])
    return [(a, b) for a, b in runs if b - a + 1 >= _MIN_SAMPLES[cls]]


def _plausible_qrs(
    runs: list[tuple[int, int]], n: int, energy: np.ndarray
) -> list[tuple[int, int]]:
    """Drop complete QRS runs much shorter than the record's median (runs cut by the record's
    edges are kept: their length says nothing), and runs of much lower amplitude."""
    peak = {(a, b): float(energy[a : b + 1].max()) for a, b in runs if a > 0 and b < n - 1}
    if len(peak) < 3:
        return runs
    floor = _MIN_QRS_OF_MEDIAN * float(np.median([b - a + 1 for a, b in peak]))
    amplitude_floor = _MIN_QRS_AMPLITUDE_OF_MEDIAN * float(np.median(list(peak.values())))
    return [
        run
        for run in runs
        if run not in peak  # cut by an edge
        or (run[1] - run[0] + 1 >= floor and peak[run] >= amplitude_floor)
    ]


def _one_run_per_beat(
    runs: list[tuple[int, int]], energy: np.ndarray, fs: int
) -> list[tuple[int, int]]:
    """Of QRS runs starting within _MIN_QRS_SPACING_S of each other, the one of larger amplitude."""
    kept: list[tuple[int, int]] = []
    for run in runs:
        if kept and run[0] - kept[-1][0] < _MIN_QRS_SPACING_S * fs:
            if energy[run[0] : run[1] + 1].max() > energy[kept[-1][0] : kept[-1][1] + 1].max():
                kept[-1] = run
            continue
        kept.append(run)
    return kept


def lead_views(filtered_500: np.ndarray) -> list[np.ndarray]:
    """The inputs whose wave probabilities are averaged: all leads, and, for a complete 12-lead
    record, the six limb leads alone and the six chest leads alone (the model is trained on lead
    subsets too). Each view sees the waves from other leads, so the average leans less on any
    one lead. On the tuning fold's val records it cut the SDs of two fit-fold models (PR 11.1 -> 8.5
    and 9.4 -> 8.4 ms, QRS 8.7 -> 8.7 and 10.8 -> 9.6 ms, QT 19.4 -> 17.4 and 23.2 -> 17.0 ms)."""
    views = [filtered_500]
    if np.isfinite(filtered_500).all():
        for leads in (LIMB_LEADS, CHEST_LEADS):
            view = np.full_like(filtered_500, np.nan)
            view[:, leads] = filtered_500[:, leads]
            views.append(view)
    return views


def wave_probabilities(
    model: LoadedModel, filtered_500: np.ndarray, all_views: bool = True
) -> np.ndarray:
    """(n, 12) band-passed mV at 500 Hz (absent leads NaN) -> (4, n) per-sample probability of
    background / P / QRS / T, the mean over `lead_views` (over the first only without
    `all_views`)."""
    views = lead_views(filtered_500) if all_views else [filtered_500]
    xs = np.stack([delineation_input(v) for v in views])
    n = xs.shape[2]
    padded_n = int(np.ceil(n / 16) * 16)
    xs = np.pad(xs, ((0, 0), (0, 0), (0, padded_n - n)))
    logits = model.run(xs)["logits"][:, :, :n]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).mean(axis=0)


def segment(model: LoadedModel, filtered_500: np.ndarray) -> np.ndarray:
    """(n, 12) band-passed mV at 500 Hz (absent leads NaN) -> per-sample wave label (n,)."""
    return wave_probabilities(model, filtered_500).argmax(axis=0).astype(np.int8)


def _p_onset(p_prob: np.ndarray, run_start: int, earliest: int) -> float:
    """Where the P probability, walking back from the run's first sample, drops below
    P_ONSET_PROB (interpolated), not before `earliest`."""
    j = run_start
    stop = max(earliest, run_start - _P_ONSET_SEARCH)
    while j - 1 >= stop and p_prob[j - 1] >= P_ONSET_PROB:
        j -= 1
    if j - 1 < stop or p_prob[j] < P_ONSET_PROB:
        return float(j)
    return j - (p_prob[j] - P_ONSET_PROB) / max(p_prob[j] - p_prob[j - 1], 1e-6)


def beats_from_labels(
    labels: np.ndarray,
    filtered_500: np.ndarray,
    fs: int = DELINEATION_FS,
    p_prob: np.ndarray | None = None,
) -> Delineation:
    """Beats from per-sample labels; with the P probability (n,), P onsets are refined on it."""
    n = len(labels)
    energy = np.nansum(np.abs(np.nan_to_num(filtered_500)), axis=1)
    qrs_runs = _one_run_per_beat(_plausible_qrs(_runs(labels, QRS), n, energy), energy, fs)
    p_runs = _runs(labels, P)
    t_runs = _runs(labels, T)
    out = Delineation(fs=fs, n_samples=n)
    for i, (on, off) in enumerate(qrs_runs):
        r = on + int(np.argmax(energy[on : off + 1]))
        beat = Beat(r=r, qrs_on=on, qrs_off=off, complete=on > 0 and off < n - 1)
        prev_off = qrs_runs[i - 1][1] if i > 0 else -1
        next_on = qrs_runs[i + 1][0] if i + 1 < len(qrs_runs) else n
        ps = [
            (a, b) for a, b in p_runs if a > prev_off and b <= on + 2 and on - a <= _MAX_PR_S * fs
        ]
        if ps:
            beat.p_on, beat.p_off = ps[-1]
            if p_prob is not None:
                earliest = max(prev_off + 1, ps[-2][1] + 1 if len(ps) > 1 else 0)
                beat.p_on = _p_onset(p_prob, ps[-1][0], earliest)
        ts = [
            (a, b) for a, b in t_runs if a >= off - 2 and b < next_on and b - on <= _MAX_QT_S * fs
        ]
        if ts and ts[0][1] < n - 1:
            beat.t_on, beat.t_off = ts[0]
        out.beats.append(beat)
    return out


def _delineate_as_given(
    model: LoadedModel, filtered_500: np.ndarray, all_views: bool = True
) -> Delineation:
    probs = wave_probabilities(model, filtered_500, all_views)
    labels = probs.argmax(axis=0).astype(np.int8)
    return beats_from_labels(labels, filtered_500, p_prob=probs[P])


def slowed(filtered_500: np.ndarray, factor: float) -> np.ndarray:
    """The (n, 12) record played `factor` times slower (linear interpolation per lead; NaN
    where a neighbouring sample is NaN, so absent stretches of a lead stay absent)."""
    n = filtered_500.shape[0]
    t = np.arange(int(n * factor)) / factor
    return np.stack(
        [np.interp(t, np.arange(n), filtered_500[:, j]) for j in range(filtered_500.shape[1])],
        axis=1,
    )


def mark_p_waves_of_slowed_record(
    model: LoadedModel, filtered_500: np.ndarray, d: Delineation, factor: float
) -> None:
    """Set p_seen_slowed on each beat of `d` that has a P wave before it on the record played
    `factor` times slower."""
    # one view (all leads) is enough to say whether a P wave is there, at a third of the cost
    slow = _delineate_as_given(model, slowed(filtered_500, factor), all_views=False)
    if not slow.beats:
        return
    r_slow = slow.r_peaks / factor
    for beat in d.beats:
        k = int(np.argmin(np.abs(r_slow - beat.r)))
        beat.p_seen_slowed = (
            abs(r_slow[k] - beat.r) <= _SLOWED_R_MATCH_S * d.fs and slow.beats[k].p_on is not None
        )


def delineate(model: LoadedModel, filtered_500: np.ndarray) -> Delineation:
    """Beats of the record; between 100 and 150 bpm, unless P waves were found before nearly
    every beat, P waves are also looked for on the record slowed to SLOWED_RATE_BPM."""
    d = _delineate_as_given(model, filtered_500)
    hr = heart_rate_bpm(d)
    if (
        hr is not None
        and _SLOWED_BAND_BPM[0] < hr <= _SLOWED_BAND_BPM[1]
        and (p_wave_fraction(d) or 0.0) < SINUS_P_FRACTION  # above, no rhythm rule could change
    ):
        mark_p_waves_of_slowed_record(model, filtered_500, d, hr / SLOWED_RATE_BPM)
    return d


def p_wave_fraction(
    d: Delineation, skip_beats: Collection[int] = (), measured_only: bool = False
) -> float | None:
    """Share of beats with a P wave, over beats late enough for their P to fit in the record;
    `skip_beats` (indices into d.beats) are left out: early beats, whose own P wave a sinus
    rhythm does not promise (a ventricular premature beat has none). `measured_only` counts
    only P waves found at the real rate, whose edges are measured."""
    skip = set(skip_beats)
    eligible = [b for k, b in enumerate(d.beats) if b.qrs_on > 0.3 * d.fs and k not in skip]
    if not eligible:
        return None
    return sum((b.p_on is not None) if measured_only else b.has_p for b in eligible) / len(
        eligible
    )


def rr_intervals_s(d: Delineation) -> np.ndarray:
    return np.diff(d.r_peaks) / d.fs


def heart_rate_bpm(d: Delineation) -> float | None:
    """From the mean RR interval; None under two beats."""
    rr = rr_intervals_s(d)
    return float(60.0 / rr.mean()) if len(rr) else None


def global_intervals(d: Delineation) -> dict[str, float | None]:
    """HR (bpm, from the mean RR), PR, QRS, QT (ms, medians over beats); None when not measurable.

    PR is reported only when P waves precede at least half of the beats (none in AF).
    """
    ms = 1000.0 / d.fs
    complete = [b for b in d.beats if b.complete]
    qrs = [(b.qrs_off - b.qrs_on) * ms for b in complete]
    pr = [(b.qrs_on - b.p_on) * ms for b in complete if b.p_on is not None]
    qt = [(b.t_off - b.qrs_on) * ms for b in complete if b.t_off is not None]
    p_frac = p_wave_fraction(d, measured_only=True)
    return {
        "hr_bpm": heart_rate_bpm(d),
        "pr_ms": float(np.median(pr))
        if pr and p_frac is not None and p_frac >= P_PRESENT_FRACTION
        else None,
        "qrs_ms": float(np.median(qrs)) if qrs else None,
        "qt_ms": float(np.median(qt)) if len(qt) >= max(1, len(complete) // 3) else None,
    }


def corrected_qt(qt_ms: float | None, rr_s: float | None) -> tuple[float | None, float | None]:
    """(Bazett, Fridericia) QTc in ms: QT / RR^(1/2) and QT / RR^(1/3), RR in seconds."""
    if qt_ms is None or rr_s is None or rr_s <= 0:
        return None, None
    return qt_ms / rr_s**0.5, qt_ms / rr_s ** (1.0 / 3.0)

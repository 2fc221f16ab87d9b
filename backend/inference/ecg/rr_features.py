"""RR-interval and atrial-activity features of one lead, for the rhythm model's second stage.

AF is above all an RR decision: irregularly irregular intervals (high successive differences,
no dominant interval, random turning points) and no repeating P wave before the QRS. The CNN sees
the waveform; these numbers state the RR pattern explicitly, measured on the same band-passed
250 Hz lead the CNN reads (backend.inference.ecg.preprocess), so training on CinC 2017 strips and
serving a 12-lead record use the very same code.

The R-peak detector is a plain energy detector (band 5-18 Hz, squared slope, 120 ms moving sum,
adaptive threshold with search-back), independent of the delineation model so that the second
stage does not move when the delineator is retrained.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

import numpy as np
from scipy import signal as sps

FEATURE_NAMES = (
    "hr_bpm",
    "rr_cv",  # SD / mean of RR
    "rr_nrmssd",  # RMSSD / mean RR
    "rr_pnn8",  # share of successive RR differences > 8 % of the mean RR (pNN50 at 75 bpm)
    "rr_med_abs_diff",  # median |successive difference| / median RR: robust to single ectopics
    "rr_sd1_sd2",  # Poincare SD1 / SD2
    "rr_turning_points",  # turning-point ratio (2/3 for a random series)
    "rr_within_10pct",  # share of RR within 10 % of the median RR (a dominant interval)
    "rr_diff_entropy",  # Shannon entropy (bits) of |successive differences| / mean RR in 2 % bins
    "qrs_template_corr",  # mean correlation of each QRS with the median QRS (noise, ectopy)
    "p_window_corr",  # mean correlation of the 250-70 ms pre-R window with its median
    "p_template_ratio",  # peak-to-peak of the median pre-R window / of the median QRS
    "rr_cosen",  # coefficient of sample entropy of RR (Lake & Moorman 2011), short-series AF
    "rr_poincare_bins",  # occupied 40 ms cells of the successive-difference Lorenz plot / points
    "rr_short_long_pairs",  # share of premature (short then long) intervals: ectopy, not AF
    "rr_lag1_autocorr",  # RR autocorrelation at lag 1: about -1 in bigeminy, about 0 in AF
    "rr_turning_dev",  # |turning-point ratio - 2/3|: alternation or trends, not randomness
    "atrial_residual",  # RMS of the lead after subtracting each beat's QRS-T template, between
    # beats, / QRS peak-to-peak: f waves in AF
)
MIN_BEATS = 4


@lru_cache(maxsize=4)
def _qrs_band(fs: int) -> np.ndarray:
    return sps.butter(2, [5.0, 18.0], btype="bandpass", fs=fs, output="sos")


def detect_r_peaks(x: np.ndarray, fs: int) -> np.ndarray:
    """Sample indices of R peaks in one band-passed lead (NaN-free)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 * fs:
        return np.zeros(0, dtype=int)
    y = sps.sosfiltfilt(_qrs_band(fs), x)
    slope = np.diff(y, prepend=y[0]) ** 2
    win = max(1, int(0.12 * fs))
    env = np.convolve(slope, np.ones(win) / win, mode="same")
    # threshold from the typical beat, not the largest artefact: the median of 1 s maxima
    n_sec = len(env) // fs
    sec_max = env[: n_sec * fs].reshape(n_sec, fs).max(axis=1)
    level = float(np.median(sec_max))
    if level <= 0:
        return np.zeros(0, dtype=int)
    refractory = int(0.25 * fs)  # 240 bpm at most
    peaks, _ = sps.find_peaks(env, height=0.3 * level, distance=refractory)
    if len(peaks) >= 3:  # search back in long gaps with half the threshold
        rr = np.diff(peaks)
        med = np.median(rr)
        extra = []
        for a, b in pairwise(peaks):
            if b - a > 1.66 * med:
                seg = env[a + refractory : b - refractory]
                if len(seg):
                    cand, _ = sps.find_peaks(seg, height=0.15 * level, distance=refractory)
                    if len(cand):
                        best = cand[np.argmax(seg[cand])]
                        extra.append(a + refractory + best)
        if extra:
            peaks = np.sort(np.concatenate([peaks, extra]))
    # R = largest deflection from the local baseline within +-60 ms of the energy peak
    half = int(0.06 * fs)
    out = []
    for p in peaks:
        a, b = max(0, p - half), min(len(x), p + half + 1)
        seg = x[a:b]
        out.append(a + int(np.argmax(np.abs(seg - np.median(seg)))))
    r = np.unique(np.array(out, dtype=int))
    if len(r) > 1:  # refinement may bring two peaks together: keep the larger
        keep = [0]
        for i in range(1, len(r)):
            if r[i] - r[keep[-1]] < int(0.2 * fs):
                if abs(x[r[i]]) > abs(x[r[keep[-1]]]):
                    keep[-1] = i
            else:
                keep.append(i)
        r = r[keep]
    return r


def _windows(x: np.ndarray, r: np.ndarray, before: int, after: int) -> np.ndarray:
    ok = r[(r - before >= 0) & (r + after <= len(x))]
    if not len(ok):
        return np.zeros((0, before + after))
    idx = ok[:, None] + np.arange(-before, after)[None, :]
    return x[idx]


def _mean_corr_to_median(w: np.ndarray) -> float:
    if len(w) < 3:
        return 0.0
    w = w - w.mean(axis=1, keepdims=True)
    t = np.median(w, axis=0)
    t = t - t.mean()
    num = w @ t
    den = np.linalg.norm(w, axis=1) * np.linalg.norm(t) + 1e-9
    return float(np.mean(num / den))


def rr_features(x: np.ndarray, fs: int, r_peaks: np.ndarray | None = None) -> np.ndarray:
    """FEATURE_NAMES for one band-passed lead (mV, NaN-free) as float32; all zero under
    MIN_BEATS beats. (The beat count itself is left out: it measures the strip's length, which
    says nothing about the rhythm and differs between 30 s handheld strips and 10 s 12-leads.)"""
    x = np.asarray(x, dtype=np.float64)
    r = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, dtype=int)
    f = dict.fromkeys(FEATURE_NAMES, 0.0)
    if len(r) >= MIN_BEATS:
        rr = np.diff(r) / fs
        mean, med = float(rr.mean()), float(np.median(rr))
        d = np.diff(rr)
        f["hr_bpm"] = 60.0 / mean
        f["rr_cv"] = float(rr.std() / mean)
        f["rr_nrmssd"] = float(np.sqrt(np.mean(d**2)) / mean)
        f["rr_pnn8"] = float(np.mean(np.abs(d) > 0.08 * mean))
        f["rr_med_abs_diff"] = float(np.median(np.abs(d)) / med)
        # Shape statistics of the RR series (SD1/SD2, lag-1 autocorrelation) are noise when RR
        # barely varies (4 ms sample steps in a regular 10 s strip), so their spread is floored
        # at 3 % of the mean RR: a regular rhythm then reads SD1/SD2 ~ 0 and autocorrelation ~ 0.
        floor = 0.03 * mean
        sd1 = np.std(d) / np.sqrt(2)
        sd2 = np.sqrt(max(2 * rr.var() - sd1**2, 0.0))
        f["rr_sd1_sd2"] = float(min(sd1 / max(sd2, floor), 5.0))
        if len(rr) >= 3:
            turns = np.sum(np.diff(np.sign(d)) != 0)
            f["rr_turning_points"] = float(turns / (len(rr) - 2))
        f["rr_within_10pct"] = share_within_10pct(rr, med)
        bins = np.minimum((np.abs(d) / mean / 0.02).astype(int), 25)
        p = np.bincount(bins, minlength=26) / len(bins)
        p = p[p > 0]
        f["rr_diff_entropy"] = float(-(p * np.log2(p)).sum())
        qrs = _windows(x, r, int(0.06 * fs), int(0.06 * fs))
        f["qrs_template_corr"] = _mean_corr_to_median(qrs)
        pwin = _windows(x, r, int(0.25 * fs), -int(0.07 * fs))
        f["p_window_corr"] = _mean_corr_to_median(pwin)
        if len(qrs) >= 3 and len(pwin) >= 3:
            qrs_t, p_t = np.median(qrs, axis=0), np.median(pwin, axis=0)
            f["p_template_ratio"] = float(np.ptp(p_t) / (np.ptp(qrs_t) + 1e-6))
        f["rr_cosen"] = _cosen(rr)
        c = rr - mean
        f["rr_lag1_autocorr"] = float(np.sum(c[:-1] * c[1:]) / max(np.sum(c**2), len(c) * floor**2))
        f["rr_turning_dev"] = abs(f["rr_turning_points"] - 2 / 3)
        f["rr_poincare_bins"] = _poincare_occupancy(d)
        short = rr[:-1] < 0.85 * med
        long_after = rr[1:] > 1.1 * med
        f["rr_short_long_pairs"] = float(np.mean(short & long_after))
        f["atrial_residual"] = _atrial_residual(x, r, fs)
    return np.array([f[k] for k in FEATURE_NAMES], dtype=np.float32)


def share_within_10pct(rr: np.ndarray, usual: float) -> float:
    """Share of the RR intervals within 10 % of the usual one."""
    return float(np.mean(np.abs(rr - usual) <= 0.1 * usual))


def _cosen(rr: np.ndarray, r: float = 0.03) -> float:
    """Coefficient of sample entropy, m = 1, tolerance 30 ms: SampEn + ln(2r) - ln(mean RR).
    Lake DE, Moorman JR, Am J Physiol Heart Circ Physiol 2011;300:H319-H325."""
    n = len(rr)
    if n < 4:
        return 0.0
    a = np.abs(rr[:, None] - rr[None, :]) <= r  # pairs matching at length 1
    iu = np.triu_indices(n - 1, 1)
    b_count = a[:-1, :-1][iu].sum()
    a_count = (a[:-1, :-1] & a[1:, 1:])[iu].sum()
    # no match: the entropy of a single-match estimate (bounded, as in the original method)
    sampen = -np.log((a_count + 1) / (b_count + 1))
    return float(sampen + np.log(2 * r) - np.log(rr.mean()))


def _poincare_occupancy(d: np.ndarray, cell_s: float = 0.04) -> float:
    if len(d) < 2:
        return 0.0
    cells = np.floor(np.stack([d[:-1], d[1:]], axis=1) / cell_s).astype(int)
    return float(len(np.unique(cells, axis=0)) / len(cells))


def _atrial_residual(x: np.ndarray, r: np.ndarray, fs: int) -> float:
    """What is left between beats once the repeating QRS-T is removed: sinus P waves repeat and
    cancel, AF's fibrillatory waves do not."""
    before, after = int(0.25 * fs), int(0.45 * fs)
    w = _windows(x, r, before, after)
    if len(w) < 3:
        return 0.0
    template = np.median(w, axis=0)
    qrs_pp = np.ptp(template[before - int(0.06 * fs) : before + int(0.06 * fs)]) + 1e-6
    resid = w - template
    seg = resid[:, : before - int(0.06 * fs)]  # the 190 ms before each QRS: P or f waves
    return float(np.sqrt(np.mean(seg**2)) / qrs_pp)

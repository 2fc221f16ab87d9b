"""Signal quality of an ECG record: which leads can be read, and what to do about the others.

Per lead: flat (no signal), lead-off (flat stretches with jumps), clipping at the recorder's
range, strong high-frequency noise (muscle, mains) and baseline wander (breathing, movement).
A lead that is flat, disconnected, badly clipped or drowned in noise is unusable; wander only
warns, because the analysis filters it out. A record without one usable lead is refused.

The measures follow the ECG signal-quality indices of Clifford GD, Behar J, Li Q, Rezek I,
"Signal quality indices and data fusion for determining clinical acceptability of
electrocardiograms", Physiol Meas 33:1419-1433 (2012) (flat-line, saturation, high-frequency
and baseline power). The thresholds below were checked on LUDB (clean 12-lead, no false alarm
wanted) and the CinC 2017 strips labelled noisy; see tests/inference/ecg/test_quality.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import butter, sosfiltfilt

from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError

FLAT_PTP_MV = 0.05  # a lead whose whole excursion is under 50 uV carries no ECG
FLAT_WINDOW_S = 1.0
FLAT_WINDOW_PTP_MV = 0.015  # a 1 s stretch moving less than 15 uV is a dead line, not diastole
LEAD_OFF_FLAT_FRACTION = 0.2
STEP_MV = 2.0  # a jump of the 200 ms median level by 2 mV within 40 ms is no heart beat
CLIP_FRACTION = 0.01  # >1 % of samples pinned at the extreme value in runs of >= 3 samples
CLIP_LEVEL_FRACTION = 0.35  # the pinned level lies this share of the lead's range from its median
CLIP_SUSTAINED_FRACTION = 0.05
NOISE_RATIO = 0.12  # robust HF noise sigma / QRS-band amplitude above this: unreadable
WANDER_MV = 1.0  # baseline (< 0.5 Hz) excursion over 1 mV ...
WANDER_RATIO = 1.0  # ... and larger than the lead's QRS-band amplitude
MIN_SEGMENT_S = 1.5

MSG_NO_LEAD = "No lead is readable: record the ECG again."
MSG_TOO_POOR = "The ECG is too poor to read: " + MSG_NO_LEAD
MSG_TOO_POOR_ISSUES = "The ECG is too poor to read: %(issues)s " + MSG_NO_LEAD


@dataclass
class SignalQuality:
    ok: bool
    issues: list[str]
    usable_leads: list[str]
    lead_notes: dict[str, list[str]] = field(default_factory=dict)

    def as_contract(self) -> dict:
        """The result JSON's `quality` object."""
        return {"ok": self.ok, "issues": list(self.issues)}

    def raise_if_unusable(self) -> None:
        """Refuse a record too poor to read instead of guessing from it."""
        if not self.ok:
            advice = [issue for issue in self.issues if issue != MSG_NO_LEAD]
            if advice:
                raise UnusableInputError(
                    MSG_TOO_POOR_ISSUES,
                    params={"issues": _Advice(advice)},
                    extra={"quality": self.as_contract()},
                )
            raise UnusableInputError(MSG_TOO_POOR, extra={"quality": self.as_contract()})


def _longest_finite_run(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    if finite.all():
        return x
    edges = np.diff(np.concatenate(([0], finite.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return x[:0]
    k = int(np.argmax(ends - starts))
    return x[starts[k] : ends[k]]


@lru_cache(maxsize=32)
def _design(fs: float, kind: str, cutoff: float | tuple[float, float]) -> np.ndarray:
    return butter(2, cutoff, btype=kind, fs=fs, output="sos")


def _filter(x: np.ndarray, fs: float, kind: str, cutoff: float | tuple[float, float]) -> np.ndarray:
    return sosfiltfilt(_design(float(fs), kind, cutoff), x, axis=0)


def _bands(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """QRS band (0.5-40 Hz), high-frequency residual (> 40 Hz) and baseline (< 0.5 Hz).

    Works on one lead or on all leads at once (axis 0 is time).
    """
    band_hi = min(40.0, 0.4 * fs)
    qrs_band = _filter(x, fs, "bandpass", (0.5, band_hi))
    hf = x - _filter(x, fs, "lowpass", band_hi) if fs > 2 * 45.0 else None
    return qrs_band, hf, _filter(x, fs, "lowpass", 0.5)


def _runs_at(mask: np.ndarray, min_len: int) -> tuple[int, int]:
    """(samples, runs) of `mask` in runs of at least `min_len` consecutive True values."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    long = lengths[lengths >= min_len]
    return int(long.sum()), int(long.size)


def _clipped_fraction(x: np.ndarray) -> float:
    """Share of samples pinned at an extreme far from the baseline, repeatedly or for long.

    A flat baseline that happens to be the record's minimum, or one artefact at the record's
    end, is not clipping: the pinned level must lie far from the median and recur (several
    clipped beats) or last (a saturated stretch).
    """
    ptp = float(np.ptp(x))
    median = float(np.median(x))
    tol = 1e-3 * ptp
    pinned = 0
    for level, mask in ((x.max(), x >= x.max() - tol), (x.min(), x <= x.min() + tol)):
        if abs(level - median) < CLIP_LEVEL_FRACTION * ptp:
            continue
        samples, runs = _runs_at(mask, 3)
        if runs >= 3 or samples > CLIP_SUSTAINED_FRACTION * len(x):
            pinned += samples
    return pinned / len(x)


def _flat_fraction(x: np.ndarray, fs: float) -> float:
    win = max(int(FLAT_WINDOW_S * fs), 2)
    hop = max(win // 2, 1)
    if len(x) < win:
        return 0.0
    windows = sliding_window_view(x, win)[::hop]
    return float(np.mean(np.ptp(windows, axis=1) < FLAT_WINDOW_PTP_MV))


def _has_steps(x: np.ndarray, fs: float) -> bool:
    win = max(int(0.2 * fs), 1)
    gap = max(int(0.04 * fs), 1)
    n = len(x) // win
    if n < 3:
        return False
    levels = np.median(x[: n * win].reshape(n, win), axis=1)
    return bool(np.any(np.abs(np.diff(levels)) > STEP_MV)) or bool(
        np.any(np.abs(x[gap:] - x[:-gap]) > 3 * STEP_MV)
    )


def _assess_lead(
    x: np.ndarray, fs: float, bands: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None
) -> tuple[list[str], bool]:
    """(problems, usable) for one lead in mV; `bands` precomputed when the record has no gaps."""
    if bands is None:
        x = _longest_finite_run(x)
    if len(x) < MIN_SEGMENT_S * fs:
        return ["too short (mostly missing samples)"], False
    ptp = float(np.ptp(x))
    if ptp < FLAT_PTP_MV:
        return ["flat"], False

    problems: list[str] = []
    usable = True
    flat_fraction = _flat_fraction(x, fs)
    if flat_fraction >= LEAD_OFF_FLAT_FRACTION:
        problems.append("lead-off")
        usable = False

    clipped = _clipped_fraction(x)
    if clipped > CLIP_FRACTION:
        problems.append("clipped")
        if clipped > 5 * CLIP_FRACTION:
            usable = False

    qrs_band, hf, baseline = bands if bands is not None else _bands(x, fs)
    amplitude = float(np.percentile(qrs_band, 99.5) - np.percentile(qrs_band, 0.5))
    if hf is not None:
        noise_sigma = 1.4826 * float(np.median(np.abs(hf - np.median(hf))))
        if amplitude <= 0 or noise_sigma / amplitude > NOISE_RATIO:
            problems.append("noise")
            usable = False

    wander = float(np.percentile(baseline, 99) - np.percentile(baseline, 1))
    if wander > WANDER_MV and wander > WANDER_RATIO * amplitude:
        problems.append("wander")
    if "lead-off" not in problems and flat_fraction > 0 and _has_steps(x, fs):
        problems.append("lead-off")
        usable = False
    return problems, usable


LEAD_ONE = "lead %(names)s"
LEAD_MANY = "leads %(names)s"
# Per-lead advice: %-templates, so a page can show it in the user's language (localize_issue).
_ADVICE = {
    "flat": "%(leads)s: flat, no signal. The electrode may be disconnected or the lead was not "
    "recorded; check it if you record again.",
    "too short (mostly missing samples)": "%(leads)s: mostly missing samples, not analysed.",
    "lead-off": "%(leads)s: loses contact (flat stretches and sudden jumps). Check that the "
    "electrode sticks to clean, dry skin and that its cable is plugged in.",
    "clipped": "%(leads)s: the signal is cut off at the recorder's range (clipping). Check the "
    "electrode contact; a lower gain setting avoids it.",
    "noise": "%(leads)s: strong high-frequency noise (muscle tremor or mains interference). "
    "Relax, keep warm and still, keep away from mains cables and chargers, and record again.",
    "wander": "%(leads)s: strong baseline wander (breathing or movement). Breathe calmly and keep "
    "still while recording; the analysis filters slow drift.",
}
_ADVICE_ISSUE = re.compile(r"^(?P<many>Leads?) (?P<names>[^:]+): (?P<rest>.+)$", re.DOTALL)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _advice(problem: str, leads: list[str], gettext: Callable[[str], str] = str) -> str:
    phrase = gettext(LEAD_ONE if len(leads) == 1 else LEAD_MANY) % {"names": ", ".join(leads)}
    return _capitalised(gettext(_ADVICE[problem]) % {"leads": phrase})


class _Advice:
    """The per-lead advice inside a refusal: English as text, each issue localized on demand."""

    def __init__(self, issues: list[str]):
        self.issues = issues

    def __str__(self) -> str:
        return " ".join(self.issues)

    def localized(self, gettext: Callable[[str], str]) -> str:
        return " ".join(localize_issue(issue, gettext) for issue in self.issues)


def localize_issue(issue: str, gettext: Callable[[str], str]) -> str:
    """One `quality.issues` text in the user's language.

    Results keep their issues as English text (the contract's `quality.issues`, and checks
    saved long ago), so the per-lead advice made here is recognised by its template and
    rebuilt through the catalog with the same lead names; any other text is looked up as is.
    """
    match = _ADVICE_ISSUE.match(issue)
    if match:
        for problem, template in _ADVICE.items():
            if template.removeprefix("%(leads)s: ") == match["rest"]:
                leads = match["names"].split(", ")
                if (match["many"] == "Leads") == (len(leads) > 1):
                    return _advice(problem, leads, gettext)
    return gettext(issue)


def assess_signal_quality(record: EcgRecord) -> SignalQuality:
    """Per-lead problems, the usable leads, and actionable issues; ok is False when none is usable."""
    lead_notes: dict[str, list[str]] = {}
    usable: list[str] = []
    by_problem: dict[str, list[str]] = {}
    signal = np.asarray(record.signal, dtype=np.float64)
    # One filter pass over all leads when nothing is missing (the usual file); per lead else.
    whole = _bands(signal, record.fs) if np.isfinite(signal).all() and len(signal) > 30 else None
    for idx, name in enumerate(record.lead_names):
        bands = None
        if whole is not None:
            bands = tuple(None if b is None else b[:, idx] for b in whole)
        problems, lead_ok = _assess_lead(signal[:, idx], record.fs, bands)
        if problems:
            lead_notes[name] = problems
        if lead_ok:
            usable.append(name)
        for problem in problems:
            by_problem.setdefault(problem, []).append(name)
    issues = []
    for problem, leads in by_problem.items():
        issues.append(_advice(problem, leads))
    ok = bool(usable)
    if not ok:
        issues.append(MSG_NO_LEAD)
    return SignalQuality(ok=ok, issues=issues, usable_leads=usable, lead_notes=lead_notes)

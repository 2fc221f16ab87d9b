"""What every ECG reader shares: lead-name aliases, units, limits and the final checks.

Each format module turns its file into a raw (samples, channels) array plus channel labels,
a sampling rate and (where the format says) units; `build_record` turns that into the one
normalised `EcgRecord` (standard lead names, mV, float64) or raises `UnusableInputError`
with a message a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import numpy as np

from backend.inference.ecg.record import STANDARD_LEADS, EcgRecord
from backend.inference.errors import UnusableInputError

MIN_FS_HZ = 50.0
MAX_FS_HZ = 10_000.0
MIN_DURATION_S = 2.0
MAX_LEADS = 16
# 10 minutes of a 12-lead record at 500 Hz (29 MB as float64): longer exports are Holter
# recordings, outside what one check analyses.
MAX_VALUES = 12 * 500 * 600
DEFAULT_FS_HZ = 500.0

# What a reader had to assume, for the user: the result lists these among its quality notes
# (analyze.py), as fixed English sentences with Korean text in checks.po. A wrong rate
# scales the heart rate and every interval, so the user must see that it was a guess.
ASSUMED_RATE = (
    "the file does not state its sampling rate, so 500 Hz was assumed; if the heart rate looks "
    "wrong, export the file with its rate or a time column"
)
ASSUMED_LEAD_I = "the file does not name its lead, so it was read as lead I (a one-lead strip)"
ASSUMED_TWELVE_LEAD_ORDER = (
    "the file does not name its leads, so the standard 12-lead order "
    "(I, II, III, aVR, aVL, aVF, V1-V6) was assumed"
)
ASSUMED_EIGHT_LEAD_ORDER = (
    "the file does not name its leads, so the 8 leads were taken as I, II, V1-V6"
)

# Millivolts per unit.
UNIT_SCALE_TO_MV = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "nv": 1e-6,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
}

_ALIASES = {
    "i": "I",
    "ii": "II",
    "iii": "III",
    "di": "I",
    "dii": "II",
    "diii": "III",
    "mli": "I",
    "mlii": "II",
    "mliii": "III",
    "avr": "aVR",
    "avl": "aVL",
    "avf": "aVF",
    **{f"v{k}": f"V{k}" for k in range(1, 7)},
    # European chest-lead labels.
    **{f"c{k}": f"V{k}" for k in range(1, 7)},
}
# Channels that ride along in polygraphic exports (EDF, HDF5, WFDB): dropped with a note.
_NON_ECG = re.compile(
    r"^(?:(?:resp|spo2|sao2|pleth|abp|art|pap|cvp|nbp|eeg|emg|eog|temp|annotation|marker|"
    r"status|event|pulse|time|position|snore|flow|thor|abdo)\w*|bp|hr|x|y|z|vx|vy|vz)$"
)
# What a one-lead device calls its only channel ("ECG", "ECG1", "Signal", "value (mV)"): with
# no other ECG channel beside it, it is read as lead I, as a file without names is.
_UNNAMED_SINGLE_LEAD = {"", "1", "0", "signal", "value", "voltage", "amplitude", "raw", "data"}
_PREFIX = re.compile(r"^(mdc_ecg_lead_|ecg_lead_|ecglead|ecg|ekg|lead)")


def error_text(exc: BaseException) -> str:
    """A library's exception as a refusal parameter: its text, or its type when it has none."""
    return str(exc) or type(exc).__name__


def _label_key(label: str) -> str:
    key = re.sub(r"\(.*?\)|\[.*?\]", "", label).strip().lower()
    key = re.sub(r"[\s\-_.:]+", "_", key).strip("_")
    key = _PREFIX.sub("", key).strip("_")
    return key.replace("_", "")


def standard_lead_name(label: str) -> str | None:
    """'MLII' -> 'II', 'lead I' -> 'I', 'AVR' -> 'aVR', 'ECG V1' -> 'V1'; None when unknown."""
    if str(label).strip().startswith("-"):
        return None  # inverted leads (Cabrera's -aVR) are not the standard lead
    return _ALIASES.get(_label_key(str(label)))


def is_non_ecg_channel(label: str) -> bool:
    key = re.sub(r"[\s\-_.:]+", "", str(label).strip().lower())
    return bool(key) and bool(_NON_ECG.match(key))


def unit_scale(unit: str | None, *, where: str) -> float:
    """Millivolts per unit for a declared unit string; an error for a unit that is not a voltage."""
    key = (unit or "").strip().lower().replace(" ", "")
    if key in UNIT_SCALE_TO_MV:
        return UNIT_SCALE_TO_MV[key]
    raise UnusableInputError(
        "%(where)s: the signal unit %(unit)s is not a voltage unit CareLens knows "
        "(expected mV, uV/µV or V).",
        params={"where": where, "unit": repr(unit)},
    )


def assume(meta: dict, assumption: str) -> None:
    """Record in a record's meta that the reader assumed what the file did not say."""
    if assumption not in meta.setdefault("assumptions", []):
        meta["assumptions"].append(assumption)


def default_lead_names(n_leads: int, *, where: str) -> tuple[list[str], str]:
    """Lead names for an array that carries none, and the assumption (ASSUMED_*) made."""
    if n_leads == len(STANDARD_LEADS):
        return list(STANDARD_LEADS), ASSUMED_TWELVE_LEAD_ORDER
    if n_leads == 8:
        # The 8 independent leads most devices store (III and the augmented leads are derived).
        return ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], ASSUMED_EIGHT_LEAD_ORDER
    if n_leads == 1:
        return ["I"], ASSUMED_LEAD_I
    raise UnusableInputError(
        "%(where)s: the file holds %(channels)d channels but no lead names; add the names "
        "(e.g. a 'leads' list: %(leads)s).",
        params={"where": where, "channels": n_leads, "leads": ", ".join(STANDARD_LEADS)},
    )


def check_size(n_samples: int, n_leads: int, *, where: str) -> None:
    """Refuse empty or oversized signals before reading them into memory."""
    if n_samples <= 0 or n_leads <= 0:
        raise UnusableInputError(
            "%(where)s: the file holds no ECG samples.", params={"where": where}
        )
    if n_leads > 64:
        raise UnusableInputError(
            "%(where)s: %(channels)d channels is not an ECG (at most %(max_leads)d leads expected).",
            params={"where": where, "channels": n_leads, "max_leads": MAX_LEADS},
        )
    if n_samples * n_leads > MAX_VALUES:
        raise UnusableInputError(
            "%(where)s: the recording is too long to analyse (%(samples)d samples x %(channels)d "
            "channels); export an excerpt of at most 10 minutes.",
            params={"where": where, "samples": n_samples, "channels": n_leads},
        )


def check_fs(fs: float | None, *, where: str) -> float:
    try:
        value = float(fs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnusableInputError(
            "%(where)s: the sampling rate %(fs)s is not a number.",
            params={"where": where, "fs": repr(fs)},
        ) from None
    if not np.isfinite(value) or value < MIN_FS_HZ or value > MAX_FS_HZ:
        raise UnusableInputError(
            "%(where)s: a sampling rate of %(fs)g Hz is not plausible for an ECG "
            "(expected %(min_fs)g-%(max_fs)g Hz; 250-1000 Hz is usual).",
            params={"where": where, "fs": value, "min_fs": MIN_FS_HZ, "max_fs": MAX_FS_HZ},
        )
    return value


def as_float_matrix(data: object, *, where: str) -> np.ndarray:
    """A numeric 1-D or 2-D array as float64 (n, channels); anything else is refused."""
    arr = np.asarray(data)
    if arr.dtype.kind not in "iufb":
        raise UnusableInputError(
            "%(where)s: the signal must be numbers, found values of type %(dtype)s.",
            params={"where": where, "dtype": str(arr.dtype)},
        )
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UnusableInputError(
            "%(where)s: expected a 1-D or 2-D signal array, found shape %(shape)s.",
            params={"where": where, "shape": str(arr.shape)},
        )
    return arr


def orient_samples_by_leads(arr: np.ndarray, n_named: int | None, *, where: str) -> np.ndarray:
    """(samples, leads) from either orientation; the lead axis is the short one (or the named one)."""
    rows, cols = arr.shape
    if n_named is not None:
        if cols == n_named and rows != n_named:
            return arr
        if rows == n_named and cols != n_named:
            return arr.T
        if rows == cols == n_named:
            raise UnusableInputError(
                "%(where)s: the signal is only %(samples)d samples long.",
                params={"where": where, "samples": rows},
            )
        raise UnusableInputError(
            "%(where)s: %(names)d lead names given but the signal has shape %(shape)s.",
            params={"where": where, "names": n_named, "shape": str(arr.shape)},
        )
    if cols <= MAX_LEADS < rows:
        return arr
    if rows <= MAX_LEADS < cols:
        return arr.T
    if rows <= MAX_LEADS and cols <= MAX_LEADS:
        raise UnusableInputError(
            "%(where)s: the signal has shape %(shape)s: far too short to be an ECG.",
            params={"where": where, "shape": str(arr.shape)},
        )
    raise UnusableInputError(
        "%(where)s: cannot tell which axis of shape %(shape)s holds the leads "
        "(expected samples x leads with at most %(max_leads)d leads).",
        params={"where": where, "shape": str(arr.shape), "max_leads": MAX_LEADS},
    )


def _robust_amplitude(signal: np.ndarray) -> float:
    """Median over leads of the 99th percentile of |x - median(x)|; NaN-tolerant."""
    finite_cols = [c for c in signal.T if np.isfinite(c).sum() > 0]
    if not finite_cols:
        return 0.0
    per_lead = []
    for col in finite_cols:
        col = col[np.isfinite(col)]
        per_lead.append(float(np.percentile(np.abs(col - np.median(col)), 99)))
    return float(np.median(per_lead))


def build_record(
    signal: np.ndarray,
    fs: float | None,
    labels: Sequence[str] | None,
    *,
    fmt: str,
    where: str,
    scale_to_mv: float | None = None,
    meta: dict | None = None,
    recorded_at: datetime | None = None,
) -> EcgRecord:
    """The normalised record: standard lead names, mV float64 (n, leads), plausible rate and size.
    `recorded_at` (the file's recording time) is kept only when plausible_recording_time says so.

    `scale_to_mv` is None when the file does not declare its units: then millivolts are
    assumed, unless the amplitudes are unmistakably microvolts (converted, with a note).
    """
    meta = dict(meta or {})
    signal = as_float_matrix(signal, where=where)
    n_samples, n_ch = signal.shape
    check_size(n_samples, n_ch, where=where)
    fs = check_fs(fs, where=where)

    if labels is None:
        labels, assumption = default_lead_names(n_ch, where=where)
        assume(meta, assumption)
    labels = [str(label) for label in labels]
    if len(labels) != n_ch:
        raise UnusableInputError(
            "%(where)s: %(names)d lead names for %(channels)d signal channels.",
            params={"where": where, "names": len(labels), "channels": n_ch},
        )

    ecg_labels = [label for label in labels if not is_non_ecg_channel(label)]
    single_unnamed = len(ecg_labels) == 1 and _label_key(ecg_labels[0]) in _UNNAMED_SINGLE_LEAD
    if single_unnamed:
        assume(meta, ASSUMED_LEAD_I)
    keep: list[int] = []
    names: list[str] = []
    dropped: list[str] = []
    unknown: list[str] = []
    for idx, label in enumerate(labels):
        name = "I" if single_unnamed and label == ecg_labels[0] else standard_lead_name(label)
        if name is None:
            (dropped if is_non_ecg_channel(label) else unknown).append(label)
        elif name in names:
            dropped.append(label)
        else:
            keep.append(idx)
            names.append(name)
    if unknown:
        raise UnusableInputError(
            "%(where)s: unknown lead name(s) %(names)s; expected standard leads (%(leads)s) or "
            "common aliases (MLII, DI, lead I, AVR, v1...).",
            params={
                "where": where,
                "names": ", ".join(repr(u) for u in unknown),
                "leads": ", ".join(STANDARD_LEADS),
            },
        )
    if not names:
        raise UnusableInputError(
            "%(where)s: no ECG lead found among the channels %(channels)s.",
            params={"where": where, "channels": ", ".join(labels)},
        )
    if dropped:
        meta.setdefault("notes", []).append(
            "ignored channels that are not extra ECG leads: " + ", ".join(dropped)
        )

    order = sorted(range(len(names)), key=lambda i: STANDARD_LEADS.index(names[i]))
    signal = signal[:, [keep[i] for i in order]]
    names = [names[i] for i in order]
    signal = np.where(np.isfinite(signal), signal, np.nan)

    if n_samples / fs < MIN_DURATION_S:
        raise UnusableInputError(
            "%(where)s: the recording is %(seconds).3g s long (%(rate)g Hz, samples: %(samples)d); "
            "at least %(minimum)g s are needed (10 s is standard).",
            params={
                "where": where,
                "samples": n_samples,
                "rate": fs,
                "seconds": n_samples / fs,
                "minimum": MIN_DURATION_S,
            },
        )
    if not np.isfinite(signal).any():
        raise UnusableInputError(
            "%(where)s: every sample is missing (NaN).", params={"where": where}
        )

    if scale_to_mv is not None:
        signal = signal * scale_to_mv
        amplitude = _robust_amplitude(signal)
        if amplitude > 20.0:
            raise UnusableInputError(
                "%(where)s: amplitudes of about %(amplitude).0f mV are not physiological "
                "(an ECG spans a few mV): the file probably stores microvolts or raw ADC "
                "counts labelled as millivolts. Check the export's units or gain.",
                params={"where": where, "amplitude": amplitude},
            )
    else:
        amplitude = _robust_amplitude(signal)
        if 50.0 <= amplitude <= 20_000.0:
            signal = signal * 1e-3
            meta["units_inferred"] = "uV"
            meta.setdefault("notes", []).append(
                "no units in the file: amplitudes indicate microvolts, converted to mV"
            )
        elif amplitude > 20.0:
            raise UnusableInputError(
                "%(where)s: the file gives no units and amplitudes of about %(amplitude).0f "
                "are neither millivolts nor microvolts of an ECG; state the units "
                "(e.g. a 'units' entry of 'mV' or 'uV').",
                params={"where": where, "amplitude": amplitude},
            )
        else:
            meta.setdefault("units_assumed", "mV")

    meta.setdefault("format", fmt)
    return EcgRecord(
        signal=np.ascontiguousarray(signal, dtype=np.float64),
        fs=fs,
        lead_names=names,
        source=f"file:{fmt}",
        meta=meta,
        recorded_at=plausible_recording_time(recorded_at),
    )


# Anonymised EDF files say 1985-01-01; digital ECG files from before 1990 are not what people
# bring to a home app, so an earlier date is a placeholder, not a recording time.
EARLIEST_RECORDING = datetime(1990, 1, 1)


def plausible_recording_time(value: datetime | None) -> datetime | None:
    """value, or None when it is a placeholder (before 1990) or later than tomorrow."""
    if value is None:
        return None
    naive = value.replace(tzinfo=None)
    now = datetime.now(UTC).replace(tzinfo=None)
    if naive < EARLIEST_RECORDING or naive > now + timedelta(days=1):
        return None
    return value


_COMPACT_TIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d+)?)?(?:([+-])(\d{2})(\d{2}))?$"
)


def parse_compact_time(text: str | None) -> datetime | None:
    """YYYYMMDD[HHMMSS[.ffff]][+-HHMM], the timestamp of DICOM (DT) and of HL7 v3 (TS, aECG).

    Written here because the two formats share it and neither pydicom's DT (DICOM's rules for
    partial values) nor any HL7 v3 package is a better fit for one regular expression."""
    match = _COMPACT_TIME.match((text or "").strip())
    if not match:
        return None
    y, mo, d, h, mi, sec, sign, oh, om = match.groups()
    try:
        value = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0))
    except ValueError:
        return None
    if sign:
        offset = timedelta(hours=int(oh), minutes=int(om))
        value = value.replace(tzinfo=timezone(offset if sign == "+" else -offset))
    return value

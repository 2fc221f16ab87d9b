"""CSV/TXT: one column per lead with a header of lead names (the Chapman/Shaoxing layout), or
an Apple Watch ECG export (apple_watch_format.py).

An optional time column gives the rate: in seconds or milliseconds ("time", "time_ms",
"Time (s)", "Elapsed time"), or as clock times ("0:01.250", "00:00:01.250"). Units may be given
in the header ("II (uV)", "V1 [mV]") or, as in PhysioNet's CSV exports, on a second header row
("'Elapsed time','MLII','V5'" then "'hh:mm:ss.mmm','mV','mV'"). Semicolon- or tab-separated
files from a decimal-comma locale ("0,125;0,250") are read as numbers. The Chapman/Shaoxing
files carry no units and hold microvolts at 500 Hz: the amplitude check in `build_record`
recognises that and notes it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable

import numpy as np

from backend.inference.ecg.readers.apple_watch_format import try_read_apple_watch
from backend.inference.ecg.readers.normalise import (
    ASSUMED_RATE,
    DEFAULT_FS_HZ,
    MAX_VALUES,
    UNIT_SCALE_TO_MV,
    assume,
    build_record,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

_TIME = re.compile(
    r"^(?:elapsed[\s_]*)?(?:time|t|sec|secs|seconds|timestamp|elapsed)"
    r"(?:[\s_\-]*(ms|msec|millis|milliseconds|s|sec|secs|seconds))?$",
    re.IGNORECASE,
)
_INDEX = re.compile(r"^(sample|samples|index|idx|n|#|unnamed:?\s*0)$", re.IGNORECASE)
_UNIT_IN_NAME = re.compile(r"^(.*?)[\s_]*[\(\[]\s*([^\)\]]*)\s*[\)\]]\s*$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")
_MILLISECONDS = {"ms", "msec", "millis", "milliseconds"}
_SECONDS = {"s", "sec", "secs", "second", "seconds", "hh:mm:ss.mmm", "mm:ss.mmm", "hh:mm:ss"}
MSG_NOT_TEXT = "%(where)s: not a text (CSV) file."


def _decode(data: bytes, where: str) -> str:
    if b"\x00" in data[:4096]:
        raise UnusableInputError(MSG_NOT_TEXT, params={"where": where})
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnusableInputError(MSG_NOT_TEXT, params={"where": where})  # pragma: no cover


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parses(parse: Callable[[list[str]], list[float]], row: list[str]) -> bool:
    try:
        parse(row)
    except ValueError:
        return False
    return True


def _clock_seconds(text: str) -> float:
    """'0:01.250' or '00:00:01.250' -> seconds; plain numbers pass through float()."""
    match = _CLOCK.match(text)
    if not match:
        return float(text)
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _rate_from_times(times: np.ndarray) -> float | None:
    """Samples per second from a time column in seconds; None when the times do not advance.

    Over the whole span, not the median step: exports round their times (PhysioNet's to the
    millisecond, so 360 Hz steps read 0.003 s, which alone would say 333 Hz).
    """
    times = times[np.isfinite(times)]
    if len(times) < 2:
        return None
    step = float(np.median(np.diff(times)))
    span = float(times[-1] - times[0])
    if step <= 0 or span <= 0:
        return None
    over_span = (len(times) - 1) / span
    rate = over_span if abs(over_span * step - 1.0) < 0.2 else 1.0 / step
    # Rounded times leave a whole-number rate a little off (360.008 Hz); devices use whole ones.
    return float(round(rate)) if abs(rate - round(rate)) < 1e-3 * rate else round(rate, 3)


def _cells(text: str, where: str) -> tuple[list[list[str]], str | None]:
    """The file's non-comment rows as stripped cells, and the delimiter (None: whitespace)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UnusableInputError("%(where)s: the CSV file is empty.", params={"where": where})
    delimiter: str | None = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    if lines[0].count(delimiter) == 0:
        delimiter = None  # whitespace-separated single or multi-column text
    if delimiter:
        rows = [[c.strip() for c in row] for row in csv.reader(lines, delimiter=delimiter)]
    else:
        rows = [ln.split() for ln in lines]
        if len(rows) > 1 and all(len(row) == 1 for row in rows[1:]):
            rows[0] = [lines[0].strip()]  # one column whose name has a space: "ECG (mV)"
    # PhysioNet's exports quote with single quotes ('Elapsed time','MLII').
    rows = [
        [c[1:-1].strip() if len(c) > 1 and c[0] == c[-1] == "'" else c for c in row]
        for row in rows
    ]
    # A trailing delimiter on every line (spreadsheet exports) makes an empty last column.
    while rows[0] and rows[0][-1] == "" and all(len(r) == len(rows[0]) and not r[-1] for r in rows):
        rows = [r[:-1] for r in rows]
    return rows, delimiter


def _units_row(row: list[str], time_columns: set[int]) -> bool:
    """A second header row of units ('seconds','mV','mV'), as PhysioNet's CSV exports write."""
    if not row or any(_is_number(c) for c in row if c):
        return False
    return all(
        (c.lower() in _SECONDS | _MILLISECONDS) if i in time_columns
        else c.lower().replace(" ", "") in UNIT_SCALE_TO_MV
        for i, c in enumerate(row)
    )


def read_csv(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("CSV file")
    text = _decode(data, where)
    watch_record = try_read_apple_watch(text, where)
    if watch_record is not None:
        return watch_record
    rows, delimiter = _cells(text, where)
    header = rows[0]
    has_header = not all(_is_number(c) for c in header if c)

    labels: list[str] = []
    units: list[str | None] = []
    time_columns: set[int] = set()
    for idx, col in enumerate(header if has_header else []):
        match = _UNIT_IN_NAME.match(col)
        label, unit = (match.group(1), match.group(2)) if match else (col, None)
        time_match = _TIME.match(label.strip())
        if time_match:
            time_columns.add(idx)
        labels.append(label.strip())
        units.append(unit or (time_match.group(1) if time_match else None))
    body = rows[1:] if has_header else rows
    if has_header and body and _units_row(body[0], time_columns):
        units = [u or c for u, c in zip(units, body[0])]
        body = body[1:]

    n_cols = len(header)
    if n_cols * len(body) > MAX_VALUES * 2:
        raise UnusableInputError(
            "%(where)s: the CSV is too large for one ECG recording.", params={"where": where}
        )
    if not body:
        raise UnusableInputError(
            "%(where)s: the CSV has a header but no samples.", params={"where": where}
        )
    decimal_comma = delimiter != "," and any(
        _DECIMAL_COMMA.match(c) for row in body[:20] for c in row
    )

    def number(cell: str, column: int) -> float:
        if not cell:
            return np.nan
        if decimal_comma:
            cell = cell.replace(",", ".")
        return _clock_seconds(cell) if column in time_columns else float(cell)

    def numbers(row: list[str]) -> list[float]:
        return [number(c, i) for i, c in enumerate(row)]

    try:
        values = np.array([numbers(row) for row in body], dtype=np.float64)
    except ValueError:
        bad = next((i for i, row in enumerate(body) if not _parses(numbers, row)), 0)
        raise UnusableInputError(
            "%(where)s: row %(row)d holds text where numbers were expected.",
            params={"where": where, "row": bad + 1 + (len(rows) - len(body))},
        ) from None
    if values.ndim != 2 or values.shape[1] != n_cols:
        raise UnusableInputError(
            "%(where)s: the rows do not all have %(columns)d columns (truncated or ragged CSV?).",
            params={"where": where, "columns": n_cols},
        )

    meta: dict = {}
    fs: float | None = None
    lead_labels: list[str] | None = None
    scale: float | None = None
    if has_header:
        keep = []
        lead_labels = []
        scales = set()
        for idx, label in enumerate(labels):
            if _INDEX.match(label):
                continue
            if idx in time_columns:
                if fs is None:
                    per_second = 1000.0 if (units[idx] or "").lower() in _MILLISECONDS else 1.0
                    fs = _rate_from_times(values[:, idx] / per_second)
                continue
            keep.append(idx)
            lead_labels.append(label)
            if units[idx]:
                scales.add(unit_scale(units[idx], where=where))
        if len(scales) > 1:
            raise UnusableInputError(
                "%(where)s: the columns use different units.", params={"where": where}
            )
        if scales:
            scale = scales.pop()
        if not keep:
            raise UnusableInputError(
                "%(where)s: the CSV has no signal columns.", params={"where": where}
            )
        values = values[:, keep]
    if fs is None:
        fs = DEFAULT_FS_HZ
        assume(meta, ASSUMED_RATE)
    return build_record(
        values, fs, lead_labels, fmt="csv", where=where, scale_to_mv=scale, meta=meta
    )

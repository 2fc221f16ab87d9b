"""CSV/TXT: one column per lead with a header of lead names (the Chapman/Shaoxing layout), or
an Apple Watch ECG export (apple_watch_format.py).

An optional time column gives the rate; units may be given in the header ("II (uV)", "V1 [mV]").
The Chapman/Shaoxing files carry no units and hold microvolts at 500 Hz: the amplitude check
in `build_record` recognises that and notes it.
"""

from __future__ import annotations

import csv
import re

import numpy as np

from backend.inference.ecg.readers.apple_watch_format import try_read_apple_watch
from backend.inference.ecg.readers.normalise import (
    DEFAULT_FS_HZ,
    MAX_VALUES,
    build_record,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

_TIME = re.compile(r"^(time|t|sec|secs|seconds|timestamp|elapsed)\b", re.IGNORECASE)
_INDEX = re.compile(r"^(sample|samples|index|idx|n|#|unnamed:?\s*0)$", re.IGNORECASE)
_UNIT_IN_NAME = re.compile(r"^(.*?)[\s_]*[\(\[]\s*([^\)\]]*)\s*[\)\]]\s*$")
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


def read_csv(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("CSV file")
    text = _decode(data, where)
    watch_record = try_read_apple_watch(text, where)
    if watch_record is not None:
        return watch_record
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UnusableInputError("%(where)s: the CSV file is empty.", params={"where": where})
    delimiter = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    if lines[0].count(delimiter) == 0:
        delimiter = None  # whitespace-separated single or multi-column text
    if delimiter:
        rows = [[c.strip() for c in row] for row in csv.reader(lines, delimiter=delimiter)]
    else:
        rows = [ln.split() for ln in lines]
    header = rows[0]
    has_header = not all(_is_number(c) for c in header if c)
    body = rows[1:] if has_header else rows
    n_cols = len(header)
    if n_cols * len(body) > MAX_VALUES * 2:
        raise UnusableInputError(
            "%(where)s: the CSV is too large for one ECG recording.", params={"where": where}
        )
    if not body:
        raise UnusableInputError(
            "%(where)s: the CSV has a header but no samples.", params={"where": where}
        )
    try:
        values = np.array(
            [[float(c) if c else np.nan for c in row] for row in body], dtype=np.float64
        )
    except ValueError:
        bad = next(
            (i for i, row in enumerate(body) if not all(_is_number(c) or not c for c in row)), 0
        )
        raise UnusableInputError(
            "%(where)s: row %(row)d holds text where numbers were expected.",
            params={"where": where, "row": bad + 1 + has_header},
        ) from None
    if values.ndim != 2 or values.shape[1] != n_cols:
        raise UnusableInputError(
            "%(where)s: the rows do not all have %(columns)d columns (truncated or ragged CSV?).",
            params={"where": where, "columns": n_cols},
        )

    meta: dict = {}
    fs: float | None = None
    labels: list[str] | None = None
    scale: float | None = None
    if has_header:
        keep = []
        labels = []
        units = set()
        for idx, col in enumerate(header):
            match = _UNIT_IN_NAME.match(col)
            label, unit = (match.group(1), match.group(2)) if match else (col, None)
            if _INDEX.match(label.strip()):
                continue
            if _TIME.match(label.strip()):
                times = values[:, idx]
                step = float(np.nanmedian(np.diff(times))) if len(times) > 1 else 0.0
                if step > 0:
                    unit_key = (unit or "").lower()
                    if unit_key == "ms" or (not unit_key and "ms" in label.lower()):
                        step /= 1000.0
                    fs = 1.0 / step
                continue
            keep.append(idx)
            labels.append(label.strip())
            if unit:
                units.add(unit_scale(unit, where=where))
        if len(units) > 1:
            raise UnusableInputError(
                "%(where)s: the columns use different units.", params={"where": where}
            )
        if units:
            scale = units.pop()
        if not keep:
            raise UnusableInputError(
                "%(where)s: the CSV has no signal columns.", params={"where": where}
            )
        values = values[:, keep]
    if fs is None:
        fs = DEFAULT_FS_HZ
        meta["notes"] = [f"no time column: assumed {DEFAULT_FS_HZ:g} Hz"]
    return build_record(values, fs, labels, fmt="csv", where=where, scale_to_mv=scale, meta=meta)

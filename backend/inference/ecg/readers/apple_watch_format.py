"""Apple Watch ECG CSV (Health app export, electrocardiograms/ecg_YYYY-MM-DD.csv).

The file is a block of "key,value" lines, then one voltage per line (lead I, 512 Hz, 30 s):

    Name,Jane Doe
    Recorded Date,2026-11-20 09:30:00 +0900
    Classification,Sinus Rhythm
    Device,"Watch6,7"
    Sample Rate,512 hertz
    Lead,Lead I
    Unit,µV

    -148.262
    ...

The keys, and the decimal separator of the samples ("-265,868" on a Portuguese phone), follow
the phone's language, so the file is recognised by its shape, not by English keys: a header of
key,value lines, one value of the form "<number> hertz", then a column of single numbers.
No maintained reader for this layout exists on PyPI, hence this one.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime

import numpy as np

from backend.inference.ecg.readers.normalise import (
    UNIT_SCALE_TO_MV,
    build_record,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError

_SAMPLE = re.compile(r'^"?([-+\u2212]?\d+(?:[.,]\d+)?)"?$')
_RATE = re.compile(
    r"^(\d+(?:[.,]\d+)?)\s*(hertz|hz|헤르츠|ヘルツ|赫兹|赫茲|герц|гц)\.?$", re.IGNORECASE
)
# "Recorded Date" (under the phone language's key): the only value with a date and a time.
_RECORDED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?: [+-]\d{4})?$")
_MIN_HEADER_LINES = 3
_MAX_HEADER_LINES = 40  # Apple's header has about ten lines; past this it is another layout
# The watch records lead I (a finger on the crown, the other arm at the wrist) and nothing else;
# the file's "Lead" line is in the phone's language, so it is not parsed.
WATCH_LEAD = "I"


def _unit_key(text: str) -> str:
    return text.lower().replace(" ", "")


def _sample_value(line: str) -> float | None:
    match = _SAMPLE.match(line.strip())
    if not match:
        return None
    return float(match.group(1).replace("\u2212", "-").replace(",", "."))


def _split_header(lines: list[str]) -> tuple[list[tuple[str, str]], int] | None:
    """(key,value rows, index of the first sample line), or None when the text is not a
    key,value header followed by samples."""
    rows: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if _sample_value(line) is not None:
            return (rows, i) if len(rows) >= _MIN_HEADER_LINES else None
        row = next(csv.reader([line]))
        if not row[0].strip():
            return None
        key, value = row[0].strip(), ",".join(row[1:]).strip()  # an unquoted comma in a value
        rows.append((key, value))
        if len(rows) > _MAX_HEADER_LINES:
            return None
    return None


def try_read_apple_watch(text: str, where: str) -> EcgRecord | None:
    """The record, or None when the text does not have the Apple Watch export's shape."""
    lines = text.splitlines()
    split = _split_header(lines)
    if split is None:
        return None
    header, first = split
    values = [value for _, value in header]
    rate = next((m for m in map(_RATE.match, values) if m), None)
    if rate is None:
        return None
    fs = float(rate.group(1).replace(",", "."))
    unit = next((v for v in values if _unit_key(v) in UNIT_SCALE_TO_MV), None)

    samples: list[float] = []
    for number, line in enumerate(lines[first:], start=first + 1):
        if not line.strip():
            continue
        value = _sample_value(line)
        if value is None:
            raise UnusableInputError(
                "%(where)s: line %(row)d holds text where a sample value was expected.",
                params={"where": where, "row": number},
            )
        samples.append(value)
    return build_record(
        np.asarray(samples, dtype=np.float64)[:, None],
        fs,
        [WATCH_LEAD],
        fmt="apple_watch_csv",
        where=where,
        scale_to_mv=UNIT_SCALE_TO_MV[_unit_key(unit)] if unit else None,
        recorded_at=_recorded_at(values),
    )


def _recorded_at(values: list[str]) -> datetime | None:
    text = next((v for v in values if _RECORDED.match(v)), None)
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z" if len(text) > 19 else "%Y-%m-%d %H:%M:%S")

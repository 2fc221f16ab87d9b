"""HL7 aECG (annotated ECG, FDA XML): the rhythm series' sequences of digits, origin and scale.

The document arrives parsed (xml_tree.parse_xml_safely, called by the readers' dispatch).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np

from backend.inference.ecg.readers.normalise import (
    MAX_VALUES,
    build_record,
    check_fs,
    parse_compact_time,
    unit_scale,
)
from backend.inference.ecg.readers.xml_tree import child, children
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError

_TIME_SCALE_S = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6}


def read_aecg(root: ET.Element, where: str) -> EcgRecord:
    """The record in a parsed HL7 aECG document (root <AnnotatedECG>)."""
    # The rhythm waveforms sit in AnnotatedECG/component/series; derived series (median beats)
    # are nested under series/derivation and are deliberately not read.
    series = [s for comp in children(root, "component") for s in children(comp, "series")]
    sequence_set = None
    for s in series:
        for comp in children(s, "component"):
            found = child(comp, "sequenceSet")
            if found is not None:
                sequence_set = found
                break
        if sequence_set is not None:
            break
    if sequence_set is None:
        raise UnusableInputError(
            "%(where)s: the aECG document holds no rhythm waveform series.",
            params={"where": where},
        )

    fs: float | None = None
    first_sample_time: datetime | None = None
    labels: list[str] = []
    columns: list[np.ndarray] = []
    total = 0
    for comp in children(sequence_set, "component"):
        seq = child(comp, "sequence")
        if seq is None:
            continue
        code = child(seq, "code")
        value = child(seq, "value")
        if code is None or value is None:
            continue
        code_text = code.get("code", "")
        if code_text.startswith("TIME_"):
            increment = child(value, "increment")
            if increment is None:
                raise UnusableInputError(
                    "%(where)s: the time sequence has no increment.", params={"where": where}
                )
            unit = increment.get("unit", "s").lower()
            if unit not in _TIME_SCALE_S:
                raise UnusableInputError(
                    "%(where)s: unknown time increment unit %(unit)s.",
                    params={"where": where, "unit": repr(unit)},
                )
            step = float(increment.get("value", "nan")) * _TIME_SCALE_S[unit]
            fs = 1.0 / step if step > 0 else float("nan")
            head = child(value, "head")
            if code_text == "TIME_ABSOLUTE" and head is not None:
                first_sample_time = parse_compact_time(head.get("value"))
            continue
        digits = child(value, "digits")
        if digits is None or not (digits.text or "").strip():
            raise UnusableInputError(
                "%(where)s: lead %(lead)s has no samples.",
                params={"where": where, "lead": repr(code_text)},
            )
        origin = child(value, "origin")
        scale = child(value, "scale")
        if scale is None or not scale.get("unit"):
            raise UnusableInputError(
                "%(where)s: lead %(lead)s has no scale unit; amplitudes cannot be converted.",
                params={"where": where, "lead": repr(code_text)},
            )
        to_mv = unit_scale(scale.get("unit"), where=f"{where}, lead {code_text!r}")
        tokens = digits.text.split()
        total += len(tokens)
        if total > MAX_VALUES:
            raise UnusableInputError(
                "%(where)s: the recording is too long to analyse.", params={"where": where}
            )
        try:
            raw = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            raise UnusableInputError(
                "%(where)s: lead %(lead)s holds text where sample numbers were expected.",
                params={"where": where, "lead": repr(code_text)},
            ) from None
        offset = 0.0
        if origin is not None:
            origin_scale = unit_scale(origin.get("unit") or scale.get("unit"), where=where)
            offset = float(origin.get("value", "0")) * origin_scale
        columns.append(raw * float(scale.get("value", "nan")) * to_mv + offset)
        labels.append(code_text)
    if fs is None:
        raise UnusableInputError(
            "%(where)s: the aECG series has no time sequence (sampling rate).",
            params={"where": where},
        )
    fs = check_fs(fs, where=where)
    if not columns:
        raise UnusableInputError(
            "%(where)s: the aECG series holds no lead sequences.", params={"where": where}
        )
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise UnusableInputError(
            "%(where)s: the leads have different lengths %(lengths)s (truncated file?).",
            params={"where": where, "lengths": str(sorted(lengths))},
        )
    return build_record(
        np.stack(columns, axis=1), fs, labels, fmt="aecg", where=where, scale_to_mv=1.0,
        recorded_at=_effective_time(root, series) or first_sample_time,
    )


def _effective_time(root: ET.Element, series: list[ET.Element]) -> datetime | None:
    """The document's effectiveTime (its start), else its first series'."""
    for elem in [root, *series[:1]]:
        effective = child(elem, "effectiveTime")
        low = child(effective, "low") if effective is not None else None
        if low is not None and (value := parse_compact_time(low.get("value"))) is not None:
            return value
    return None

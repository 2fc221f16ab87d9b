"""HL7 aECG (annotated ECG, FDA XML): the rhythm series' sequences of digits, origin and scale.

Parsed with the standard library only after refusing any DTD: without a DOCTYPE there can be
no entity definitions, so neither entity-expansion bombs nor external entities (XXE) apply.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np

from backend.inference.ecg.readers.normalise import (
    MAX_VALUES,
    build_record,
    check_fs,
    error_text,
    parse_compact_time,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_TIME_SCALE_S = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    found = _children(elem, name)
    return found[0] if found else None


def parse_xml_safely(data: bytes, where: str) -> ET.Element:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnusableInputError(
            "%(where)s: the XML must be UTF-8 encoded.", params={"where": where}
        ) from None
    if _DTD.search(text):
        raise UnusableInputError(
            "%(where)s: XML with a DOCTYPE/ENTITY declaration is refused for safety.",
            params={"where": where},
        )
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # a str must not declare another encoding
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise UnusableInputError(
            "%(where)s: the XML is malformed or truncated (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None


def read_aecg(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("aECG file")
    root = parse_xml_safely(data, where)
    if _local(root.tag) != "AnnotatedECG":
        raise UnusableInputError(
            "%(where)s: XML ECG format <%(root)s> is not supported; "
            "export HL7 aECG (AnnotatedECG), DICOM, EDF or WFDB instead.",
            params={"where": where, "root": _local(root.tag)},
        )
    # The rhythm waveforms sit in AnnotatedECG/component/series; derived series (median beats)
    # are nested under series/derivation and are deliberately not read.
    series = [s for comp in _children(root, "component") for s in _children(comp, "series")]
    sequence_set = None
    for s in series:
        for comp in _children(s, "component"):
            found = _child(comp, "sequenceSet")
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
    for comp in _children(sequence_set, "component"):
        seq = _child(comp, "sequence")
        if seq is None:
            continue
        code = _child(seq, "code")
        value = _child(seq, "value")
        if code is None or value is None:
            continue
        code_text = code.get("code", "")
        if code_text.startswith("TIME_"):
            increment = _child(value, "increment")
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
            head = _child(value, "head")
            if code_text == "TIME_ABSOLUTE" and head is not None:
                first_sample_time = parse_compact_time(head.get("value"))
            continue
        digits = _child(value, "digits")
        if digits is None or not (digits.text or "").strip():
            raise UnusableInputError(
                "%(where)s: lead %(lead)s has no samples.",
                params={"where": where, "lead": repr(code_text)},
            )
        origin = _child(value, "origin")
        scale = _child(value, "scale")
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
        effective = _child(elem, "effectiveTime")
        low = _child(effective, "low") if effective is not None else None
        if low is not None and (value := parse_compact_time(low.get("value"))) is not None:
            return value
    return None

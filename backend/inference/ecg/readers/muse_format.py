"""GE MUSE XML (<RestingECG>): the resting ECG export of GE's MUSE system and MAC carts,
the XML most hospitals hand out.

Each <Waveform> is "Median" (one averaged beat) or "Rhythm" (the recording); only the rhythm
is read. Each <LeadData> holds one lead as base64 little-endian int16 (<WaveFormData>), with
<LeadAmplitudeUnitsPerBit> and <LeadAmplitudeUnits>; the rate is SampleBase x 10^SampleExponent.
MUSE stores the 8 independent leads (I, II, V1-V6); III, aVR, aVL and aVF are computed from I
and II by Einthoven's and Goldberger's equations, as GE's own viewer does. No maintained
Python reader of this layout exists on PyPI, hence this one.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np

from backend.inference.ecg.readers.normalise import (
    MAX_VALUES,
    build_record,
    check_fs,
    unit_scale,
)
from backend.inference.ecg.readers.xml_tree import child, child_text, children
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError

_LIMB_LEADS_FROM_I_AND_II = {
    "III": (-1.0, 1.0),  # II - I
    "aVR": (-0.5, -0.5),  # -(I + II) / 2
    "aVL": (1.0, -0.5),  # I - II / 2
    "aVF": (-0.5, 1.0),  # II - I / 2
}


def _rhythm_waveform(root: ET.Element, where: str) -> ET.Element:
    waveforms = children(root, "Waveform")
    for waveform in waveforms:
        if child_text(waveform, "WaveformType").lower() == "rhythm":
            return waveform
    if waveforms:
        raise UnusableInputError(
            "%(where)s: the MUSE file holds only median beats, not the recording; export it "
            "with the full-disclosure (rhythm) waveform.",
            params={"where": where},
        )
    raise UnusableInputError(
        "%(where)s: the MUSE file holds no waveform.", params={"where": where}
    )


def _number(text: str, what: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UnusableInputError(
            "%(where)s: the MUSE field %(field)s is not a number.",
            params={"where": where, "field": what},
        ) from None


def _lead_samples(lead: ET.Element, lead_id: str, where: str) -> np.ndarray:
    encoded = "".join(child_text(lead, "WaveFormData").split())
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw or len(raw) % 2:
        raise UnusableInputError(
            "%(where)s: lead %(lead)s has no readable samples (damaged or truncated file?).",
            params={"where": where, "lead": lead_id},
        )
    per_bit = _number(child_text(lead, "LeadAmplitudeUnitsPerBit") or "1", "LeadAmplitudeUnitsPerBit", where)
    units = child_text(lead, "LeadAmplitudeUnits")
    if not units:
        raise UnusableInputError(
            "%(where)s: lead %(lead)s does not state its amplitude units.",
            params={"where": where, "lead": lead_id},
        )
    to_mv = unit_scale(units, where=f"{where}, lead {lead_id}")
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) * per_bit * to_mv


def _acquired_at(root: ET.Element) -> datetime | None:
    test = child(root, "TestDemographics")
    if test is None:
        return None
    stamp = f"{child_text(test, 'AcquisitionDate')} {child_text(test, 'AcquisitionTime')}"
    try:
        return datetime.strptime(stamp, "%m-%d-%Y %H:%M:%S")
    except ValueError:
        return None


def read_muse(root: ET.Element, where: str) -> EcgRecord:
    """The record in a parsed GE MUSE document (root <RestingECG>)."""
    waveform = _rhythm_waveform(root, where)
    base = _number(child_text(waveform, "SampleBase"), "SampleBase", where)
    exponent = _number(child_text(waveform, "SampleExponent") or "0", "SampleExponent", where)
    fs = check_fs(base * 10.0**exponent, where=where)

    leads: dict[str, np.ndarray] = {}
    total = 0
    for lead in children(waveform, "LeadData"):
        lead_id = child_text(lead, "LeadID") or "?"
        samples = _lead_samples(lead, lead_id, where)
        total += samples.size
        if total > MAX_VALUES:
            raise UnusableInputError(
                "%(where)s: the recording is too long to analyse.", params={"where": where}
            )
        leads[lead_id] = samples
    if not leads:
        raise UnusableInputError(
            "%(where)s: the MUSE rhythm waveform holds no leads.", params={"where": where}
        )
    length = min(len(s) for s in leads.values())
    if max(len(s) for s in leads.values()) != length:
        raise UnusableInputError(
            "%(where)s: the leads have different lengths %(lengths)s (truncated file?).",
            params={"where": where, "lengths": str(sorted({len(s) for s in leads.values()}))},
        )
    if "I" in leads and "II" in leads:
        for name, (of_i, of_ii) in _LIMB_LEADS_FROM_I_AND_II.items():
            if name not in leads:
                leads[name] = of_i * leads["I"] + of_ii * leads["II"]
    return build_record(
        np.stack(list(leads.values()), axis=1),
        fs,
        list(leads),
        fmt="muse",
        where=where,
        scale_to_mv=1.0,
        recorded_at=_acquired_at(root),
    )

"""DICOM ECG waveforms (12-lead, general ECG, ambulatory) via pydicom."""

from __future__ import annotations

import io
import re
import warnings
from datetime import datetime

import numpy as np
import pydicom

from backend.inference.ecg.readers.normalise import (
    build_record,
    check_fs,
    check_size,
    error_text,
    parse_compact_time,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

_DTYPES = {
    (8, "SB"): np.int8,
    (8, "UB"): np.uint8,
    (16, "SS"): np.int16,
    (16, "US"): np.uint16,
    (32, "SL"): np.int32,
    (32, "UL"): np.uint32,
}


def _channel_label(channel) -> str:
    for seq_name in ("ChannelSourceSequence",):
        seq = channel.get(seq_name)
        if seq:
            item = seq[0]
            return str(item.get("CodeMeaning") or item.get("CodeValue") or "").strip()
    return str(channel.get("ChannelLabel", "")).strip()


def read_dicom(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("DICOM file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every damaged element it meets
        try:
            return _read(data, where)
        except UnusableInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom parses elements lazily, raising on access
            raise UnusableInputError(
                "%(where)s: the DICOM file is damaged (%(error)s).",
                params={"where": where, "error": error_text(exc)},
            ) from None


def _read(data: bytes, where: str) -> EcgRecord:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises varied errors on damage
        raise UnusableInputError(
            "%(where)s: not a readable DICOM file (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None
    try:
        groups = list(ds.get("WaveformSequence") or [])
    except Exception as exc:  # noqa: BLE001 - the library raises many types on damage
        raise UnusableInputError(
            "%(where)s: the DICOM waveform data is damaged (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None
    if not groups:
        raise UnusableInputError(
            "%(where)s: this DICOM file (modality %(modality)s) holds no ECG waveform; "
            "an image of an ECG must be sent as a photo instead.",
            params={"where": where, "modality": str(ds.get("Modality") or "") or Phrase("unknown")},
        )
    rhythm = [g for g in groups if str(g.get("MultiplexGroupLabel", "")).upper() == "RHYTHM"]
    group = (rhythm or sorted(groups, key=lambda g: -int(g.get("NumberOfWaveformSamples", 0))))[0]

    n_ch = int(group.get("NumberOfWaveformChannels", 0))
    n_samples = int(group.get("NumberOfWaveformSamples", 0))
    fs = check_fs(group.get("SamplingFrequency"), where=where)
    check_size(n_samples, n_ch, where=where)
    key = (
        int(group.get("WaveformBitsAllocated", 0)),
        str(group.get("WaveformSampleInterpretation", "")),
    )
    if key not in _DTYPES:
        raise UnusableInputError(
            "%(where)s: unsupported DICOM waveform sample encoding %(encoding)s.",
            params={"where": where, "encoding": str(key)},
        )
    dtype = np.dtype(_DTYPES[key]).newbyteorder("<" if ds.is_little_endian in (True, None) else ">")
    raw = group.get("WaveformData")
    if raw is None:
        raise UnusableInputError("%(where)s: the waveform has no data.", params={"where": where})
    raw = bytes(raw)
    expected = n_samples * n_ch * dtype.itemsize
    if len(raw) < expected:
        raise UnusableInputError(
            "%(where)s: the waveform data holds %(size)d bytes but its header promises "
            "%(expected)d (truncated file?).",
            params={"where": where, "size": len(raw), "expected": expected},
        )
    samples = np.frombuffer(raw[:expected], dtype=dtype).reshape(n_samples, n_ch).astype(np.float64)

    channels = list(group.get("ChannelDefinitionSequence") or [])
    if len(channels) != n_ch:
        raise UnusableInputError(
            "%(where)s: %(definitions)d channel definitions for %(channels)d waveform channels.",
            params={"where": where, "definitions": len(channels), "channels": n_ch},
        )
    labels = []
    for idx, channel in enumerate(channels):
        label = _channel_label(channel)
        labels.append(label or f"channel {idx + 1}")
        sensitivity = channel.get("ChannelSensitivity")
        units_seq = channel.get("ChannelSensitivityUnitsSequence")
        if sensitivity is None or not units_seq:
            raise UnusableInputError(
                "%(where)s: channel %(channel)s gives no sensitivity/units; the "
                "amplitudes cannot be converted to mV.",
                params={"where": where, "channel": repr(label or idx + 1)},
            )
        unit = units_seq[0].get("CodeValue") or units_seq[0].get("CodeMeaning")
        to_mv = unit_scale(str(unit), where=f"{where}, channel {label!r}")
        correction = float(channel.get("ChannelSensitivityCorrectionFactor", 1.0) or 1.0)
        baseline = float(channel.get("ChannelBaseline", 0.0) or 0.0)
        samples[:, idx] = (samples[:, idx] * float(sensitivity) * correction + baseline) * to_mv
    meta = {"multiplex_group": str(group.get("MultiplexGroupLabel", ""))}
    return build_record(samples, fs, labels, fmt="dicom", where=where, scale_to_mv=1.0, meta=meta,
                        recorded_at=_acquisition_time(ds))


_OFFSET = re.compile(r"[+-]\d{4}$")


def _acquisition_time(ds) -> datetime | None:
    """AcquisitionDateTime, else acquisition or content date + time; the dataset's
    TimezoneOffsetFromUTC applies where the value carries no offset."""
    text = str(ds.get("AcquisitionDateTime") or "")
    for date_tag, time_tag in (("AcquisitionDate", "AcquisitionTime"),
                               ("ContentDate", "ContentTime")):
        if text:
            break
        if ds.get(date_tag):
            text = str(ds.get(date_tag)) + str(ds.get(time_tag) or "")
    offset = str(ds.get("TimezoneOffsetFromUTC") or "").strip()
    if text and not _OFFSET.search(text) and _OFFSET.fullmatch(offset):
        text += offset
    return parse_compact_time(text)

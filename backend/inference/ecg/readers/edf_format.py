"""EDF/EDF+ (and BDF) via pyedflib: physical values converted to mV by each signal's dimension."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyedflib
from scipy.signal import resample_poly

from backend.inference.ecg.readers.normalise import (
    build_record,
    check_fs,
    check_size,
    error_text,
    is_non_ecg_channel,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError


def read_edf(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("EDF file")
    suffix = ".bdf" if data[:8] == b"\xffBIOSEMI" else ".edf"
    with tempfile.TemporaryDirectory(prefix="carelens-edf-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            reader = pyedflib.EdfReader(str(path))
        except Exception as exc:  # noqa: BLE001 - pyedflib reports every header problem as OSError
            raise UnusableInputError(
                "%(where)s: not a readable EDF file (damaged or truncated: %(error)s).",
                # pyedflib names the temporary copy; the user knows the file by its own name
                params={"where": where, "error": error_text(exc).replace(f"{path}: ", "")},
            ) from None
        try:
            return _read(reader, where)
        finally:
            reader.close()


def _read(reader: pyedflib.EdfReader, where: str) -> EcgRecord:
    labels = [str(label).strip() for label in reader.getSignalLabels()]
    rates = [float(r) for r in reader.getSampleFrequencies()]
    counts = [int(n) for n in reader.getNSamples()]
    if not labels:
        raise UnusableInputError(
            "%(where)s: the EDF file holds no signals.", params={"where": where}
        )
    dropped = [lb for lb in labels if is_non_ecg_channel(lb)]
    chosen = [i for i, lb in enumerate(labels) if not is_non_ecg_channel(lb)]
    if not chosen:
        raise UnusableInputError(
            "%(where)s: no ECG channel among the EDF signals %(signals)s.",
            params={"where": where, "signals": ", ".join(labels)},
        )
    target_fs = check_fs(max(rates[i] for i in chosen), where=where)
    check_size(max(counts[i] for i in chosen), len(chosen), where=where)

    columns = []
    scales = []
    for i in chosen:
        unit = str(reader.getPhysicalDimension(i)).strip()
        if not unit:
            raise UnusableInputError(
                "%(where)s: signal %(signal)s has no physical dimension (unit); the EDF "
                "header must say uV, mV or V.",
                params={"where": where, "signal": repr(labels[i])},
            )
        scales.append(unit_scale(unit, where=f"{where}, signal {labels[i]!r}"))
        column = np.asarray(reader.readSignal(i), dtype=np.float64)
        if rates[i] != target_fs:
            check_fs(rates[i], where=f"{where}, signal {labels[i]!r}")
            ratio = Fraction(target_fs / rates[i]).limit_denominator(1000)
            column = resample_poly(column, ratio.numerator, ratio.denominator)
        columns.append(column)
    length = min(len(c) for c in columns)
    signal = np.stack([c[:length] * s for c, s in zip(columns, scales, strict=True)], axis=1)
    meta: dict = {}
    if dropped:
        meta["notes"] = ["ignored non-ECG channels: " + ", ".join(dropped)]
    if len({rates[i] for i in chosen}) > 1:
        meta.setdefault("notes", []).append(f"leads resampled to {target_fs:g} Hz")
    return build_record(
        signal,
        target_fs,
        [labels[i] for i in chosen],
        fmt="edf",
        where=where,
        scale_to_mv=1.0,
        meta=meta,
        recorded_at=reader.getStartdatetime(),
    )

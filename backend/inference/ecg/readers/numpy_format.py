"""NumPy .npy / .npz (never with pickled objects), and the dict-of-arrays layout pickles share."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from backend.inference.ecg.readers.hdf5_format import FS_KEYS, LEAD_KEYS, PREFERRED_NAMES, UNIT_KEYS
from backend.inference.ecg.readers.normalise import (
    ASSUMED_RATE,
    DEFAULT_FS_HZ,
    MAX_VALUES,
    assume,
    build_record,
    orient_samples_by_leads,
    standard_lead_name,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError


def load_npy(data: bytes, where: str) -> np.ndarray:
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(buf)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(buf)
    except Exception:  # noqa: BLE001 - the library raises many types on damage
        raise UnusableInputError(
            "%(where)s: not a readable .npy array (damaged header).", params={"where": where}
        ) from None
    if dtype.hasobject:
        raise UnusableInputError(
            "%(where)s: the array holds Python objects; only numeric arrays are accepted.",
            params={"where": where},
        )
    if int(np.prod(shape, dtype=np.int64)) > MAX_VALUES * 2:
        raise UnusableInputError(
            "%(where)s: the array %(shape)s is too large for one ECG.",
            params={"where": where, "shape": str(shape)},
        )
    buf.seek(0)
    try:
        return np.load(buf, allow_pickle=False)
    except Exception:  # noqa: BLE001 - the library raises many types on damage
        raise UnusableInputError(
            "%(where)s: the .npy array is shorter than its header says (truncated?).",
            params={"where": where},
        ) from None


def _first(mapping: Mapping, keys: tuple[str, ...]) -> object | None:
    lowered = {str(k).lower(): k for k in mapping}
    for key in keys:
        if key in lowered:
            return mapping[lowered[key]]
    return None


def _strings(value: object, where: str) -> list[str]:
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    arr = np.asarray(value)
    if arr.ndim == 0 and arr.dtype.kind in "US":
        return _strings(arr.item(), where)  # np.savez(leads="I,II") stores a 0-d string array
    if arr.dtype.kind not in "US" and not isinstance(value, list | tuple):
        raise UnusableInputError(
            "%(where)s: lead names must be text, found %(dtype)s.",
            params={"where": where, "dtype": str(arr.dtype)},
        )
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]


def _scalar(value: object, what: str, where: str) -> object:
    arr = np.asarray(value)
    if arr.size != 1:
        raise UnusableInputError(
            "%(where)s: '%(key)s' must be a single value, found %(shape)s.",
            params={"where": where, "key": what, "shape": str(arr.shape)},
        )
    item = arr.ravel()[0]
    item = item.item() if isinstance(item, np.generic) else item
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else item


def record_from_mapping(mapping: Mapping, *, fmt: str, where: str) -> EcgRecord:
    """A dict holding a signal array plus optional fs/leads/units, or a dict of lead -> 1-D array."""
    meta: dict = {}
    fs = _first(mapping, FS_KEYS)
    leads_value = _first(mapping, LEAD_KEYS)
    units = _first(mapping, UNIT_KEYS)
    reserved = {k for k in mapping if str(k).lower() in FS_KEYS + LEAD_KEYS + UNIT_KEYS}
    rest = {k: v for k, v in mapping.items() if k not in reserved}

    per_lead = {k: v for k, v in rest.items() if standard_lead_name(str(k)) is not None}
    if per_lead and len(per_lead) == len(rest):
        lengths = {np.asarray(v).size for v in per_lead.values()}
        if len(lengths) != 1:
            raise UnusableInputError(
                "%(where)s: the leads have different lengths %(lengths)s.",
                params={"where": where, "lengths": str(sorted(lengths))},
            )
        columns = [np.asarray(v, dtype=np.float64).ravel() for v in per_lead.values()]
        signal = np.stack(columns, axis=1)
        leads: list[str] | None = [str(k) for k in per_lead]
    else:
        signal_value = _first(rest, PREFERRED_NAMES + ("x", "sig", "p_signal", "arr_0"))
        if signal_value is None:
            arrays = [k for k, v in rest.items() if np.asarray(v).size > 64]
            if len(arrays) != 1:
                keys = ", ".join(str(k) for k in mapping) or Phrase("none")
                raise UnusableInputError(
                    "%(where)s: cannot tell which entry holds the ECG signal (keys: %(keys)s); "
                    "name it 'signal'.",
                    params={"where": where, "keys": keys},
                )
            signal_value = rest[arrays[0]]
        signal = np.asarray(signal_value)
        if signal.dtype.kind not in "iufb":
            raise UnusableInputError(
                "%(where)s: the signal must be numbers, found %(dtype)s.",
                params={"where": where, "dtype": str(signal.dtype)},
            )
        signal = np.squeeze(signal)
        if signal.ndim == 1:
            signal = signal[:, None]
        leads = _strings(leads_value, where) if leads_value is not None else None
        if signal.ndim != 2:
            raise UnusableInputError(
                "%(where)s: expected a 2-D signal, found shape %(shape)s.",
                params={"where": where, "shape": str(signal.shape)},
            )
        signal = orient_samples_by_leads(
            signal.astype(np.float64), len(leads) if leads else None, where=where
        )

    if fs is None:
        fs = DEFAULT_FS_HZ
        assume(meta, ASSUMED_RATE)
    else:
        fs = _scalar(fs, "fs", where)
    scale = None
    if units is not None:
        unit_values = _strings(units, where)
        scales = {unit_scale(u, where=where) for u in unit_values}
        if len(scales) != 1:
            raise UnusableInputError(
                "%(where)s: mixed signal units %(units)s are not supported.",
                params={"where": where, "units": str(unit_values)},
            )
        scale = scales.pop()
    return build_record(signal, fs, leads, fmt=fmt, where=where, scale_to_mv=scale, meta=meta)


def read_npy(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase(".npy file")
    arr = load_npy(data, where)
    return record_from_mapping({"signal": arr}, fmt="npy", where=where)


def read_npz(members: dict[str, bytes], name: str) -> EcgRecord:
    where = name or Phrase(".npz file")
    arrays = {}
    for member, data in members.items():
        key = member.removesuffix(".npy")
        arrays[key] = load_npy(data, f"{where}:{member}")
    return record_from_mapping(arrays, fmt="npz", where=where)

"""HDF5 (.h5): one 2-D dataset (samples x leads or leads x samples), or one 1-D dataset per lead
(/leads/I, /leads/II, ... or a lone /ecg); rate, leads and units from attributes."""

from __future__ import annotations

import io

import h5py
import numpy as np

from backend.inference.ecg.readers.normalise import (
    ASSUMED_RATE,
    DEFAULT_FS_HZ,
    MAX_LEADS,
    assume,
    build_record,
    check_size,
    error_text,
    is_non_ecg_channel,
    orient_samples_by_leads,
    standard_lead_name,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

FS_KEYS = (
    "fs",
    "sampling_rate",
    "sampling_frequency",
    "sample_rate",
    "samplerate",
    "frequency",
    "freq",
    "sfreq",
    "srate",
    "hz",
)
LEAD_KEYS = (
    "leads",
    "lead_names",
    "lead_name",
    "channels",
    "channel_names",
    "labels",
    "sig_name",
    "signal_names",
)
UNIT_KEYS = ("units", "unit", "signal_units")
PREFERRED_NAMES = ("ecg", "signal", "signals", "data", "tracings", "waveform", "waveforms")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _lookup(attr_sources: list, keys: tuple[str, ...]) -> object | None:
    for attrs in attr_sources:
        lowered = {k.lower(): k for k in attrs}
        for key in keys:
            if key in lowered:
                return attrs[lowered[key]]
    return None


def _lead_list(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (bytes, str)) or (isinstance(value, np.ndarray) and value.shape == ()):
        text = _text(value)
        return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    return [_text(v).strip() for v in np.asarray(value).ravel()]


def _scalar_dataset(file: h5py.File, keys: tuple[str, ...]) -> object | None:
    for key in keys:
        for candidate in (key, key.upper()):
            obj = file.get(candidate)
            if isinstance(obj, h5py.Dataset) and obj.size <= 64:
                return obj[()]
    return None


def read_hdf5(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("HDF5 file")
    try:
        file = h5py.File(io.BytesIO(data), "r")
    except Exception:  # noqa: BLE001 - the library raises many types on damage
        raise UnusableInputError(
            "%(where)s: not a readable HDF5 file (damaged or truncated).", params={"where": where}
        ) from None
    try:
        return _read(file, where)
    except UnusableInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/KeyError/... on damaged internals
        raise UnusableInputError(
            "%(where)s: the HDF5 file is damaged (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None
    finally:
        file.close()


def _attr_chain(obj: h5py.HLObject) -> list:
    """The attributes of a dataset and of each group above it, nearest first."""
    chain = [obj.attrs]
    parent = obj.parent
    while True:
        chain.append(parent.attrs)
        if parent.name == "/":
            return chain
        parent = parent.parent


def _rate(file: h5py.File, attr_sources: list, meta: dict) -> str | None:
    fs = _lookup(attr_sources, FS_KEYS)
    if fs is None:
        fs = _scalar_dataset(file, FS_KEYS)
    if fs is None:
        assume(meta, ASSUMED_RATE)
        return str(DEFAULT_FS_HZ)
    values = np.asarray(fs).ravel()
    return _text(values[0]) if values.size else None


def _scale(unit_values: list[str], where: str) -> float | None:
    """mV per stored unit, or None when the file states no unit."""
    if not unit_values:
        return None
    scales = {unit_scale(u, where=where) for u in unit_values}
    if len(scales) != 1:
        raise UnusableInputError(
            "%(where)s: mixed signal units %(units)s are not supported.",
            params={"where": where, "units": str(unit_values)},
        )
    return scales.pop()


def _basename(dataset: h5py.Dataset) -> str:
    return dataset.name.rsplit("/", 1)[-1]


def _lead_series(series: list[h5py.Dataset], where: str) -> list[h5py.Dataset] | None:
    """The 1-D datasets of the one group holding a dataset per lead (some device SDKs write
    /leads/I, /leads/II, ...), or a file's only 1-D signal (/ecg: a one-lead strip); None if none.
    Non-ECG series of the same length (respiration) ride along, to be dropped with a note."""
    groups: dict[str, list[h5py.Dataset]] = {}
    for dataset in series:
        groups.setdefault(dataset.parent.name, []).append(dataset)
    with_leads = [
        members
        for members in groups.values()
        if any(standard_lead_name(_basename(d)) for d in members)
    ]
    lone = [d for d in series if not is_non_ecg_channel(_basename(d))]
    if not with_leads and len(lone) == 1:
        with_leads = [groups[lone[0].parent.name]]
    if len(with_leads) != 1:
        return None
    members = with_leads[0]
    ecg = [d for d in members if not is_non_ecg_channel(_basename(d))]
    lengths = sorted({d.shape[0] for d in ecg})
    if len(lengths) > 1:
        raise UnusableInputError(
            "%(where)s: the lead datasets under %(group)s differ in length (%(lengths)s samples); "
            "export the leads of one recording, all of the same length.",
            params={
                "where": where,
                "group": members[0].parent.name,
                "lengths": ", ".join(str(n) for n in lengths),
            },
        )
    return [d for d in members if d.shape[0] == lengths[0]]


def _read(file: h5py.File, where: str) -> EcgRecord:
    found: list[tuple[str, tuple[int, ...]]] = []
    candidates: list[h5py.Dataset] = []
    series: list[h5py.Dataset] = []

    def visit(path: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append((path, obj.shape))
            shape = tuple(s for s in obj.shape if s != 1)
            if obj.dtype.kind in "iuf" and len(shape) == 2 and min(shape) <= MAX_LEADS < max(shape):
                candidates.append(obj)
            elif obj.dtype.kind in "iuf" and len(shape) == 2 and min(shape) > MAX_LEADS:
                candidates.append(obj)  # refused below with the orientation message
            elif obj.dtype.kind in "iuf" and len(shape) == 1 and shape[0] > MAX_LEADS:
                series.append(obj)

    file.visititems(visit)
    listing = ", ".join(f"/{p} {s}" for p, s in found) or Phrase("none")
    if not candidates:
        per_lead = _lead_series(series, where)
        if per_lead:
            return _read_per_lead(file, per_lead, where)
        # Research exports stack many recordings in one dataset (CODE-15%: exams x samples x
        # leads); one of them stacked alone reads above, as a 2-D signal.
        stacked = [(p, s) for p, s in found if len(s) == 3 and min(s) > 1 and max(s) > MAX_LEADS]
        if stacked:
            path, shape = stacked[0]
            raise UnusableInputError(
                "%(where)s: the dataset /%(dataset)s holds %(count)d recordings %(shape)s; "
                "CareLens reads one recording per file, so export one of them.",
                params={"where": where, "dataset": path, "count": shape[0], "shape": str(shape)},
            )
        raise UnusableInputError(
            "%(where)s: no ECG signal found: neither a 2-D dataset (samples x leads) nor one "
            "dataset per lead named I, II, V1...; datasets: %(datasets)s.",
            params={"where": where, "datasets": listing},
        )
    if len(candidates) > 1:
        preferred = [d for d in candidates if d.name.rsplit("/", 1)[-1].lower() in PREFERRED_NAMES]
        if len(preferred) != 1:
            raise UnusableInputError(
                "%(where)s: cannot tell which dataset holds the ECG; datasets: %(datasets)s. "
                "Keep one 2-D dataset or name it 'ecg'.",
                params={"where": where, "datasets": listing},
            )
        candidates = preferred
    dataset = candidates[0]
    attr_sources = _attr_chain(dataset)
    leads_value = _lookup(attr_sources, LEAD_KEYS)
    if leads_value is None:
        leads_value = _scalar_dataset(file, LEAD_KEYS)
    leads = _lead_list(leads_value)
    meta: dict = {"dataset": dataset.name}
    fs = _rate(file, attr_sources, meta)
    scale = _scale(_lead_list(_lookup(attr_sources, UNIT_KEYS)) or [], where)

    shape = tuple(s for s in dataset.shape if s != 1)
    n_named = len(leads) if leads else None
    if n_named is None and min(shape) > MAX_LEADS:
        raise UnusableInputError(
            "%(where)s: cannot tell which axis of dataset %(dataset)s %(shape)s holds the leads; "
            "add a 'leads' attribute. Datasets: %(datasets)s.",
            params={
                "where": where,
                "dataset": dataset.name,
                "shape": str(dataset.shape),
                "datasets": listing,
            },
        )
    check_size(max(shape), min(shape), where=where)
    arr = np.asarray(dataset[()]).reshape(shape)
    arr = orient_samples_by_leads(arr.astype(np.float64), n_named, where=where)
    return build_record(arr, fs, leads, fmt="hdf5", where=where, scale_to_mv=scale, meta=meta)


def _read_per_lead(file: h5py.File, datasets: list[h5py.Dataset], where: str) -> EcgRecord:
    chains = [_attr_chain(d) for d in datasets]
    meta: dict = {"dataset": datasets[0].parent.name}
    fs = _rate(file, [attrs for chain in chains for attrs in chain], meta)
    units = [
        _lookup(chain, UNIT_KEYS)
        for chain, dataset in zip(chains, datasets, strict=True)
        if not is_non_ecg_channel(_basename(dataset))
    ]
    scale = _scale(sorted({_text(u) for u in units if u is not None}), where)
    check_size(datasets[0].shape[0], len(datasets), where=where)
    signal = np.column_stack([np.asarray(d[()], dtype=np.float64) for d in datasets])
    labels = [_basename(d) for d in datasets]
    return build_record(signal, fs, labels, fmt="hdf5", where=where, scale_to_mv=scale, meta=meta)

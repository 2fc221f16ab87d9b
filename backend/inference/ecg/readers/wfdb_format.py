"""WFDB records (.hea + .dat, PhysioNet's format), read with the wfdb library from a temp dir."""

from __future__ import annotations

import re
import tempfile
import warnings
from datetime import datetime, time
from pathlib import Path

import numpy as np
import wfdb

from backend.inference.ecg.readers.normalise import (
    build_record,
    check_fs,
    check_size,
    error_text,
    unit_scale,
)
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


def header_record_line(text: str) -> list[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.split()
    return []


def header_file_names(text: str) -> list[str]:
    """Files a header refers to: signal files (.dat) or, for multi-segment records, segment headers."""
    lines = [
        ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not lines:
        return []
    record = lines[0]
    if "/" in record[0]:  # multi-segment: "name/n_segments n_sig fs len", then "segment len" lines
        return [f"{ln[0]}.hea" for ln in lines[1:] if ln and ln[0] != "~"]
    return sorted({ln[0] for ln in lines[1:] if ln})


def _header_text(data: bytes, name: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise UnusableInputError(
            "%(name)s: not a WFDB header (not plain text).", params={"name": name}
        ) from None


def read_wfdb(files: dict[str, bytes]) -> EcgRecord:
    headers = {n: _header_text(b, n) for n, b in files.items() if n.lower().endswith(".hea")}
    if not headers:
        raise UnusableInputError("A WFDB record needs its .hea header file.")
    referenced = {f for text in headers.values() for f in header_file_names(text)}
    top = [n for n in headers if n not in referenced] or list(headers)
    if len(top) > 1:
        raise UnusableInputError(
            "Several WFDB records were uploaded (%(records)s); send one.",
            params={"records": ", ".join(sorted(top))},
        )
    head_name = top[0]
    record_line = header_record_line(headers[head_name])
    if len(record_line) < 2:
        raise UnusableInputError(
            "%(name)s: the WFDB header has no record line.", params={"name": head_name}
        )
    record_name = record_line[0].split("/")[0]
    for name in [record_name, *files]:
        if not _SAFE_NAME.match(Path(name).name):
            raise UnusableInputError(
                "%(name)s: unsupported characters in a WFDB file name.",
                params={"name": repr(name)},
            )

    missing = sorted(
        f for f in header_file_names(headers[head_name]) if f != "~" and f not in files
    )
    if missing:
        raise UnusableInputError(
            "%(name)s: the header refers to %(files)s, which was not uploaded "
            "(send the .hea together with its .dat file(s), or both in one .zip).",
            params={"name": head_name, "files": ", ".join(missing)},
        )

    where = f"WFDB record {record_name}"
    with tempfile.TemporaryDirectory(prefix="carelens-wfdb-") as tmp:
        for name, data in files.items():
            target = Path(tmp) / Path(name).name
            target.write_bytes(data)
        (Path(tmp) / f"{record_name}.hea").write_text(headers[head_name])
        base = str(Path(tmp) / record_name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = wfdb.rdheader(base)
        except Exception as exc:  # noqa: BLE001 - the library raises many types for a damaged header
            raise UnusableInputError(
                "%(where)s: the .hea header cannot be read (%(error)s).",
                params={"where": where, "error": error_text(exc)},
            ) from None
        n_sig = int(header.n_sig or 0)
        sig_len = int(header.sig_len or 0)
        check_fs(header.fs, where=where)
        check_size(sig_len, n_sig, where=where)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = wfdb.rdrecord(base, physical=True, smooth_frames=True)
        except ValueError as exc:
            raise UnusableInputError(
                "%(where)s: the signal file is shorter or different from what its header "
                "describes (truncated upload?): %(error)s",
                params={"where": where, "error": error_text(exc)},
            ) from None
        except Exception as exc:  # noqa: BLE001 - damaged files raise IndexError, TypeError, OSError...
            raise UnusableInputError(
                "%(where)s: the record cannot be read (%(error)s).",
                params={"where": where, "error": error_text(exc)},
            ) from None

    signal = rec.p_signal
    if signal is None or signal.size == 0:
        raise UnusableInputError("%(where)s: the record holds no samples.", params={"where": where})
    signal = np.asarray(signal, dtype=np.float64)
    units = list(rec.units or ["mV"] * signal.shape[1])
    scales = np.array([unit_scale(u or "mV", where=where) for u in units])
    return build_record(
        signal * scales,
        rec.fs,
        list(rec.sig_name),
        fmt="wfdb",
        where=where,
        scale_to_mv=1.0,
        meta={"record_name": record_name, "units": units},
        recorded_at=(
            datetime.combine(rec.base_date, rec.base_time or time()) if rec.base_date else None
        ),
    )

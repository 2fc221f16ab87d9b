"""Fuzzing the ECG file parsers: random and mutated bytes give a record or UnusableInputError only.

Deterministic (derandomized) so CI is stable; CARELENS_FUZZ_EXAMPLES=5000 explores further.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from functools import cache

import h5py
import numpy as np
import wfdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyedflib import highlevel

from backend.inference.ecg.readers import read_ecg_files
from backend.inference.ecg.readers.normalise import MAX_FS_HZ, MIN_DURATION_S, MIN_FS_HZ
from backend.inference.ecg.record import STANDARD_LEADS
from backend.inference.errors import UnusableInputError
from tests.inference.ecg.test_readers import aecg_xml, dicom_ecg, ecg_like, muse_xml

EXAMPLES = int(os.environ.get("CARELENS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = [
    "ecg.csv",
    "ecg.h5",
    "ecg.npy",
    "ecg.npz",
    "ecg.edf",
    "ecg.xml",
    "ecg.dcm",
    "ecg.pkl",
    "ecg.zip",
    "ecg.txt",
    "ecg.bin",
    "rec.hea",
    "rec.dat",
    "noext",
]


@cache
def seed_files() -> dict[str, dict[str, bytes]]:
    """One small valid file per format (2 leads, 3 s), written by each format's library."""
    signal = ecg_like(2, fs=250, seconds=3)
    seeds: dict[str, dict[str, bytes]] = {}

    buf = io.BytesIO()
    np.save(buf, ecg_like(12, fs=500, seconds=2.5).astype(np.float32))
    seeds["npy"] = {"ecg.npy": buf.getvalue()}
    buf = io.BytesIO()
    np.savez(buf, signal=signal, fs=250, leads=np.array(["I", "II"]))
    seeds["npz"] = {"ecg.npz": buf.getvalue()}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("ecg", data=signal).attrs["fs"] = 250
        f["ecg"].attrs["leads"] = "I,II"
    seeds["h5"] = {"ecg.h5": buf.getvalue()}
    csv = "time,I,II\n" + "\n".join(
        f"{i / 250:.4f},{a:.3f},{b:.3f}" for i, (a, b) in enumerate(signal)
    )
    seeds["csv"] = {"ecg.csv": csv.encode()}
    seeds["pickle"] = {"ecg.pkl": pickle.dumps({"signal": signal, "fs": 250, "leads": ["I", "II"]})}
    seeds["aecg"] = {"ecg.xml": aecg_xml(ecg_like(2, fs=250, seconds=3), fs=250)}
    seeds["muse"] = {"muse.xml": muse_xml(ecg_like(8, fs=250, seconds=3), fs=250)}
    seeds["dicom"] = {"ecg.dcm": dicom_ecg(ecg_like(12, fs=250, seconds=2.5), fs=250)}

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        wfdb.wrsamp(
            "rec",
            fs=250,
            units=["mV", "mV"],
            sig_name=["I", "II"],
            p_signal=signal,
            fmt=["16", "16"],
            write_dir=tmp,
        )
        seeds["wfdb"] = {n: (Path(tmp) / n).read_bytes() for n in ("rec.hea", "rec.dat")}
        headers = highlevel.make_signal_headers(
            ["ECG I", "ECG II"],
            dimension="mV",
            sample_frequency=250,
            physical_min=-5,
            physical_max=5,
        )
        highlevel.write_edf(
            str(Path(tmp) / "e.edf"), [np.ascontiguousarray(c) for c in signal.T], headers
        )
        seeds["edf"] = {"ecg.edf": (Path(tmp) / "e.edf").read_bytes()}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in seeds["wfdb"].items():
            zf.writestr(name, data)
    seeds["zip"] = {"rec.zip": archive.getvalue()}
    return seeds


def check(files: dict[str, bytes]) -> None:
    """The contract: a well-formed record, or UnusableInputError with a message; nothing else."""
    try:
        record = read_ecg_files(files)
    except UnusableInputError as exc:
        assert isinstance(exc.message, str) and exc.message.strip()
        return
    assert record.signal.dtype == np.float64 and record.signal.ndim == 2
    assert record.signal.shape[1] == len(record.lead_names) >= 1
    assert set(record.lead_names) <= set(STANDARD_LEADS)
    assert MIN_FS_HZ <= record.fs <= MAX_FS_HZ
    assert record.duration_s >= MIN_DURATION_S
    assert not np.isinf(record.signal).any()
    assert record.source.startswith("file:")


def test_every_seed_file_reads():
    for fmt, files in seed_files().items():
        record = read_ecg_files(files)
        assert record.lead_names[:2] == ["I", "II"], fmt


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_never_crash(name, data):
    check({name: data})


@st.composite
def mutated(draw):
    fmt = draw(st.sampled_from(sorted(seed_files())))
    files = dict(seed_files()[fmt])
    target = draw(st.sampled_from(sorted(files)))
    data = bytearray(files[target])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "splat"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            chunk = draw(st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"9999999", b"-1", b"nan"]))
            data[pos : pos + len(chunk)] = chunk
    files[target] = bytes(data)
    return files


@FUZZ
@given(files=mutated())
def test_mutated_valid_files_never_crash(files):
    check(files)


@FUZZ
@given(
    header=st.text(alphabet=st.sampled_from(list("rec0123456789 .-/()#\nmVuVI+eE")), max_size=200)
)
def test_random_wfdb_headers_never_crash(header):
    check({"rec.hea": header.encode(), "rec.dat": seed_files()["wfdb"]["rec.dat"]})

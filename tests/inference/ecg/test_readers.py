"""Every ECG reader round-trips a file written by that format's own library; bad files say why."""

from __future__ import annotations

import base64
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
import wfdb
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pyedflib import highlevel

from backend.i18n import translations_for
from backend.inference.ecg.readers import detect_format, read_ecg_files, read_ecg_path
from backend.inference.ecg.readers.normalise import (
    ASSUMED_LEAD_I,
    ASSUMED_RATE,
    ASSUMED_TWELVE_LEAD_ORDER,
    parse_compact_time,
    standard_lead_name,
)
from backend.inference.ecg.readers.pickle_format import RestrictedUnpickler
from backend.inference.ecg.record import STANDARD_LEADS
from backend.inference.errors import UnusableInputError
from tests.held_out import LUDB_001


def ecg_like(n_leads: int = 12, fs: float = 500.0, seconds: float = 10.0, seed: int = 0):
    """A deterministic ECG-shaped signal in mV: P, QRS and T bumps at 75 bpm plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    out = np.zeros((t.size, n_leads))
    for lead in range(n_leads):
        gain = rng.uniform(0.4, 1.6) * rng.choice([-1, 1])
        for beat in np.arange(0.3, seconds, 0.8):
            out[:, lead] += 0.15 * np.exp(-(((t - beat + 0.16) / 0.025) ** 2))
            out[:, lead] += gain * np.exp(-(((t - beat) / 0.012) ** 2))
            out[:, lead] += 0.25 * np.exp(-(((t - beat - 0.3) / 0.05) ** 2))
        out[:, lead] += rng.normal(0, 0.01, t.size)
    return out


def files_of(*paths: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def assert_unusable(files: dict[str, bytes], *fragments: str) -> str:
    with pytest.raises(UnusableInputError) as info:
        read_ecg_files(files)
    message = info.value.message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


# ---------------------------------------------------------------- lead names


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("MLII", "II"),
        ("lead I", "I"),
        ("Lead I (Einthoven)", "I"),
        ("AVR", "aVR"),
        ("avl", "aVL"),
        ("aVF", "aVF"),
        ("v1", "V1"),
        ("V6", "V6"),
        ("DI", "I"),
        ("DII", "II"),
        ("DIII", "III"),
        ("ECG II", "II"),
        ("EKG V3", "V3"),
        ("MDC_ECG_LEAD_AVR", "aVR"),
        ("C2", "V2"),
        ("-aVR", None),
        ("Resp", None),
        ("foo", None),
    ],
)
def test_lead_aliases_map_to_standard_names(label, expected):
    assert standard_lead_name(label) == expected


# ---------------------------------------------------------------- WFDB


def write_wfdb(tmp_path: Path, signal: np.ndarray, names, fs=500, units=None, name="rec"):
    wfdb.wrsamp(
        name,
        fs=fs,
        units=units or ["mV"] * len(names),
        sig_name=list(names),
        p_signal=signal,
        fmt=["16"] * len(names),
        write_dir=str(tmp_path),
    )
    return tmp_path / f"{name}.hea", tmp_path / f"{name}.dat"


def test_wfdb_record_round_trips_within_adc_resolution(tmp_path):
    signal = ecg_like()
    hea, dat = write_wfdb(tmp_path, signal, STANDARD_LEADS)
    reference = wfdb.rdrecord(str(tmp_path / "rec"))
    resolution = 1.0 / min(reference.adc_gain)
    for record in (read_ecg_files(files_of(hea, dat)), read_ecg_path(hea)):
        assert record.lead_names == list(STANDARD_LEADS)
        assert record.fs == 500 and record.source == "file:wfdb"
        assert record.signal.dtype == np.float64 and record.signal.shape == (5000, 12)
        np.testing.assert_allclose(record.signal, signal, atol=resolution)
        assert record.duration_s == pytest.approx(10.0)


def test_wfdb_zip_microvolts_and_mit_aliases(tmp_path):
    signal = ecg_like(2, fs=360, seconds=5)
    hea, dat = write_wfdb(tmp_path, signal * 1000, ["MLII", "V1"], fs=360, units=["uV", "uV"])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(hea, "rec/rec.hea")
        zf.write(dat, "rec/rec.dat")
    record = read_ecg_files({"record.zip": archive.getvalue()})
    assert record.lead_names == ["II", "V1"] and record.fs == 360
    np.testing.assert_allclose(record.signal, signal, atol=2e-3)


def test_wfdb_real_ludb_record_reads_by_header_path():
    record = read_ecg_path(LUDB_001)
    assert record.lead_names == list(STANDARD_LEADS) and record.fs == 500
    assert record.signal.shape == (5000, 12)
    raw = wfdb.rdrecord(str(LUDB_001.with_suffix("")))
    np.testing.assert_allclose(record.signal, raw.p_signal, atol=1e-6)
    assert 0.3 < np.ptp(record.lead("II")) < 5.0  # a real QRS in mV


def test_wfdb_missing_and_truncated_signal_file(tmp_path):
    hea, dat = write_wfdb(tmp_path, ecg_like(), STANDARD_LEADS)
    assert_unusable(files_of(hea), "rec.dat", "not uploaded")
    assert_unusable({hea.name: hea.read_bytes(), dat.name: dat.read_bytes()[:5000]}, "truncated")
    assert_unusable(files_of(dat), ".hea")


def test_wfdb_wrong_rate_and_microvolts_labelled_as_millivolts(tmp_path):
    hea, dat = write_wfdb(tmp_path, ecg_like(seconds=3), STANDARD_LEADS, fs=20000, name="fast")
    assert_unusable(files_of(hea, dat), "20000 Hz", "not plausible")
    hea, dat = write_wfdb(tmp_path, ecg_like() * 1000, STANDARD_LEADS, name="uv")
    assert_unusable(files_of(hea, dat), "not physiological", "microvolts")


# ---------------------------------------------------------------- HDF5


def h5_bytes(build) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def test_hdf5_samples_by_leads_with_attributes():
    signal = ecg_like(12, fs=400, seconds=10)

    def build(f):
        ds = f.create_dataset("tracings", data=signal.astype(np.float32))
        ds.attrs["fs"] = 400
        ds.attrs["leads"] = [s.encode() for s in STANDARD_LEADS]
        ds.attrs["units"] = "mV"

    record = read_ecg_files({"exam.h5": h5_bytes(build)})
    assert record.fs == 400 and record.lead_names == list(STANDARD_LEADS)
    assert record.source == "file:hdf5"
    np.testing.assert_allclose(record.signal, signal, atol=1e-5)


def test_hdf5_leads_by_samples_with_root_attributes_in_microvolts():
    signal = ecg_like(3, seconds=4)

    def build(f):
        f.attrs["sampling_rate"] = 250.0
        f.attrs["lead_names"] = "I,II,V2"
        f.attrs["unit"] = "uV"
        f.create_group("ecg").create_dataset("data", data=(signal[::2] * 1000).T)

    record = read_ecg_files({"x.hdf5": h5_bytes(build)})
    assert record.fs == 250 and record.lead_names == ["I", "II", "V2"]
    np.testing.assert_allclose(record.signal, signal[::2], atol=1e-9)


def test_hdf5_ambiguous_files_name_the_datasets():
    def two(f):
        f.create_dataset("first", data=np.zeros((5000, 12)))
        f.create_dataset("second", data=np.zeros((5000, 12)))

    assert_unusable({"a.h5": h5_bytes(two)}, "/first (5000, 12)", "/second (5000, 12)")

    def square(f):
        f.create_dataset("grid", data=np.zeros((3000, 3000)))

    assert_unusable({"b.h5": h5_bytes(square)}, "/grid", "(3000, 3000)")

    def none(f):
        f.create_dataset("age", data=np.array([42]))

    assert_unusable({"c.h5": h5_bytes(none)}, "no ecg signal found", "/age")


def test_hdf5_of_many_stacked_recordings_says_to_send_one():
    one = ecg_like(12, fs=400)
    alone = read_ecg_files({"exam.h5": h5_bytes(lambda f: f.create_dataset("tracings", data=one[None]))})
    np.testing.assert_allclose(alone.signal, one)  # exams x samples x leads, one exam: read
    stacked = h5_bytes(lambda f: f.create_dataset("tracings", data=np.stack([one] * 3)))
    assert_unusable({"exams.h5": stacked}, "/tracings holds 3 recordings", "export one")


def test_hdf5_with_one_dataset_per_lead_reads_each_lead_by_its_name():
    signal = ecg_like(12, fs=500, seconds=10)

    def build(f):
        f.attrs["sampling_rate"] = 500
        leads = f.create_group("leads")
        for k, name in reversed(list(enumerate(STANDARD_LEADS))):  # stored out of order
            leads.create_dataset(name, data=np.round(signal[:, k] * 1000).astype(np.int16))
            leads[name].attrs["units"] = "uV"
        f.create_dataset("leads/resp", data=np.zeros(len(signal)))
        f.create_dataset("patient_age", data=np.array([61]))

    record = read_ecg_files({"exam.h5": h5_bytes(build)})
    assert record.fs == 500 and record.lead_names == list(STANDARD_LEADS)
    np.testing.assert_allclose(record.signal, np.round(signal * 1000) / 1000, atol=1e-9)
    assert "resp" in " ".join(record.meta["notes"])


def test_hdf5_lone_one_dimensional_signal_is_a_one_lead_strip_with_what_was_assumed():
    strip = ecg_like(1, fs=300, seconds=9)[:, 0]
    record = read_ecg_files({"strip.h5": h5_bytes(lambda f: f.create_dataset("ecg", data=strip))})
    assert record.lead_names == ["I"] and record.fs == 500
    np.testing.assert_allclose(record.signal[:, 0], strip)
    assert ASSUMED_LEAD_I in record.meta["assumptions"]
    assert ASSUMED_RATE in record.meta["assumptions"]


def test_hdf5_per_lead_datasets_of_different_lengths_are_refused_with_the_lengths():
    def build(f):
        f.create_dataset("leads/I", data=np.zeros(5000))
        f.create_dataset("leads/II", data=np.zeros(4000))

    assert_unusable({"a.h5": h5_bytes(build)}, "/leads", "differ in length", "4000, 5000")

    def unnamed(f):
        f.create_dataset("data/ch1", data=np.zeros(5000))
        f.create_dataset("data/ch2", data=np.zeros(5000))

    assert_unusable({"b.h5": h5_bytes(unnamed)}, "one dataset per lead", "/data/ch1 (5000,)")


def test_a_file_refusal_reads_in_korean_and_keeps_the_file_details():
    def two(f):
        f.create_dataset("first", data=np.zeros((5000, 12)))
        f.create_dataset("second", data=np.zeros((5000, 12)))

    korean = translations_for("ko").gettext
    with pytest.raises(UnusableInputError) as info:
        read_ecg_files({"a.h5": h5_bytes(two)})
    assert info.value.message == (
        "a.h5: cannot tell which dataset holds the ECG; datasets: /first (5000, 12), "
        "/second (5000, 12). Keep one 2-D dataset or name it 'ecg'."
    )
    text = info.value.localized(korean)
    assert re.search(r"[\uac00-\ud7a3]", text) and "cannot tell" not in text
    assert text.startswith("a.h5: ") and "/first (5000, 12), /second (5000, 12)" in text
    assert "'ecg'" in text

    with pytest.raises(UnusableInputError) as info:
        read_ecg_files({"empty.h5": h5_bytes(lambda f: None)})
    assert info.value.message.endswith("datasets: none.")
    assert "empty.h5" in info.value.localized(korean) and "없음" in info.value.localized(korean)

    body = "\n".join(f"{v:.3f};{v:.3f}" for v in np.sin(np.arange(2500) / 20))
    with pytest.raises(UnusableInputError) as info:
        read_ecg_files({"e.csv": f"II;Q7\n{body}".encode()})
    assert info.value.message.startswith("e.csv: unknown lead name(s) 'Q7'; expected standard")
    text = info.value.localized(korean)
    assert text.startswith("e.csv: 알 수 없는 유도 이름입니다: 'Q7'.") and "V6" in text


# ---------------------------------------------------------------- NumPy


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_npy_twelve_leads_gets_default_rate_and_order_with_notes():
    signal = ecg_like()
    record = read_ecg_files({"ecg.npy": npy_bytes(signal.T.astype(np.float32))})
    assert record.lead_names == list(STANDARD_LEADS) and record.fs == 500
    assert set(record.meta["assumptions"]) == {ASSUMED_TWELVE_LEAD_ORDER, ASSUMED_RATE}
    np.testing.assert_allclose(record.signal, signal, atol=1e-6)


def test_npz_with_fs_and_leads():
    signal = ecg_like(2, fs=300, seconds=30)
    buf = io.BytesIO()
    np.savez(buf, signal=signal, fs=np.array(300), leads=np.array(["lead I", "lead II"]))
    record = read_ecg_files({"strip.npz": buf.getvalue()})
    assert record.fs == 300 and record.lead_names == ["I", "II"]
    assert record.source == "file:npz"
    np.testing.assert_array_equal(record.signal, signal)
    buf = io.BytesIO()
    np.savez(buf, ecg=signal.T * 1000, sampling_rate=300.0, leads="V1,V2", units="uV")
    record = read_ecg_files({"strip.npz": buf.getvalue()})
    assert record.lead_names == ["V1", "V2"]
    np.testing.assert_allclose(record.signal, signal, atol=1e-12)


def test_npy_object_array_is_refused_without_unpickling():
    arr = np.array([{"a": 1}, None], dtype=object)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    assert_unusable({"evil.npy": buf.getvalue()}, "python objects")


# ---------------------------------------------------------------- CSV


def test_csv_with_header_and_time_column():
    signal = ecg_like(12, fs=250, seconds=4)
    t = np.arange(signal.shape[0]) / 250
    lines = ["time," + ",".join(STANDARD_LEADS)]
    lines += [f"{ti:.4f}," + ",".join(f"{v:.4f}" for v in row) for ti, row in zip(t, signal)]
    record = read_ecg_files({"ecg.csv": "\n".join(lines).encode()})
    assert record.fs == pytest.approx(250) and record.lead_names == list(STANDARD_LEADS)
    assert record.source == "file:csv"
    np.testing.assert_allclose(record.signal, signal, atol=1e-4)


def test_csv_chapman_layout_in_microvolts_is_recognised():
    signal = ecg_like()
    header = ",".join(STANDARD_LEADS)
    body = "\n".join(",".join(f"{v * 1000:.2f}" for v in row) for row in signal)
    record = read_ecg_files({"MUSE_20180111_155115_19000.csv": f"{header}\n{body}\n".encode()})
    assert record.meta["units_inferred"] == "uV" and record.fs == 500
    np.testing.assert_allclose(record.signal, signal, atol=1e-5)


def test_csv_header_units_and_bad_cells():
    signal = ecg_like(2, seconds=3)
    body = "\n".join(f"{a:.5f};{b:.5f}" for a, b in signal * 1000)
    record = read_ecg_files({"e.csv": f"II (uV);V5 (uV)\n{body}".encode()})
    assert record.lead_names == ["II", "V5"]
    np.testing.assert_allclose(record.signal, signal, atol=1e-5)
    assert_unusable({"e.csv": f"II;V5\n{body}\n1.0;oops".encode()}, "holds text")
    assert_unusable({"e.csv": f"II;Q7\n{body}".encode()}, "unknown lead name", "'Q7'")


def test_a_time_column_in_milliseconds_gives_the_rate():
    # "time_ms" used to be taken for a non-ECG channel: the file was read at an assumed 500 Hz,
    # which doubled the heart rate of this 250 Hz recording.
    signal = ecg_like(2, fs=250, seconds=4)
    body = "\n".join(f"{i * 4},{a:.4f},{b:.4f}" for i, (a, b) in enumerate(signal))
    for header in ("time_ms,I,II", "Time (ms),I,II", "timestamp_ms,I,II"):
        record = read_ecg_files({"e.csv": f"{header}\n{body}".encode()})
        assert record.fs == 250 and "assumptions" not in record.meta, header
        np.testing.assert_allclose(record.signal, signal, atol=1e-4)


def test_physionet_csv_exports_with_a_units_row_and_clock_times():
    # PhysioNet's "samples.csv" (LightWAVE / PhysioBank ATM): single quotes, a units row and
    # elapsed times rounded to the millisecond, so 360 Hz steps read 0.002-0.003 s.
    signal = ecg_like(2, fs=360, seconds=5)
    t = np.arange(len(signal)) / 360
    atm = "'Elapsed time','MLII','V5'\n'hh:mm:ss.mmm','mV','mV'\n" + "\n".join(
        f"'{int(ti // 60)}:{ti % 60:06.3f}',{a:.3f},{b:.3f}" for ti, (a, b) in zip(t, signal)
    )
    rdsamp = "Elapsed time,MLII,V5\nseconds,uV,uV\n" + "\n".join(
        f"{ti:.3f},{a * 1000:.0f},{b * 1000:.0f}" for ti, (a, b) in zip(t, signal)
    )
    for text in (atm, rdsamp):
        record = read_ecg_files({"samples.csv": text.encode()})
        assert record.fs == 360 and record.lead_names == ["II", "V5"]
        np.testing.assert_allclose(record.signal, signal, atol=1e-3)


def test_csv_from_a_decimal_comma_spreadsheet_with_trailing_separators():
    signal = ecg_like(2, seconds=3)
    body = "\n".join(f"{a:.4f};{b:.4f};".replace(".", ",") for a, b in signal)
    record = read_ecg_files({"e.csv": f"I;II;\n{body}".encode()})
    assert record.lead_names == ["I", "II"]
    np.testing.assert_allclose(record.signal, signal, atol=1e-4)


@pytest.mark.parametrize("header", ["ECG (mV)", "ECG", "Signal", "value [mV]"])
def test_a_lone_channel_that_does_not_name_its_lead_is_read_as_lead_i(header):
    signal = ecg_like(1, seconds=3)
    text = header + "\n" + "\n".join(f"{v:.4f}" for v in signal[:, 0])
    record = read_ecg_files({"device.csv": text.encode()})
    assert record.lead_names == ["I"]
    assert set(record.meta["assumptions"]) == {ASSUMED_LEAD_I, ASSUMED_RATE}
    two = "ECG1,ECG2\n" + "\n".join(f"{v:.4f},{v:.4f}" for v in signal[:, 0])
    assert_unusable({"device.csv": two.encode()}, "unknown lead name", "'ECG1'")


def test_csv_of_one_row_says_how_short_it_is():
    # A one-row file used to read "lasts 0.00 s", as if the recording were empty.
    message = assert_unusable({"one.csv": b"I,II\n0.1,0.2\n"}, "0.002 s long", "samples: 1")
    assert "0.00 s" not in message


def apple_watch_csv(samples_uv: np.ndarray, *, decimal: str = ".", header: list[str] | None = None):
    """An ECG as the iPhone Health app exports it (electrocardiograms/ecg_<date>.csv)."""
    header = header or [
        "Name,Jane Doe", 'Date of Birth,"Jan 15, 1990"', "Recorded Date,2026-11-20 09:30:00 +0900",
        "Classification,Sinus Rhythm", "Symptoms,", "Software Version,1.90", 'Device,"Watch6,7"',
        "Sample Rate,512 hertz", "", "", "Lead,Lead I", "Unit,µV", "", "",
    ]
    body = [f"{v:.3f}".replace(".", decimal) for v in samples_uv]
    return "\n".join(header + body).encode()


@pytest.mark.parametrize("decimal", [".", ","])
def test_apple_watch_export_reads_as_lead_i_at_512_hz(decimal):
    # With a comma decimal separator (a Portuguese or German phone) a sample line reads
    # "-265,868": one number, not two columns.
    signal = ecg_like(1, fs=512, seconds=30)[:, 0]
    record = read_ecg_files({"ecg_2026-11-20.csv": apple_watch_csv(signal * 1000, decimal=decimal)})
    assert record.source == "file:apple_watch_csv"
    assert record.fs == 512 and record.lead_names == ["I"] and record.duration_s == 30
    np.testing.assert_allclose(record.signal[:, 0], signal, atol=1e-6)


def test_apple_watch_export_from_a_korean_phone_is_recognised_by_its_shape():
    signal = ecg_like(1, fs=512, seconds=30)[:, 0]
    korean = ["이름,김지수", "기록 날짜,2026-11-20 09:30:00 +0900", "분류,동리듬", "기기,\"Watch6,7\"",
              "샘플링 속도,512Hz", "", "리드,리드 I", "단위,µV", ""]
    record = read_ecg_files({"ecg.csv": apple_watch_csv(signal * 1000, header=korean)})
    assert record.fs == 512 and record.lead_names == ["I"]
    np.testing.assert_allclose(record.signal[:, 0], signal, atol=1e-6)


def test_apple_watch_export_with_text_among_samples_names_the_line():
    data = apple_watch_csv(ecg_like(1, fs=512, seconds=30)[:, 0] * 1000)
    lines = data.decode().split("\n")
    lines[100] = "oops"
    assert_unusable({"ecg.csv": "\n".join(lines).encode()}, "line 101", "sample value")


# ---------------------------------------------------------------- EDF


def test_edf_written_by_pyedflib_round_trips_to_millivolts(tmp_path):
    signal = ecg_like(3, fs=256, seconds=10)
    headers = highlevel.make_signal_headers(
        ["ECG I", "ECG II", "ECG V2"],
        dimension="uV",
        sample_frequency=256,
        physical_min=-5000,
        physical_max=5000,
    )
    path = tmp_path / "ecg.edf"
    highlevel.write_edf(str(path), [s * 1000 for s in signal.T], headers)
    record = read_ecg_path(path)
    assert record.lead_names == ["I", "II", "V2"] and record.fs == 256
    assert record.source == "file:edf"
    resolution = 10.0 / 65535  # mV per digital step for a +-5000 uV range
    np.testing.assert_allclose(record.signal, signal, atol=resolution)


def test_edf_without_a_voltage_unit_is_refused(tmp_path):
    headers = highlevel.make_signal_headers(["ECG II"], dimension="mmHg", sample_frequency=250)
    path = tmp_path / "bp.edf"
    highlevel.write_edf(str(path), [ecg_like(1, fs=250).ravel()], headers)
    assert_unusable(files_of(path), "mmhg", "not a voltage")
    data = path.read_bytes()
    assert_unusable({"cut.edf": data[: len(data) // 2]}, "edf")


def test_a_one_lead_device_edf_with_a_channel_called_ecg_is_read_as_lead_i(tmp_path):
    # Chest straps and patch recorders label their only channel "ECG"; it was refused as an
    # unknown lead name.
    signal = ecg_like(1, fs=256)
    headers = highlevel.make_signal_headers(
        ["ECG", "Resp"], dimension="uV", sample_frequency=256, physical_min=-3000,
        physical_max=3000,
    )
    path = tmp_path / "strap.edf"
    highlevel.write_edf(str(path), [signal[:, 0] * 1000, signal[:, 0] * 100], headers)
    record = read_ecg_path(path)
    assert record.lead_names == ["I"] and record.fs == 256
    assert record.meta["assumptions"] == [ASSUMED_LEAD_I]
    np.testing.assert_allclose(record.signal[:, 0], signal[:, 0], atol=0.01)


def test_a_damaged_edf_is_named_by_the_users_file_not_the_servers_temporary_copy():
    message = assert_unusable({"rec.edf": b"0       " + b"x" * 300}, "rec.edf: not a readable EDF")
    assert "carelens-edf" not in message and "/tmp" not in message and "upload.edf" not in message


# ---------------------------------------------------------------- DICOM


def dicom_ecg(signal_mv: np.ndarray, fs: float = 500.0, units: str | None = "uV",
              **attributes: str) -> bytes:
    sensitivity = 2.5  # uV per stored unit
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"  # 12-lead ECG waveform
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "ECG"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.SamplingFrequency = fs
    group.NumberOfWaveformChannels = signal_mv.shape[1]
    group.NumberOfWaveformSamples = signal_mv.shape[0]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    channels = []
    for name in STANDARD_LEADS[: signal_mv.shape[1]]:
        source = Dataset()
        source.CodeValue = f"5.6.3-9-{STANDARD_LEADS.index(name) + 1}"
        source.CodingSchemeDesignator = "SCPECG"
        source.CodeMeaning = f"Lead {name}"
        channel = Dataset()
        channel.ChannelSourceSequence = [source]
        channel.ChannelSensitivity = sensitivity
        if units:
            unit = Dataset()
            unit.CodeValue = units
            unit.CodingSchemeDesignator = "UCUM"
            unit.CodeMeaning = "microvolt"
            channel.ChannelSensitivityUnitsSequence = [unit]
        channel.ChannelSensitivityCorrectionFactor = 1
        channel.ChannelBaseline = 0
        channel.WaveformBitsStored = 16
        channels.append(channel)
    group.ChannelDefinitionSequence = channels
    stored = np.round(signal_mv * 1000 / sensitivity).astype("<i2")
    group.WaveformData = stored.tobytes()
    ds.WaveformSequence = [group]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_twelve_lead_waveform_round_trips():
    signal = ecg_like()
    data = dicom_ecg(signal)
    assert pydicom.dcmread(io.BytesIO(data)).WaveformSequence[0].NumberOfWaveformChannels == 12
    record = read_ecg_files({"ecg.dcm": data})
    assert record.lead_names == list(STANDARD_LEADS) and record.fs == 500
    assert record.source == "file:dicom"
    np.testing.assert_allclose(record.signal, signal, atol=2.5e-3 / 2 + 1e-9)


def test_dicom_without_units_or_truncated_is_refused():
    assert_unusable({"ecg.dcm": dicom_ecg(ecg_like(), units=None)}, "sensitivity/units")
    data = dicom_ecg(ecg_like())
    assert_unusable({"ecg.dcm": data[: len(data) - 4000]}, "truncated")


# ---------------------------------------------------------------- HL7 aECG


def aecg_xml(signal_mv: np.ndarray, fs: float = 500.0, doctype: str = "") -> bytes:
    scale_uv = 5.0
    time_sequence = (
        '<component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>'
        '<value xsi:type="GLIST_TS"><head value="20240101120000.000"/>'
        f'<increment value="{1 / fs}" unit="s"/></value></sequence></component>'
    )
    sequences = [time_sequence]
    for idx, name in enumerate(STANDARD_LEADS[: signal_mv.shape[1]]):
        digits = " ".join(str(int(v)) for v in np.round(signal_mv[:, idx] * 1000 / scale_uv))
        sequences.append(
            f'<component><sequence><code code="MDC_ECG_LEAD_{name.upper()}" '
            'codeSystem="2.16.840.1.113883.6.24"/><value xsi:type="SLIST_PQ">'
            f'<origin value="0" unit="uV"/><scale value="{scale_uv}" unit="uV"/>'
            f"<digits>{digits}</digits></value></sequence></component>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>' + doctype + '<AnnotatedECG xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<id root="2.16.840.1.113883.3.1"/><code code="93000" codeSystem="2.16.840.1.113883.6.12"/>'
        '<component><series><id root="1.2.3"/><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>'
        "<component><sequenceSet>" + "".join(sequences) + "</sequenceSet></component>"
        "</series></component></AnnotatedECG>"
    ).encode()


def test_hl7_aecg_round_trips():
    signal = ecg_like()
    record = read_ecg_files({"ecg.xml": aecg_xml(signal)})
    assert record.lead_names == list(STANDARD_LEADS) and record.fs == pytest.approx(500)
    assert record.source == "file:aecg"
    np.testing.assert_allclose(record.signal, signal, atol=5e-3 / 2 + 1e-9)


MUSE_LEADS = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


def muse_xml(signal_mv: np.ndarray, fs: int = 500, *, rhythm: bool = True, units="MICROVOLTS",
             data_override: str | None = None) -> bytes:
    """A GE MUSE RestingECG export as MUSE writes it: ISO-8859-1, an external DOCTYPE, a median
    waveform before the rhythm one, each lead as base64 little-endian int16 (4.88 uV per bit)."""
    per_bit = 4.88

    def waveform(kind: str, samples: np.ndarray) -> str:
        leads = []
        for idx, lead in enumerate(MUSE_LEADS):
            counts = np.round(samples[:, idx] * 1000 / per_bit).astype("<i2")
            encoded = base64.b64encode(counts.tobytes()).decode()
            encoded = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
            leads.append(
                f"<LeadData><LeadByteCountTotal>{counts.nbytes}</LeadByteCountTotal>"
                f"<LeadSampleCountTotal>{counts.size}</LeadSampleCountTotal>"
                f"<LeadAmplitudeUnitsPerBit>{per_bit}</LeadAmplitudeUnitsPerBit>"
                f"<LeadAmplitudeUnits>{units}</LeadAmplitudeUnits><LeadID>{lead}</LeadID>"
                f"<WaveFormData>{data_override or encoded}</WaveFormData></LeadData>"
            )
        return (
            f"<Waveform><WaveformType>{kind}</WaveformType><NumberofLeads>8</NumberofLeads>"
            f"<SampleBase>{fs}</SampleBase><SampleExponent>0</SampleExponent>"
            + "".join(leads) + "</Waveform>"
        )

    body = waveform("Median", signal_mv[: fs * 6 // 5])
    if rhythm:
        body += waveform("Rhythm", signal_mv)
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
        "<RestingECG><MuseInfo><MuseVersion>8.0.2.10132</MuseVersion></MuseInfo>"
        "<PatientDemographics><PatientLastName>Müller</PatientLastName></PatientDemographics>"
        "<TestDemographics><AcquisitionTime>09:30:05</AcquisitionTime>"
        "<AcquisitionDate>11-20-2026</AcquisitionDate></TestDemographics>"
        + body + "</RestingECG>"
    ).encode("iso-8859-1")


def test_ge_muse_xml_reads_its_rhythm_leads_and_derives_the_limb_leads():
    eight = ecg_like(8)
    record = read_ecg_files({"MUSE_20261120_093005.xml": muse_xml(eight)})
    assert record.source == "file:muse" and record.fs == 500
    assert record.lead_names == list(STANDARD_LEADS)  # the 8 stored, then III and aVR/aVL/aVF
    assert record.recorded_at == datetime(2026, 11, 20, 9, 30, 5)
    lead = {name: record.signal[:, i] for i, name in enumerate(record.lead_names)}
    stored = np.stack([lead[name] for name in MUSE_LEADS], axis=1)
    np.testing.assert_allclose(stored, eight, atol=4.88e-3 / 2 + 1e-9)  # the rhythm, not the median
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-12)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-12)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-12)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-12)


def test_muse_xml_without_its_recording_or_with_damaged_leads_is_refused():
    eight = ecg_like(8)
    assert_unusable({"m.xml": muse_xml(eight, rhythm=False)}, "only median beats")
    assert_unusable({"m.xml": muse_xml(eight, data_override="not base64!")}, "lead I", "no readable")
    assert_unusable({"m.xml": muse_xml(eight, units="MMHG")}, "not a voltage unit")
    assert_unusable({"m.xml": muse_xml(eight)[:5000]}, "malformed or truncated")


def test_aecg_with_a_doctype_or_entities_is_refused_before_parsing():
    bomb = '<!DOCTYPE AnnotatedECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    assert_unusable({"ecg.xml": aecg_xml(ecg_like(), doctype=bomb)}, "doctype")
    xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    assert_unusable({"ecg.xml": aecg_xml(ecg_like(), doctype=xxe)}, "doctype")
    assert_unusable({"ecg.xml": aecg_xml(ecg_like())[:3000]}, "malformed or truncated")
    assert_unusable({"other.xml": b"<restingecgdata><x/></restingecgdata>"}, "not supported",
                    "GE MUSE XML")
    # A DOCTYPE that only names an external DTD declares nothing; MUSE writes one (above).
    external = '<!DOCTYPE AnnotatedECG SYSTEM "file:///etc/passwd">'
    assert read_ecg_files({"ecg.xml": aecg_xml(ecg_like(), doctype=external)}).fs == 500


# ---------------------------------------------------------------- pickle


def test_pickled_dict_of_arrays_is_accepted_for_every_protocol():
    signal = ecg_like(1, fs=300, seconds=12)
    for protocol in (2, 4, 5):
        payload = {"signal": signal[:, 0], "fs": np.float64(300), "leads": ["I"]}
        record = read_ecg_files({"a.pkl": pickle.dumps(payload, protocol=protocol)})
        assert record.fs == 300 and record.lead_names == ["I"] and record.source == "file:pickle"
        np.testing.assert_array_equal(record.signal[:, 0], signal[:, 0])
    per_lead = {"I": signal[:, 0].tolist(), "II": (signal[:, 0] * 0.5).tolist(), "fs": 300}
    record = read_ecg_files({"b.pickle": pickle.dumps(per_lead, protocol=0)})
    assert record.lead_names == ["I", "II"]


class _Payload:
    """A pickle whose loading would create a marker file (os.system)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload_class", [_Payload, _ExecPayload])
def test_malicious_pickle_never_runs(tmp_path, payload_class):
    # The payload is real: plain pickle.loads in a child process does create the marker.
    proof = tmp_path / "proof"
    data = pickle.dumps({"signal": [0.0] * 2000, "x": payload_class(proof)})
    subprocess.run(
        [sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
        input=data,
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert proof.exists()

    marker = tmp_path / "marker"
    for protocol in (0, 2, 5):
        evil = pickle.dumps({"signal": [0.0] * 2000, "x": payload_class(marker)}, protocol=protocol)
        message = assert_unusable({"evil.pkl": evil}, "only arrays, lists and dicts of numbers")
        assert "forbidden" in message
        with pytest.raises(pickle.UnpicklingError):
            RestrictedUnpickler(io.BytesIO(evil)).load()
    assert not marker.exists()


def test_pickle_codec_trick_is_refused():
    # _codecs.encode is allowed only for numpy's latin1 byte strings, never other codecs.
    evil = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R."
    assert_unusable({"x.pkl": evil}, "latin1")


# ---------------------------------------------------------------- generic refusals


def test_empty_unknown_image_and_multiple_files_are_refused():
    assert_unusable({}, "no ecg file")
    assert_unusable({"ecg.csv": b""}, "empty")
    assert_unusable({"blob.bin": bytes(range(256)) * 8}, "unrecognised file format")
    assert_unusable({"photo.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 100}, "image", "photo")
    assert_unusable({"a.npy": npy_bytes(ecg_like()), "b.npy": npy_bytes(ecg_like())}, "several")


def test_too_short_wrong_rate_and_absurd_amplitude_arrays():
    short = io.BytesIO()
    np.savez(short, signal=ecg_like(seconds=1), fs=500)
    assert_unusable({"s.npz": short.getvalue()}, "1 s long", "at least 2 s")
    slow = io.BytesIO()
    np.savez(slow, signal=ecg_like(seconds=60)[::25], fs=20)
    assert_unusable({"s.npz": slow.getvalue()}, "20 Hz", "not plausible")
    loud = io.BytesIO()
    np.savez(loud, signal=ecg_like() * 1000, fs=500, units="mV")
    assert_unusable({"s.npz": loud.getvalue()}, "microvolts")
    weird = io.BytesIO()
    np.savez(weird, signal=ecg_like() * 30, fs=500)
    assert_unusable({"s.npz": weird.getvalue()}, "state the units")


def test_truncated_files_of_each_binary_format_are_refused(tmp_path):
    npy = npy_bytes(ecg_like())
    assert_unusable({"t.npy": npy[: len(npy) // 2]}, "truncated")
    h5 = h5_bytes(lambda f: f.create_dataset("ecg", data=ecg_like()))
    assert_unusable({"t.h5": h5[: len(h5) // 2]}, "hdf5")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", npy)
    assert_unusable({"t.zip": archive.getvalue()[:-200]}, "zip")
    evil = pickle.dumps({"signal": ecg_like()[:, 0]})
    assert_unusable({"t.pkl": evil[: len(evil) // 2]}, "truncated")


def test_detect_format_prefers_magic_bytes_over_extension():
    h5 = h5_bytes(lambda f: f.create_dataset("ecg", data=ecg_like()))
    assert detect_format("looks_like.csv", h5) == "hdf5"
    assert detect_format("x.dat", npy_bytes(np.zeros(3))) == "npy"
    assert detect_format("ecg.csv", b"I,II\n1,2\n") == "csv"
    assert detect_format("x.unknown", b"\x80\x04K\x01.") == "pickle"


# ---------------------------------------------------------------- when the ECG was recorded


def test_each_format_keeps_the_recording_time_its_file_states(tmp_path):
    signal = ecg_like()
    seoul = timezone(timedelta(hours=9))
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(STANDARD_LEADS),
                p_signal=signal, fmt=["16"] * 12, write_dir=str(tmp_path),
                base_date=date(2026, 11, 20), base_time=time(9, 30, 5))
    assert read_ecg_path(tmp_path / "rec.hea").recorded_at == datetime(2026, 11, 20, 9, 30, 5)

    edf = tmp_path / "ecg.edf"
    headers = highlevel.make_signal_headers(["ECG I"], dimension="uV", sample_frequency=250,
                                            physical_min=-5000, physical_max=5000)
    highlevel.write_edf(str(edf), [ecg_like(1, fs=250).ravel() * 1000], headers,
                        highlevel.make_header(startdate=datetime(2025, 3, 4, 7, 8, 9)))
    assert read_ecg_path(edf).recorded_at == datetime(2025, 3, 4, 7, 8, 9)

    dicom = dicom_ecg(signal, AcquisitionDateTime="20261120093005.000000+0900")
    assert read_ecg_files({"ecg.dcm": dicom}).recorded_at == datetime(2026, 11, 20, 9, 30, 5,
                                                                       tzinfo=seoul)
    # a date and a time apart, the offset in the dataset's own tag
    dicom = dicom_ecg(signal, AcquisitionDate="20261120", AcquisitionTime="093005",
                      TimezoneOffsetFromUTC="+0900")
    assert read_ecg_files({"ecg.dcm": dicom}).recorded_at == datetime(2026, 11, 20, 9, 30, 5,
                                                                       tzinfo=seoul)

    # aECG: the first sample's absolute time (head of TIME_ABSOLUTE) when no effectiveTime
    assert read_ecg_files({"ecg.xml": aecg_xml(signal)}).recorded_at == datetime(2024, 1, 1, 12)

    watch = read_ecg_files({"ecg.csv": apple_watch_csv(ecg_like(1, fs=512, seconds=30)[:, 0] * 1000)})
    assert watch.recorded_at == datetime(2026, 11, 20, 9, 30, tzinfo=seoul)

    assert read_ecg_files({"ecg.npy": npy_bytes(signal)}).recorded_at is None  # not stated


def test_placeholder_and_future_recording_times_are_dropped(tmp_path):
    # Anonymised EDF files carry 1985-01-01; a recorder's clock can be years ahead.
    headers = highlevel.make_signal_headers(["ECG I"], dimension="uV", sample_frequency=250,
                                            physical_min=-5000, physical_max=5000)
    for start in (datetime(1985, 1, 1), datetime.now() + timedelta(days=400)):
        edf = tmp_path / f"ecg-{start.year}.edf"
        highlevel.write_edf(str(edf), [ecg_like(1, fs=250).ravel() * 1000], headers,
                            highlevel.make_header(startdate=start))
        assert read_ecg_path(edf).recorded_at is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261120093005", datetime(2026, 11, 20, 9, 30, 5)),
        ("20261120093005.123-0500", datetime(2026, 11, 20, 9, 30, 5,
                                              tzinfo=timezone(-timedelta(hours=5)))),
        ("202611200930", datetime(2026, 11, 20, 9, 30)),
        ("20261120", datetime(2026, 11, 20)),
        ("20261340", None),  # no 13th month
        ("2026-11-20", None),
        ("", None),
    ],
)
def test_dicom_and_hl7_timestamps_parse(text, expected):
    assert parse_compact_time(text) == expected

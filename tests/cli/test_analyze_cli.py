"""`carelens analyze` and `carelens digitize` exactly as CONTRACT.md describes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from tests.contract import assert_contract_result
from tests.held_out import EARDRUM_NORMAL, SKIN_NOT_EARDRUM, SKIN_NV
from tests.inference.ecg.ecg_synth import synthetic_ecg

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SKIN = SKIN_NV
EAR = EARDRUM_NORMAL
NOT_EAR = SKIN_NOT_EARDRUM
ECG_PHOTO = FIXTURES / "checks" / "ecg_photo.jpg"


def carelens(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], check=False, capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env={**os.environ})


@pytest.fixture(scope="module")
def wfdb_record(tmp_path_factory) -> Path:
    """A 10 s twelve-lead record at 500 Hz written by wfdb itself."""
    record = synthetic_ecg(hr=72)
    folder = tmp_path_factory.mktemp("wfdb")
    wfdb.wrsamp("synth", fs=int(record.fs), units=["mV"] * len(record.lead_names),
                sig_name=list(record.lead_names), p_signal=np.asarray(record.signal),
                fmt=["16"] * len(record.lead_names), adc_gain=[1000.0] * len(record.lead_names),
                baseline=[0] * len(record.lead_names), write_dir=str(folder))
    return folder / "synth.hea"


@pytest.mark.parametrize(("kind", "path"), [("skin", SKIN), ("ear", EAR)])
def test_analyze_photo_prints_exactly_one_contract_object(kind, path):
    done = carelens("analyze", kind, str(path), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    assert_contract_result(json.loads(lines[0]), kind)


def test_analyze_ecg_wfdb_record_given_as_hea(wfdb_record):
    done = carelens("analyze", "ecg", str(wfdb_record), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert_contract_result(result, "ecg")
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=2)
    assert len(result["leads"]) == 12


def test_analyze_ecg_photo_is_detected_and_digitised():
    # The fixture photographs synthetic_twelve_lead(seed=7): a 3x4 sheet of a regular 80 bpm beat.
    done = carelens("analyze", "ecg", str(ECG_PHOTO), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert_contract_result(result, "ecg")
    assert result["input_type"] == "photo" and len(result["leads"]) == 12
    assert result["intervals"]["hr_bpm"] == pytest.approx(80, abs=2)


def test_not_an_eardrum_is_exit_2_with_is_eardrum_false():
    done = carelens("analyze", "ear", str(NOT_EAR), "--json")
    assert done.returncode == 2
    body = json.loads(done.stdout)
    assert body["is_eardrum"] is False and "eardrum" in body["error"]


def test_unusable_input_is_exit_2_with_error_json(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    done = carelens("analyze", "skin", str(text), "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]


def test_batch_prints_one_line_per_file_in_order_and_exit_0_unless_all_fail(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 10)
    done = carelens("analyze", "ear", str(EAR), str(bad), str(NOT_EAR), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [line["file"] for line in lines] == [str(EAR), str(bad), str(NOT_EAR)]
    assert lines[0]["kind"] == "ear" and "error" in lines[1] and lines[2]["is_eardrum"] is False
    all_bad = carelens("analyze", "ear", str(bad), str(NOT_EAR), "--json")
    assert all_bad.returncode == 2


def test_digitize_writes_a_12_lead_wfdb_record_in_mv_at_500_hz(tmp_path):
    from training.ecg.render import render_sample

    record = synthetic_ecg(hr=66)
    signals = {name: record.signal[:, i] for i, name in enumerate(record.lead_names)}
    rendered = render_sample(signals, seed=3, mode="clean", layout="3x4")
    photo = tmp_path / "sheet.jpg"
    from PIL import Image

    Image.fromarray(rendered.image).save(photo, quality=92)
    done = carelens("digitize", str(photo), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    hea = Path(done.stdout.strip().splitlines()[-1])
    assert hea.exists() and hea.suffix == ".hea"
    out = wfdb.rdrecord(str(hea.with_suffix("")))
    assert out.fs == 500
    assert set(out.sig_name) <= {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
    assert len(out.sig_name) >= 10
    assert all(unit == "mV" for unit in out.units)
    assert out.sig_len == 5000  # the printed 10 s axis
    v1 = out.p_signal[:, out.sig_name.index("V1")]
    assert np.isnan(v1).mean() > 0.5  # printed for 2.5 s of the 10 s in a 3x4 layout


def _blank_page(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (1600, 1200), "white").save(path)


def _skin_photo(path: Path) -> None:
    path.write_bytes(SKIN.read_bytes())  # a real HAM10000 lesion photo


def _text_page(path: Path) -> None:
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1200, 1600), (245, 245, 245))
    draw = ImageDraw.Draw(page)
    for i, y in enumerate(range(80, 1540, 36)):
        draw.text((60, y), f"Line {i}: the patient waits quietly for the results of the check.",
                  fill=(25, 25, 25))
    page.save(path, quality=92)


def test_digitize_reads_a_watch_pdf_to_30_s_of_lead_i(tmp_path):
    from training.ecg.render import wearable_pdf

    watch = synthetic_ecg(hr=70, duration_s=30, fs=512, leads=("I",))
    pdf = tmp_path / "apple-watch.pdf"
    pdf.write_bytes(wearable_pdf(watch.signal[:, 0], 512))
    done = carelens("digitize", str(pdf), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    out = wfdb.rdrecord(str(Path(done.stdout.strip().splitlines()[-1]).with_suffix("")))
    assert out.sig_name == ["I"] and out.fs == 500 and out.sig_len == 15000


@pytest.mark.parametrize("make_photo", [_blank_page, _skin_photo, _text_page],
                         ids=["blank-page", "skin-photo", "text-page"])
def test_digitize_rejects_what_is_not_an_ecg_sheet_with_exit_2(tmp_path, make_photo):
    photo = tmp_path / "photo.jpg"
    make_photo(photo)
    done = carelens("digitize", str(photo), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout + done.stderr[-2000:]
    assert json.loads(done.stdout)["error"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

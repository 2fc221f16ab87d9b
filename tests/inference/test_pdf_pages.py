"""ECGs saved as PDF: pages rendered by PDFium and read by the photo digitiser."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.inference.dispatch import analyze_files
from backend.inference.ecg import analyze
from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.errors import UnusableInputError
from backend.inference.pdf_pages import is_pdf, read_pages
from backend.services.result_cards import render_report_pdf
from tests.inference.ecg.ecg_synth import synthetic_ecg
from training.ecg.render import wearable_pdf


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    """CareLens's own doctor report of a 72 bpm sinus ECG: a text page, then the ECG pages."""
    return render_report_pdf(analyze_ecg_record(synthetic_ecg(hr=72)), patient="Min")


def blank_pdf(pages: int) -> bytes:
    white = [Image.new("RGB", (2100, 2970), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    white[0].save(buffer, format="PDF", save_all=True, append_images=white[1:], resolution=254)
    return buffer.getvalue()


def test_pages_render_as_rgb_at_the_digitisers_scale(report_pdf):
    assert is_pdf(report_pdf) and not is_pdf(b"\x89PNG\r\n\x1a\n")
    images = [page.image for page in read_pages(report_pdf)]
    assert len(images) >= 2
    assert all(img.dtype == np.uint8 and img.shape[2] == 3 and max(img.shape) == 2400
               for img in images)


def test_the_ecg_is_read_back_from_a_doctor_report_pdf(report_pdf):
    result = analyze_files("ecg", {"carelens-report.pdf": report_pdf})
    assert result["rhythm"] == "sinus_rhythm" and len(result["leads"]) == 12
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=2)
    assert result["input_type"] == "pdf"  # digitised like a photo, with the caveat said so
    assert analyze.PDF_INTERVALS_NOTE in result["quality"]["issues"]


def test_a_pdf_without_an_ecg_sheet_says_how_many_pages_were_searched():
    with pytest.raises(UnusableInputError) as several:
        analyze_files("ecg", {"letter.pdf": blank_pdf(2)})
    assert "first 2 pages of this PDF" in several.value.message
    with pytest.raises(UnusableInputError) as one:  # one page: the digitiser's own reason
        analyze_files("ecg", {"letter.pdf": blank_pdf(1)})
    assert "PDF" not in one.value.message and one.value.message


def test_a_damaged_pdf_is_refused_in_words(report_pdf):
    for data in (report_pdf[: len(report_pdf) // 3], b"%PDF-1.7\nnot really"):
        with pytest.raises(UnusableInputError, match="could not be opened"):
            analyze_files("ecg", {"broken.pdf": data})


@pytest.mark.parametrize("gap_mm", [6.0, 0.0], ids=["grid-per-row", "one-grid"])
def test_a_watch_ecg_pdf_is_read_as_its_30_s_of_lead_i(gap_mm):
    # Three rows on one grid look like a 3x4 sheet without its rhythm strip: without the
    # device named in the PDF's text they were read as 12 leads of 2.5 s.
    watch = synthetic_ecg(hr=72, rr_jitter=0.05, duration_s=30, fs=512, leads=("I",))
    result = analyze_files("ecg", {"ecg.pdf": wearable_pdf(watch.signal[:, 0], 512, gap_mm=gap_mm)})
    assert result["leads"] == ["I"] and result["rhythm"] == "sinus_rhythm"
    trace = result["trace"]
    assert len(trace["signals"][0]) / trace["fs"] == pytest.approx(30, abs=0.1)
    assert len(trace["r_peaks_s"]) == len(watch.meta["qrs_onsets_s"])
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=2)


def test_atrial_fibrillation_on_a_watch_ecg_pdf_is_found():
    af = synthetic_ecg(hr=95, rr_jitter=0.3, p_waves=False, f_waves=True, duration_s=30, fs=512,
                       leads=("I",), seed=3)
    result = analyze_files("ecg", {"ecg.pdf": wearable_pdf(af.signal[:, 0], 512)})
    assert result["rhythm"] == "atrial_fibrillation" and result["intervals"]["pr_ms"] is None

"""ECGs saved as PDF: pages rendered by PDFium and read by the photo digitiser."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.inference.dispatch import analyze_files
from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.errors import UnusableInputError
from backend.inference.pdf_pages import is_pdf, page_images
from backend.services.result_cards import render_report_pdf
from tests.inference.ecg.ecg_synth import synthetic_ecg


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
    images = list(page_images(report_pdf))
    assert len(images) >= 2
    assert all(img.dtype == np.uint8 and img.shape[2] == 3 and max(img.shape) == 2400
               for img in images)


def test_the_ecg_is_read_back_from_a_doctor_report_pdf(report_pdf):
    result = analyze_files("ecg", {"carelens-report.pdf": report_pdf})
    assert result["rhythm"] == "sinus_rhythm" and len(result["leads"]) == 12
    assert result["intervals"]["hr_bpm"] == pytest.approx(72, abs=2)
    assert result["input_type"] == "photo"  # digitised, so the photo caveats apply


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

"""PDF pages as pixels, for ECGs saved as PDF (a hospital system's ECG print, CareLens's own
doctor report): PDFium (pypdfium2) renders each page the way a scanner would see it, and the
photo digitiser reads the sheet from there."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from backend.inference.errors import UnusableInputError

MAX_PAGES = 4  # an ECG print keeps its sheet near the front; later pages are not searched
# Pixels on the longer side of a rendered page: an A4 ECG sheet at ~8 px/mm, the scale the
# digitiser is measured at (training/ecg/eval_digitize.py renders 1800-3000 px sheets).
RENDER_LONG_SIDE = 2400
MSG_UNREADABLE_PDF = "This PDF could not be opened (it is damaged or protected by a password)."


def is_pdf(data: bytes) -> bool:
    # The PDF header may follow up to 1 KB of other bytes (ISO 32000-1, annex H).
    return b"%PDF-" in data[:1024]


def page_images(data: bytes, max_pages: int = MAX_PAGES) -> Iterator[np.ndarray]:
    """HxWx3 uint8 RGB of each of the first `max_pages` pages, rendered on white."""
    document = _open(data)
    for index in range(min(len(document), max_pages)):
        page = document[index]
        width, height = page.get_size()
        if min(width, height) <= 0:
            continue
        bitmap = page.render(scale=RENDER_LONG_SIDE / max(width, height), fill_color=(255,) * 4)
        yield np.asarray(bitmap.to_pil().convert("RGB"))


def _open(data: bytes):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise UnusableInputError(MSG_UNREADABLE_PDF) from None

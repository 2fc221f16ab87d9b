"""PDF pages as pixels, for ECGs saved as PDF (a hospital system's ECG print, CareLens's own
doctor report): PDFium (pypdfium2) renders each page the way a scanner would see it, and the
photo digitiser reads the sheet from there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

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


class PdfPage(NamedTuple):
    image: np.ndarray  # HxWx3 uint8 RGB, rendered on white
    text: str  # the page's text layer ("" for a scan); a wearable's print names the device


def read_pages(data: bytes, max_pages: int = MAX_PAGES) -> Iterator[PdfPage]:
    """Each of the first `max_pages` pages as pixels and text."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
        n_pages = len(document)
    except pdfium.PdfiumError:
        raise UnusableInputError(MSG_UNREADABLE_PDF) from None
    for index in range(min(n_pages, max_pages)):
        try:
            page = document[index]
            width, height = page.get_size()
            if min(width, height) <= 0:
                continue
            scale = RENDER_LONG_SIDE / max(width, height)
            image = page.render(scale=scale, fill_color=(255,) * 4).to_pil().convert("RGB")
            text = page.get_textpage().get_text_range()
        except pdfium.PdfiumError:
            raise UnusableInputError(MSG_UNREADABLE_PDF) from None
        yield PdfPage(np.asarray(image), text)

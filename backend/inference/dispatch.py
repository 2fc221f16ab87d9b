"""One entry point from uploaded files to a contract result, shared by the API and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.inference.errors import Phrase, UnusableInputError
from backend.inference.images import decode_photo, load_image_rgb, sniff_image_format
from backend.inference.pdf_pages import is_pdf, read_pages
from backend.inference.registry import ModelRegistry, default_registry

if TYPE_CHECKING:
    from backend.inference.ecg.record import EcgRecord

KINDS = ("ecg", "skin", "ear")
log = logging.getLogger("carelens.inference")


def _single(files: dict[str, bytes], what: str) -> bytes:
    if len(files) != 1:
        raise UnusableInputError("Please upload exactly one %(what)s.", params={"what": what})
    return next(iter(files.values()))


def analyze_files(
    kind: str,
    files: dict[str, bytes],
    registry: ModelRegistry | None = None,
    *,
    age: int | None = None,
    sex: str | None = None,
) -> dict[str, Any]:
    """files: uploaded name -> bytes (one photo; or ECG file(s), e.g. a .hea + .dat pair)."""
    registry = registry or default_registry()
    if not files or not any(files.values()):
        raise UnusableInputError("No file was received. Please choose a photo or a file.")
    if kind == "skin":
        from backend.inference.skin import PHOTO_MIN_SIDE, analyze_skin

        # Keep the outline at the photo's true size (CONTRACT: mask at input size).
        photo = decode_photo(_single(files, Phrase("photo")), min_side=PHOTO_MIN_SIDE)
        return analyze_skin(photo.pixels, registry, input_hw=photo.original_hw)
    if kind == "ear":
        from backend.inference.ear import PHOTO_MIN_SIDE, analyze_ear

        photo = load_image_rgb(_single(files, Phrase("photo")), min_side=PHOTO_MIN_SIDE)
        return analyze_ear(photo, registry)
    if kind == "ecg":
        from backend.inference.ecg.analyze import analyze_ecg_record

        upload = next(iter(files.values()))
        if len(files) == 1 and (sniff_image_format(upload) or is_pdf(upload)):
            record = digitize_print(upload)
        else:
            from backend.inference.ecg.readers import read_ecg_files

            record = read_ecg_files(files)
        result = analyze_ecg_record(record, registry, age=age, sex=sex)
        result.setdefault("input_type", _input_type(record))
        return result
    raise UnusableInputError(f"Unknown check kind {kind!r}; use one of {', '.join(KINDS)}.")


def _input_type(record: EcgRecord) -> str:
    """"photo", "pdf" (a print saved as PDF, digitised like a photo) or "file" (samples)."""
    if record.is_pdf_print:
        return "pdf"
    return "photo" if record.source == "photo" else "file"


def digitize_print(data: bytes) -> EcgRecord:
    """A photo of a printed ECG, or an ECG print saved as PDF -> the digitised record."""
    if is_pdf(data):
        return _digitize_pdf(data)
    return _digitize(load_image_rgb(data))


def _digitize(image, continuous_rows: bool = False) -> EcgRecord:
    """The photo digitiser is heuristic image analysis: a photo it cannot follow (a failure
    mode, not a server fault) must read as "no ECG found", never as a 500."""
    from backend.inference.ecg.digitize import digitize_photo

    try:
        return digitize_photo(image, continuous_rows=continuous_rows)
    except UnusableInputError:
        raise
    except Exception as exc:  # see the docstring; logged for the developers
        log.exception("digitiser failed on a photo")
        raise UnusableInputError(
            "No ECG trace could be read from this photo. Photograph the whole sheet, flat, "
            "from straight above, in even light — or upload the ECG file instead.",
            extra={"reason": "digitize_failed"},
        ) from exc


MSG_NO_ECG_IN_PDF = (
    "No ECG sheet was found on the first %(pages)d pages of this PDF. CareLens reads PDFs that "
    "print a 12-lead sheet (3x4 or 6x2), a rhythm strip, or a watch's or handheld device's "
    "single-lead ECG on an ECG grid; otherwise upload the ECG file, or a photo of the printout."
)


def _digitize_pdf(data: bytes) -> EcgRecord:
    """The first page (of the first few) that holds a readable ECG sheet. A one-page PDF keeps
    the digitiser's own reason for a refusal; for several pages it would name only one. A page
    whose text names a single-lead device (Apple Watch, Kardia...) is read as its rows of lead I."""
    from backend.inference.ecg.digitize import is_single_lead_print

    first_refusal: UnusableInputError | None = None
    n_pages = 0
    for n_pages, page in enumerate(read_pages(data), start=1):
        try:
            record = _digitize(page.image, continuous_rows=is_single_lead_print(page.text))
        except UnusableInputError as exc:
            first_refusal = first_refusal or exc
            continue
        record.meta["pdf_page"] = n_pages
        return record
    if n_pages == 1 and first_refusal is not None:
        raise first_refusal
    raise UnusableInputError(MSG_NO_ECG_IN_PDF, params={"pages": n_pages})


def files_for_path(path: Path) -> dict[str, bytes]:
    """Read a CLI argument: one file, or a WFDB record (its .hea or .dat) with the files its
    header names."""
    path = Path(path)
    if not path.exists():
        raise UnusableInputError(f"File not found: {path}")
    if path.suffix.lower() in {".hea", ".dat"}:
        from backend.inference.ecg.readers import gather_ecg_files

        return gather_ecg_files(path)
    return {path.name: path.read_bytes()}

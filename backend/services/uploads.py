"""Stored inputs: photos re-encoded (EXIF/GPS gone) and ECG files zipped, under random names
in data/uploads, outside every static route; served only to their owner."""

from __future__ import annotations

import io
import secrets
import zipfile
from pathlib import Path

from PIL import Image

from backend.inference.images import load_image_rgb, sniff_image_format


def store_input(files: dict[str, bytes], uploads_dir: Path) -> tuple[str, str]:
    """Returns (stored file name, media type)."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    if len(files) == 1 and sniff_image_format(next(iter(files.values()))):
        pixels = load_image_rgb(next(iter(files.values())))
        name = f"{token}.jpg"
        # Re-encoding from decoded pixels drops EXIF, GPS and anything hidden after the image.
        Image.fromarray(pixels).save(uploads_dir / name, format="JPEG", quality=90)
        return name, "image/jpeg"
    name = f"{token}.zip"
    with zipfile.ZipFile(uploads_dir / name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for filename, data in files.items():
            zf.writestr(Path(filename).name or "upload.bin", data)
    return name, "application/zip"


def encode_jpeg(pixels, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()

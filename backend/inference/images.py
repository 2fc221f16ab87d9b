"""Decode untrusted image bytes safely: size and pixel caps, EXIF orientation, RGB out.

Shared by the skin, ear and ECG-photo lanes so every one rejects the same bad files the
same way (UnusableInputError -> 422 with a readable message).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from backend.inference.errors import UnusableInputError

# iPhones save camera photos as HEIC; a photo picked from the library or sent from a computer
# can arrive as one. pillow-heif (libheif) teaches Pillow to open it.
register_heif_opener()

MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "MPO", "HEIF"}
# ISO-BMFF brands of HEIF stills (HEVC-coded); AVIF and video brands are not accepted.
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}

IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"RIFF", "WEBP"),
)


def sniff_image_format(data: bytes) -> str | None:
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "HEIF"
    for magic, fmt in IMAGE_MAGIC:
        if data.startswith(magic):
            if fmt == "WEBP" and data[8:12] != b"WEBP":
                continue
            return fmt
    return None


@dataclass
class DecodedPhoto:
    pixels: np.ndarray  # HxWx3 uint8 RGB, upright
    original_hw: tuple[int, int]  # the photo's true upright size (pixels may be smaller)


def load_image_rgb(
    data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int | None = None
) -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB, upright (EXIF orientation applied)."""
    return decode_photo(data, max_pixels=max_pixels, min_side=min_side).pixels


def decode_photo(
    data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int | None = None
) -> DecodedPhoto:
    """Like load_image_rgb, and says the photo's true size.

    min_side: the caller needs no more than this many pixels on the shorter side; a JPEG is
    then decoded at a reduced scale (libjpeg's DCT scaling, 1/2 to 1/8), several times
    faster for a 12 MP phone photo than a full decode and a resize."""
    if not data:
        raise UnusableInputError("The file is empty. Please choose a photo (JPEG, PNG, WebP or HEIC).")
    if sniff_image_format(data) is None:
        raise UnusableInputError(
            "This file is not a supported image. Please upload a JPEG, PNG, WebP or HEIC photo."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise UnusableInputError(
                    "This image type is not supported. Please upload a JPEG, PNG, WebP or HEIC photo."
                )
            width, height = img.size
            if width * height > max_pixels:
                raise UnusableInputError(
                    "The image is too large (%(width)dx%(height)d pixels). "
                    "Please use a photo under %(megapixels)d megapixels.",
                    params={"width": width, "height": height, "megapixels": max_pixels // 10**6},
                )
            if width < 32 or height < 32:
                raise UnusableInputError("The image is too small to analyse (under 32 pixels).")
            orientation = img.getexif().get(0x0112, 1)
            original_hw = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
            if min_side and img.format in ("JPEG", "MPO"):
                img.draft("RGB", (min_side, min_side))
            img.load()
            if orientation != 1:  # only copy when the photo is rotated
                img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(img, dtype=np.float64)
                    top = arr.max() or 1.0
                    img = Image.fromarray((arr * (255.0 / top)).astype(np.uint8))
                img = img.convert("RGB")
            return DecodedPhoto(np.asarray(img, dtype=np.uint8).copy(), original_hw)
    except UnusableInputError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UnusableInputError(
            "The image is too large to open safely. Please use an ordinary photo."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnusableInputError(
            "The image could not be read (it may be damaged or cut off). Please try another photo."
        ) from exc


def png_bilevel(mask: np.ndarray, level: int = 1) -> bytes:
    """A 0/1 (HxW uint8) mask as a 1-bit greyscale PNG: 1 white, 0 black.

    Written here because the libraries are slow at this size: Pillow keeps mode "1" images as a
    byte per pixel, so Image.frombytes + save spends ~30 ms unpacking and repacking a 12 MP
    mask, and cv2.imencode's bilevel PNG is as slow; PNG itself only needs the packed rows,
    each after a filter byte of 0, zlib-compressed (~3 ms)."""
    h, w = mask.shape
    rows = np.packbits(mask.astype(bool), axis=1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # 1 bit, greyscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, level))
        + chunk(b"IEND", b"")
    )

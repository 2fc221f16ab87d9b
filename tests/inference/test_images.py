"""backend/inference/images.py: the hand-written bilevel PNG writer decodes like any PNG, and
an iPhone's HEIC photo is read like a JPEG (upright, right colours)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.inference.errors import UnusableInputError
from backend.inference.images import decode_photo, png_bilevel, sniff_image_format


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (150, 200), (301, 4003)])
def test_bilevel_png_round_trips_through_pillow(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    mask = (rng.random(shape) < 0.3).astype(np.uint8)
    mask[: shape[0] // 2, : shape[1] // 2] = 1  # a solid block as well as noise

    image = Image.open(io.BytesIO(png_bilevel(mask)))
    image.load()  # Pillow checks every chunk's CRC and the zlib stream here

    assert image.size == (shape[1], shape[0]) and image.mode == "1"
    assert np.array_equal(np.asarray(image).astype(np.uint8), mask)


def test_bilevel_png_of_a_blank_mask_is_small_and_black() -> None:
    data = png_bilevel(np.zeros((3000, 4000), np.uint8))
    assert len(data) < 10_000
    assert not np.asarray(Image.open(io.BytesIO(data))).any()


def _heic(image: Image.Image, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="HEIF", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_heic_photo_decodes_upright_with_its_colours(orientation: int) -> None:
    image = Image.new("RGB", (120, 60), "white")
    image.paste((255, 0, 0), (0, 0, 30, 60))  # a red band on the left
    data = _heic(image, orientation)
    assert sniff_image_format(data) == "HEIF"
    photo = decode_photo(data)
    if orientation == 1:
        assert photo.pixels.shape == (60, 120, 3)
        red, white = photo.pixels[30, 10], photo.pixels[30, 100]
    else:  # EXIF 6: shown turned a quarter clockwise, so the band is on top
        assert photo.pixels.shape == (120, 60, 3) and photo.original_hw == (120, 60)
        red, white = photo.pixels[10, 30], photo.pixels[100, 30]
    assert red[0] > 230 and red[1] < 25 and red[2] < 25
    assert white.min() > 230


def test_a_heic_that_is_cut_off_is_refused_with_a_reason() -> None:
    data = _heic(Image.new("RGB", (200, 200), "pink"))
    with pytest.raises(UnusableInputError, match="could not be read"):
        decode_photo(data[: len(data) // 2])

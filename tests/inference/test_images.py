"""backend/inference/images.py: the hand-written bilevel PNG writer decodes like any PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.inference.images import png_bilevel


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

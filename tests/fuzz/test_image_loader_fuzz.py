"""Hypothesis on the image loader: any bytes, and any mutation of a real JPEG/PNG/WebP,
either decode to an upright RGB array or raise UnusableInputError — nothing else."""

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from backend.inference.errors import UnusableInputError
from backend.inference.images import load_image_rgb


def _sample(fmt: str) -> bytes:
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


SAMPLES = [_sample("JPEG"), _sample("PNG"), _sample("WEBP")]


def _check(data: bytes) -> None:
    try:
        pixels = load_image_rgb(data)
    except UnusableInputError as exc:
        assert exc.message and exc.status_code == 422
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data):
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                          max_size=12), st.integers(0, 10_000))
def test_mutated_real_images(sample, flips, cut):
    data = bytearray(sample)
    for position, value in flips:
        data[position % len(data)] = value
    _check(bytes(data[: max(1, len(data) - cut)]))

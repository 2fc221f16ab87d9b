"""Phone-photo augmentations for image training (numpy/OpenCV, no torch).

Training images here are clinical captures (dermoscopy, otoscopy); users send phone photos.
These ops mimic what a phone adds: a different scale and framing, rotation, a colour cast
from room light, defocus/motion blur, specular glare and JPEG recompression. Geometric ops
take an optional mask and move it with the image so segmentation labels stay aligned.
"""

from __future__ import annotations

import cv2
import numpy as np


def random_affine(
    image: np.ndarray,
    mask: np.ndarray | None,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.7, 1.3),
    max_rotation_deg: float = 180.0,
    max_shift: float = 0.1,
    aspect: tuple[float, float] = (0.8, 1.25),
    flip: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate/scale/shift/flip about the centre; borders are reflected (skin continues)."""
    h, w = image.shape[:2]
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    s = rng.uniform(*scale)
    a = np.sqrt(rng.uniform(*aspect))
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, s)
    m[:, 0] *= a
    m[:, 1] /= a
    # Re-centre after the aspect change, then shift.
    cx, cy = w / 2.0, h / 2.0
    m[0, 2] = cx - m[0, 0] * cx - m[0, 1] * cy + rng.uniform(-max_shift, max_shift) * w
    m[1, 2] = cy - m[1, 0] * cx - m[1, 1] * cy + rng.uniform(-max_shift, max_shift) * h
    out = cv2.warpAffine(
        image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    out_mask = None
    if mask is not None:
        out_mask = cv2.warpAffine(
            mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
        )
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
        out_mask = out_mask[:, ::-1] if out_mask is not None else None
    if flip and rng.random() < 0.5:
        out = out[::-1]
        out_mask = out_mask[::-1] if out_mask is not None else None
    return np.ascontiguousarray(out), (
        np.ascontiguousarray(out_mask) if out_mask is not None else None
    )


def colour_cast(image: np.ndarray, rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    """Per-channel gain (white balance), brightness, contrast, gamma and saturation jitter."""
    x = image.astype(np.float32) / 255.0
    gains = 1.0 + rng.uniform(-strength, strength, size=3).astype(np.float32)
    x = x * gains
    x = x * rng.uniform(0.75, 1.25) + rng.uniform(-0.08, 0.08)
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = (x - mean) * rng.uniform(0.75, 1.3) + mean
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.7, 1.3)
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    return (x * 255.0 + 0.5).astype(np.uint8)


def blur(image: np.ndarray, rng: np.random.Generator, max_sigma: float = 1.2) -> np.ndarray:
    """Defocus (Gaussian) or short motion blur."""
    if rng.random() < 0.7:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, max_sigma))
    k = int(rng.integers(3, 6))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def glare(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One soft specular highlight (flash on shiny skin)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.03, 0.15) * w, rng.uniform(0.03, 0.15) * h
    spot = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2.0)
    amount = rng.uniform(0.3, 0.9)
    x = image.astype(np.float32) + (255.0 - image.astype(np.float32)) * (amount * spot)[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


def noise(image: np.ndarray, rng: np.random.Generator, max_std: float = 6.0) -> np.ndarray:
    n = rng.normal(0.0, rng.uniform(1.0, max_std), size=image.shape).astype(np.float32)
    return np.clip(image.astype(np.float32) + n, 0, 255).astype(np.uint8)


def jpeg(
    image: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (40, 95)
) -> np.ndarray:
    q = int(rng.integers(*quality))
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        return image
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def phone_photo(
    image: np.ndarray,
    mask: np.ndarray | None,
    rng: np.random.Generator,
    *,
    p_colour: float = 0.9,
    p_blur: float = 0.3,
    p_glare: float = 0.2,
    p_noise: float = 0.3,
    p_jpeg: float = 0.4,
    **affine: object,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The full chain on an RGB uint8 image (and its mask)."""
    image, mask = random_affine(image, mask, rng, **affine)  # type: ignore[arg-type]
    if rng.random() < p_colour:
        image = colour_cast(image, rng)
    if rng.random() < p_blur:
        image = blur(image, rng)
    if rng.random() < p_glare:
        image = glare(image, rng)
    if rng.random() < p_noise:
        image = noise(image, rng)
    if rng.random() < p_jpeg:
        image = jpeg(image, rng)
    return image, mask

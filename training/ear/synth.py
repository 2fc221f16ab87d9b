"""Synthetic non-eardrum pictures for the "is this an eardrum?" gate.

Every generator takes a seeded numpy Generator and returns an HxWx3 uint8 RGB picture of a
random phone-like size, so the train/val/test negatives are reproducible and disjoint by
seed range. They cover what a parent is likely to photograph by mistake (a printed ECG, a
page of text, the room, a finger over the lens, a blank or dark frame) plus plain noise and
gradients that probe the model's texture shortcuts.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Generator = np.random.Generator

WORDS = [
    "the",
    "patient",
    "ear",
    "left",
    "right",
    "normal",
    "result",
    "doctor",
    "clinic",
    "date",
    "name",
    "heart",
    "rate",
    "blood",
    "pressure",
    "take",
    "tablets",
    "daily",
    "with",
    "water",
    "appointment",
    "phone",
    "monday",
    "report",
    "page",
    "total",
    "invoice",
    "amount",
    "school",
    "lunch",
    "menu",
    "recipe",
    "sugar",
    "flour",
    "minutes",
    "oven",
    "chapter",
    "story",
]


def _size(rng: Generator) -> tuple[int, int]:
    w = int(rng.integers(300, 720))
    h = int(w * rng.choice([0.75, 1.0, 1.333, 0.5625]))
    return h, w


def _photo_finish(img: np.ndarray, rng: Generator) -> np.ndarray:
    """Light falloff, a colour cast, sensor noise and a little blur, like a phone photo."""
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(h, w)
    out *= (1.0 - rng.uniform(0, 0.6) * r)[..., None]
    out *= rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    out += rng.normal(0, rng.uniform(1, 8), size=out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    k = int(rng.choice([0, 3, 5]))
    if k:
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def _perspective(img: np.ndarray, rng: Generator, amount: float = 0.12) -> np.ndarray:
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-amount, amount, size=(4, 2)) * np.float32([w, h])
    dst = (src + jitter).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    bg = tuple(int(v) for v in rng.integers(40, 200, size=3))
    return cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=bg)


def ecg_sheet(rng: Generator) -> np.ndarray:
    """A printed ECG: pink 1 mm / 5 mm grid, black traces with P-QRS-T beats, lead labels."""
    h, w = _size(rng)
    paper = np.array([255, rng.uniform(235, 250), rng.uniform(230, 248)], np.float32)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = paper.astype(np.uint8)
    mm = rng.uniform(3.0, 8.0)  # pixels per millimetre
    minor = (255, int(rng.uniform(180, 215)), int(rng.uniform(180, 215)))
    major = (int(rng.uniform(220, 255)), int(rng.uniform(90, 150)), int(rng.uniform(90, 150)))
    for i in range(int(w / mm) + 1):
        x = int(i * mm)
        cv2.line(img, (x, 0), (x, h), major if i % 5 == 0 else minor, 1)
    for i in range(int(h / mm) + 1):
        y = int(i * mm)
        cv2.line(img, (0, y), (w, y), major if i % 5 == 0 else minor, 1)
    rows = int(rng.integers(2, 6))
    rr = rng.uniform(0.6, 1.2)  # seconds per beat
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    thick = int(rng.choice([1, 1, 2]))
    for row in range(rows):
        base = (row + 0.6) * h / (rows + 0.2)
        t = np.arange(0, w) / (25 * mm)  # 25 mm/s
        phase = (t + rng.uniform(0, rr)) % rr
        amp = rng.uniform(0.5, 1.5) * rng.choice([1, -1], p=[0.8, 0.2])
        beat = (
            0.15 * np.exp(-(((phase - 0.1) / 0.025) ** 2))
            + amp * np.exp(-(((phase - 0.2) / 0.008) ** 2))
            - 0.2 * amp * np.exp(-(((phase - 0.215) / 0.01) ** 2))
            + 0.3 * np.exp(-(((phase - 0.42) / 0.05) ** 2))
        )
        beat += rng.normal(0, 0.01, size=beat.shape).cumsum() * 0.05
        y = base - beat * 10 * mm
        pts = np.stack([np.arange(w), y], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, (20, 20, 20), thick, cv2.LINE_AA)
        for col in range(4):
            cv2.putText(
                img,
                names[(row * 4 + col) % 12],
                (int(col * w / 4 + 5), int(base - 8 * mm)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 + mm / 20,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
    if rng.random() < 0.7:
        img = _perspective(img, rng)
    if rng.random() < 0.4:
        # A close-up of part of the sheet, as when the phone is held too near.
        ch, cw = int(h * rng.uniform(0.3, 0.7)), int(w * rng.uniform(0.3, 0.7))
        y0, x0 = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        img = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h))
    return _photo_finish(img, rng)


def text_page(rng: Generator) -> np.ndarray:
    h, w = _size(rng)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(215, 256, size=3).astype(np.uint8)
    scale = rng.uniform(0.4, 1.2)
    step = int(30 * scale) + 4
    ink = tuple(int(v) for v in rng.integers(0, 80, size=3))
    for y in range(step, h - 5, step):
        line = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        cv2.putText(
            img,
            line,
            (int(rng.integers(5, 30)), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            ink,
            1,
            cv2.LINE_AA,
        )
    if rng.random() < 0.7:
        img = _perspective(img, rng)
    return _photo_finish(img, rng)


def room_scene(rng: Generator) -> np.ndarray:
    """Walls, floor, furniture-like boxes, a window, a lamp: a blurry indoor snapshot."""
    h, w = _size(rng)
    wall = rng.integers(90, 240, size=3).astype(np.float32)
    floor = rng.integers(40, 180, size=3).astype(np.float32)
    horizon = int(h * rng.uniform(0.5, 0.8))
    img = np.empty((h, w, 3), np.float32)
    grad = np.linspace(0.8, 1.1, h, dtype=np.float32)[:, None, None]
    img[:horizon] = wall
    img[horizon:] = floor
    img *= grad
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        elif shape == 1:
            cv2.ellipse(
                img,
                (x0, y0),
                ((x1 - x0) // 2, (y1 - y0) // 3),
                float(rng.uniform(0, 180)),
                0,
                360,
                colour,
                -1,
            )
        else:
            cv2.line(img, (x0, y0), (x1, y1), colour, int(rng.integers(2, 12)))
    if rng.random() < 0.5:  # a bright window
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, horizon // 2 + 1))
        cv2.rectangle(
            img,
            (x0, y0),
            (x0 + int(rng.integers(40, w // 3 + 41)), y0 + int(rng.integers(40, h // 3 + 41))),
            (250, 250, 245),
            -1,
        )
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 4))
    return _photo_finish(img, rng)


def finger_blob(rng: Generator) -> np.ndarray:
    """A fingertip or skin over the lens: a smooth pink-orange blob with a lit spot."""
    h, w = _size(rng)
    skin = np.array(
        [rng.uniform(170, 250), rng.uniform(100, 190), rng.uniform(80, 160)], np.float32
    )
    img = np.empty((h, w, 3), np.float32)
    img[:] = skin * rng.uniform(0.3, 0.8)
    centre = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
    axes = (int(rng.uniform(0.3, 0.8) * w), int(rng.uniform(0.3, 0.8) * h))
    cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, skin.tolist(), -1)
    ridges = rng.normal(0, 1, size=(h // 8 + 1, w // 8 + 1)).astype(np.float32)
    ridges = cv2.resize(ridges, (w, h))[..., None] * rng.uniform(0, 12)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(8, 30)) + ridges
    spot = np.zeros((h, w), np.float32)
    cv2.circle(
        spot, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(10, 80)), 1.0, -1
    )
    img += cv2.GaussianBlur(spot, (0, 0), 15)[..., None] * rng.uniform(0, 120)
    return _photo_finish(np.clip(img, 0, 255).astype(np.uint8), rng)


def noise(rng: Generator) -> np.ndarray:
    h, w = _size(rng)
    cell = int(rng.choice([1, 2, 4, 8, 16]))
    small = rng.integers(0, 256, size=(h // cell + 1, w // cell + 1, 3)).astype(np.uint8)
    if rng.random() < 0.5:
        small = np.repeat(small[..., :1], 3, axis=2)
    return cv2.resize(
        small, (w, h), interpolation=cv2.INTER_NEAREST if cell < 4 else cv2.INTER_LINEAR
    )


def gradient(rng: Generator) -> np.ndarray:
    h, w = _size(rng)
    a, b = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    t = np.cos(theta) * xx / w + np.sin(theta) * yy / h
    if rng.random() < 0.5:  # radial, like a lamp on a wall
        t = np.sqrt((xx / w - rng.random()) ** 2 + (yy / h - rng.random()) ** 2)
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    img = a + (b - a) * t[..., None]
    return _photo_finish(np.clip(img, 0, 255).astype(np.uint8), rng)


def flat(rng: Generator) -> np.ndarray:
    h, w = _size(rng)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, size=3).astype(np.uint8)
    if rng.random() < 0.3:
        img[:] = rng.integers(0, 30)  # lens covered / lights off
    return _photo_finish(img, rng)


GENERATORS: dict[str, Callable[[Generator], np.ndarray]] = {
    "ecg_sheet": ecg_sheet,
    "text_page": text_page,
    "room_scene": room_scene,
    "finger_blob": finger_blob,
    "noise": noise,
    "gradient": gradient,
    "flat": flat,
}


def blurred(image: np.ndarray, rng: Generator) -> np.ndarray:
    """An eardrum photo blurred beyond recognition (a shaken or fogged frame)."""
    sigma = rng.uniform(0.03, 0.08) * max(image.shape[:2])
    out = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < 0.5:
        k = int(rng.integers(9, 31))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2, k / 2), float(rng.uniform(0, 180)), 1.0)
        out = cv2.filter2D(out, -1, cv2.warpAffine(kernel, rot, (k, k)))
    return out


def natural_variant(image: np.ndarray, rng: Generator) -> np.ndarray:
    """A random crop / rotation / recolour of an ordinary photo (to stretch the 20 seeds)."""
    h, w = image.shape[:2]
    s = rng.uniform(0.35, 1.0)
    ch, cw = max(32, int(h * s)), max(32, int(w * s * rng.uniform(0.8, 1.25)))
    cw = min(cw, w)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    k = int(rng.integers(0, 4))
    crop = np.ascontiguousarray(np.rot90(crop, k))
    return _photo_finish(crop, rng)

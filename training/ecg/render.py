"""Printed-ECG sheet renderer and phone-photo simulator (training and evaluation of the digitiser).

`render_sample(signals, seed=..., mode="phone"|"clean", layout=...)` draws real (or synthetic)
500 Hz signals as a printed sheet -- grid, calibration pulses, lead labels, header text -- in one
of the layouts 3x4 + rhythm II, 6x2 or a single strip, then "photographs" it (perspective,
rotation, curl and crease warps, lamp gradient, shadow, colour cast, blur, noise, JPEG, moire) or,
in "clean" mode, scans it. It returns the image and the ground truth: per lead a 500 Hz array over
the printed time axis with NaN outside the window in which that lead is printed.

`wearable_pdf(lead_i, fs)` writes a single-lead device's ECG PDF (the Apple Watch export's layout).

Data loaders for ../shared/data/ecg (twelve-lead WFDB records, CinC 2017 strips) sit at the end;
the renderer itself needs none of them (tests feed `synthetic_twelve_lead`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from training.common.shared_data import SHARED_DATA

FS = 500
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LAYOUT_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
LAYOUT_6X2 = (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6"))
LAYOUTS = ("3x4", "6x2", "1x1")  # also "3x4-no-rhythm" (three rows, no rhythm strip) on request
PAPERS_MM = {"a4": (297.0, 210.0), "letter": (279.4, 215.9)}
STRIP_PAPER_MM = (297.0, 110.0)

# (minor, major) grid colours, RGB, as printed by common electrocardiographs.
GRID_COLOURS = (
    ((250, 190, 190), (235, 120, 120)),  # pink/red
    ((252, 205, 170), (240, 150, 95)),  # orange
    ((255, 175, 175), (225, 60, 60)),  # saturated red
    ((190, 225, 195), (110, 185, 125)),  # green
    ((195, 210, 240), (120, 150, 215)),  # blue
    ((215, 215, 215), (165, 165, 165)),  # grey
)
TRACE_COLOURS = ((0, 0, 0), (20, 20, 30), (15, 25, 90), (40, 40, 40))
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)


@dataclass
class Sheet:
    """A flat printed sheet and where things are on it (all positions in sheet pixels)."""

    image: np.ndarray  # HxWx3 uint8 RGB
    ppm: float  # sheet pixels per mm
    layout: str
    truth: dict[str, np.ndarray]  # lead -> (n,) mV at 500 Hz, NaN outside its printed window
    duration_s: float
    grid_box: tuple[float, float, float, float]  # x0, y0, x1, y1 in sheet px
    lead_boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


@dataclass
class Rendered:
    image: np.ndarray  # HxWx3 uint8 RGB, the "photo" or "scan"
    truth: dict[str, np.ndarray]
    fs: int
    layout: str
    mode: str
    duration_s: float
    params: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- synthetic signal


def synthetic_twelve_lead(seed: int = 0, duration_s: float = 10.0) -> dict[str, np.ndarray]:
    """A plausible 12-lead ECG made of Gaussian P/QRS/T waves (for tests without data)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * FS)
    t = np.arange(n) / FS
    hr = rng.uniform(55, 95)
    rr = 60.0 / hr
    beats = np.arange(rng.uniform(0.1, 0.6), duration_s + rr, rr)
    beats = beats + rng.normal(0, 0.02, beats.size)
    # Per-lead amplitudes (mV) of P, Q, R, S, T loosely after a normal axis.
    amp = {
        "I": (0.1, -0.05, 0.8, -0.15, 0.25),
        "II": (0.15, -0.08, 1.2, -0.2, 0.35),
        "III": (0.06, -0.1, 0.5, -0.1, 0.12),
        "aVR": (-0.12, 0.05, -0.9, 0.1, -0.3),
        "aVL": (0.04, -0.04, 0.3, -0.2, 0.08),
        "aVF": (0.1, -0.08, 0.85, -0.12, 0.25),
        "V1": (0.08, 0.0, 0.35, -1.1, 0.1),
        "V2": (0.1, 0.0, 0.6, -1.4, 0.45),
        "V3": (0.1, -0.05, 0.9, -0.9, 0.5),
        "V4": (0.1, -0.1, 1.5, -0.5, 0.45),
        "V5": (0.1, -0.1, 1.3, -0.3, 0.35),
        "V6": (0.1, -0.08, 1.0, -0.2, 0.3),
    }
    centres = (-0.16, -0.025, 0.0, 0.025, 0.28)
    widths = (0.025, 0.009, 0.011, 0.011, 0.05)
    out: dict[str, np.ndarray] = {}
    wander_phase = rng.uniform(0, 2 * np.pi)
    for lead, amps in amp.items():
        x = np.zeros(n)
        scale = rng.uniform(0.8, 1.2)
        for b in beats:
            for a, c, w in zip(amps, centres, widths, strict=True):
                x += scale * a * np.exp(-0.5 * ((t - b - c) / w) ** 2)
        x += 0.05 * np.sin(2 * np.pi * 0.2 * t + wander_phase) + rng.normal(0, 0.005, n)
        out[lead] = x
    return out


# ----------------------------------------------------------------------------- sheet drawing


def _pts(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sub-pixel polyline points for cv2 with shift=4."""
    return np.round(np.stack([xs, ys], axis=1) * 16).astype(np.int32)


def _line(img, p0, p1, colour, width):
    cv2.line(
        img,
        (round(p0[0] * 16), round(p0[1] * 16)),
        (round(p1[0] * 16), round(p1[1] * 16)),
        colour,
        width,
        cv2.LINE_AA,
        4,
    )


def _text(img, text, x, y, height_px, colour, font, thickness):
    scale = cv2.getFontScaleFromHeight(font, max(4, int(height_px)), thickness)
    cv2.putText(img, text, (int(x), int(y)), font, scale, colour, thickness, cv2.LINE_AA)


def render_sheet(
    signals: dict[str, np.ndarray],
    *,
    layout: str,
    rng: np.random.Generator,
    ppm: float = 10.0,
    duration_s: float = 10.0,
    single_lead: str = "II",
    style: dict | None = None,
) -> Sheet:
    """Draw `signals` (lead -> 500 Hz mV) as a printed sheet at `ppm` pixels per mm."""
    style = dict(style or {})
    if layout == "1x1":
        paper_w, paper_h = STRIP_PAPER_MM
    else:
        paper_w, paper_h = PAPERS_MM[style.get("paper", rng.choice(list(PAPERS_MM)))]
    W, H = round(paper_w * ppm), round(paper_h * ppm)
    paper_rgb = np.array(style.get("paper_rgb", rng.uniform([242, 240, 232], [255, 255, 252])))
    img = np.empty((H, W, 3), np.uint8)
    img[:] = paper_rgb.astype(np.uint8)

    speed, gain = 25.0, 10.0  # mm/s, mm/mV
    pulse = style.get("pulse", rng.random() < 0.85)
    cal_w = 9.0 if pulse else 4.0
    n_cols = {"3x4": 4, "3x4-no-rhythm": 4, "6x2": 2, "1x1": 1}[layout]
    trace_mm = duration_s * speed
    grid_w = 5 * np.ceil((cal_w + trace_mm + 3) / 5)
    gx0 = max(5.0, (paper_w - grid_w) / 2 + rng.uniform(-3, 3))
    if layout == "1x1":
        gy0, gy1 = 15.0, paper_h - 10.0
        n_rows = 1
    else:
        gy0, gy1 = rng.uniform(28, 40), paper_h - rng.uniform(8, 14)
        n_rows = {"3x4": 4, "3x4-no-rhythm": 3}.get(layout, 6)
    grid_h = 5 * np.floor((gy1 - gy0) / 5)
    gy1 = gy0 + grid_h
    gx1 = gx0 + grid_w

    minor_c, major_c = GRID_COLOURS[style.get("grid", rng.integers(len(GRID_COLOURS)))]
    minor_w = max(1, round(ppm * rng.uniform(0.08, 0.14)))
    major_w = max(1, round(ppm * rng.uniform(0.15, 0.3)))
    show_minor = style.get("minor", rng.random() < 0.9)
    if show_minor:
        for k in range(int(grid_w) + 1):
            if k % 5:
                x = (gx0 + k) * ppm
                _line(img, (x, gy0 * ppm), (x, gy1 * ppm), minor_c, minor_w)
        for k in range(int(grid_h) + 1):
            if k % 5:
                y = (gy0 + k) * ppm
                _line(img, (gx0 * ppm, y), (gx1 * ppm, y), minor_c, minor_w)
    for k in range(0, int(grid_w) + 1, 5):
        x = (gx0 + k) * ppm
        _line(img, (x, gy0 * ppm), (x, gy1 * ppm), major_c, major_w)
    for k in range(0, int(grid_h) + 1, 5):
        y = (gy0 + k) * ppm
        _line(img, (gx0 * ppm, y), (gx1 * ppm, y), major_c, major_w)

    ink = TRACE_COLOURS[style.get("ink", rng.integers(len(TRACE_COLOURS)))]
    trace_w = max(1, round(ppm * style.get("trace_mm", rng.uniform(0.15, 0.35))))
    font = FONTS[rng.integers(len(FONTS))]
    text_c = (30, 30, 30)

    # Header and footer text outside the grid, as electrocardiographs print them.
    if layout != "1x1":
        lines = [
            (
                f"ID: {rng.integers(10**6, 10**7)}   {rng.integers(1, 28):02d}.0{rng.integers(1, 9)}.2023"
                f"   {rng.integers(8, 18)}:{rng.integers(10, 59)}"
            ),
            (
                f"Vent. rate {rng.integers(50, 110)} bpm   PR {rng.integers(120, 200)} ms   "
                f"QRS {rng.integers(80, 110)} ms   QT/QTc {rng.integers(340, 420)}/{rng.integers(390, 450)} ms"
            ),
        ]
        for i, line in enumerate(lines):
            _text(img, line, gx0 * ppm, (gy0 - 16 + 7 * i) * ppm, 3.2 * ppm, text_c, font, 1)
    footer = f"{speed:.0f} mm/s   {gain:.0f} mm/mV   0.05-150 Hz   50 Hz"
    _text(img, footer, gx0 * ppm, min(paper_h - 1.5, gy1 + 5) * ppm, 2.8 * ppm, text_c, font, 1)

    n_total = round(duration_s * FS)
    truth = {}
    lead_boxes: dict[str, tuple[float, float, float, float]] = {}
    row_pitch = grid_h / (n_rows + (0.4 if n_rows > 1 else 1.0))
    if layout == "1x1":
        rows = [[single_lead]]
    elif layout == "3x4":
        rows = [list(r) for r in LAYOUT_3X4] + [["II"]]
    elif layout == "3x4-no-rhythm":
        rows = [list(r) for r in LAYOUT_3X4]
    else:
        rows = [list(r) for r in LAYOUT_6X2]
    x_start = gx0 + cal_w
    seg_mm = trace_mm / n_cols
    label_h = rng.uniform(2.5, 3.8)
    ticks = rng.random() < 0.6
    for r, row in enumerate(rows):
        base_mm = gy0 + row_pitch * (r + (0.8 if n_rows > 1 else 1.0))
        by = base_mm * ppm
        if pulse:
            px = (gx0 + 1.5) * ppm
            xs = np.array(
                [
                    px,
                    px + 1.5 * ppm,
                    px + 1.5 * ppm,
                    px + 6.5 * ppm,
                    px + 6.5 * ppm,
                    (x_start) * ppm,
                ]
            )
            ys = np.array([by, by, by - gain * ppm, by - gain * ppm, by, by])
            cv2.polylines(img, [_pts(xs, ys)], False, ink, trace_w, cv2.LINE_AA, 4)
        cols = row
        seg_n = round(n_total / len(cols))
        for c, lead in enumerate(cols):
            i0 = c * seg_n
            i1 = n_total if c == len(cols) - 1 else (c + 1) * seg_n
            sig = np.asarray(signals[lead][:n_total], dtype=np.float64)
            # A polyline point per sample plus the segment's end point so neighbours touch.
            j1 = min(i1 + 1, n_total)
            ts = np.arange(i0, j1) / FS
            xs = (x_start + ts * speed) * ppm
            ys = by - sig[i0:j1] * gain * ppm
            cv2.polylines(img, [_pts(xs, ys)], False, ink, trace_w, cv2.LINE_AA, 4)
            tr = np.full(n_total, np.nan)
            tr[i0:i1] = sig[i0:i1]
            if lead in truth and layout == "3x4" and lead == "II":
                truth[lead] = np.where(np.isnan(truth[lead]), tr, truth[lead])
            else:
                truth[lead] = tr
            lead_boxes[lead] = (
                xs[0],
                by - 0.5 * row_pitch * ppm,
                xs[-1],
                by + 0.5 * row_pitch * ppm,
            )
            lx = (x_start + c * seg_mm + rng.uniform(0.5, 2.0)) * ppm
            ly = by - rng.uniform(4.0, 7.0) * ppm
            _text(img, lead, lx, ly, label_h * ppm, text_c, font, max(1, trace_w - 1))
            if ticks and c > 0:
                tx = (x_start + c * seg_mm) * ppm
                _line(img, (tx, by - 2.5 * ppm), (tx, by + 2.5 * ppm), ink, trace_w)
    return Sheet(
        img,
        ppm,
        layout,
        truth,
        duration_s,
        (gx0 * ppm, gy0 * ppm, gx1 * ppm, gy1 * ppm),
        lead_boxes,
    )


# ----------------------------------------------------------------------------- photo simulation


def _smooth_noise(rng, h, w, cells, amp):
    small = rng.normal(0, 1, (cells, max(2, int(cells * w / h))))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp


def photograph(
    sheet: Sheet,
    *,
    rng: np.random.Generator,
    mode: str = "phone",
    out_long_side: int = 2400,
    crop: str | None = None,
    strength: float = 1.0,
) -> tuple[np.ndarray, dict]:
    """Warp and degrade a flat sheet like a phone photo ("phone") or a flatbed scan ("clean").

    crop: None, or "left"/"right"/"top"/"bottom" to cut that edge of the sheet off (quality
    gate tests). Returns the RGB uint8 image and the parameters drawn.
    """
    src = sheet.image
    sh, sw = src.shape[:2]
    params: dict = {"mode": mode}
    if mode == "clean":
        aspect = sh / sw
        out_w = out_long_side if sw >= sh else int(out_long_side / aspect)
        out_w = int(out_w)
        margin = rng.uniform(0.0, 0.03)
        scale = out_w / (sw * (1 + 2 * margin))
        out_h = round(sh * scale * (1 + 2 * margin))
        ang = np.deg2rad(rng.uniform(-0.8, 0.8))
        c, s = np.cos(ang) * scale, np.sin(ang) * scale
        cx, cy = sw / 2, sh / 2
        A = np.array(
            [[c, -s, out_w / 2 - (c * cx - s * cy)], [s, c, out_h / 2 - (s * cx + c * cy)]]
        )
        img = cv2.warpAffine(
            src,
            A,
            (out_w, out_h),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderValue=(250, 250, 250),
        )
        img = img.astype(np.float32)
        img += rng.normal(0, rng.uniform(0.5, 2.0), img.shape).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)
        params.update(angle_deg=float(np.rad2deg(ang)), scale=scale)
        _ok, buf = cv2.imencode(
            ".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(88, 97))]
        )
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy(), params

    s = strength
    out_w = int(out_long_side)
    out_h = round(out_w * rng.uniform(0.72, 0.78))
    # Page corners in the photo: centred, 70-92 % of the frame, rotated, perspective jitter.
    fill = rng.uniform(0.72, 0.9)
    page_aspect = sh / sw
    pw = min(out_w * fill, out_h * fill / page_aspect)
    ph = pw * page_aspect
    ang = np.deg2rad(rng.uniform(-7, 7) * s)
    corners = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    corners = corners @ rot.T
    corners += rng.uniform(-0.05, 0.05, corners.shape) * np.array([pw, ph]) * s
    centre = np.array([out_w / 2, out_h / 2]) + rng.uniform(-0.04, 0.04, 2) * np.array(
        [out_w, out_h]
    )
    corners += centre
    if crop is not None:
        shift = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[crop]
        corners += np.array(shift) * np.array([pw, ph]) * 0.3
    src_c = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64)
    Hm = cv2.getPerspectiveTransform(src_c.astype(np.float32), corners.astype(np.float32))
    Hinv = np.linalg.inv(Hm)

    # Inverse map on a coarse lattice (smooth warps), refined by resizing.
    step = 8
    gx, gy = np.meshgrid(
        np.arange(0, out_w + step, step, dtype=np.float64),
        np.arange(0, out_h + step, step, dtype=np.float64),
    )
    pts = np.stack([gx, gy, np.ones_like(gx)], -1) @ Hinv.T
    mx, my = pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]
    # Curl: the paper lifts along one axis (vertical displacement varying with x), in mm.
    curl_mm = rng.uniform(0.0, 2.0) * s
    phase = rng.uniform(0, np.pi)
    my = my - curl_mm * sheet.ppm * np.sin(np.pi * mx / sw + phase) ** 2
    crease = rng.random() < 0.4 * s
    if crease:
        cx_ = rng.uniform(0.3, 0.7) * sw
        my = my + 0.4 * sheet.ppm * np.tanh((mx - cx_) / (3 * sheet.ppm))
    mapx = cv2.resize(
        mx.astype(np.float32), (out_w + step, out_h + step), interpolation=cv2.INTER_LINEAR
    )[:out_h, :out_w]
    mapy = cv2.resize(
        my.astype(np.float32), (out_w + step, out_h + step), interpolation=cv2.INTER_LINEAR
    )[:out_h, :out_w]
    # Pre-blur the sheet when the photo shrinks it (the lens averages; avoids aliasing).
    shrink = pw / sw
    srcb = src if shrink > 0.7 else cv2.GaussianBlur(src, (0, 0), 0.45 / shrink)
    page_mask = (mapx >= 0) & (mapx < sw - 1) & (mapy >= 0) & (mapy < sh - 1)
    warped = cv2.remap(srcb, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # Table background: a flat colour with low-frequency texture.
    table = rng.uniform([60, 50, 40], [200, 185, 170])
    bg = np.empty((out_h, out_w, 3), np.float32)
    for ch in range(3):
        bg[..., ch] = table[ch] + _smooth_noise(rng, out_h, out_w, 6, 12)
    mask_f = cv2.GaussianBlur(page_mask.astype(np.float32), (0, 0), 1.0)[..., None]
    img = warped.astype(np.float32) * mask_f + bg * (1 - mask_f)
    if crease:
        side = (mapx > cx_).astype(np.float32)[..., None]
        img *= 1 - 0.06 * side * page_mask[..., None]

    # Lamp gradient, shadow, colour cast.
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    lx, ly = rng.uniform(-0.3, 1.3) * out_w, rng.uniform(-0.3, 1.3) * out_h
    dist = np.sqrt((xx - lx) ** 2 + (yy - ly) ** 2) / np.hypot(out_w, out_h)
    light = 1.0 - rng.uniform(0.1, 0.45) * s * dist / dist.max()
    if rng.random() < 0.6 * s:
        # A hand/phone shadow: a soft-edged blob over part of the page.
        sm = np.zeros((out_h // 4, out_w // 4), np.uint8)
        cxs, cys = rng.uniform(0, out_w / 4), rng.uniform(0, out_h / 4)
        ax = (int(rng.uniform(0.15, 0.45) * out_w / 4), int(rng.uniform(0.15, 0.45) * out_h / 4))
        cv2.ellipse(sm, (int(cxs), int(cys)), ax, rng.uniform(0, 180), 0, 360, 255, -1)
        smf = cv2.GaussianBlur(sm.astype(np.float32) / 255, (0, 0), rng.uniform(4, 15))
        smf = cv2.resize(smf, (out_w, out_h))
        light = light * (1 - rng.uniform(0.25, 0.5) * s * smf)
    cast = rng.uniform([0.92, 0.9, 0.78], [1.05, 1.02, 1.02]) if rng.random() < 0.7 else np.ones(3)
    img = img * light[..., None] * cast.astype(np.float32)
    exposure = rng.uniform(0.85, 1.1)
    img *= exposure
    if rng.random() < 0.1 * s:
        # Moire of a screen photo: a faint beat pattern.
        f = rng.uniform(0.02, 0.06)
        th = rng.uniform(0, np.pi)
        img *= (1 + 0.04 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th))))[..., None]
    sigma = rng.uniform(0.3, 1.1) * s
    if sigma > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.normal(0, rng.uniform(1.0, 5.0) * s, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    q = int(rng.integers(60, 93))
    _ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    params.update(
        angle_deg=float(np.rad2deg(ang)),
        curl_mm=curl_mm,
        crease=crease,
        blur=sigma,
        jpeg=q,
        corners=corners.tolist(),
    )
    return img, params


def render_sample(
    signals: dict[str, np.ndarray],
    *,
    seed: int,
    mode: str = "phone",
    layout: str | None = None,
    out_long_side: int | None = None,
    crop: str | None = None,
    single_lead: str = "II",
    style: dict | None = None,
    strength: float = 1.0,
) -> Rendered:
    """Sheet + photo in one call. mode "phone" (photographed) or "clean" (scanned)."""
    rng = np.random.default_rng(seed)
    layout = layout or LAYOUTS[rng.integers(2)]
    if out_long_side is None:
        out_long_side = (
            int(rng.integers(1800, 3200)) if mode == "phone" else int(rng.integers(1800, 3000))
        )
    paper_w = STRIP_PAPER_MM[0] if layout == "1x1" else 297.0
    # Draw the sheet near the photo's scale so the photo neither aliases nor wastes time.
    ppm = float(np.clip(out_long_side * 0.95 / paper_w, 5.0, 14.0))
    sheet = render_sheet(
        signals, layout=layout, rng=rng, ppm=ppm, single_lead=single_lead, style=style
    )
    img, params = photograph(
        sheet, rng=rng, mode=mode, out_long_side=out_long_side, crop=crop, strength=strength
    )
    params.update(sheet_ppm=ppm, lead_boxes=sheet.lead_boxes)
    return Rendered(img, sheet.truth, FS, layout, mode, sheet.duration_s, params)


# ----------------------------------------------------------------------------- a watch's PDF

WATCH_PAGE_MM = (279.4, 215.9)
WATCH_MINOR, WATCH_MAJOR = (1.0, 0.75, 0.75), (0.93, 0.45, 0.45)
WATCH_FOOTER = "25 mm/s, 10 mm/mV, Lead I, 512Hz, iOS 17.1, watchOS 10.1, Watch6,7"


def wearable_pdf(
    lead_i_mv: np.ndarray,
    fs: float,
    *,
    rows: int = 3,
    gap_mm: float = 6.0,
    footer: str = WATCH_FOOTER,
) -> bytes:
    """A single-lead device's ECG PDF, laid out like the iPhone Health app's export of an Apple
    Watch ECG: US Letter landscape, name and finding on top, the lead as `rows` rows (30 s: three
    of 10 s) at 25 mm/s and 10 mm/mV on a red grid, and a footer naming the lead and the device.
    matplotlib writes the text as TrueType text, as the Health app does, so the page has a text
    layer. gap_mm: white paper between the rows' grids (0 = one grid under all rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width, height = WATCH_PAGE_MM
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig = plt.figure(figsize=(width / 25.4, height / 25.4))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)  # y grows down the page, in mm
        ax.axis("off")
        ax.text(15, 14, "Jane Doe", fontsize=12, weight="bold")
        ax.text(15, 20, "Recorded on Nov 20, 2026 at 9:30 AM", fontsize=8)
        ax.text(200, 14, "Sinus Rhythm", fontsize=12, weight="bold")
        row_s = len(lead_i_mv) / fs / rows
        left, row_h = 15.0, 40.0
        row_mm = row_s * 25.0
        for r in range(rows):
            top = 35 + r * (row_h + gap_mm)
            for k in range(int(row_mm) + 1):
                colour, lw = (WATCH_MAJOR, 0.6) if k % 5 == 0 else (WATCH_MINOR, 0.25)
                ax.plot([left + k, left + k], [top, top + row_h], color=colour, lw=lw)
            for k in range(int(row_h) + 1):
                colour, lw = (WATCH_MAJOR, 0.6) if k % 5 == 0 else (WATCH_MINOR, 0.25)
                ax.plot([left, left + row_mm], [top + k, top + k], color=colour, lw=lw)
            piece = lead_i_mv[int(r * row_s * fs) : int((r + 1) * row_s * fs)]
            t = np.arange(piece.size) / fs
            ax.plot(left + 25.0 * t, top + row_h / 2 - 10.0 * piece, color="black", lw=0.6)
        bottom = 35 + rows * (row_h + gap_mm)
        ax.text(15, bottom + 6, footer, fontsize=7)
        ax.text(15, bottom + 11, "The waveform is similar to a Lead I ECG.", fontsize=7)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="pdf")
        plt.close(fig)
    return buffer.getvalue()


def scanned_pdf(image: np.ndarray, paper_mm: float = 297.0) -> bytes:
    """A sheet's scan saved as a one-page image PDF, as a scanner or a hospital system's "print
    to PDF" of a scanned ECG writes it; the page is `paper_mm` wide (A4 landscape)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PDF", resolution=image.shape[1] / (paper_mm / 25.4))
    return buffer.getvalue()


# ----------------------------------------------------------------------------- data loaders

DATA_DIR = SHARED_DATA / "ecg"


def load_twelve_lead(record_path: str | Path) -> dict[str, np.ndarray]:
    """A twelve-lead WFDB record (500 Hz, mV) as lead -> signal."""
    import wfdb

    rec = wfdb.rdrecord(str(record_path))
    sig = np.nan_to_num(rec.p_signal.astype(np.float64))
    names = [
        n if n.lower() not in ("avr", "avl", "avf") else "aV" + n[2:].upper() for n in rec.sig_name
    ]
    return {n: sig[:, i] for i, n in enumerate(names)}


def load_cinc2017_strip(
    record_id: str, data_dir: Path = DATA_DIR, duration_s: float = 10.0
) -> np.ndarray:
    """The first `duration_s` of a CinC 2017 single-lead strip, resampled 300 -> 500 Hz, in mV."""
    from scipy.signal import resample_poly

    z = np.load(data_dir / "records/cinc2017/signals.npz")
    i = list(z["ids"]).index(record_id)
    x_uv = np.cumsum(z["delta"][z["start"][i] : z["start"][i] + z["length"][i]].astype(np.int64))
    x = resample_poly(x_uv / 1000.0, 5, 3)[: int(duration_s * FS)]
    return x - np.median(x)

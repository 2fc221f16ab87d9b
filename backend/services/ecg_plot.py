"""The digitised ECG redrawn on standard grid paper: 25 mm/s, 10 mm/mV, 1 mm minor and 5 mm
major squares, detected beats marked. One layout, two renderers: SVG for the result page and
Pillow for the PNG card and the doctor's PDF (drawn at true scale there, so calipers work).

Input is the ECG result's `trace`: {"fs", "lead_names", "signals" (one list per lead, None
for samples outside the window in which that lead was printed), "r_peaks_s", "saliency", and
"pacing_spikes_s" when the analysis found a paced rhythm}. The band-pass removes pacemaker spikes
from the drawn trace, so they are drawn as the thin marks ECG machines print in their place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_HEIGHT_MM = 30.0  # +-1.5 mV around the baseline; taller excursions are clipped
LABEL_GAP_MM = 1.0
MARGIN_MM = 4.0
BEAT_MARK_MM = 2.5
# Points per second kept for drawing: min/max per bucket keeps QRS peaks that plain
# decimation would cut, at a fraction of the SVG size.
DRAW_BUCKETS_PER_S = 100

GRID_MINOR = "#f4c7c3"
GRID_MAJOR = "#e08a82"
TRACE = "#111111"
BEAT = "#0b5c8a"
PACING = "#a0138e"
PACING_MARK_MM = 8.0
SALIENCY = "#f2a900"


@dataclass
class Segment:
    lead: str
    start_s: float
    times_s: np.ndarray
    values_mv: np.ndarray


@dataclass
class Row:
    segments: list[Segment] = field(default_factory=list)
    end_s: float = 0.0


@dataclass
class EcgLayout:
    duration_s: float
    rows: list[Row]
    r_peaks_s: list[float]
    saliency: np.ndarray | None
    pacing_spikes_s: list[float] = field(default_factory=list)

    @property
    def width_mm(self) -> float:
        return 2 * MARGIN_MM + self.duration_s * MM_PER_S

    @property
    def height_mm(self) -> float:
        extra = 8.0 if self.saliency is not None else 0.0
        return 2 * MARGIN_MM + len(self.rows) * ROW_HEIGHT_MM + extra


def _valid_windows(signal: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of finite samples."""
    finite = np.isfinite(signal)
    if not finite.any():
        return []
    edges = np.diff(np.concatenate([[0], finite.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _simplify(times: np.ndarray, values: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, round(fs / DRAW_BUCKETS_PER_S))
    if step == 1 or len(values) < 4 * step:
        return times, values
    n = len(values) // step * step
    v = values[:n].reshape(-1, step)
    t = times[:n].reshape(-1, step)
    lo, hi = v.argmin(axis=1), v.argmax(axis=1)
    first = np.minimum(lo, hi)
    second = np.maximum(lo, hi)
    rows = np.arange(len(v))
    out_t = np.stack([t[rows, first], t[rows, second]], axis=1).ravel()
    out_v = np.stack([v[rows, first], v[rows, second]], axis=1).ravel()
    # The tail that does not fill a bucket, and always the last sample, so a lead ends where
    # it was printed to end.
    tail = slice(n, None) if n < len(values) else slice(-1, None)
    return np.concatenate([out_t, times[tail]]), np.concatenate([out_v, values[tail]])


def _pack_rows(segments: list[Segment], names: list[str], duration: float) -> list[Row]:
    """Short windows starting together form a printed column; the i-th of a column goes to
    row i. A full-length rhythm strip gets its own row at the bottom, and holds its column
    slot as a placeholder where a column is one short (lead II in a 3x4 + rhythm sheet)."""
    order = {name: i for i, name in enumerate(names)}
    long = [s for s in segments if s.times_s[-1] - s.times_s[0] >= 0.6 * duration]
    short = [s for s in segments if s not in long]
    columns: dict[float, list[Segment]] = {}
    for seg in short:
        columns.setdefault(round(seg.start_s, 1), []).append(seg)
    height = max((len(c) for c in columns.values()), default=0)
    rows: list[Row] = []
    for start in sorted(columns):
        members: list[Segment | None] = sorted(columns[start], key=lambda s: order.get(s.lead, 99))
        if len(members) < height:
            covering = [s for s in long if s.start_s <= start + 0.05]
            merged = sorted([*members, *covering], key=lambda s: order.get(s.lead, 99))
            members = [None if s in covering else s for s in merged][:height]
        for i, seg in enumerate(members):
            while len(rows) <= i:
                rows.append(Row())
            if seg is not None:
                rows[i].segments.append(seg)
                rows[i].end_s = max(rows[i].end_s, float(seg.times_s[-1]))
    rows = [r for r in rows if r.segments]
    rows.extend(Row([s], float(s.times_s[-1])) for s in sorted(long, key=lambda s: order.get(s.lead, 99)))
    return rows


def layout_trace(trace: dict[str, Any]) -> EcgLayout:
    """Packs leads into rows the way they were printed: leads whose windows do not overlap
    in time share a row (a 3x4 sheet comes back as 3 rows plus its rhythm strip)."""
    fs = float(trace.get("fs") or 500.0)
    names = list(trace.get("lead_names") or [])
    signals = trace.get("signals") or []
    duration = 0.0
    segments: list[Segment] = []
    for name, raw in zip(names, signals):
        signal = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
        duration = max(duration, len(signal) / fs)
        for start, end in _valid_windows(signal):
            if end - start < 2:
                continue
            times = np.arange(start, end) / fs
            t, v = _simplify(times, signal[start:end], fs)
            segments.append(Segment(name, start / fs, t, v))
    rows = _pack_rows(segments, names, duration)
    sal = trace.get("saliency")
    saliency = None
    if isinstance(sal, list) and sal and all(isinstance(x, (int, float)) or x is None for x in sal):
        arr = np.array([0.0 if x is None else float(x) for x in sal])
        # 0.1 s bins (max): enough to show where the model looked, 100 shapes for 10 s.
        per_bin = max(1, round(len(arr) / max(duration, 1e-6) / 10))
        n_bins = int(np.ceil(len(arr) / per_bin))
        arr = np.pad(arr, (0, n_bins * per_bin - len(arr))).reshape(n_bins, per_bin).max(axis=1)
        if arr.max() > arr.min():
            saliency = (arr - arr.min()) / (arr.max() - arr.min())
    peaks = [float(p) for p in (trace.get("r_peaks_s") or []) if p is not None]
    spikes = [float(p) for p in (trace.get("pacing_spikes_s") or []) if p is not None]
    return EcgLayout(max(duration, 1.0), rows, peaks, saliency, spikes)


def _row_baseline_mm(index: int) -> float:
    return MARGIN_MM + index * ROW_HEIGHT_MM + ROW_HEIGHT_MM * 0.55


def _y_mm(value_mv: np.ndarray, baseline: float) -> np.ndarray:
    half = ROW_HEIGHT_MM * 0.5
    return baseline - np.clip(value_mv * MM_PER_MV, -half + 1, half + 2)


def _x_mm(t: np.ndarray | float) -> np.ndarray | float:
    return MARGIN_MM + np.asarray(t) * MM_PER_S


def row_count(trace: dict[str, Any]) -> int:
    return len(layout_trace(trace).rows)


def render_svg(trace: dict[str, Any], title: str = "ECG",
               saliency_label: str = "model attention") -> str:
    """An SVG document in millimetres (viewBox = paper size)."""
    lay = layout_trace(trace)
    w, h = lay.width_mm, lay.height_mm
    out = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.1f} {h:.1f}" '
        f'width="{w * 4:.0f}" height="{h * 4:.0f}" role="img" aria-label="{escape(title)}">'),
        f"<title>{escape(title)}</title>",
        ("<defs>"
        '<pattern id="minor" width="1" height="1" patternUnits="userSpaceOnUse">'
        f'<path d="M1 0V1H0" fill="none" stroke="{GRID_MINOR}" stroke-width="0.08"/></pattern>'
        '<pattern id="major" width="5" height="5" patternUnits="userSpaceOnUse">'
        f'<rect width="5" height="5" fill="url(#minor)"/>'
        f'<path d="M5 0V5H0" fill="none" stroke="{GRID_MAJOR}" stroke-width="0.2"/></pattern>'
        "</defs>"),
        f'<rect width="{w:.1f}" height="{h:.1f}" fill="#fff"/>',
        (f'<rect x="{MARGIN_MM}" y="{MARGIN_MM}" width="{w - 2 * MARGIN_MM:.1f}" '
        f'height="{h - 2 * MARGIN_MM:.1f}" fill="url(#major)"/>'),
    ]
    for i, row in enumerate(lay.rows):
        base = _row_baseline_mm(i)
        for seg in row.segments:
            xs = _x_mm(seg.times_s)
            ys = _y_mm(seg.values_mv, base)
            pts = " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{TRACE}" '
                       'stroke-width="0.3" stroke-linejoin="round"/>')
            out.append(f'<text x="{_x_mm(seg.start_s) + LABEL_GAP_MM:.1f}" '
                       f'y="{base - ROW_HEIGHT_MM * 0.55 + 4:.1f}" font-size="3.2" '
                       f'font-family="sans-serif" fill="#000">{escape(seg.lead)}</text>')
            for peak in lay.r_peaks_s:
                if seg.times_s[0] <= peak <= seg.times_s[-1]:
                    x = float(_x_mm(peak))
                    top = base - ROW_HEIGHT_MM * 0.55 + 0.3
                    out.append(f'<path d="M{x - 1:.2f} {top:.2f}h2l-1 {BEAT_MARK_MM}z" '
                               f'fill="{BEAT}"/>')
            for spike in lay.pacing_spikes_s:
                if seg.times_s[0] <= spike <= seg.times_s[-1]:
                    x = float(_x_mm(spike))
                    out.append(f'<path class="pacing-spike" d="M{x:.2f} {base:.2f}'
                               f'v-{PACING_MARK_MM}" stroke="{PACING}" stroke-width="0.25"/>')
    if lay.saliency is not None:
        y = h - MARGIN_MM - 5
        n = len(lay.saliency)
        step = 0.1 if n * 0.1 <= lay.duration_s + 0.1 else lay.duration_s / n
        out.append(f'<text x="{MARGIN_MM + 0.5}" y="{y - 0.6:.1f}" font-size="2.6" '
                   f'font-family="sans-serif" fill="#333">{escape(saliency_label)}</text>')
        for k, s in enumerate(lay.saliency):
            if s > 0.05:
                out.append(f'<rect x="{_x_mm(k * step):.2f}" y="{y:.1f}" '
                           f'width="{step * MM_PER_S + 0.05:.2f}" height="4" fill="{SALIENCY}" '
                           f'fill-opacity="{s:.2f}"/>')
    # 1 mV calibration pulse, 0.2 s wide, at the end of the first row: the reader's scale check.
    if lay.rows:
        base = _row_baseline_mm(0)
        x0 = w - MARGIN_MM - 6
        out.append(f'<path d="M{x0:.1f} {base:.1f}h1v-10h5" fill="none" stroke="{TRACE}" '
                   'stroke-width="0.3"/>')
    out.append("</svg>")
    return "".join(out)


def _font(size_px: int) -> ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        try:
            return ImageFont.truetype(path, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size_px)


def render_image(trace: dict[str, Any], px_per_mm: float = 6.0,
                 max_duration_s: float | None = None,
                 rows: tuple[int, int] | None = None) -> Image.Image:
    """The same drawing as a Pillow RGB image; px_per_mm = dpi / 25.4 keeps true scale.
    `rows` = (first, end) draws only those rows (one printed page of a long record)."""
    lay = layout_trace(trace)
    if rows is not None:
        lay.rows = lay.rows[rows[0]:rows[1]]
    duration = min(lay.duration_s, max_duration_s) if max_duration_s else lay.duration_s
    w_mm = 2 * MARGIN_MM + duration * MM_PER_S
    h_mm = lay.height_mm
    img = Image.new("RGB", (math.ceil(w_mm * px_per_mm), math.ceil(h_mm * px_per_mm)), "white")
    draw = ImageDraw.Draw(img)
    s = px_per_mm
    grid_w = duration * MM_PER_S
    grid_h = h_mm - 2 * MARGIN_MM
    for k in range(int(grid_w) + 1):
        x = (MARGIN_MM + k) * s
        draw.line([(x, MARGIN_MM * s), (x, (MARGIN_MM + grid_h) * s)],
                  fill=GRID_MAJOR if k % 5 == 0 else GRID_MINOR, width=2 if k % 5 == 0 else 1)
    for k in range(int(grid_h) + 1):
        y = (MARGIN_MM + k) * s
        draw.line([(MARGIN_MM * s, y), ((MARGIN_MM + grid_w) * s, y)],
                  fill=GRID_MAJOR if k % 5 == 0 else GRID_MINOR, width=2 if k % 5 == 0 else 1)
    font = _font(max(10, int(3.2 * s)))
    for i, row in enumerate(lay.rows):
        base = _row_baseline_mm(i)
        for seg in row.segments:
            keep = seg.times_s <= duration
            if keep.sum() < 2:
                continue
            xs = _x_mm(seg.times_s[keep]) * s
            ys = _y_mm(seg.values_mv[keep], base) * s
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=TRACE,
                      width=max(1, round(0.3 * s)), joint="curve")
            draw.text(((_x_mm(seg.start_s) + LABEL_GAP_MM) * s,
                       (base - ROW_HEIGHT_MM * 0.55 + 0.5) * s), seg.lead, fill="black", font=font)
            for peak in lay.r_peaks_s:
                if seg.times_s[0] <= peak <= min(seg.times_s[-1], duration):
                    x = float(_x_mm(peak)) * s
                    top = (base - ROW_HEIGHT_MM * 0.55 + 0.3) * s
                    draw.polygon([(x - s, top), (x + s, top), (x, top + BEAT_MARK_MM * s)],
                                 fill=BEAT)
            for spike in lay.pacing_spikes_s:
                if seg.times_s[0] <= spike <= min(seg.times_s[-1], duration):
                    x = float(_x_mm(spike)) * s
                    draw.line([(x, base * s), (x, (base - PACING_MARK_MM) * s)], fill=PACING,
                              width=max(1, round(0.25 * s)))
    return img

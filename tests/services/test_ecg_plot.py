"""The ECG redrawn on grid paper: true scale (25 mm/s, 10 mm/mV), printed layout kept,
gaps where a lead was not printed, beats marked."""

from __future__ import annotations

import math
import re

import numpy as np

from backend.services import ecg_plot

FS = 500
LEADS_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def sheet_3x4_trace() -> dict:
    """A 10 s 3x4 sheet: each lead holds 2.5 s at its column, II also the full rhythm strip."""
    n = 10 * FS
    t = np.arange(n) / FS
    wave = 0.9 * np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.015**2))
    signals = {}
    for row in LEADS_3X4:
        for col, lead in enumerate(row):
            s = np.full(n, np.nan)
            window = slice(int(col * 2.5 * FS), int((col + 1) * 2.5 * FS))
            s[window] = wave[window]
            signals[lead] = s
    signals["II"] = wave.copy()
    return {"fs": FS, "lead_names": list(ORDER),
            "signals": [[None if math.isnan(v) else float(v) for v in signals[k]] for k in ORDER],
            "r_peaks_s": [0.5 + k for k in range(10)], "saliency": None}


def test_3x4_sheet_keeps_its_printed_rows_and_rhythm_strip_last():
    layout = ecg_plot.layout_trace(sheet_3x4_trace())
    rows = [[seg.lead for seg in row.segments] for row in layout.rows]
    assert rows == [["I", "aVR", "V1", "V4"], ["aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"],
                    ["II"]]
    assert layout.duration_s == 10.0
    # II's column slot stays empty in row 2: aVL starts at 2.5 s, as printed.
    assert abs(layout.rows[1].segments[0].start_s - 2.5) < 1e-9


def test_svg_is_in_millimetres_at_25_mm_per_s_and_10_mm_per_mv():
    fs = 250
    step = [0.0] * fs + [1.0] * fs  # 0 mV for 1 s, then 1 mV for 1 s
    svg = ecg_plot.render_svg({"fs": fs, "lead_names": ["II"], "signals": [step],
                               "r_peaks_s": [0.5, 1.5]})
    view = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    assert float(view.group(1)) == 2 * ecg_plot.MARGIN_MM + 2 * 25
    points = [tuple(map(float, p.split(","))) for p in
              re.search(r'<polyline points="([^"]+)"', svg).group(1).split()]
    xs, ys = np.array(points).T
    assert xs.min() == ecg_plot.MARGIN_MM and abs(xs.max() - (ecg_plot.MARGIN_MM + 50)) < 0.11
    assert abs((ys.max() - ys.min()) - 10.0) < 1e-6  # 1 mV = 10 mm
    assert svg.count(f'fill="{ecg_plot.BEAT}"') == 2
    assert 'id="minor" width="1" height="1"' in svg and 'id="major" width="5" height="5"' in svg


def test_unprinted_samples_break_the_line_and_peaks_survive_simplification():
    fs = 500
    signal = [0.0] * (3 * fs)
    signal[fs // 2] = 2.0  # a one-sample spike must not vanish in the min/max buckets
    for i in range(fs, 2 * fs):
        signal[i] = None
    layout = ecg_plot.layout_trace({"fs": fs, "lead_names": ["V1"], "signals": [signal]})
    segments = layout.rows[0].segments
    assert len(segments) == 2 and segments[1].start_s == 2.0
    assert segments[0].values_mv.max() == 2.0
    assert len(segments[0].values_mv) <= 2 * ecg_plot.DRAW_BUCKETS_PER_S + 2


def test_raster_is_drawn_at_true_scale():
    px_per_mm = 150 / 25.4
    image = ecg_plot.render_image(sheet_3x4_trace(), px_per_mm=px_per_mm)
    assert image.width == math.ceil((2 * ecg_plot.MARGIN_MM + 250) * px_per_mm)
    assert image.height == math.ceil((2 * ecg_plot.MARGIN_MM + 4 * ecg_plot.ROW_HEIGHT_MM)
                                     * px_per_mm)
    pixels = np.asarray(image)
    assert (pixels.sum(axis=2) < 100).mean() > 0.002  # dark trace ink is there


def test_empty_trace_still_renders():
    svg = ecg_plot.render_svg({"fs": 500, "lead_names": [], "signals": []})
    assert svg.startswith("<svg") and "<polyline" not in svg


def test_pacemaker_spikes_are_marked_where_they_were_found_in_every_row_that_shows_them():
    trace = {**sheet_3x4_trace(), "pacing_spikes_s": [0.49 + k for k in range(10)]}
    svg = ecg_plot.render_svg(trace)
    marks = re.findall(r'class="pacing-spike" d="M([\d.]+) ([\d.]+)v-([\d.]+)"', svg)
    # 10 on the rhythm strip and on each lead row, but for the 3 in row 2's empty first column
    # (lead II is drawn as the rhythm strip)
    assert len(marks) == 10 + 10 + 7 + 10
    xs = sorted({float(x) for x, _y, _h in marks})
    assert xs == [round(ecg_plot.MARGIN_MM + (0.49 + k) * 25, 2) for k in range(10)]
    assert "pacing-spike" not in ecg_plot.render_svg(sheet_3x4_trace())
    image = np.asarray(ecg_plot.render_image(trace, px_per_mm=6.0)).astype(int)
    purple = (np.abs(image - (0xA0, 0x13, 0x8E)).sum(axis=2) < 30)
    assert purple.sum() > 0
    plain = np.asarray(ecg_plot.render_image(sheet_3x4_trace(), px_per_mm=6.0)).astype(int)
    assert (np.abs(plain - (0xA0, 0x13, 0x8E)).sum(axis=2) < 30).sum() == 0

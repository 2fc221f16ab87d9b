"""The digitiser takes its scale from the grid, not from the width of a full 12-lead sheet.

A monitor's rhythm strip or a cut-off piece of a printout has a grid far narrower than a sheet's
265 mm; read as a full sheet it would come out at about half its px per mm (half the amplitude,
twice the duration, half the heart rate).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from backend.inference.ecg.digitize import digitize_photo
from tests.inference.ecg.ecg_synth import synthetic_ecg
from training.ecg.eval_digitize import snr_db
from training.ecg.render import Sheet, photograph, render_sheet

HR_BPM = 72.0
STRIP_S = 5.0  # 125 mm of trace: a 140 mm grid with the calibration pulse
# Seeds 0-9, clean and phone: 12.5 to 21.6 dB (one phone photo's grid region is not found);
# read as a 265 mm grid, -11.7 to 0.5 dB and four refused.
FLOOR_DB = 10.0


def _rhythm_strip_photo(
    seed: int, mode: str, strip_s: float = STRIP_S, minor: bool = True
) -> tuple[np.ndarray, float, np.ndarray]:
    """A 5 s strip of lead II on paper cut just around its grid, photographed: the photo, its
    px per mm (a scan's; a phone photo's varies across the page) and the printed signal."""
    lead_ii = synthetic_ecg(hr=HR_BPM, leads=("II",), seed=seed).signal[:, 0]
    rng = np.random.default_rng(seed)
    sheet = render_sheet(
        {"II": lead_ii}, layout="1x1", rng=rng, duration_s=strip_s, style={"minor": minor}
    )
    x0, y0, x1, y1 = sheet.grid_box
    margin = 6 * sheet.ppm
    left, top = round(x0 - margin), round(max(0.0, y0 - margin))
    paper = sheet.image[top : round(y1 + margin), left : round(x1 + margin)].copy()
    strip = Sheet(paper, sheet.ppm, "1x1", sheet.truth, strip_s, (0, 0, 0, 0))
    photo, params = photograph(strip, rng=rng, mode=mode, out_long_side=2000)
    return photo, sheet.ppm * params.get("scale", np.nan), sheet.truth["II"]


def _heart_rate(lead: np.ndarray, fs: float) -> float:
    r_peaks, _ = find_peaks(np.nan_to_num(lead), height=0.6, distance=int(0.3 * fs))
    return 60.0 * fs / float(np.median(np.diff(r_peaks)))


@pytest.mark.parametrize("mode", ["clean", "phone"])
@pytest.mark.parametrize("seed", [0, 2])
def test_a_rhythm_strip_is_read_at_its_own_scale(seed, mode):
    photo, px_per_mm, truth = _rhythm_strip_photo(seed, mode)
    rec = digitize_photo(photo)
    assert rec.meta["layout"] == "1x1" and rec.lead_names == ["II"]
    if mode == "clean":
        assert rec.meta["px_per_mm"]["x"] == pytest.approx(px_per_mm, rel=0.03)
        assert rec.meta["px_per_mm"]["y"] == pytest.approx(px_per_mm, rel=0.03)
    assert rec.meta["duration_s"] == pytest.approx(STRIP_S)
    lead_ii = rec.lead("II")
    assert _heart_rate(lead_ii, rec.fs) == pytest.approx(HR_BPM, abs=2.0)
    assert snr_db(truth, lead_ii) >= FLOOR_DB


# Seeds 0-3, 2.5 and 4 s, clean and phone: all "No ECG grid" before the density box was retried
# at 3x / 5x; now 6.3 to 19.4 dB, heart rate within 0.4 bpm.
@pytest.mark.parametrize("mode", ["clean", "phone"])
@pytest.mark.parametrize(("seed", "strip_s"), [(0, 2.5), (3, 4.0)])
def test_a_short_strip_without_minor_lines_filling_the_frame_is_found(seed, strip_s, mode):
    """A short strip printed with major lines only, photographed large: its 5 mm squares are far
    larger than the density box sized for a 12-lead sheet, so the grid must be found at its own
    scale."""
    photo, _px_per_mm, truth = _rhythm_strip_photo(seed, mode, strip_s=strip_s, minor=False)
    rec = digitize_photo(photo)
    assert rec.meta["layout"] == "1x1" and rec.lead_names == ["II"]
    assert rec.meta["duration_s"] == pytest.approx(strip_s)
    lead_ii = rec.lead("II")
    assert _heart_rate(lead_ii, rec.fs) == pytest.approx(HR_BPM, abs=2.0)
    assert snr_db(truth, lead_ii) >= 5.0


def test_a_tiled_wall_is_still_told_no_ecg_grid():
    """The larger-scale retry only counts when the whole reading succeeds: dark grout between
    large light tiles passes its grid search, but the photo keeps the plain "no ECG grid"
    refusal instead of being told that its sheet is cut off."""
    from backend.inference.errors import UnusableInputError

    rng = np.random.default_rng(0)
    wall = np.full((2000, 1500, 3), 235.0)
    for i in range(0, 2000, 2000 // 24):
        wall[i : i + 6] = 90
        wall[:, i : i + 6] = 90
    wall = (wall * 0.9 + rng.normal(0, 4, wall.shape)).clip(0, 255).astype(np.uint8)
    with pytest.raises(UnusableInputError) as refused:
        digitize_photo(wall)
    assert refused.value.extra["reason"] == "no_grid"


def test_a_strip_whose_grid_barely_repeats_is_refused_not_misread():
    """A phone photo of a 4 s strip (seed 1) whose grid profile is faint: its scale falls back to
    a full sheet's, 2.5x too few px per mm, which read it as a 10 s strip at 29 bpm instead of 72.
    The grid's weak 5 mm repeat at that scale now refuses the photo; a wrong heart rate is worse
    than a request to take the photo again."""
    from backend.inference.errors import UnusableInputError

    photo, _px_per_mm, _truth = _rhythm_strip_photo(1, "phone", strip_s=4.0, minor=True)
    try:
        rec = digitize_photo(photo)
    except UnusableInputError as refused:
        assert refused.extra["reason"] == "no_grid"
        return
    assert rec.meta["duration_s"] == pytest.approx(4.0, abs=0.2)
    assert _heart_rate(rec.lead("II"), rec.fs) == pytest.approx(HR_BPM, abs=2.0)


@pytest.mark.parametrize("mode", ["clean", "phone"])
def test_a_tall_r_wave_on_a_strip_of_major_lines_keeps_its_height(mode):
    """A 7 s strip (seed 0) on a grey-looking grid of major lines only, whose grid lines are
    divided out column by column: its R upstrokes filled most of a column block like a vertical
    grid line and were divided out with them, so the R peaks came out at 0.36-0.45 of their
    height (3-4 dB). A vertical grid line now has to darken the column in most blocks."""
    photo, _px_per_mm, truth = _rhythm_strip_photo(0, mode, strip_s=7.0, minor=False)
    rec = digitize_photo(photo)
    lead_ii = rec.lead("II")
    assert np.nanmax(lead_ii) == pytest.approx(np.nanmax(truth), rel=0.15)  # measured 0.98 and 0.97
    assert snr_db(truth, lead_ii) >= 5.0  # measured 8.0 and 7.0 dB

"""Phone photo of a printed ECG -> 500 Hz signals in mV (classical computer vision).

Pipeline: exposure/blank checks -> illumination flattening -> grid region (where grid-coloured,
periodic pixels are) -> page quad -> perspective correction -> grid period per axis from the
autocorrelation of grid pixels (px per mm) -> trace pixels (dark, not grid-coloured) -> rows and
layout (3x4 + rhythm II, 6x2, single strip; or a wearable's print: rows that continue one lead)
-> calibration pulse (amplitude reference) ->
vectorisation (one ink run per column, chosen by continuity; the centre line from the runs' upper
and lower edges as a round pen draws them) -> mV and
seconds (25 mm/s, 10 mm/mV unless the pulse says otherwise) -> 500 Hz.

Every failure that a person can fix raises UnusableInputError with what to do; the digitiser never
returns a trace it did not see (a lead it cannot follow is left out, gaps stay NaN).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from backend.inference.ecg.record import STANDARD_LEADS, EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

FS_OUT = 500
SPEED_MM_PER_S = 25.0  # standard paper speed
GAIN_MM_PER_MV = 10.0  # standard gain; a printed 1 mV pulse overrides it
STANDARD_DURATION_S = 10.0
RECT_MAX_WIDTH = 2200  # rectified grid width in px (~8 px/mm on a 265 mm grid)
SHEET_GRID_MM = 265.0  # a full 12-lead sheet's grid width: breaks a tie the grid itself leaves
# The grid's 5 mm repeat (autocorrelation peak, both axes) needed to trust the px per mm read from
# it. Rendered tuning sheets and strips read right at 0.20 and up (all but one at 0.43 and up); a
# phone photo of a 4 s strip read at 2.5x too few px per mm (a 10 s strip, 0.4x the heart rate)
# had 0.080 (session 16). Below this the photo is refused as having no readable grid.
MIN_GRID_STRENGTH = 0.15
# A sheet's or strip's printing spans most of its grid (all but the calibration pulse and a few
# mm); 3 of 120 rendered tuning sheets whose thin navy traces on a blue grid were lost read as a
# 1x1 strip of their footer text, 23 % of the grid's width (session 16).
PRINT_MIN_GRID_SHARE = 0.5
MIN_LEADS_FOLLOWED_SHARE = 0.5  # of a layout's leads, or the sheet is refused (_most_leads_lost)
# Tuned on rendered sheets of the tuning records (never the held-out list):
REGION_LOW = 0.2  # grid-density fraction a washed-out part of the grid may grow into
# Larger density boxes (times the usual ~1/60 of the image) tried when no grid is found: a narrow
# grid photographed to fill the frame (major squares up to ~5x a 12-lead sheet's).
GRID_BOX_RETRY = (3, 5)
QUAD_AGREE_SHARE = 0.02  # grown and dense grid corners this close (of the width): the same
QUAD_STRAIGHTER_BY = 0.2  # grid score the dense grid's corners must add to be preferred
QUAD_OBLONG_PENALTY = 3.0  # per unit of |ln(period y / period x)|: squares read oblong
# ...and must themselves show a grid: printed text lines score below 0 either way, and swapping
# between two non-grids let a text page through as a 3x4 sheet (the dense grids of sheets scored
# 0.6-0.97).
QUAD_MIN_SCORE = 0.5
QUAD_RETRY_BELOW = 0.6  # a grid quad scoring less is compared with larger density boxes' quads
# _straightened_quad: at most this many moves of the quad, each only when a corner moves at least
# QUAD_STRAIGHTEN_MIN_MM and at most QUAD_STRAIGHTEN_MAX_SHARE of the quad's width; and a tilt
# is measured from at least QUAD_STRAIGHTEN_MIN_PAIRS neighbouring blocks with grid lines.
QUAD_STRAIGHTEN_STEPS = 3
QUAD_STRAIGHTEN_MIN_MM = 0.5
QUAD_STRAIGHTEN_MAX_SHARE = 0.1
QUAD_STRAIGHTEN_MIN_PAIRS = 40
AXIS_MAP_OUTLIER = 0.03  # a window's grid period this far off its band's fit is left out
GRID_BLOCKS = (24, 16)  # column and row blocks whose grid lines _dewarp and the quad align
LAG_BANDS = 6  # bands across the lines, each aligned block to block on its own
LAG_BAND_CENTRES = (np.arange(LAG_BANDS) + 0.5) / LAG_BANDS - 0.5  # across either axis, -0.5..0.5
INK_LOW_MARGIN = 0.2  # weak-ink threshold above the (residual) grid lines' darkness
# Retry thresholds when no trace is followed with the usual ones: a 0.12 mm navy trace on a blue
# grid blurs to a darkness of 0.31-0.41 in the brightest channel, under the usual weak threshold
# (0.37 there) while the grid lines reach 0.17 (session 17, synthetic and tuning sheets).
FAINT_INK_LOW_MARGIN = 0.1
FAINT_INK_SEED_STEP = 0.08
# Refusals that mean no trace was followed in the ink mask (the faint-ink retry's cue).
TRACES_LOST = ("no_rows", "layout", "no_trace")
# A reading whose leads were followed over less of their columns than this (median over the
# leads, or any one lead) is read again with the faint-ink thresholds (_partly_followed).
FOLLOWED_MEDIAN_RETRY = 0.95
FOLLOWED_LEAD_RETRY = 0.9
GREY_GRID_DARK = 0.25  # grid lines this dark in every channel are divided out before inking
# Grid lines darker than this are read both ways by the faint-ink reading (whose weak threshold
# sits 0.1 above them): divided out and kept, and the reading that follows the leads further is
# the one used. The major lines of a blue grid without minor lines photographed under warm light
# (0.20-0.24) were as dark as a hair-thin navy trace, and such sheets were refused or read at
# 5-7 dB (15-16 dB divided out). An orange grid as dark under a near-black trace is read better
# kept (9.0 against 6.0 dB; OpenCV 5.0), and it measured 0.243 on one quad and 0.251 on a
# straighter one: either side of GREY_GRID_DARK, so both sides compare the two readings.
FAINT_GREY_GRID_DARK = 0.15
# Ink pieces that do not mark where a row's printing ends (_without_slivers).
SLIVER_MAX_MM = 2.0
SLIVER_MIN_ASPECT = 4.0
STROKE_CLOSE_MM = 2.5  # vertical gaps closed in a trace's column runs (broken steep strokes)

LAYOUT_ROWS = {
    "3x4": (
        ("I", "aVR", "V1", "V4"),
        ("II", "aVL", "V2", "V5"),
        ("III", "aVF", "V3", "V6"),
        ("II",),
    ),
    "3x4-no-rhythm": (
        ("I", "aVR", "V1", "V4"),
        ("II", "aVL", "V2", "V5"),
        ("III", "aVF", "V3", "V6"),
    ),
    "6x2": (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")),
    "1x1": (("II",),),
}
LAYOUT_BY_ROWS = {4: "3x4", 3: "3x4-no-rhythm", 6: "6x2", 1: "1x1"}
# A watch or handheld ECG (Apple Watch, KardiaMobile, Galaxy Watch...) prints its 30 s of lead I
# as rows that continue one another, usually 3 rows of 10 s. On one grid that looks like a 3x4
# sheet without its rhythm strip: the caller may say which (a PDF's text layer names the device),
# separate grid strips say it (STRIP_ASPECT), or the waveforms tell (ONE_LEAD_MIN_CORR).
CONTINUOUS_LAYOUT = "lead-I-rows"
CONTINUOUS_MAX_ROWS = 6
# The waveforms: a 3x4 sheet's twelve 2.5 s pieces are twelve leads (aVR upside
# down, V1 unlike V5), a watch's are one lead. Lowest QRS-template correlation of a piece with
# the pieces' median template (training/ecg/eval_watch_pdf.py --rows-check): at most 0.593 over
# the twelve-lead records of ../shared/data/ecg (219 of 220; one has too few beats), >= 0.7 in
# 82.5 % of the 6,429 CinC 2017 strips of 30 s or more (a noisy strip mostly stays unrecognised).
ONE_LEAD_MIN_CORR = 0.7
STRIP_ASPECT = 0.35  # a watch's grid strip: 10 s (250 mm) by 4-8 cm; a 12-lead grid is ~2:3
# What a single-lead device's PDF says about itself, in its text layer (any phone language keeps
# the product names and "Lead I"); a 12-lead print names aVR, V1...
_SINGLE_LEAD_DEVICE_TEXT = re.compile(
    r"apple watch|watchos|kardia|alivecor|galaxy watch|samsung health|fitbit|pixel watch"
    r"|withings|scanwatch|\blead i\b",
    re.IGNORECASE,
)
_TWELVE_LEAD_TEXT = re.compile(r"\ba[vV][rRlLfF]\b|\bV[1-6]\b")

MSG_DARK = "The photo is too dark. Turn on a light or move to a brighter spot and take it again."
MSG_BLANK = (
    "This looks like a blank page: no ECG grid or trace was found. Photograph the printed ECG."
)
MSG_NO_GRID = (
    "No ECG grid was found in this photo. Photograph the whole printed ECG sheet, flat, "
    "filling most of the frame."
)
MSG_BLURRY = (
    "The photo is too blurry to read the trace. Hold the phone steady, tap the screen to focus "
    "on the paper and take it again."
)
MSG_NO_ROWS = (
    "The ECG traces could not be followed on this sheet. Photograph the sheet straight on, "
    "with the whole grid in the frame."
)
MSG_CUT_OFF = "The %(edge)s of the sheet is cut off. Step back so the whole sheet is in the photo."
EDGES = {
    "left": Phrase("left edge"),
    "right": Phrase("right edge"),
    "top": Phrase("top edge"),
    "bottom": Phrase("bottom edge"),
}
MSG_LAYOUT = MSG_NO_ROWS + " (found %(rows)d rows; 3x4, 6x2 and single-strip sheets are read)."


@dataclass
class _Rows:
    baselines: np.ndarray  # y of each row's 0 mV line in rectified px
    layout: str

    @property
    def lead_rows(self) -> tuple[tuple[str, ...], ...]:
        if self.layout == CONTINUOUS_LAYOUT:
            return (("I",),) * len(self.baselines)
        return LAYOUT_ROWS[self.layout]

    @property
    def lead_names(self) -> set[str]:
        """Every lead the layout prints (3x4: lead II once, though it has two rows)."""
        return {name for row in self.lead_rows for name in row}


def is_single_lead_print(text: str) -> bool:
    """True when a page's text is that of a single-lead device's ECG print (see
    CONTINUOUS_LAYOUT): it names such a device or "Lead I", and no 12-lead lead names."""
    return bool(_SINGLE_LEAD_DEVICE_TEXT.search(text)) and not _TWELVE_LEAD_TEXT.search(text)


# ----------------------------------------------------------------------------- public API


def digitize_photo(image: np.ndarray, *, continuous_rows: bool = False) -> EcgRecord:
    """HxWx3 uint8 RGB photo of a printed ECG -> EcgRecord (mV, 500 Hz, leads found).

    continuous_rows: the sheet is a single-lead device's print (CONTINUOUS_LAYOUT): its rows are
    read one after the other as lead I. Without it, a sheet is read so when its rows are separate
    grid strips (12-lead machines print one grid), or when its three rows read as a 3x4 sheet
    whose twelve pieces all have one QRS shape.
    """
    img = np.ascontiguousarray(image[..., :3])
    if img.ndim != 3 or min(img.shape[:2]) < 200:
        raise UnusableInputError(
            "The photo is too small to read an ECG from. Use the full camera resolution."
        )
    small, s = _resize_long(img, 1000)
    _check_exposure(small)
    flat_small = _flatten(small, max(5, round(max(small.shape) / 130)))
    _check_blank(flat_small)
    try:
        grid = _grid_region(small)
    except UnusableInputError as no_grid:
        if no_grid.extra.get("reason") != "no_grid":
            raise
        return _read_at_larger_grid_scale(img, small, s, continuous_rows, no_grid)
    grid, quad_small = _straightest_grid(small, grid)
    return _read_sheet(img, small, s, grid, quad_small, continuous_rows)


def _straightest_grid(
    small: np.ndarray, grid: tuple[np.ndarray, np.ndarray, int]
) -> tuple[tuple[np.ndarray, np.ndarray, int], np.ndarray]:
    """`grid` (found with the usual density box), or the grid found with a GRID_BOX_RETRY box
    when neither of `grid`'s quads (grown region's, dense grid's) rectifies the grid well
    (_rectified_grid_score under QUAD_RETRY_BELOW) and the larger box's quad scores
    QUAD_STRAIGHTER_BY more than the better of them, at least QUAD_MIN_SCORE (a text page is
    not read as a grid by way of a larger box) and without reaching the photo's edge (a
    larger box's mask spreads further; it must not turn a whole sheet into a cut-off one).

    Striped paper on a striped table is thin lines everywhere: the usual box took the table in
    too, and its corners tilted the rectified sheet by about 10 degrees (a tuning photo read
    every lead as a slope from its neighbour's row, mean -15 dB). The larger box keeps only
    long lines, and found the grid's own corners (score 0.51 against 0.82).

    Returns the grid and its quad (_grid_quad's), so the quad is not found twice.
    """
    region, dense, _n_strips = grid
    quad, scores = _grid_quad(small, region, dense)
    # The dense grid's quad first: it is the one usually straight. Scores _grid_quad measured
    # are not measured again.
    for name, mask in (("dense", dense), ("region", region)):
        if max(scores.values(), default=-np.inf) >= QUAD_RETRY_BELOW:
            return grid, quad
        if name not in scores:
            scores[name] = _rectified_grid_score(small, _quad_from_mask(mask))
    first_score = max(scores.values())
    if first_score >= QUAD_RETRY_BELOW:
        return grid, quad
    best, best_score = (grid, quad), first_score + QUAD_STRAIGHTER_BY
    for factor in GRID_BOX_RETRY:
        try:
            candidate = _grid_region(small, box_factor=factor)
            _check_cut_off(candidate[1])
        except UnusableInputError:
            continue
        candidate_quad, _scores = _grid_quad(small, candidate[0], candidate[1])
        score = _rectified_grid_score(small, candidate_quad)
        if score > best_score and score >= QUAD_MIN_SCORE:
            best, best_score = (candidate, candidate_quad), score
    return best


def _read_at_larger_grid_scale(
    img: np.ndarray,
    small: np.ndarray,
    s: float,
    continuous_rows: bool,
    no_grid: UnusableInputError,
) -> EcgRecord:
    """The sheet read with _grid_region's density box GRID_BOX_RETRY times the usual size.

    The box is about a 12-lead sheet's major grid square. A narrow grid (a rhythm strip, a cut
    printout) photographed to fill the frame has squares several times larger: in a box smaller
    than a square, a grid of major lines only is a lattice of dense lines around empty squares,
    which the text-dropping opening erases. Only a reading that succeeds whole counts; otherwise
    the photo keeps its first refusal ("no ECG grid"), so a tiled wall or a skin photo is not
    told that its sheet is cut off. Sheets read at the usual box never come here.
    """
    for factor in GRID_BOX_RETRY:
        try:
            grid = _grid_region(small, box_factor=factor)
            quad_small, _scores = _grid_quad(small, grid[0], grid[1])
            return _read_sheet(img, small, s, grid, quad_small, continuous_rows)
        except UnusableInputError:
            continue
    raise no_grid


def _read_sheet(
    img: np.ndarray,
    small: np.ndarray,
    s: float,
    grid: tuple[np.ndarray, np.ndarray, int],
    quad_small: np.ndarray,
    continuous_rows: bool,
) -> EcgRecord:
    """The photo read within the grid region `grid` that _grid_region found on `small` (img
    downscaled by s), rectified by its corners `quad_small` (_grid_quad's)."""
    _region, dense, n_strips = grid
    continuous_rows = continuous_rows or n_strips > 1
    # Cut off = the clearly printed grid runs into the frame (the grown region may reach it
    # through footer text or a washed-out margin).
    _check_cut_off(dense)

    quad, flat, gridness, ppm_x, straightened = _straightened_quad(img, quad_small / s)
    maps, gridness, warp = _dewarp(gridness, ppm_x)
    mx, my = _even_scale(gridness, ppm_x)
    if maps is not None:  # compose: even-scale coordinates index the dewarped image
        mx, my = (
            cv2.remap(m, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for m in maps
        )
    # One resampling of the 8-bit darkest/brightest channels (fast, and no double blur).
    flat8 = cv2.remap(
        (flat * 255).astype(np.uint8), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    flat = flat8.astype(np.float32) * (1.0 / 255)
    gridness = _grid_signal(flat)
    ppm_x, str_x, ppm_y, str_y = _grid_periods(gridness, ppm_x)
    if min(str_x, str_y) < MIN_GRID_STRENGTH or not (0.75 < ppm_y / ppm_x < 1.33):
        raise UnusableInputError(MSG_NO_GRID, extra={"reason": "no_grid"})

    ink = _ink_mask(flat, ppm_y)
    _check_blur(flat, ink, ppm_x)
    try:
        rows, signals, meta = _read_traces(ink, ppm_x, ppm_y, continuous_rows)
    except UnusableInputError as lost:
        if lost.extra.get("reason") not in TRACES_LOST:
            raise
        faint = _read_faint_traces(flat, ppm_x, ppm_y, continuous_rows)
        if faint is None:
            raise lost from None
        rows, signals, meta = faint
    else:
        if _partly_followed(meta):
            faint = _read_faint_traces(flat, ppm_x, ppm_y, continuous_rows)
            if faint is not None and _followed_further(faint[2], meta):
                rows, signals, meta = faint

    duration = meta["duration_s"]
    n = round(duration * FS_OUT)
    leads = [name for name in STANDARD_LEADS if name in signals]
    sig = np.full((n, len(leads)), np.nan)
    for j, name in enumerate(leads):
        sig[:, j] = signals[name][:n]
    meta.update(
        layout=rows.layout,
        px_per_mm={"x": float(ppm_x), "y": float(ppm_y)},
        grid_strength={"x": float(str_x), "y": float(str_y)},
        page_quad=quad.round(1).tolist(),
        quad_straightened=straightened,
        dewarp_max_px=warp,
    )
    return EcgRecord(signal=sig, fs=float(FS_OUT), lead_names=leads, source="photo", meta=meta)


def _read_traces(
    ink: np.ndarray, ppm_x: float, ppm_y: float, continuous_rows: bool
) -> tuple[_Rows, dict, dict]:
    """The trace rows, signals and reading metadata of a dewarped sheet's ink mask."""
    rows = _find_rows(ink, ppm_y, continuous=continuous_rows)
    signals, meta = _vectorise(ink, rows, ppm_x, ppm_y)
    if rows.layout == "3x4-no-rhythm" and _is_one_lead(list(signals.values())):
        rows = _Rows(baselines=rows.baselines, layout=CONTINUOUS_LAYOUT)
        signals, meta = _vectorise(ink, rows, ppm_x, ppm_y)
    if (
        not signals
        or _printing_shorter_than_its_grid(meta, ink.shape[1] / ppm_x)
        or _most_leads_lost(rows, signals)
    ):
        raise UnusableInputError(MSG_NO_ROWS, extra={"reason": "no_trace"})
    return rows, signals, meta


def _read_faint_traces(
    flat: np.ndarray, ppm_x: float, ppm_y: float, continuous_rows: bool
) -> tuple[_Rows, dict, dict] | None:
    """The traces read again with the faint-ink thresholds, or None.

    Hair-thin or faint traces (navy ink on a blue grid, a 0.15 mm grey trace on pink) fall
    partly or wholly under the usual weak-ink threshold: their QRS complexes stay and their
    baselines break up. The lower thresholds also admit shadows and grid crossings, so the
    reading counts only when it follows every lead of its layout (tuning sheets it read in part
    were misread).
    """
    reading = _faint_reading(flat, ppm_x, ppm_y, continuous_rows, GREY_GRID_DARK)
    grid_dark = _grid_darkness(flat)[2]
    if grid_dark > FAINT_GREY_GRID_DARK:
        # The other side of GREY_GRID_DARK: grid lines divided out where the first reading kept
        # them, kept (no darkness exceeds 1) where it divided them out.
        other_above = FAINT_GREY_GRID_DARK if grid_dark <= GREY_GRID_DARK else 1.0
        other = _faint_reading(flat, ppm_x, ppm_y, continuous_rows, other_above)
        if other is not None and (reading is None or _followed_further(other[2], reading[2])):
            reading = other
    return reading


def _faint_reading(
    flat: np.ndarray, ppm_x: float, ppm_y: float, continuous_rows: bool, divide_grid_above: float
) -> tuple[_Rows, dict, dict] | None:
    """One faint-ink reading (see _read_faint_traces), or None when it misses a lead."""
    try:
        rows, signals, meta = _read_traces(
            _ink_mask(flat, ppm_y, faint=True, divide_grid_above=divide_grid_above),
            ppm_x,
            ppm_y,
            continuous_rows,
        )
    except UnusableInputError:
        return None
    if not rows.lead_names <= signals.keys():
        return None
    meta["faint_ink"] = True
    return rows, signals, meta


def _followed_shares(meta: dict) -> np.ndarray:
    return np.array(list(meta["lead_followed_fraction"].values()) or [0.0])


def _partly_followed(meta: dict) -> bool:
    """The ink mask lost part of the traces (a thin trace's baseline broke up between its QRS
    complexes). On 200 tuning phone photos, the 27 readings this sent to the faint-ink
    thresholds and that kept them averaged 5.0 dB and gained 3.9 dB (mean over their leads;
    3 lost 0.6-1.2 dB); clean scans gained too (tuning median 16.2 -> 16.5 dB)."""
    shares = _followed_shares(meta)
    return bool(np.median(shares) < FOLLOWED_MEDIAN_RETRY or shares.min() < FOLLOWED_LEAD_RETRY)


def _followed_further(faint: dict, usual: dict) -> bool:
    """The faint-ink reading followed its leads at least as far, by median and by worst lead."""
    f, u = _followed_shares(faint), _followed_shares(usual)
    return bool(np.median(f) >= np.median(u) and f.min() >= u.min())


def _most_leads_lost(rows: _Rows, signals: dict) -> bool:
    """Under MIN_LEADS_FOLLOWED_SHARE of the layout's leads were followed. On tuning photos such a
    sheet's few leads were mostly misread too (3 of the 4 one-lead readings of a twelve-lead sheet
    scored below 0 dB): the photo is refused, after the faint-ink retry, rather than read."""
    if rows.layout == CONTINUOUS_LAYOUT:
        return False
    return len(signals) < MIN_LEADS_FOLLOWED_SHARE * len(rows.lead_names)


def _printing_shorter_than_its_grid(meta: dict, grid_mm: float) -> bool:
    """The traces read span under PRINT_MIN_GRID_SHARE of the grid's width: a 12-lead sheet whose
    faint traces were lost and whose footer text ("25 mm/s 10 mm/mV") was taken for the one row
    left. Reading it would give a 2.5 s "lead II" made of letters."""
    return meta["duration_s"] * SPEED_MM_PER_S < PRINT_MIN_GRID_SHARE * grid_mm


def write_wfdb(record: EcgRecord, out_dir: Path, name: str) -> Path:
    """Write `record` as WFDB `<out_dir>/<name>.hea/.dat` (format 16, 1 unit = 1 uV, NaN kept).

    WFDB record names allow letters, digits, "_" and "-": other characters become "_".
    """
    import wfdb

    name = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "ecg"

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = [n for n in STANDARD_LEADS if n in record.lead_names]
    if not order:
        raise UnusableInputError("No ECG lead was found to write.")
    sig = np.stack([record.lead(n) for n in order], axis=1).astype(np.float64)
    # Format 16 at 1000 units/mV holds +-32.7 mV; anything beyond is not a printed ECG value.
    sig = np.clip(sig, -32.0, 32.0)
    wfdb.wrsamp(
        name,
        fs=float(record.fs),
        units=["mV"] * len(order),
        sig_name=order,
        p_signal=sig,
        fmt=["16"] * len(order),
        adc_gain=[1000.0] * len(order),
        baseline=[0] * len(order),
        write_dir=str(out_dir),
        comments=[f"digitised from a photo by CareLens; layout {record.meta.get('layout', '?')}"],
    )
    return out_dir / f"{name}.hea"


# ----------------------------------------------------------------------------- image helpers


def _resize_long(img: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    s = long_side / max(img.shape[:2])
    if s >= 1:
        return img, 1.0
    out = cv2.resize(
        img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA
    )
    return out, s


def _flatten(img: np.ndarray, k: int) -> np.ndarray:
    """Divide out the paper's illumination (lamp gradient, shadow, colour cast): float32 0..1.

    The paper white is the local maximum over a window wider than any grid line or trace stroke,
    smoothed; every channel is divided by it, so the paper becomes 1 everywhere.
    """
    h, w = img.shape[:2]
    f = 4 if min(h, w) > 800 else 1
    small = cv2.resize(img, (w // f, h // f), interpolation=cv2.INTER_AREA) if f > 1 else img
    kk = max(3, k // f) | 1
    bg = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (kk, kk)))
    bg = cv2.GaussianBlur(bg.astype(np.float32), (0, 0), kk)
    if f > 1:
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(img.astype(np.float32) / np.maximum(bg, 8.0), 0.0, 1.0)


def _lohi(flat: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: darkest and brightest channel of the flattened image per pixel."""
    r, g, b = flat[..., 0], flat[..., 1], flat[..., 2]
    return np.dstack([np.minimum(np.minimum(r, g), b), np.maximum(np.maximum(r, g), b)])


def _grid_signal(flat: np.ndarray) -> np.ndarray:
    """How much a pixel looks like grid: darker than paper in some channel, but not ink-dark.

    flat: the (H, W, 2) darkest/brightest-channel image from _lohi.
    """
    lo = flat[..., 0]
    hi = flat[..., 1]
    g = 1.0 - lo
    g[hi < 0.55] = 0.0  # ink, text, background far darker than the paper: not grid
    return g


def _grid_darkness(flat: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Darkness in the brightest channel, the strong-ink threshold on it, and the grid lines'
    darkness (90th percentile of the pixels darker than paper in some channel only)."""
    dark = 1.0 - flat[..., 1]
    high = _ink_high(dark)
    gridlike = ((1.0 - flat[..., 0]) > 0.15) & (dark < high)
    grid_dark = float(np.percentile(dark[gridlike], 90)) if gridlike.any() else 0.1
    return dark, high, grid_dark


def _ink_mask(
    flat: np.ndarray,
    ppm_y: float,
    faint: bool = False,
    divide_grid_above: float = GREY_GRID_DARK,
) -> np.ndarray:
    """Trace pixels: dark in every channel (grid inks are light in at least one channel).

    Hysteresis: clearly dark pixels (Otsu) seed the trace; fainter pixels (thin strokes after
    blur) join when connected to a seed, as long as they are darker than the grid lines.
    faint: thresholds just above the grid lines' darkness (FAINT_INK_LOW_MARGIN, seeds
    FAINT_INK_SEED_STEP above that), for traces the usual ones lose.
    divide_grid_above: grid lines darker than this are divided out first (_minus_grid).
    """
    dark, high, grid_dark = _grid_darkness(flat)
    if grid_dark > divide_grid_above:
        # Grey (or black) grid lines are as dark as a thin trace in every channel: divide them
        # out, then what is left of them sets the weak threshold.
        dark, g = _minus_grid(dark, ppm_y)
        high = _ink_high(dark)
        on_grid = g > 0.08
        if on_grid.mean() > 0.01:
            grid_dark = float(np.percentile(dark[on_grid], 90))
    if faint:
        low = grid_dark + FAINT_INK_LOW_MARGIN
        high = min(high, low + FAINT_INK_SEED_STEP)
    else:
        low = float(np.clip(grid_dark + INK_LOW_MARGIN, 0.18, high))
    strong = dark > high
    if low >= high:
        return strong
    weak = (dark > low).astype(np.uint8)
    n, lab = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(lab[strong])] = True
    keep[0] = False
    return keep[lab]


def _ink_high(dark: np.ndarray) -> float:
    """Strong-ink threshold: Otsu over the clearly-darker-than-paper pixels, kept in range."""
    cand = dark[dark > 0.2]
    if cand.size <= 100:
        return 0.45
    hist, edges = np.histogram(cand, bins=64, range=(0.2, 1.0))
    return float(np.clip(_otsu(hist, edges), 0.33, 0.55))


def _minus_grid(dark: np.ndarray, ppm_y: float, n_blocks: int = 4) -> np.ndarray:
    """Darkness left after the grid lines are divided out (grey grids are as dark as ink).

    After dewarping, horizontal grid lines darken whole rows and vertical lines whole columns,
    while the trace covers a few per cent of any row or column: the median along a row (within
    one of a few column blocks, to follow residual tilt and lighting) is the horizontal lines'
    darkness there, the median along a column that of the vertical lines. Ink printed over a line
    keeps what the line did not already absorb.
    """
    H, W = dark.shape
    g = np.zeros_like(dark)
    xe = np.linspace(0, W, n_blocks + 1).astype(int)
    ye = np.linspace(0, H, n_blocks + 1).astype(int)
    ys = np.arange(H, dtype=np.float64)
    period = 5.0 * ppm_y
    for a, b in itertools.pairwise(xe):
        h = np.median(dark[:, a:b], axis=1).astype(np.float64)
        # A flat trace darkens its baseline row like a grid line: the same row one, two and three
        # major squares away (the grid repeats, traces do not) outvotes it.
        shifted = np.stack([np.interp(ys + k * period, ys, h) for k in range(-3, 4)])
        g[:, a:b] = np.median(shifted, axis=0).astype(np.float32)[:, None]
    v = np.stack([np.median(dark[a:b], axis=0) for a, b in itertools.pairwise(ye)])
    # A steep stroke can fill most of a block's column like a vertical line (a tall R wave on a
    # strip whose blocks are barely taller than the wave: R peaks came out at a third of their
    # height); a vertical line runs through every block, a stroke through one or two.
    v = np.minimum(v, np.median(v, axis=0))
    for (a, b), v_block in zip(itertools.pairwise(ye), v, strict=True):
        np.maximum(g[a:b], v_block[None, :], out=g[a:b])
    out = (dark - g) / np.maximum(1.0 - g, 0.2)
    return np.clip(out, 0.0, 1.0, out=out), g


def _otsu(hist: np.ndarray, edges: np.ndarray) -> float:
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


# ----------------------------------------------------------------------------- quality gate


def _check_exposure(small: np.ndarray) -> None:
    v = small.max(axis=2)
    if float(np.percentile(v, 90)) < 60 or float(v.mean()) < 35:
        raise UnusableInputError(MSG_DARK, extra={"reason": "too_dark"})


def _check_blank(flat: np.ndarray) -> None:
    structure = (1.0 - flat.min(axis=2)) > 0.12
    if structure.mean() < 0.004:
        raise UnusableInputError(MSG_BLANK, extra={"reason": "blank"})


def _long_lines(lines: np.ndarray, length: int) -> np.ndarray:
    """The parts of a thin-line mask on straight runs at least `length` px long, near horizontal
    or vertical (a grid's lines, tilted a few degrees), not text or a trace's short strokes."""
    thick = cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8))
    horiz = cv2.morphologyEx(thick, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vert = cv2.morphologyEx(thick, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    return lines & ((horiz | vert) > 0)


def _grid_region(small: np.ndarray, box_factor: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """Binary masks of the printed grid area in a ~1000 px image: (grown, dense), and how many
    separate grid strips it joins (a watch's print: strips as wide as the largest, in line
    with it, one above the other; 1 for a sheet printed on one grid).

    Thin dark lines on paper show up in the black-hat transform (closing minus image) of the
    darkest channel; where they are dense is the grid. Flat or softly textured backgrounds
    (tables, skin, shadows) give almost none, whatever their colour. box_factor: the density
    box's side in units of the usual ~1/60 of the image.
    """
    mn = small.min(axis=2)
    k0 = max(9, int(max(small.shape[:2]) / 60)) | 1
    k = (box_factor * k0) | 1
    closed = cv2.morphologyEx(mn, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(np.float32)
    # Contrast relative to the local paper brightness, so lamp fall-off and shadows keep it.
    rel = (closed - mn) / np.maximum(closed, 16.0)
    paper = closed > 0.3 * float(np.percentile(closed, 99))  # grid is printed on light paper
    lines = (rel > 0.05) & (closed - mn > 6) & paper
    if k > k0:  # a box wider than text lines: keep only long lines (grid, not text) in it
        lines = _long_lines(lines, 2 * k0)
    dens = cv2.boxFilter(lines.astype(np.float32), -1, (k, k))
    # Faint grids (light grey, blurred) are sparser: the cut follows the densest grid seen.
    top = float(np.percentile(dens, 97))
    mask = (dens > max(0.08, 0.4 * top)).astype(np.uint8)
    # Opening wider than a printed text line drops header/footer text next to the grid.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k + 6, k + 6), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, 8)
    if n <= 1:
        raise UnusableInputError(MSG_NO_GRID, extra={"reason": "no_grid"})
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < 0.08 * mask.size:
        raise UnusableInputError(MSG_NO_GRID, extra={"reason": "no_grid"})
    strips = _stacked_strips(stats, best)
    if len(strips) > 1:
        dense = _hull(np.isin(lab, strips))
    else:
        dense = (lab == best).astype(np.uint8)
    # Where a lamp washes part of the grid out it is sparser still: grow the dense grid into
    # connected, less dense grid (the table has no thin lines at all). The wide opening drops
    # bands of header/footer text, which are that sparse too.
    weak = (dens > max(0.04, REGION_LOW * top)).astype(np.uint8)
    kw = int(2 * (k + 6)) | 1
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, np.ones((kw, kw), np.uint8))
    n_w, lab_w = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(n_w, bool)
    keep[np.unique(lab_w[dense > 0])] = True
    keep[0] = False
    grown = dense | keep[lab_w].astype(np.uint8)
    grown = cv2.morphologyEx(grown, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    if k > k0:  # the wider box spreads the masks past the grid's edge: take that back
        shrink = np.ones((k - k0, k - k0), np.uint8)
        grown, dense = cv2.erode(grown, shrink), cv2.erode(dense, shrink)
    return grown, dense, len(strips)


def _stacked_strips(stats: np.ndarray, best: int) -> list[int]:
    """Components that are strips (at most STRIP_ASPECT as tall as wide) as wide as the largest
    and in line with it; just [best] when the largest is not a strip."""
    x, w, h = (stats[best, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    if h > STRIP_ASPECT * w:
        return [best]
    return [
        i
        for i in range(1, stats.shape[0])
        if stats[i, cv2.CC_STAT_AREA] >= 0.5 * stats[best, cv2.CC_STAT_AREA]
        and stats[i, cv2.CC_STAT_HEIGHT] <= STRIP_ASPECT * stats[i, cv2.CC_STAT_WIDTH]
        and abs(stats[i, cv2.CC_STAT_LEFT] - x) < 0.05 * w
        and abs(stats[i, cv2.CC_STAT_WIDTH] - w) < 0.05 * w
    ]


def _hull(mask: np.ndarray) -> np.ndarray:
    hull = np.zeros(mask.shape, np.uint8)
    points = np.argwhere(mask)[:, ::-1].astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull


def _grid_quad(
    small: np.ndarray, region: np.ndarray, dense: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """The grid's corners on `small`: those of the grown region, unless the dense grid's own
    corners make the grid clearly straighter and squarer (_rectified_grid_score).

    The grown region takes in washed-out parts of the grid, but it also grows into textured paper
    margins or a patterned table (thin lines, sparse like a washed-out grid) on one side only:
    its quad is then tilted against the grid. On a tuning photo (a shadow over one corner,
    striped margins) that read every row on a slope and the sheet as 8.4 s with its first beat
    lost (median -9.6 dB); the row-wise grid strength was 0.11 against 0.77 with the dense
    grid's corners, which read it at 13.8 dB. Both are measured only when the corners disagree.

    Also returns the scores it measured, by mask ("dense", "region"; none when they agree).
    """
    quad = _quad_from_mask(region)
    dense_quad = _quad_from_mask(dense)
    width = float(np.ptp(quad[:, 0]))
    scores: dict[str, float] = {}
    if np.abs(quad - dense_quad).max() < QUAD_AGREE_SHARE * width:
        return quad, scores
    scores["dense"] = _rectified_grid_score(small, dense_quad)
    if scores["dense"] >= QUAD_MIN_SCORE:
        scores["region"] = _rectified_grid_score(small, quad)
        if scores["dense"] > scores["region"] + QUAD_STRAIGHTER_BY:
            return dense_quad, scores
    return quad, scores


def _rectified_grid_score(small: np.ndarray, quad: np.ndarray) -> float:
    """How straight and square the grid is in `small` rectified by `quad`: the periodicity of
    the weaker axis's line profile (1 = perfectly regular lines) less a penalty for oblong
    squares. A tilted rectification smears the line profiles and stretches one axis's period
    (the grid squares are square on paper)."""
    rect, _M = _rectify(small, quad)
    ppm_x, str_x, ppm_y, str_y = _grid_periods(_grid_signal(_lohi(_flatten(rect, 15))))
    return min(str_x, str_y) - QUAD_OBLONG_PENALTY * abs(np.log(ppm_y / ppm_x))


def _quad_from_mask(mask: np.ndarray) -> np.ndarray:
    """Four corners (tl, tr, br, bl) of a roughly quadrilateral mask, float (x, y)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float64)
            break
    if quad is None:
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
    c = quad.mean(axis=0)
    ang = np.arctan2(quad[:, 1] - c[1], quad[:, 0] - c[0])
    quad = quad[np.argsort(ang)]  # clockwise from the top-left-ish corner in image coords
    start = int(np.argmin(quad.sum(axis=1)))
    quad = np.roll(quad, -start, axis=0)
    quad = _refine_quad(quad, max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64))
    c = quad.mean(axis=0)
    # A little paper margin around the grid: calibration pulses and the first/last millimetres
    # of trace sit on the grid's edge, and the mask's edge is a few pixels inside it.
    return c + (quad - c) * 1.025


def _refine_quad(quad: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Corners as intersections of lines fitted to each side's boundary points.

    approxPolyDP puts corners on the (rounded) contour; the sides themselves are straighter.
    """
    lines = []
    for i in range(4):
        p0, p1 = quad[i], quad[(i + 1) % 4]
        d = p1 - p0
        length = np.linalg.norm(d)
        if length < 10:
            return quad
        u = d / length
        nrm = np.array([-u[1], u[0]])
        t = (pts - p0) @ u
        dist = np.abs((pts - p0) @ nrm)
        sel = (t > 0.15 * length) & (t < 0.85 * length) & (dist < 0.03 * length + 3)
        if sel.sum() < 5:
            return quad
        vx, vy, x0, y0 = cv2.fitLine(
            pts[sel].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01
        ).ravel()
        lines.append((np.array([x0, y0]), np.array([vx, vy])))
    out = []
    for i in range(4):
        (pa, da), (pb, db) = lines[i - 1], lines[i]
        A = np.array([da, -db]).T
        if abs(np.linalg.det(A)) < 1e-6:
            return quad
        tt = np.linalg.solve(A, pb - pa)
        out.append(pa + tt[0] * da)
    out = np.array(out)
    if np.abs(out - quad).max() > 0.1 * np.ptp(quad[:, 0]):
        return quad
    return out


def _check_cut_off(region: np.ndarray) -> None:
    _h, _w = region.shape
    b = 3
    sides = {
        "left": region[:, :b].any(axis=1).mean(),
        "right": region[:, -b:].any(axis=1).mean(),
        "top": region[:b, :].any(axis=0).mean(),
        "bottom": region[-b:, :].any(axis=0).mean(),
    }
    side, frac = max(sides.items(), key=lambda kv: kv[1])
    if frac > 0.12:
        raise UnusableInputError(
            MSG_CUT_OFF,
            params={"edge": EDGES[side]},
            extra={"reason": "cut_off", "side": side},
        )


def _check_blur(flat: np.ndarray, ink: np.ndarray, ppm: float) -> None:
    """Too blurry when the trace has no sharp edges: edge spread (in mm) from gradient/contrast."""
    dark = 1.0 - flat[..., 1]
    if ink.mean() < 2e-4:
        raise UnusableInputError(MSG_BLURRY, extra={"reason": "blurry"})
    gy = np.abs(cv2.Sobel(dark, cv2.CV_32F, 0, 1, ksize=3)) / 4.0
    near = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    contrast = float(np.percentile(dark[ink], 90))
    slope = float(np.percentile(gy[near], 95))
    spread_mm = contrast / max(slope, 1e-6) / ppm
    if spread_mm > 0.9:
        raise UnusableInputError(
            MSG_BLURRY, extra={"reason": "blurry", "edge_mm": round(spread_mm, 2)}
        )


# ----------------------------------------------------------------------------- geometry


def _rect_transform(quad: np.ndarray) -> tuple[np.ndarray, int, int, float]:
    """The perspective transform onto `quad`'s rectified frame, that frame's width and height,
    and its px per image px (at most RECT_MAX_WIDTH px wide)."""
    tl, tr, br, bl = quad
    wpx = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    hpx = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    scale = min(1.0, RECT_MAX_WIDTH / wpx) if wpx > 0 else 1.0
    W, H = round(wpx * scale), round(hpx * scale)
    dst = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], np.float32)
    return cv2.getPerspectiveTransform(quad.astype(np.float32), dst), W, H, scale


def _rectify(img: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    M, W, H, _scale = _rect_transform(quad)
    rect = cv2.warpPerspective(
        img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return rect, M


def _rectified_grid(img: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """`img` rectified by `quad`: its flattened darkest/brightest channels, grid signal and
    grid period along x (px per mm)."""
    rect, _M = _rectify(img, quad)
    flat = _lohi(_flatten(rect, 15))
    gridness = _grid_signal(flat)
    columns = gridness.mean(axis=0)
    ppm_x, _str_x = _grid_period(columns, _grid_scale(columns))
    return flat, gridness, ppm_x


def _straightened_quad(
    img: np.ndarray, quad: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """`quad` moved until the grid it rectifies has no projective tilt left (_projective_tilt),
    with _rectified_grid's outputs for the final quad and how many times it was moved.

    A quad from the grid mask's outline is only as good as the mask: where the dense grid grows
    into a striped margin or a shadow eats a corner, a corner sits several mm off (rendered
    tuning phone photos: 4.3 mm on average, 18.9 at worst, against the renderer's true grid
    corners). _dewarp's smooth field straightens most of that but not all: on the worst photo
    the rhythm strip's first seconds still lagged lead I by 160 ms and each beat there was read
    twice. The grid lines themselves say where the corners are: with the tilt measured from them
    and taken out, the same 60 photos' corners came within 0.78 mm on average.
    """
    moved = 0
    while True:
        flat, gridness, ppm_x = _rectified_grid(img, quad)
        tilt = _projective_tilt(gridness, ppm_x)
        if tilt is None or moved == QUAD_STRAIGHTEN_STEPS:
            return quad, flat, gridness, ppm_x, moved
        new = _untilted_quad(quad, gridness.shape, tilt)
        move = float(np.abs(new - quad).max())
        if move * _rect_transform(quad)[3] < QUAD_STRAIGHTEN_MIN_MM * ppm_x:
            return quad, flat, gridness, ppm_x, moved
        if move > QUAD_STRAIGHTEN_MAX_SHARE * float(np.ptp(quad[:, 0])):
            return quad, flat, gridness, ppm_x, moved
        quad, moved = new, moved + 1


def _projective_tilt(grid: np.ndarray, ppm: float) -> tuple[float, float, float, float] | None:
    """First-order projective distortion (a2, b1, g, h) of the grid in a rectified image, from
    how the grid lines shift between neighbouring blocks (_grid_block_lags), or None when too
    few blocks show grid lines. In coordinates centred on the image and scaled by its width, a
    point (x, y) of the straight grid is seen at ((x + a2 y) / d, (b1 x + y) / d),
    d = 1 + g x + h y: horizontal lines climb by b1 - g y per unit of x, vertical lines lean by
    a2 - h x per unit of y. Terms along one axis only (scale, x-foreshortening) leave the lines
    straight and are _even_scale's; curl and creases bend them, and only _dewarp's smooth field
    follows that.
    """
    lags = _grid_block_lags(grid, ppm)
    if lags is None:
        return None
    lag_y, conf_y, lag_x, conf_x = lags
    H, W = grid.shape
    (nbx, nby), scale = GRID_BLOCKS, float(W)
    # One equation per neighbouring pair of blocks in a band: the shift between them.
    # Horizontal lines (bands across y): step_x (b1 - g y). Vertical lines: step_y (a2 - h x).
    band_y = np.repeat(LAG_BAND_CENTRES * H / scale, nbx - 1)
    band_x = np.repeat(LAG_BAND_CENTRES * W / scale, nby - 1)
    step_x = np.full_like(band_y, (W // nbx) / scale)
    step_y = np.full_like(band_x, (H // nby) / scale)
    design = np.concatenate(
        [
            np.column_stack([0 * step_x, step_x, -step_x * band_y, 0 * step_x]),
            np.column_stack([step_y, 0 * step_y, 0 * step_y, -step_y * band_x]),
        ]
    )
    shift = np.concatenate([np.diff(lag_y, axis=1).ravel(), np.diff(lag_x, axis=1).ravel()])
    conf = np.concatenate([conf_y[:, 1:].ravel(), conf_x[:, 1:].ravel()])
    keep = conf > 0.3  # as in _block_lags: below it a pair's shift was not measured
    if keep.sum() < QUAD_STRAIGHTEN_MIN_PAIRS:
        return None
    for _ in range(3):  # a pair that matched the wrong line is an outlier: refit without it
        w = np.sqrt(np.where(keep, conf, 0.0))
        coef, *_ = np.linalg.lstsq(design * w[:, None], shift / scale * w, rcond=None)
        resid = np.abs(design @ coef * scale - shift)
        keep = (conf > 0.3) & (resid < max(0.5, 3 * 1.4826 * float(np.median(resid[keep]))))
        if keep.sum() < QUAD_STRAIGHTEN_MIN_PAIRS:
            return None
    a2, b1, g, h = (float(c) for c in coef)
    return a2, b1, g, h


def _untilted_quad(
    quad: np.ndarray,
    rect_shape: tuple[int, int],
    tilt: tuple[float, float, float, float],
) -> np.ndarray:
    """The quad whose rectification has no `tilt` (_projective_tilt's, measured in `quad`'s
    rectification of shape `rect_shape`): the rectified frame's corners, mapped to where the
    tilt sees them, then back into the image, and grown to cover `quad` (_covering)."""
    a2, b1, g, h = tilt
    H, W = rect_shape
    scale = float(W)
    x = (np.array([0.0, W - 1, W - 1, 0.0]) - W / 2) / scale
    y = (np.array([0.0, 0.0, H - 1, H - 1]) - H / 2) / scale
    d = 1 + g * x + h * y
    seen = np.stack([(x + a2 * y) / d * scale + W / 2, (b1 * x + y) / d * scale + H / 2], 1)
    M = _rect_transform(quad)[0]
    back = np.c_[seen, np.ones(4)] @ np.linalg.inv(M).T
    return _covering(back[:, :2] / back[:, 2:], quad)


def _covering(quad: np.ndarray, old: np.ndarray) -> np.ndarray:
    """`quad` grown, along its own sides, until it covers `old`: a straightened quad keeps
    all the old one held (a corner that moved in would cut off the print's last millimetres,
    time zero's anchor: a synthetic sheet read 22-34 ms early)."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    to_unit = cv2.getPerspectiveTransform(quad.astype(np.float32), unit)
    seen = cv2.perspectiveTransform(old[None].astype(np.float32), to_unit)[0]
    lo = np.minimum(seen.min(axis=0), 0.0)
    hi = np.maximum(seen.max(axis=0), 1.0)
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]], np.float32)
    return cv2.perspectiveTransform(box[None], np.linalg.inv(to_unit))[0].astype(np.float64)


def _grid_block_lags(
    grid: np.ndarray, ppm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """_block_lags of the horizontal lines across GRID_BLOCKS[0] column blocks (vertical shifts,
    per band of y) and of the vertical lines across GRID_BLOCKS[1] row blocks (horizontal
    shifts, per band of x), in LAG_BANDS bands, with their confidences: (lag_y, conf_y, lag_x,
    conf_x); None when the blocks would be too small to hold grid lines."""
    H, W = grid.shape
    nbx, nby = GRID_BLOCKS
    bw, bh = W // nbx, H // nby
    if bw < 8 or bh < 8:
        return None
    max_lag = max(1, int(0.45 * ppm))
    prof_h = grid[:, : bw * nbx].reshape(H, nbx, bw).mean(axis=2).T
    lag_y, conf_y = _block_lags(prof_h, max_lag, LAG_BANDS)
    prof_v = grid[: bh * nby].reshape(nby, bh, W).mean(axis=1)
    lag_x, conf_x = _block_lags(prof_v, max_lag, LAG_BANDS)
    return lag_y, conf_y, lag_x, conf_x


def _block_lags(prof: np.ndarray, max_lag: int, n_bands: int) -> np.ndarray:
    """Displacement (px) of each block's grid profile relative to the centre block, per band.

    prof: (n_blocks, L) profiles across the lines. Neighbouring blocks are compared with a search
    window under half a grid period, so the chain never jumps to the wrong line.
    """
    nb, L = prof.shape
    edges = np.linspace(0, L, n_bands + 1).astype(int)
    lags = np.zeros((n_bands, nb))
    conf = np.zeros((n_bands, nb))
    lag_range = np.arange(-max_lag, max_lag + 1)
    p = prof - cv2.blur(prof.astype(np.float32), (31, 1))  # high-pass along the profile
    for i in range(n_bands):
        lo, hi = edges[i] + max_lag, edges[i + 1] - max_lag
        if hi - lo < 4 * max_lag:
            continue
        rel = np.zeros(nb)
        for j in range(nb - 1):
            a = p[j, lo:hi]
            scores = np.array([float(a @ p[j + 1, lo + lag : hi + lag]) for lag in lag_range])
            k = int(np.argmax(scores))
            off = 0.0
            if 0 < k < len(scores) - 1:
                den = scores[k - 1] - 2 * scores[k] + scores[k + 1]
                off = 0.5 * (scores[k - 1] - scores[k + 1]) / den if den < 0 else 0.0
            norm = np.sqrt(float(a @ a) * float(p[j + 1, lo:hi] @ p[j + 1, lo:hi])) + 1e-9
            c = scores[k] / norm
            conf[i, j + 1] = c
            if c > 0.3:  # blocks without grid (margins, dense text) contribute no shift
                rel[j + 1] = lag_range[k] + np.clip(off, -0.5, 0.5)
        cum = np.cumsum(rel)
        lags[i] = cum - cum[nb // 2]
    conf[:, 0] = conf[:, 1]
    return lags, conf


def _fit_field(
    lags: np.ndarray, conf: np.ndarray, along: np.ndarray, across: np.ndarray, deg_along: int
) -> np.ndarray:
    """Weighted least-squares surface through block lags: polynomial deg_along x linear across."""
    A, B = np.meshgrid(along, across)
    terms = [A**i * B**j for i in range(1, deg_along + 1) for j in range(2)]
    w = np.sqrt(np.clip(conf, 0, 1)).ravel()
    X = np.stack([t.ravel() for t in terms], axis=1)
    coef, *_ = np.linalg.lstsq(X * w[:, None], lags.ravel() * w, rcond=None)
    return coef


def _eval_field(
    coef: np.ndarray, along: np.ndarray, across: np.ndarray, deg_along: int
) -> np.ndarray:
    A, B = np.meshgrid(along, across)
    terms = [A**i * B**j for i in range(1, deg_along + 1) for j in range(2)]
    return sum(c * t for c, t in zip(coef, terms, strict=True))


def _dewarp(grid: np.ndarray, ppm: float) -> tuple[tuple | None, np.ndarray, float]:
    """Straighten the grid: residual rotation, perspective and paper curl after the page warp.

    The grid lines' profiles in column blocks (for horizontal lines) and row blocks (vertical
    lines) are aligned block to block; a smooth polynomial field through the displacements is
    the correction. Returns the remap maps (None when nothing to correct), the corrected grid
    signal and the largest correction in px.
    """
    H, W = grid.shape
    lags = _grid_block_lags(grid, ppm)
    if lags is None:
        return None, grid, 0.0
    lag_y, conf_y, lag_x, conf_x = lags
    nbx, nby = GRID_BLOCKS
    bw, bh = W // nbx, H // nby
    xs_b = (np.arange(nbx) - nbx // 2) * bw / W
    ys_b = (np.arange(nby) - nby // 2) * bh / H
    cy = _fit_field(lag_y, conf_y, xs_b, LAG_BAND_CENTRES, 3)
    cx = _fit_field(lag_x, conf_x, ys_b, LAG_BAND_CENTRES, 3)
    step = 16
    gx = np.arange(0, W + step, step) / W - 0.5
    gy = np.arange(0, H + step, step) / H - 0.5
    dy = _eval_field(cy, gx, gy, 3)  # shape (len(gy), len(gx))
    dx = _eval_field(cx, gy, gx, 3).T
    big = float(max(np.abs(dy).max(), np.abs(dx).max()))
    if big < 0.3:
        return None, grid, big
    mx, my = np.meshgrid(
        np.arange(0, W + step, step, dtype=np.float32),
        np.arange(0, H + step, step, dtype=np.float32),
    )
    mapx = cv2.resize((mx + dx).astype(np.float32), (W + step, H + step))[:H, :W]
    mapy = cv2.resize((my + dy).astype(np.float32), (W + step, H + step))[:H, :W]
    grid = cv2.remap(grid, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (mapx, mapy), grid, big


def _local_ppm(
    grid: np.ndarray, axis: int, ppm: float, n_win: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grid period in windows along one axis (perspective and curl make it vary)."""
    L = grid.shape[1 - axis] if axis == 0 else grid.shape[0]
    edges = np.linspace(0, L, n_win + 1).astype(int)
    centres, values = [], []
    for a, b in itertools.pairwise(edges):
        prof = grid[:, a:b].mean(axis=0) if axis == 0 else grid[a:b].mean(axis=1)
        ac = _autocorr(prof)
        lag5, h = _peak_near(ac, 5 * ppm, 0.6 * ppm)
        if h < 0.2:
            continue
        p = lag5 / 5
        for mm in (10, 15, 20):
            if mm * p > 0.7 * len(ac):
                break
            got, hh = _peak_near(ac, mm * p, 0.3 * p)
            if hh < 0.1:
                break
            p = got / mm
        centres.append((a + b) / 2)
        values.append(p)
    return np.asarray(centres), np.asarray(values)


def _axis_map(grid: np.ndarray, axis: int, ppm: float, n_win: int, n_bands: int) -> np.ndarray:
    """Source coordinate along `axis` for every output pixel so the grid period is even.

    The local period is measured in windows along the axis, separately in bands across it
    (a trapezoid's foreshortening differs from band to band); each band's map is a quadratic
    fit, interpolated between band centres.
    """
    H, W = grid.shape
    L, M = (W, H) if axis == 0 else (H, W)
    band_edges = np.linspace(0, M, n_bands + 1).astype(int)
    pos = np.arange(L, dtype=np.float64)
    band_maps, band_centres = [], []
    for a, b in itertools.pairwise(band_edges):
        sub = grid[a:b] if axis == 0 else grid[:, a:b]
        c, v = _local_ppm(sub, axis, ppm, n_win)
        if c.size < 4:
            continue
        coef = _quadratic_without_outliers(c / L - 0.5, v)
        local = np.clip(np.polyval(coef, pos / L - 0.5), 0.8 * np.median(v), 1.25 * np.median(v))
        mm = np.concatenate([[0.0], np.cumsum(1.0 / local[:-1])])
        target = mm * ((L - 1) / mm[-1])
        band_maps.append(np.interp(pos, target, pos))
        band_centres.append((a + b) / 2)
    if not band_maps:
        out = np.broadcast_to(pos, (M, L))
    elif len(band_maps) == 1:
        out = np.broadcast_to(band_maps[0], (M, L))
    else:
        bm = np.stack(band_maps)
        across = np.arange(M, dtype=np.float64)
        idx = np.clip(np.searchsorted(band_centres, across) - 1, 0, len(band_maps) - 2)
        c0 = np.asarray(band_centres)[idx]
        c1 = np.asarray(band_centres)[idx + 1]
        w = np.clip((across - c0) / (c1 - c0), -0.5, 1.5)[:, None]
        out = bm[idx] * (1 - w) + bm[idx + 1] * w
    out = out.astype(np.float32)
    return out if axis == 0 else out.T


def _quadratic_without_outliers(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Quadratic fit of the local periods v(x), refitted without the window farthest off the fit
    while it is more than AXIS_MAP_OUTLIER off (relative), keeping at least 4 windows.

    A window whose autocorrelation locks on a wrong repeat reads far off its neighbours (9.0 px
    per mm among 7.5s on a tuning phone photo); fitted with them, it stretched a quarter of the
    sheet by up to 19 px and added 0.2 mV of baseline drift to the leads printed there. A smooth
    foreshortening fits the rest within 0.2 %."""
    keep = np.ones(len(x), bool)
    while True:
        coef = np.polyfit(x[keep], v[keep], 2)
        off = np.where(keep, np.abs(np.polyval(coef, x) - v), 0.0) / np.median(v)
        worst = int(np.argmax(off))
        if off[worst] <= AXIS_MAP_OUTLIER or keep.sum() <= 4:
            return coef
        keep[worst] = False


def _even_scale(grid: np.ndarray, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """Remap maps that make the grid period the same everywhere (foreshortening, curl)."""
    mx = _axis_map(grid, 0, ppm, 8, 3)
    my = _axis_map(grid, 1, ppm, 6, 4)
    return np.ascontiguousarray(mx), np.ascontiguousarray(my)


def _autocorr(profile: np.ndarray) -> np.ndarray:
    p = profile.astype(np.float64)
    k = max(3, int(len(p) / 40)) | 1
    p = p - np.convolve(p, np.ones(k) / k, mode="same")  # remove slow trends
    p = p * np.hanning(len(p))
    n = len(p)
    f = np.fft.rfft(p, 2 * n)
    ac = np.fft.irfft(np.abs(f) ** 2)[:n]
    return ac / ac[0] if ac[0] > 0 else ac


def _peak_near(ac: np.ndarray, lag: float, tol: float) -> tuple[float, float]:
    """Highest autocorrelation peak within lag +- tol, refined to sub-pixel."""
    lo, hi = max(1, int(lag - tol)), min(len(ac) - 2, int(np.ceil(lag + tol)))
    if hi <= lo:
        return lag, 0.0
    i = lo + int(np.argmax(ac[lo : hi + 1]))
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    den = a - 2 * b + c
    off = 0.5 * (a - c) / den if den < 0 else 0.0
    return i + float(np.clip(off, -0.5, 0.5)), float(b)


def _grid_scale(profile: np.ndarray) -> float:
    """Rough pixels per mm along one axis from the grid's own repeats (the prior of _grid_period).

    The strongest repeat of the grid profile is its period or a multiple of it; the smallest
    even division of it that repeats nearly as strongly is the period: 5 mm, or 1 mm where the
    minor lines are about as dark as the major ones. It is 1 mm when every fifth repeat stands
    out (the major lines). When nothing tells, or the grid barely repeats, the reading that makes
    the grid as wide as a full sheet's (SHEET_GRID_MM) wins.
    """
    from scipy.signal import find_peaks

    width = len(profile)
    ac = _autocorr(profile)
    below = np.nonzero(ac <= 0)[0]
    start = int(below[0]) if below.size else width  # past the zero-lag peak
    peaks, _ = find_peaks(ac[: width // 2])
    peaks = peaks[peaks >= start]
    heights = ac[peaks]
    if heights.size == 0 or heights.max() < 0.5:  # too faint or warped to tell a scale
        return width / SHEET_GRID_MM

    def repeat(lag: float, period: float) -> float:
        """Height of the autocorrelation peak at lag (within a tenth of the period), or -1."""
        near = np.abs(peaks - lag) <= max(1.0, 0.1 * period)
        return float(heights[near].max()) if near.any() else -1.0

    strongest, top = _peak_near(ac, peaks[np.argmax(heights)], 1)
    period = strongest
    for m in range(int(strongest / max(start, 2)), 1, -1):
        if all(repeat(j * strongest / m, strongest / m) >= 0.6 * top for j in range(1, m)):
            period = strongest / m
            break

    # Rendered sheets and strips: where the period was 5 mm (749) its 25, 50 and 75 mm repeats
    # stood at most 0.03 above their neighbours; where it was 1 mm (43), major lines up to 0.31.
    def stands_out(k: int) -> bool:
        mid, *sides = (repeat(i * period, period) for i in (k, k - 1, k + 1))
        return min(sides) > -1 and mid - max(sides) > 0.05

    if 16 * period < width // 2 and all(stands_out(k) for k in (5, 10, 15)):
        return period
    as_1mm, as_5mm = width / period, 5 * width / period  # the grid's width in mm either way
    if abs(np.log(as_1mm / SHEET_GRID_MM)) < abs(np.log(as_5mm / SHEET_GRID_MM)):
        return period
    return period / 5


def _grid_periods(
    gridness: np.ndarray, prior_x: float | None = None
) -> tuple[float, float, float, float]:
    """(px per mm, 5 mm peak height) along x, then along y, of a rectified grid signal. The y
    period takes x's as its prior (grid squares are square); prior_x: a px-per-mm guess for x,
    read from the grid itself (_grid_scale) when None."""
    columns = gridness.mean(axis=0)
    ppm_x, str_x = _grid_period(columns, _grid_scale(columns) if prior_x is None else prior_x)
    ppm_y, str_y = _grid_period(gridness.mean(axis=1), ppm_x)
    return ppm_x, str_x, ppm_y, str_y


def _grid_period(profile: np.ndarray, prior: float) -> tuple[float, float]:
    """Pixels per mm along one axis from the grid's autocorrelation, and the 5 mm peak height.

    The prior (~25 % accurate) picks the 5 mm major period among the 1 mm multiples; successive
    peaks at 10, 25, 50, 100... mm then refine it to a fraction of a percent.
    """
    ac = _autocorr(profile)
    ppm0 = prior
    lag5, strength = _peak_near(ac, 5 * ppm0, 1.25 * ppm0)
    # Without emphasised major lines the 1 mm lines dominate; check the 1 mm peak too.
    ppm = lag5 / 5
    for mm in (10, 25, 50, 100, 150, 200):
        lag = mm * ppm
        if lag > 0.85 * len(ac):
            break
        got, h = _peak_near(ac, lag, 0.4 * ppm)
        if h <= 0:
            break
        ppm = got / mm
    return ppm, strength


# ----------------------------------------------------------------------------- layout and traces


def _find_rows(ink: np.ndarray, ppm_y: float, continuous: bool = False) -> _Rows:
    from scipy.signal import find_peaks

    prof = ink.mean(axis=1).astype(np.float64)
    sig = max(1.0, 0.8 * ppm_y)
    x = np.arange(-int(4 * sig), int(4 * sig) + 1)
    prof = np.convolve(prof, np.exp(-0.5 * (x / sig) ** 2), mode="same")
    peaks, _props = find_peaks(prof, distance=max(2, int(12 * ppm_y)), prominence=prof.max() * 0.12)
    if peaks.size == 0:
        raise UnusableInputError(MSG_NO_ROWS, extra={"reason": "no_rows"})
    heights = prof[peaks]
    keep = heights >= 0.3 * np.median(np.sort(heights)[-min(4, heights.size) :])
    # A trace row has ink across most of the width; a line of printed text does not.
    cover = _row_coverage(ink, peaks, ppm_y)
    span = cover / max(cover.max(), 1e-6)
    strong = peaks[keep & (span > 0.45)]
    if continuous and 1 <= strong.size <= CONTINUOUS_MAX_ROWS:
        return _Rows(baselines=strong.astype(np.float64), layout=CONTINUOUS_LAYOUT)
    layout = LAYOUT_BY_ROWS.get(int(strong.size))
    gaps = np.diff(strong)
    if strong.size >= 3 and gaps.max() > 1.4 * gaps.min():
        layout = None  # printed rows are evenly spaced: one is missing or one is not a row
    if layout is None:
        # A faint row missed, or a line of text taken for a row: fit the printed layouts'
        # evenly spaced rows to all row-like peaks instead of giving up on the photo.
        lat = _row_lattice(prof, ink, ppm_y)
        if lat is not None:
            return _Rows(baselines=lat, layout=LAYOUT_BY_ROWS[lat.size])
        raise UnusableInputError(
            MSG_LAYOUT, params={"rows": int(strong.size)}, extra={"reason": "layout"}
        )
    return _Rows(baselines=strong.astype(np.float64), layout=layout)


def _row_coverage(ink: np.ndarray, rows: np.ndarray, ppm_y: float) -> np.ndarray:
    """Share of columns with ink within 2.5 mm of each candidate row."""
    half = int(2.5 * ppm_y)
    return np.array([ink[max(0, r - half) : r + half].any(axis=0).mean() for r in rows])


def _row_lattice(prof: np.ndarray, ink: np.ndarray, ppm_y: float) -> np.ndarray | None:
    """Baselines of 6 or 4 (or 3) evenly spaced rows explaining the profile's peaks, or None.

    Every pair of candidate peaks and number of pitches between them proposes a lattice; the
    one matching the most candidates (and leaving the fewest off it) wins, with at most one of
    six or four rows unmatched (that row's baseline is the lattice position, nudged to the profile's
    local maximum).
    """
    from scipy.signal import find_peaks

    cand, _ = find_peaks(prof, distance=max(2, int(10 * ppm_y)), prominence=prof.max() * 0.04)
    cover = _row_coverage(ink, cand, ppm_y)
    cand = cand[cover > 0.3 * max(cover.max(initial=0.0), 1e-6)]
    if cand.size < 2 or cand.size > 20:
        return None
    h = prof[cand]
    hsum = float(h.sum()) + 1e-9
    H = prof.size
    best: tuple[float, np.ndarray] | None = None
    for n in (6, 4, 3):
        for i in range(cand.size):
            for j in range(i + 1, cand.size):
                for k in range(1, n):
                    pitch = (cand[j] - cand[i]) / k
                    if pitch < 14 * ppm_y or pitch > 60 * ppm_y:
                        continue
                    for m in range(n - k):
                        start = cand[i] - m * pitch
                        pos = start + pitch * np.arange(n)
                        if pos[0] < 0 or pos[-1] >= H:
                            continue
                        d = np.abs(cand[:, None] - pos[None, :])
                        hit = d.min(axis=0) < 0.12 * pitch
                        if hit.sum() < max(3, n - 1):
                            continue
                        # Candidates off the lattice (text, a stray wave) count against it.
                        on = d.min(axis=1) < 0.12 * pitch
                        # Tie-break: faint ink where the lattice puts an unmatched row.
                        near = np.clip(np.round(pos[~hit]).astype(int), 0, H - 1)
                        score = float(
                            on.sum() - (~on).sum() + (h[on].sum() + 0.1 * prof[near].sum()) / hsum
                        )
                        if best is None or score > best[0] + 1e-9:
                            snapped = pos.copy()
                            for r in range(n):
                                if hit[r]:
                                    snapped[r] = cand[np.argmin(d[:, r])]
                                else:
                                    lo = int(max(0, pos[r] - 0.15 * pitch))
                                    hi = int(min(H, pos[r] + 0.15 * pitch + 1))
                                    if prof[lo:hi].max() > 0.2 * float(np.median(h)):
                                        snapped[r] = lo + int(np.argmax(prof[lo:hi]))
                            best = (score, snapped.astype(np.float64))
        if best is not None:
            return best[1]
    return None


def qrs_template_similarity(pieces: list[np.ndarray], fs: float = FS_OUT) -> float | None:
    """Lowest correlation of a piece's median QRS template with the median of all pieces'
    templates (best within +-20 ms); None when fewer than 10 pieces hold a beat."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    sos = butter(2, [1.0, 40.0], btype="band", fs=fs, output="sos")
    half = int(0.08 * fs)
    templates = []
    for piece in pieces:
        x = piece[np.isfinite(piece)]
        if x.size < 2 * fs:
            continue
        x = sosfiltfilt(sos, x)
        slope = np.abs(np.gradient(x))
        peaks, _ = find_peaks(
            slope, distance=int(0.3 * fs), height=0.35 * np.percentile(slope, 99)
        )
        peaks = peaks[(peaks > half) & (peaks < x.size - half)]
        if peaks.size == 0:
            continue
        t = np.median(np.stack([x[p - half : p + half] for p in peaks]), axis=0)
        t -= t.mean()
        templates.append(t / (np.linalg.norm(t) + 1e-9))
    if len(templates) < 10:
        return None
    ref = np.median(np.stack(templates), axis=0)
    ref /= np.linalg.norm(ref) + 1e-9
    shifts = range(-int(0.02 * fs), int(0.02 * fs) + 1)
    return float(min(max(np.dot(np.roll(t, k), ref) for k in shifts) for t in templates))


def _is_one_lead(pieces: list[np.ndarray]) -> bool:
    similarity = qrs_template_similarity(pieces)
    return similarity is not None and similarity >= ONE_LEAD_MIN_CORR


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical ink runs of a (band_h, n_cols) mask: column index, top, bottom (inclusive)."""
    t = np.zeros((mask.shape[1], mask.shape[0] + 2), np.int8)
    t[:, 1:-1] = mask.T
    d = np.diff(t, axis=1)
    cs, ys = np.nonzero(d == 1)
    _ce, ye = np.nonzero(d == -1)
    return cs, ys, ye - 1


def _track(mask: np.ndarray, base: float, ppm_y: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Follow one trace through a band and turn it into a centre line.

    Per column, the ink run continuous with the previous column's run is chosen (labels and
    neighbouring rows' tall waves are other runs). A steep stroke fills a long run in each column;
    the centre line comes from the upper and lower edges of the chosen runs (see
    _envelope_line), so R peaks keep their height even where up- and down-strokes merge into one
    blob. Returns point x (column units), y (band px) and the fraction of columns followed.
    """
    if mask.size == 0:
        return np.empty(0), np.empty(0), 0.0
    # Close gaps in strokes (anti-aliasing, JPEG, thin steep strokes broken into dashes) so a
    # stroke is one run per column.
    k_close = max(3, int(STROKE_CLOSE_MM * ppm_y) | 1)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k_close, 1), np.uint8))
    cols, tops, bots = _runs(mask)
    n_cols = mask.shape[1]
    if cols.size == 0:
        return np.empty(0), np.empty(0), 0.0
    thick = float(np.percentile(bots - tops + 1, 25))
    idx = np.searchsorted(cols, np.arange(n_cols + 1))
    top = np.full(n_cols, np.nan)
    bot = np.full(n_cols, np.nan)
    p_top = p_bot = base
    missing = 0
    tl, bl, il = tops.tolist(), bots.tolist(), idx.tolist()
    for c in range(n_cols):
        a, b = il[c], il[c + 1]
        if a == b:
            missing += 1
            continue
        # Continuity first; among touching runs the one nearest the last centre, then the baseline.
        best, best_cost, best_gap = a, 1e18, 0.0
        pc = (p_top + p_bot) / 2
        for j in range(a, b):
            t, bt = tl[j], bl[j]
            gap = max(0.0, t - p_bot, p_top - bt)
            centre = (t + bt) / 2
            cost = gap + 0.05 * abs(centre - pc) + 0.01 * abs(centre - base)
            if cost < best_cost:
                best, best_cost, best_gap = j, cost, gap
        # A trace moves continuously: a far run is a label or another row, unless the trace
        # has been lost for a while (a broken steep stroke).
        if best_gap > ppm_y * (2.0 + 1.0 * missing):
            missing += 1
            continue
        missing = 0
        p_top, p_bot = tl[best], bl[best]
        top[c], bot[c] = p_top, p_bot
    ok = np.isfinite(top)
    frac = float(ok.mean())
    if ok.sum() < 3:
        return np.empty(0), np.empty(0), frac
    cidx = np.nonzero(ok)[0]
    t_, b_ = top[cidx], bot[cidx]
    xs, ys = _envelope_line(cidx.astype(np.float64), t_, b_, thick)
    return xs, ys, frac


def _envelope_line(
    cf: np.ndarray, t_: np.ndarray, b_: np.ndarray, thick: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre line of a trace drawn with a round pen, from the top and bottom edges of its ink.

    A pen of radius r draws the signal s(x) (up = positive) as ink whose upper edge is the
    grey-scale dilation of s by a half-disc and whose lower edge is its erosion. Eroding the upper
    edge (a closing of s) recovers s exactly on strokes and at peaks but fills narrow troughs;
    dilating the lower edge (an opening) recovers strokes and troughs but shaves narrow peaks.
    Where they disagree (a QRS narrower than the pen, where up- and down-strokes share columns),
    the signal lies between them: on the closing where the line bends down (a wave's tip), on the
    opening where it bends up (a trough, and the corner where the baseline turns into a steep
    stroke, which the closing fills in). The bend is the sign of the centre line's second
    difference over the pen's radius. Picking by distance from the local baseline instead took
    the closing at the QRS's first and last corners too, so the QRS started early and ended late:
    on 40 tuning sheets per mode, QRS read from the trace minus from the printed samples went
    +4.4 -> +1.7 ms (clean) and +6.0 -> +2.5 ms (phone), QT +5.4 -> +3.3 ms (phone), and the
    median lead SNR 16.14 -> 16.17 dB (clean), 12.74 -> 13.64 dB (phone).
    """
    c0, c1 = int(cf[0]), int(cf[-1])
    cols = np.arange(c0, c1 + 1, dtype=np.float64)
    up = np.interp(cols, cf, -(t_ - 0.5))  # upper ink edge, signal direction (up = +)
    lo = np.interp(cols, cf, -(b_ + 0.5))
    r = max(0.5, thick / 2)
    R = int(np.floor(r))
    n = cols.size
    big = 1e9
    clo = np.full(n, big)
    ope = np.full(n, -big)
    for d in range(-R, R + 1):
        bd = float(np.sqrt(max(r * r - d * d, 0.0)))
        a, b = max(0, -d), min(n, n - d)
        if a >= b:  # a piece of trace narrower than the pen: no column lies d away
            continue
        clo[a:b] = np.minimum(clo[a:b], up[a + d : b + d] - bd)
        ope[a:b] = np.maximum(ope[a:b], lo[a + d : b + d] + bd)
    clo = np.minimum(clo, up - r)  # ends: the column itself always bounds it
    ope = np.maximum(ope, lo + r)
    mid = 0.5 * (clo + ope)
    k = max(1, R)
    padded = np.pad(mid, k, mode="edge")
    bends_down = padded[: -2 * k] + padded[2 * k :] - 2 * mid < 0
    s = np.where(clo - ope > 1.0, np.where(bends_down, clo, ope), mid)
    return cols, -s


def _pulse(
    ink: np.ndarray, base: float, x_first: int, ppm_x: float, ppm_y: float, reach_px: float
) -> tuple[float | None, int]:
    """Height (mm) of a calibration pulse at the row's start, and the column after it.

    reach_px: how far above the baseline to look (short of the row above, whose trace would
    otherwise pass for a tall pulse).
    """
    x1 = min(ink.shape[1], x_first + int(12 * ppm_x))
    y0 = max(0, int(base - min(25 * ppm_y, reach_px)))
    y1 = min(ink.shape[0], int(base + 2 * ppm_y))
    band = ink[y0:y1, x_first:x1]
    if band.size == 0:
        return None, x_first
    has = band.any(axis=0)
    top = np.where(has, np.argmax(band, axis=0), band.shape[0]) + y0
    up = (base - top) / ppm_y  # mm above baseline of the topmost ink per column
    high = up > 3.5
    if high.sum() < 2.5 * ppm_x:
        return None, x_first
    cols = np.nonzero(high)[0]
    # The pulse's flat top: the contiguous high stretch starting at the first high column.
    brk = np.nonzero(np.diff(cols) > 2)[0]
    last = cols[brk[0]] if brk.size else cols[-1]
    run = up[cols[0] : last + 1]
    if (last - cols[0]) < 2.5 * ppm_x or (last - cols[0]) > 8 * ppm_x:
        return None, x_first
    return float(np.median(run)), x_first + int(last) + 1


def _drop_labels(
    ink: np.ndarray,
    bases: np.ndarray,
    n_segs: list[int],
    x0: float,
    x_end: float,
    ppm_x: float,
    ppm_y: float,
) -> np.ndarray:
    """Remove printed lead labels: small ink blobs just after a segment start, above its baseline.

    Electrocardiographs print "I", "aVR", "V1"... there; the tracker would otherwise take a
    label for the trace where the trace itself is faint.
    """
    n, lab, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return ink
    x, y, w, h = (stats[1:, i].astype(np.float64) for i in range(4))
    drop = np.zeros(n - 1, bool)
    for b, n_seg in zip(bases, n_segs, strict=False):
        for c in range(n_seg):
            xs = x0 + c * (x_end - x0) / n_seg
            inside = (
                (x >= xs - 1.0 * ppm_x)
                & (x + w <= xs + 12 * ppm_x)
                & (y >= b - 12 * ppm_y)
                & (y + h <= b - 1.5 * ppm_y)
                & (h <= 7 * ppm_y)
                & (w <= 10 * ppm_x)
            )
            drop |= inside
    if not drop.any():
        return ink
    keep = np.concatenate([[False], ~drop])
    return keep[lab] & ink


def _without_slivers(ink: np.ndarray, ppm_x: float) -> np.ndarray:
    """`ink` less its upright slivers (under SLIVER_MAX_MM wide and SLIVER_MIN_ASPECT times as
    tall): the grid's border line or the sheet's edge at the side of the rectified grid, whole or
    in dashes, or a fold. The grid's right border, inked on tuning photos taken at an angle,
    reached every row 12 mm after the traces ended and moved the whole sheet's time by 0.48 s.
    Small pieces are kept: at 4.5 px/mm the last millimetres of a trace break into them."""
    _n, labels, stats, _c = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    width, height = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    keep = (width >= SLIVER_MAX_MM * ppm_x) | (height <= SLIVER_MIN_ASPECT * width)
    keep[0] = False
    return keep[labels]


def _trace_end(ink: np.ndarray, bases: np.ndarray, r: int, ppm_y: float) -> int:
    """The last column of row r's trace: of the ink between the neighbouring rows, the pieces
    that reach within 2 mm of the row's baseline, followed to their right end.

    The end of the printing is time zero's anchor (10 s before it). A trace whose baseline
    wanders more than 2 mm by the end of the row leaves that band early: the last inked column
    of the band alone put one row of a tuning sheet 55 mm short and shifted the whole sheet's
    time by 0.27 s, so pieces of neighbouring leads were read at the column boundaries.
    """
    H = ink.shape[0]
    b = bases[r]
    up = 0.5 * (b - bases[r - 1]) if r > 0 else min(b, 15 * ppm_y)
    down = 0.5 * (bases[r + 1] - b) if r + 1 < len(bases) else min(H - b, 15 * ppm_y)
    y_lo, y_hi = int(max(0, b - up)), int(min(H, b + down))
    band = ink[y_lo:y_hi].astype(np.uint8)
    _n, labels, stats, _c = cv2.connectedComponentsWithStats(band, connectivity=8)
    core = labels[max(0, int(b - 2 * ppm_y) - y_lo) : max(0, int(b + 2 * ppm_y) - y_lo)]
    touching = np.unique(core[core > 0])
    if touching.size == 0:  # rows closer than 4 mm: no band of their own
        return -1
    right = stats[touching, cv2.CC_STAT_LEFT] + stats[touching, cv2.CC_STAT_WIDTH] - 1
    return int(right.max())


def _vectorise(ink: np.ndarray, rows: _Rows, ppm_x: float, ppm_y: float) -> tuple[dict, dict]:
    H, _W = ink.shape
    bases = rows.baselines
    layout_rows = rows.lead_rows
    px_per_s = SPEED_MM_PER_S * ppm_x
    # Horizontal extent of the printing: where each row's ink starts and ends.
    traces = _without_slivers(ink, ppm_x)
    firsts, lasts = [], []
    for r, b in enumerate(bases):
        band = traces[max(0, int(b - 2 * ppm_y)) : int(b + 2 * ppm_y)]
        colhas = np.nonzero(band.any(axis=0))[0]
        if colhas.size == 0:
            continue
        firsts.append(int(colhas[0]))
        lasts.append(max(int(colhas[-1]), _trace_end(traces, bases, r, ppm_y)))
    if not lasts:
        return {}, {}
    x_end = float(np.median(lasts))
    x_first = int(np.median(firsts))
    gains, starts = [], []
    pitch = float(np.median(np.diff(bases))) if len(bases) > 1 else 40 * ppm_y
    for b in bases:
        h_mm, after = _pulse(ink, b, x_first, ppm_x, ppm_y, 0.75 * pitch)
        if h_mm is not None:
            gains.append(h_mm)
            starts.append(after)
    gain = GAIN_MM_PER_MV
    if gains:
        h = float(np.median(gains))
        best = min((5.0, 10.0, 20.0), key=lambda g: abs(np.log(h / g)))
        if abs(np.log(h / best)) < 0.15:  # only a clear 5/10/20 mm pulse overrides 10 mm/mV
            gain = best
    x_begin = float(np.median(starts)) if starts else float(x_first)
    measured = (x_end - x_begin) / px_per_s
    duration = (
        STANDARD_DURATION_S if abs(measured - STANDARD_DURATION_S) < 1.2 else round(measured, 1)
    )
    if duration < 2.0:
        return {}, {}
    x0 = x_end - duration * px_per_s  # time zero: the end of the printing is the sharpest anchor
    n = round(duration * FS_OUT)
    t_out = np.arange(n) / FS_OUT
    ink = _drop_labels(ink, bases, [len(r) for r in layout_rows], x0, x_end, ppm_x, ppm_y)
    signals: dict[str, np.ndarray] = {}
    boxes: dict[str, list[float]] = {}
    found_frac: dict[str, float] = {}
    continuous = rows.layout == CONTINUOUS_LAYOUT
    continued_rows: list[np.ndarray] = []  # CONTINUOUS_LAYOUT: each row's lead I, in order
    for r, (b, names) in enumerate(zip(bases, layout_rows, strict=False)):
        up = (b - bases[r - 1]) if r > 0 else min(b, 30 * ppm_y)
        down = (bases[r + 1] - b) if r + 1 < len(bases) else min(H - b, 30 * ppm_y)
        y_lo, y_hi = int(max(0, b - 0.95 * up)), int(min(H, b + 0.95 * down))
        n_seg = len(names)
        seg_px = (x_end - x0) / n_seg
        for c, name in enumerate(names):
            xa = x0 + c * seg_px
            xb = x0 + (c + 1) * seg_px
            # Skip separator ticks at internal boundaries.
            pad_a = 0.6 * ppm_x if c > 0 else 0.0
            pad_b = 0.6 * ppm_x if c < n_seg - 1 else 0.0
            ca, cb = int(np.ceil(xa + pad_a)), int(np.floor(xb - pad_b))
            if cb - ca < 10:
                continue
            band = ink[y_lo:y_hi, ca:cb]
            xs, ys, frac = _track(band, b - y_lo, ppm_y)
            found_frac[f"I row {r + 1}" if continuous else name] = round(frac, 3)
            if frac < 0.3 or xs.size < 10:
                if continuous:  # a row it cannot follow stays a gap: later rows keep their time
                    continued_rows.append(np.full(n, np.nan))
                continue
            t_pts = (xs + ca - x0) / px_per_s
            v_pts = (b - (ys + y_lo)) / ppm_y / gain
            t0, t1 = c * duration / n_seg, (c + 1) * duration / n_seg
            sel = (t_out >= t0 - 1e-9) & (t_out < t1 - 1e-9)
            out = np.full(n, np.nan)
            out[sel] = np.interp(t_out[sel], t_pts, v_pts)
            if continuous:
                continued_rows.append(out)
                boxes[f"I row {r + 1}"] = [float(ca), float(y_lo), float(cb), float(y_hi)]
                continue
            if name in signals and np.isnan(signals[name]).sum() <= np.isnan(out).sum():
                continue  # keep the longer print of a lead (3x4: the rhythm strip of II)
            signals[name] = out
            boxes[name] = [float(ca), float(y_lo), float(cb), float(y_hi)]
    if continuous and not all(np.isnan(row).all() for row in continued_rows):
        signals["I"] = np.concatenate(continued_rows)
        duration *= len(continued_rows)
    meta = {
        "duration_s": duration,
        "gain_mm_per_mv": gain,
        "speed_mm_per_s": SPEED_MM_PER_S,
        "calibration_pulse_found": bool(gains),
        "lead_boxes_rectified_px": boxes,
        "lead_followed_fraction": found_frac,
    }
    return signals, meta

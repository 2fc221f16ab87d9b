"""What a check result says in words (label names, next steps, normal ECG ranges) and the two
files a person takes away: a PNG result card to save or share, and an A4 PDF for the doctor.

Both are drawn with Pillow (no extra dependency); the PDF is Pillow's PDF writer over pages
rendered at 150 dpi, so the ECG grid on it is at true scale (25 mm/s, 10 mm/mV) when printed
at 100 %. Korean text needs a Hangul font: the cards use one when the system has it
(fonts-noto-cjk, fonts-nanum) and are drawn in English otherwise rather than as empty boxes.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

from backend.i18n import N_, current_locale, ngettext
from backend.i18n import gettext as _
from backend.inference import ear
from backend.inference.ecg import quality
from backend.inference.ecg.analyze import interval_flags
from backend.inference.result import DISCLAIMER, DISCLAIMERS
from backend.services import ecg_plot

KIND_TITLES = {"ecg": N_("ECG check"), "skin": N_("Skin check"), "ear": N_("Ear check")}

LABEL_NAMES = {
    "ecg": {
        "sinus_rhythm": N_("Normal sinus rhythm"),
        "sinus_bradycardia": N_("Sinus bradycardia (slow regular rhythm)"),
        "sinus_tachycardia": N_("Sinus tachycardia (fast regular rhythm)"),
        "atrial_fibrillation": N_("Atrial fibrillation (irregular rhythm)"),
        "supraventricular_tachycardia": N_("Supraventricular tachycardia (fast regular rhythm)"),
        "atrial_flutter": N_("Atrial flutter"),
        "paced_rhythm": N_("Paced rhythm (pacemaker)"),
        "other": N_("Other rhythm"),
        # The rhythm model's own families, listed among the probabilities.
        "normal": N_("Regular sinus rhythm (any rate)"),
        "noisy": N_("Too noisy to read"),
    },
    "skin": {
        "akiec": N_("Actinic keratosis / Bowen's disease"),
        "bcc": N_("Basal cell carcinoma"),
        "bkl": N_("Benign keratosis"),
        "df": N_("Dermatofibroma"),
        "mel": N_("Melanoma"),
        "nv": N_("Mole (melanocytic nevus)"),
        "vasc": N_("Vascular lesion"),
    },
    "ear": {
        "normal": N_("Normal eardrum"),
        "earwax": N_("Earwax"),
        "acute_otitis_media": N_("Acute middle ear infection"),
        "middle_ear_effusion": N_("Fluid behind the eardrum"),
        "chronic_otitis_media": N_("Chronic middle ear infection"),
        "myringosclerosis": N_("Eardrum scarring (myringosclerosis)"),
        "tympanostomy_tube": N_("Ear tube (grommet)"),
        "otitis_externa": N_("Outer ear infection"),
    },
}

URGENCY_NAMES = {"routine": N_("Routine"), "soon": N_("See a doctor soon"),
                 "urgent": N_("Urgent")}
NEXT_STEPS = {
    "routine": N_("Nothing urgent was found. Keep an eye on it, repeat the check if anything "
                  "changes, and mention it at your next regular visit."),
    "soon": N_("Book a visit with your doctor in the next days to have this looked at. Take "
               "this result (the PDF) with you."),
    "urgent": N_("See a doctor today. If you have chest pain, fainting, shortness of breath or "
                 "feel very unwell, call emergency services now."),
}
# The warning signs in the generic "urgent" text are the heart's; a mole or an eardrum has its
# own, worded as backend/inference/skin.py and ear.py word them in the result's explanation.
URGENT_NEXT_STEPS_BY_KIND = {
    "skin": N_("See a doctor or dermatologist within the next few days, sooner if the spot "
               "bleeds, grows or changes quickly. Take this result (the PDF) with you."),
    "ear": N_("See a doctor today, and at once for a baby under 6 months, a high fever, a stiff "
              "neck or a child who seems very unwell."),
}


def next_steps(kind: str, urgency: str) -> str:
    """The (untranslated) "what to do next" text for a result of this kind and urgency."""
    if urgency == "urgent" and kind in URGENT_NEXT_STEPS_BY_KIND:
        return URGENT_NEXT_STEPS_BY_KIND[kind]
    return NEXT_STEPS.get(urgency, NEXT_STEPS["routine"])

URGENCY_COLOURS = {"routine": "#1d6b35", "soon": "#8a5300", "urgent": "#a61b1b"}

# The table's rows; ranges and flags are the analysis' own (analyze.interval_flags and
# thresholds.py), so the table cannot call normal what the explanation calls long.
INTERVAL_ROWS = (
    ("hr_bpm", N_("Heart rate"), "bpm", "hr"),
    ("pr_ms", N_("PR interval"), "ms", "pr"),
    ("qrs_ms", N_("QRS duration"), "ms", "qrs"),
    ("qt_ms", N_("QT interval"), "ms", None),
    ("qtc_ms", N_("QTc (Fridericia)"), "ms", "qtc"),
)
# The QTc row names its formula; results saved before the analysis used Fridericia's
# (thresholds.QTC_FORMULA, intervals_detail.qtc_formula) hold Bazett's.
_QTC_BAZETT_TITLE = N_("QTc (Bazett)")
# analyze.interval_flags' words -> the table's mark
_FLAG_MARKS = {"low": "low", "short": "low", "high": "high", "long": "high", "wide": "high",
               "prolonged": "high", "markedly_prolonged": "high", "borderline": "borderline"}

HANGUL_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansKR-Regular.ttf",
)
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LATIN_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
TEAL = "#0b6e6e"
INK = "#1b1f23"
MUTED = "#4a5560"


def label_name(kind: str, label: str) -> str:
    name = LABEL_NAMES.get(kind, {}).get(label)
    return _(name) if name else label.replace("_", " ")


# ECG labels under which counting early beats means something (not in AF or a noisy trace).
_EARLY_BEAT_LABELS = ("sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "other")


def headline_detail(result: dict[str, Any]) -> str | None:
    """The line under an ECG headline: the early beats the analysis counted
    (rhythm.early_beat_indices), so "Normal sinus rhythm" does not hide them, and their pattern
    when every other beat came early (rhythm.bigeminy_early_indices); for a paced rhythm, how
    many beats a pacemaker spike started (pacing.py)."""
    if result.get("kind") != "ecg":
        return None
    detail = result.get("intervals_detail") or {}
    if headline_from_pacing(result):
        paced = int((detail.get("pacing") or {}).get("paced_beats") or 0)
        beats = int(detail.get("n_beats") or 0)
        if paced and beats:
            return _("%(paced)d of %(beats)d beats started by the pacemaker", paced=paced,
                     beats=beats)
        return None
    if result.get("label") not in _EARLY_BEAT_LABELS:
        return None
    count = int(detail.get("early_beats") or 0)
    if count <= 0:
        return None
    if detail.get("bigeminy"):
        return _("with bigeminy: every other beat early (%(num)d)", num=count)
    return ngettext("with %(num)d early beat", "with %(num)d early beats", count)


def headline_from_pacing(result: dict) -> bool:
    """An ECG headline taken from pacemaker spikes (pacing.py), not from the rhythm model."""
    return result.get("kind") == "ecg" and result.get("label") == "paced_rhythm"


def headline_outweighs_model(result: dict) -> bool:
    """True when the headline is not the classifier's top bar: for an ECG, the measured P waves
    and beat timing overrule the rhythm model (rhythm.final_rhythm), and a patient reading
    "Other rhythm 44 %" above a sinus headline deserves to be told why."""
    probs = result.get("probabilities") or {}
    label = result.get("label")
    return bool(probs) and label in probs and max(probs, key=probs.get) != label


def urgency_name(urgency: str | None) -> str:
    return _(URGENCY_NAMES[urgency]) if urgency in URGENCY_NAMES else ""


def _range_text(bounds: list | None, unit: str) -> str:
    low, high = bounds if bounds else (None, None)
    if low is not None and high is not None:
        return f"{low:g}–{high:g} {unit}"
    if high is not None:
        return f"≤ {high:g} {unit}"
    return f"≥ {low:g} {unit}" if low is not None else "—"


def interval_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ECG intervals with the normal range and the flag the analysis gave them (re-derived
    for results saved without them)."""
    intervals = result.get("intervals") or {}
    detail = result.get("intervals_detail") or {}
    flags, ranges = detail.get("flags"), detail.get("normal_ranges")
    if flags is None or ranges is None:
        flags, ranges = interval_flags(intervals, None)
    rows = []
    for key, title, unit, flag_key in INTERVAL_ROWS:
        value = intervals.get(key)
        if key == "qtc_ms" and "qtc_formula" not in detail:
            title = _QTC_BAZETT_TITLE
        rows.append({
            "key": key, "title": _(title), "unit": unit,
            "value": None if value is None else round(float(value)),
            "range": _range_text(ranges.get(key), unit),
            "flag": _FLAG_MARKS.get(flags.get(flag_key)) if value is not None else None,
        })
    return rows


# Ear results saved before the issues were sentences carry these codes.
_EAR_ISSUE_CODES = {"low_confidence": ear.LOW_CONFIDENCE_NOTE,
                    "slightly_blurry": ear.SLIGHTLY_BLURRY_NOTE}


def quality_notes(result: dict[str, Any]) -> list[str]:
    """The result's `quality.issues` (stored in English) in the user's language."""
    issues = (result.get("quality") or {}).get("issues") or []
    return [quality.localize_issue(_EAR_ISSUE_CODES.get(str(i), str(i)), _) for i in issues]


def quality_notes_title(result: dict[str, Any]) -> str:
    input_type = result.get("input_type", "photo")
    if input_type == "photo":
        return _("Photo quality notes")
    return _("Notes on the digitised print") if input_type == "pdf" else _(
        "Recording quality notes")


def disclaimer_for(result: dict[str, Any]) -> str:
    """The check kind's disclaimer in the user's language (also for a result saved before the
    disclaimers named each kind's own warning signs)."""
    kind = str(result.get("kind", ""))
    return _(DISCLAIMERS.get(kind) or str(result.get("disclaimer") or DISCLAIMER))


def explanation_for(result: dict[str, Any]) -> str:
    if current_locale.get() == "ko" and result.get("explanation_ko"):
        return str(result["explanation_ko"])
    return str(result.get("explanation", ""))


def decode_png(data_b64: str | None) -> Image.Image | None:
    if not data_b64:
        return None
    try:
        return Image.open(io.BytesIO(base64.b64decode(data_b64)))
    except (ValueError, OSError):
        return None


def outline_png(mask_b64: str | None, colour: tuple[int, int, int] = (255, 214, 0)) -> bytes | None:
    """A transparent PNG with the lesion's outline (mask edge, dilated to stay visible)."""
    mask = decode_png(mask_b64)
    if mask is None:
        return None
    grey = mask.convert("L").point(lambda v: 255 if v >= 128 else 0)
    width = max(3, round(max(grey.size) / 150)) | 1
    ring = ImageChops.subtract(grey.filter(ImageFilter.MaxFilter(width)),
                               grey.filter(ImageFilter.MinFilter(width)))
    out = Image.new("RGBA", grey.size, (*colour, 0))
    out.putalpha(ring)
    buffer = io.BytesIO()
    out.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _hangul_font_path() -> str | None:
    return next((p for p in HANGUL_FONTS if Path(p).exists()), None)


class _Fonts:
    def __init__(self, korean: bool):
        self.path = _hangul_font_path() if korean else None
        self.bold = self.path or LATIN_BOLD
        self.regular = self.path or LATIN_FONT

    def get(self, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
        try:
            return ImageFont.truetype(self.bold if bold else self.regular, size)
        except OSError:
            return ImageFont.load_default(size)


def _card_locale() -> str:
    """Korean only when a Hangul font exists; otherwise English (never tofu boxes)."""
    return "ko" if current_locale.get() == "ko" and _hangul_font_path() else "en"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width_px: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        line = ""
        for word in words:
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width_px:
                line = trial
                continue
            if line:
                lines.append(line)
            # Korean runs without spaces and long words: break by characters.
            while draw.textlength(word, font=font) > width_px:
                cut = len(word)
                while cut > 1 and draw.textlength(word[:cut], font=font) > width_px:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    return lines


def _text_block(draw, xy, text, font, width_px, fill=INK, spacing=1.3) -> int:
    x, y = xy
    size = font.size if hasattr(font, "size") else 16
    for line in _wrap(draw, text, font, width_px):
        draw.text((x, y), line, font=font, fill=fill)
        y += int(size * spacing)
    return y


def _picture(result: dict[str, Any], input_image: bytes | None, box: tuple[int, int]) -> Image.Image | None:
    """What the card shows: the ECG trace, the photo (with the lesion outline for skin)."""
    if result.get("kind") == "ecg" and result.get("trace"):
        img = ecg_plot.render_image(result["trace"], px_per_mm=4.0, max_duration_s=10.0)
        img.thumbnail(box)
        return img
    if not input_image:
        return None
    try:
        photo = ImageOps.exif_transpose(Image.open(io.BytesIO(input_image))).convert("RGB")
    except OSError:
        return None
    outline = outline_png(result.get("mask_png_base64")) if result.get("kind") == "skin" else None
    if outline:
        ring = Image.open(io.BytesIO(outline)).resize(photo.size)
        photo.paste(ring, (0, 0), ring)
    photo.thumbnail(box)
    return photo


def _summary_lines(result: dict[str, Any]) -> list[tuple[str, str]]:
    model = result.get("model") or {}
    lines = [
        (_("Confidence"), f"{round(100 * float(result.get('confidence', 0)))} %"),
        (_("Urgency"), urgency_name(result.get("urgency")) or _("Routine")),
        (_("Model"), f"{model.get('name', '?')} {model.get('version', '')}".strip()),
    ]
    return lines


def render_card_png(result: dict[str, Any], created_at: datetime | None = None,
                    input_image: bytes | None = None) -> bytes:
    """A 1080x1350 share card: what was checked, the finding, urgency, the picture, the
    disclaimer. Holds no name or e-mail: it is made to be shared."""
    token = current_locale.set(_card_locale())
    try:
        return _card(result, created_at, input_image)
    finally:
        current_locale.reset(token)


def _card(result: dict[str, Any], created_at: datetime | None, input_image: bytes | None) -> bytes:
    kind = str(result.get("kind", ""))
    fonts = _Fonts(current_locale.get() == "ko")
    width, height, pad = 1080, 1350, 64
    img = Image.new("RGB", (width, height), "#f6f8f8")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, width, 150], fill=TEAL)
    draw.text((pad, 40), "CareLens", font=fonts.get(56, bold=True), fill="white")
    draw.text((width - pad, 62), _(KIND_TITLES.get(kind, N_("Check"))), anchor="ra",
              font=fonts.get(36), fill="white")
    y = 190
    if created_at:
        draw.text((pad, y), _stamp(created_at), font=fonts.get(30), fill=MUTED)
        y += 50
    y = _text_block(draw, (pad, y), label_name(kind, str(result.get("label", ""))),
                    fonts.get(60, bold=True), width - 2 * pad) + 12
    if detail := headline_detail(result):
        y = _text_block(draw, (pad, y), detail, fonts.get(36), width - 2 * pad) + 12
    urgency = str(result.get("urgency", "routine"))
    chip = urgency_name(urgency) or _("Routine")
    chip_font = fonts.get(34, bold=True)
    chip_w = int(draw.textlength(chip, font=chip_font)) + 48
    draw.rounded_rectangle([pad, y, pad + chip_w, y + 64], radius=32,
                           fill=URGENCY_COLOURS.get(urgency, TEAL))
    draw.text((pad + 24, y + 12), chip, font=chip_font, fill="white")
    y += 96
    picture = _picture(result, input_image, (width - 2 * pad, 520))
    if picture is not None:
        img.paste(picture, ((width - picture.width) // 2, y))
        y += picture.height + 28
    body = fonts.get(32)
    for title, value in _summary_lines(result):
        draw.text((pad, y), title, font=body, fill=MUTED)
        draw.text((width - pad, y), value, font=fonts.get(32, bold=True), fill=INK, anchor="ra")
        y += 48
    if kind == "ecg":
        parts = [f"{r['title']} {r['value']} {r['unit']}" for r in interval_rows(result)
                 if r["value"] is not None and r["key"] in ("hr_bpm", "qtc_ms")]
        if parts:
            draw.text((pad, y), " · ".join(parts), font=body, fill=INK)
            y += 48
    footer = _("Not a diagnosis. A computer model's second opinion; see a doctor if you are worried.")
    lines = _wrap(draw, footer, fonts.get(26), width - 2 * pad)
    fy = height - pad - 36 * len(lines)
    draw.line([pad, fy - 20, width - pad, fy - 20], fill="#d5dcdc", width=2)
    for line in lines:
        draw.text((pad, fy), line, font=fonts.get(26), fill=MUTED)
        fy += 36
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


DPI = 150
A4_PX = (round(210 / 25.4 * DPI), round(297 / 25.4 * DPI))


def _trace_pages(trace: dict[str, Any], fonts: _Fonts, pad: int) -> list[Image.Image]:
    """Landscape A4 pages with as many trace rows as fit, never shrunk: at 100 % print the
    grid is 25 mm/s and 10 mm/mV, so the doctor can measure on paper."""
    px_per_mm = DPI / 25.4
    page_w, page_h = A4_PX[1], A4_PX[0]
    header = 50
    usable_mm = (page_h - 2 * pad - header) / px_per_mm - 2 * ecg_plot.MARGIN_MM
    per_page = max(1, int(usable_mm // ecg_plot.ROW_HEIGHT_MM))
    total = max(1, ecg_plot.row_count(trace))
    pages = []
    for first in range(0, total, per_page):
        image = ecg_plot.render_image(trace, px_per_mm=px_per_mm, rows=(first, first + per_page),
                                      max_duration_s=(page_w - 2 * pad) / px_per_mm / 25 - 0.4)
        page = Image.new("RGB", (page_w, page_h), "white")
        ImageDraw.Draw(page).text(
            (pad, pad // 2), _("ECG trace at 25 mm/s, 10 mm/mV (print at 100 %)"),
            font=fonts.get(24, bold=True), fill=INK)
        page.paste(image, (pad, pad // 2 + header))
        pages.append(page)
    return pages


def _stamp(moment: datetime) -> str:
    """"2026-11-24 09:27 KST" of a time already in the member's zone (cards and the PDF)."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def render_report_pdf(result: dict[str, Any], *, created_at: datetime | None = None,
                      patient: str = "", input_image: bytes | None = None,
                      check_id: int | None = None, recorded_at: datetime | None = None) -> bytes:
    """An A4 report for the doctor: finding, probabilities, ECG intervals with normal ranges,
    the trace at true scale (or the photo), the exact model (name, version, sha256) and the
    disclaimer. Landscape second page for a 10 s ECG, which is 250 mm wide."""
    token = current_locale.set(_card_locale())
    try:
        return _report(result, created_at, patient, input_image, check_id, recorded_at)
    finally:
        current_locale.reset(token)


def _report(result, created_at, patient, input_image, check_id, recorded_at) -> bytes:
    kind = str(result.get("kind", ""))
    fonts = _Fonts(current_locale.get() == "ko")
    w, h = A4_PX
    pad = 90
    page = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(page)
    draw.text((pad, pad), "CareLens — " + _(KIND_TITLES.get(kind, N_("Check"))),
              font=fonts.get(40, bold=True), fill=TEAL)
    y = pad + 64
    meta = []
    if patient:
        meta.append(_("Name: %(name)s", name=patient))
    if created_at:
        meta.append(_("Date: %(date)s", date=_stamp(created_at)))
    if check_id is not None:
        meta.append(_("Check #%(number)s", number=check_id))
    if recorded_at:
        meta.append(_("Recorded: %(date)s", date=_stamp(recorded_at)))
    draw.text((pad, y), "   ".join(meta), font=fonts.get(22), fill=MUTED)
    y += 50
    y = _text_block(draw, (pad, y), label_name(kind, str(result.get("label", ""))),
                    fonts.get(34, bold=True), w - 2 * pad) + 6
    if detail := headline_detail(result):
        y = _text_block(draw, (pad, y), detail, fonts.get(24), w - 2 * pad) + 6
    small = fonts.get(22)
    bold = fonts.get(22, bold=True)
    for title, value in _summary_lines(result):
        draw.text((pad, y), title, font=small, fill=MUTED)
        draw.text((pad + 300, y), value, font=bold, fill=INK)
        y += 32
    model = result.get("model") or {}
    if model.get("sha256"):
        draw.text((pad, y), f"sha256 {model['sha256']}", font=fonts.get(16), fill=MUTED)
        y += 30
    y += 10
    draw.text((pad, y), _("Probabilities"), font=fonts.get(26, bold=True), fill=INK)
    y += 40
    probs = sorted((result.get("probabilities") or {}).items(), key=lambda kv: -kv[1])
    for label, p in probs:
        draw.text((pad, y), label_name(kind, label), font=small, fill=INK)
        bar_x = pad + 560
        draw.rectangle([bar_x, y + 4, bar_x + 360, y + 24], outline="#b9c3c3")
        draw.rectangle([bar_x, y + 4, bar_x + int(360 * float(p)), y + 24], fill=TEAL)
        draw.text((bar_x + 380, y), f"{100 * float(p):.1f} %", font=small, fill=INK)
        y += 32
    if kind == "ecg":
        y += 16
        draw.text((pad, y), _("Intervals"), font=fonts.get(26, bold=True), fill=INK)
        y += 40
        for row in interval_rows(result):
            value = "—" if row["value"] is None else f"{row['value']} {row['unit']}"
            draw.text((pad, y), row["title"], font=small, fill=INK)
            draw.text((pad + 420, y), value, font=bold,
                      fill="#a61b1b" if row["flag"] else INK)
            draw.text((pad + 640, y), _("normal %(range)s", range=row["range"]), font=small,
                      fill=MUTED)
            y += 32
    notes = quality_notes(result)
    if notes:
        y += 10
        y = _text_block(draw, (pad, y), quality_notes_title(result) + ": " + " · ".join(notes),
                        small, w - 2 * pad, fill=MUTED)
    y += 16
    draw.text((pad, y), _("Explanation"), font=fonts.get(26, bold=True), fill=INK)
    y += 40
    y = _text_block(draw, (pad, y), explanation_for(result), small, w - 2 * pad)
    if kind != "ecg":
        picture = _picture(result, input_image, (w - 2 * pad, max(200, h - y - 320)))
        if picture is not None:
            page.paste(picture, (pad, y + 20))
            y += picture.height + 40
    _text_block(draw, (pad, h - pad - 130), disclaimer_for(result), fonts.get(18),
                w - 2 * pad, fill=MUTED)
    pages = [page]
    if kind == "ecg" and result.get("trace"):
        pages.extend(_trace_pages(result["trace"], fonts, pad))
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", resolution=DPI, save_all=True, append_images=pages[1:],
                  title=f"CareLens {kind} check", author="CareLens")
    return buffer.getvalue()


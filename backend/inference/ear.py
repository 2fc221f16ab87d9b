"""Eardrum check: otoscope photo -> "is this an eardrum?" gate -> otitis classifier.

Two small ONNX models share one preprocessing step (`crop_field_of_view`), which the
training scripts in training/ear/ import from here so training and serving cannot drift:

- `ear_gate`: eardrum vs anything else (skin, ECG sheets, rooms, text, blur, blank...).
- `ear_classifier`: the finding. Its graph starts with the colour normalisation (circular
  mask + grey-world), so that part is inside the weights and identical everywhere.

A photo is refused (UnusableInputError, `is_eardrum: false`) when it is blank, too dark,
too blurry, when the gate says it is not an eardrum, or when the classifier's energy score
says it is far from every eardrum it was trained on. Thresholds come from the gate's card
(calibrated on the validation split by training/ear/evaluate.py), never from this file.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from backend.inference.errors import Phrase, UnusableInputError
from backend.inference.registry import ModelRegistry, default_registry
from backend.inference.result import Urgency, make_result

CLASSIFIER_NAME = "ear_classifier"
GATE_NAME = "ear_gate"

INPUT_SIZE = 160
# Working resolution before cropping: the training images have a longer side of 256 px.
WORK_SIDE = 256
# A JPEG upload is decoded at the smallest reduced scale that still has this many pixels on
# its shorter side (the picture is brought down to WORK_SIDE right after): a 12 MP photo
# decodes in ~15 ms instead of ~95 ms.
PHOTO_MIN_SIDE = 512

# What each finding means for a parent, and how soon to see a doctor. One table so the
# urgency tiers are reviewed together. Tiers follow common paediatric guidance (AAP 2013
# acute otitis media guideline; NICE CKS otitis media / otitis externa): a red, bulging
# drum (acute otitis media) needs a clinician within a day, sooner with high fever or a
# child under 6 months; effusion, chronic otitis media, otitis externa and blocked wax need
# a routine-but-planned visit; myringosclerosis and a tube in place are usually expected.
FINDINGS: dict[str, dict[str, Any]] = {
    "normal": {
        "urgency": "routine",
        "en": "The eardrum looks normal: grey-pink, see-through, no fluid or redness seen.",
        "ko": "고막이 정상으로 보입니다: 회색빛 분홍색이고 투명하며, 액체나 붉은 기가 보이지 않습니다.",
    },
    "earwax": {
        "urgency": "routine",
        "en": (
            "Earwax is blocking part or all of the view. Wax is normal and protects the ear; "
            "it only needs a doctor if it causes hearing loss, pain or a blocked feeling. "
            "Do not push cotton buds into the ear."
        ),
        "ko": (
            "귀지가 고막의 일부 또는 전체를 가리고 있습니다. 귀지는 정상이며 귀를 보호합니다. "
            "청력 저하, 통증, 막힌 느낌이 있을 때만 진료가 필요합니다. 면봉을 귀에 넣지 마세요."
        ),
    },
    "acute_otitis_media": {
        "urgency": "urgent",
        "en": (
            "The eardrum looks red and bulging, as in an acute middle-ear infection "
            "(acute otitis media). This often comes with ear pain and fever. See a doctor "
            "today, and at once for a baby under 6 months, a high fever or a stiff neck."
        ),
        "ko": (
            "고막이 붉고 부풀어 보여 급성 중이염과 비슷합니다. 보통 귀 통증과 열이 함께 "
            "나타납니다. 오늘 진료를 받으시고, 생후 6개월 미만 아기이거나 고열 또는 "
            "목이 뻣뻣하면 즉시 병원에 가세요."
        ),
    },
    "middle_ear_effusion": {
        "urgency": "soon",
        "en": (
            "There seems to be fluid behind the eardrum (middle-ear effusion). It often "
            "follows a cold and clears by itself within weeks, but it can muffle hearing. "
            "Book a visit with your doctor in the next few days; sooner with pain or fever."
        ),
        "ko": (
            "고막 뒤에 액체가 차 있는 것으로 보입니다(삼출성 중이염). 감기 후 흔하며 몇 주 "
            "안에 저절로 좋아지기도 하지만 잘 안 들릴 수 있습니다. 며칠 안에 진료를 "
            "예약하세요. 통증이나 열이 있으면 더 빨리 가세요."
        ),
    },
    "chronic_otitis_media": {
        "urgency": "soon",
        "en": (
            "The eardrum may have a hole or long-standing inflammation (chronic otitis "
            "media), sometimes with discharge. This needs an ear doctor's check within a "
            "week or two; keep water out of the ear until then."
        ),
        "ko": (
            "고막에 구멍이 있거나 오래된 염증(만성 중이염)이 있을 수 있으며, 분비물이 "
            "나오기도 합니다. 1~2주 안에 이비인후과 진료를 받으시고, 그때까지 귀에 물이 "
            "들어가지 않게 하세요."
        ),
    },
    "myringosclerosis": {
        "urgency": "routine",
        "en": (
            "There are white chalky patches on the eardrum (myringosclerosis), usually "
            "scars from earlier infections or tubes. It is mostly harmless; mention it at "
            "the next routine check-up, earlier if hearing seems worse."
        ),
        "ko": (
            "고막에 하얀 석회 같은 반점(고막경화증)이 보입니다. 대개 예전 염증이나 튜브의 "
            "흉터로 대부분 해가 없습니다. 다음 정기 진료 때 말씀하시고, 청력이 나빠진 것 "
            "같으면 더 일찍 진료를 받으세요."
        ),
    },
    "tympanostomy_tube": {
        "urgency": "routine",
        "en": (
            "A small ventilation tube seems to sit in the eardrum. That is expected after "
            "grommet surgery. See the doctor if the ear discharges or hurts, or if the tube "
            "seems to have come out."
        ),
        "ko": (
            "고막에 작은 환기관(튜브)이 있는 것으로 보입니다. 환기관 수술 후에는 정상입니다. "
            "귀에서 분비물이 나오거나 아프거나 튜브가 빠진 것 같으면 진료를 받으세요."
        ),
    },
    "otitis_externa": {
        "urgency": "soon",
        "en": (
            "The ear canal looks swollen or inflamed (otitis externa, 'swimmer's ear'). It "
            "is usually painful when the ear is touched. See a doctor in the next day or "
            "two; ear drops often help."
        ),
        "ko": (
            "외이도가 붓거나 염증이 있어 보입니다(외이도염, '수영자의 귀'). 귀를 만지면 "
            "아픈 경우가 많습니다. 하루이틀 안에 진료를 받으세요. 귀약으로 좋아지는 "
            "경우가 많습니다."
        ),
    },
}

WHEN_URGENT_EN = (
    " Whatever this photo shows: fever, ear pain, fluid or pus from the ear, sudden hearing "
    "loss, swelling behind the ear or a very unwell child mean seeing a doctor urgently."
)
WHEN_URGENT_KO = (
    " 사진 결과와 관계없이 열, 귀 통증, 귀에서 나오는 액체나 고름, 갑작스러운 청력 저하, "
    "귀 뒤의 부기, 아이가 매우 아파 보이면 바로 진료를 받으세요."
)
# quality.issues (English, as every lane's; pages show them through the catalog)
LOW_CONFIDENCE_NOTE = "the model is not sure between the findings"
SLIGHTLY_BLURRY_NOTE = "the photo is slightly blurry; a sharper one gives a surer answer"
UNCERTAIN_EN = " The model is not sure about this photo; a clearer photo or a doctor's look helps."
UNCERTAIN_KO = " 모델이 이 사진에 대해 확신하지 못합니다. 더 선명한 사진이나 진료가 도움이 됩니다."

RETRY_HINT = (
    "try again: hold the otoscope tip just inside the ear canal, pull the ear gently up and "
    "back, keep the phone still, and make sure the light is on."
)


def not_an_eardrum(reason: str) -> UnusableInputError:
    return UnusableInputError(
        "This does not look like an eardrum photo (%(reason)s). Please %(hint)s",
        params={"reason": Phrase(reason), "hint": Phrase(RETRY_HINT)},
        extra={"is_eardrum": False},
    )


def resize_longer_side(image: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if abs(scale - 1.0) < 1e-3:
        return image
    if scale < 1:
        # Area averaging by a whole factor first: OpenCV's INTER_AREA is several times faster
        # for integer factors, and a 12 MP photo otherwise costs ~50 ms here.
        if scale < 0.125:
            # Point-sample by 2 first on very large photos (12 MP and up): the area step
            # below still averages 4+ pixels per output pixel, so this adds no aliasing.
            image = np.ascontiguousarray(image[::2, ::2])
            h, w = image.shape[:2]
            scale = side / max(h, w)
        factor = int(1 / scale)
        if factor >= 2:
            image = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
            h, w = image.shape[:2]
            scale = side / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interp)


def crop_field_of_view(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """HxWx3 uint8 RGB -> size x size x 3 uint8: the otoscope's lit circle, centred.

    Otoscopes differ in how much black surround and vignette they leave around the lit
    field; cropping to the lit area's bounding square takes that camera signature out before
    the model sees the image. A photo without a dark surround is centre-cropped.
    """
    work = resize_longer_side(np.ascontiguousarray(image[..., :3]))
    h, w = work.shape[:2]
    lum = work.max(axis=2)
    level = max(24.0, 0.3 * float(np.percentile(lum, 95)))
    lit = lum > level
    rows = np.flatnonzero(lit.mean(axis=1) > 0.15)
    cols = np.flatnonzero(lit.mean(axis=0) > 0.15)
    if rows.size < 0.3 * h or cols.size < 0.3 * w:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    side = float(min(max(y1 - y0, x1 - x0), max(h, w)))
    # A square crop around the lit area; parts outside the photo become black, as in an
    # otoscope's own surround.
    scale = size / side
    matrix = np.array(
        [[scale, 0.0, size / 2.0 - cx * scale], [0.0, scale, size / 2.0 - cy * scale]]
    )
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(
        work, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def to_model_input(crop: np.ndarray) -> np.ndarray:
    """size x size x 3 uint8 -> 1x3xSxS float32 in [0, 1] (both models take this)."""
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) * (1.0 / 255.0)


def image_quality(crop: np.ndarray) -> dict[str, float]:
    """Brightness, contrast and sharpness of the cropped field (for the blank/dark/blur checks)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    inner = grey[INPUT_SIZE // 4 : -INPUT_SIZE // 4, INPUT_SIZE // 4 : -INPUT_SIZE // 4]
    return {
        "brightness": float(inner.mean()),
        "contrast": float(inner.std()),
        "sharpness": float(cv2.Laplacian(inner, cv2.CV_32F).var()),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


def _energy(logits: np.ndarray) -> float:
    """Free energy -logsumexp(logits): high for inputs unlike the training eardrums."""
    m = float(logits.max())
    return -(m + float(np.log(np.exp(logits - m).sum())))


def gate_score(crop: np.ndarray, registry: ModelRegistry) -> float:
    """Probability that the crop shows an eardrum, from the gate model."""
    out = registry.get(GATE_NAME).run(to_model_input(crop))
    logit = float(next(iter(out.values())).reshape(-1)[0])
    return float(1.0 / (1.0 + np.exp(-logit)))


def screen_crop(crop: np.ndarray, registry: ModelRegistry) -> tuple[str | None, dict[str, Any]]:
    """Run the quality checks, the gate and the classifier on a field-of-view crop.

    Returns (reason, scores): `reason` is None for a usable eardrum photo, else the plain
    words for why it was refused; `scores` holds the quality figures, the gate probability,
    the classifier's logits and energy (whatever was computed before a refusal).
    """
    limits = registry.get(GATE_NAME).card["thresholds"]
    scores: dict[str, Any] = {"quality": image_quality(crop)}
    quality = scores["quality"]
    if quality["contrast"] < limits["min_contrast"]:
        return "the picture is blank or almost one colour", scores
    if quality["brightness"] < limits["min_brightness"]:
        return "the picture is too dark", scores
    if quality["sharpness"] < limits["min_sharpness"]:
        return "the picture is too blurry", scores
    scores["p_eardrum"] = gate_score(crop, registry)
    if scores["p_eardrum"] < limits["gate_probability"]:
        return "no eardrum was recognised in it", scores
    outputs = registry.get(CLASSIFIER_NAME).run(to_model_input(crop))
    scores["logits"] = np.asarray(outputs["logits"], dtype=np.float64).reshape(-1)
    scores["energy"] = _energy(scores["logits"])
    if scores["energy"] > limits["max_energy"]:
        return "it is unlike the eardrum photos the model knows", scores
    return None, scores


def analyze_ear(image: np.ndarray, registry: ModelRegistry | None = None) -> dict[str, Any]:
    """HxWx3 uint8 RGB (from load_image_rgb) -> the contract's ear result JSON.

    Raises UnusableInputError (extra `is_eardrum: False`) for anything that is not a usable
    eardrum photo.
    """
    if image.ndim != 3 or image.shape[2] < 3:
        raise not_an_eardrum("it is not a colour photo")
    registry = registry or default_registry()
    crop = crop_field_of_view(image)
    reason, scores = screen_crop(crop, registry)
    if reason is not None:
        raise not_an_eardrum(reason)

    gate = registry.get(GATE_NAME)
    classifier = registry.get(CLASSIFIER_NAME)
    classes: list[str] = list(classifier.card["classes"])
    temperature = float(classifier.card.get("temperature", 1.0))
    probs = _softmax(scores["logits"] / temperature)
    label = classes[int(np.argmax(probs))]
    confidence = float(probs.max())
    finding = FINDINGS[label]
    urgency: Urgency = finding["urgency"]
    issues: list[str] = []
    explanation, explanation_ko = finding["en"], finding["ko"]
    if confidence < 0.5:
        issues.append(LOW_CONFIDENCE_NOTE)
        explanation += UNCERTAIN_EN
        explanation_ko += UNCERTAIN_KO
    if scores["quality"]["sharpness"] < 2 * gate.card["thresholds"]["min_sharpness"]:
        issues.append(SLIGHTLY_BLURRY_NOTE)
    return make_result(
        kind="ear",
        label=label,
        probabilities=dict(zip(classes, probs.tolist())),
        confidence=confidence,
        urgency=urgency,
        model=classifier.model_ref(),
        quality_issues=issues,
        quality_ok=not issues,
        explanation=explanation + WHEN_URGENT_EN,
        explanation_ko=explanation_ko + WHEN_URGENT_KO,
        is_eardrum=True,
        eardrum_probability=round(float(scores["p_eardrum"]), 4),
        gate_model=gate.model_ref(),
    )

"""The contract's common result JSON, built in one place for ECG, skin and ear."""

from __future__ import annotations

from typing import Any, Literal

Urgency = Literal["routine", "soon", "urgent"]

DISCLAIMER = (
    "CareLens is not a medical device and this is not a diagnosis. It is a second opinion "
    "from a computer model that can be wrong. See a doctor if you are worried, if symptoms "
    "appear or get worse, and always for chest pain, fainting or shortness of breath."
)
# The warning signs at the end are the check's own: chest pain means little on an ear result.
DISCLAIMERS = {
    "ecg": DISCLAIMER,
    "skin": (
        "CareLens is not a medical device and this is not a diagnosis. It is a second opinion "
        "from a computer model that can be wrong. See a doctor if you are worried, and always "
        "for a spot that is new, growing, bleeding or changing in shape or colour."
    ),
    "ear": (
        "CareLens is not a medical device and this is not a diagnosis. It is a second opinion "
        "from a computer model that can be wrong. See a doctor if you are worried, and always "
        "for fever, severe ear pain, fluid coming out of the ear or sudden hearing loss."
    ),
}


def make_result(
    *,
    kind: Literal["ecg", "skin", "ear"],
    label: str,
    probabilities: dict[str, float],
    urgency: Urgency,
    model: dict[str, str],
    quality_issues: list[str] | None = None,
    quality_ok: bool = True,
    explanation: str,
    confidence: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    probs = {k: round(float(v), 4) for k, v in probabilities.items()}
    if confidence is None:
        confidence = probs.get(label, max(probs.values()) if probs else 0.0)
    return {
        "kind": kind,
        "label": label,
        "probabilities": probs,
        "confidence": round(float(confidence), 4),
        "urgency": urgency,
        "model": model,
        "quality": {"ok": bool(quality_ok), "issues": list(quality_issues or [])},
        "explanation": explanation,
        "disclaimer": DISCLAIMERS[kind],
        **extra,
    }

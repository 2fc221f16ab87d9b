"""The result JSON of /work/shared/CONTRACT.md, checked in one place for CLI and API tests."""

from __future__ import annotations

ECG_RHYTHMS = {"sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "atrial_fibrillation",
               "atrial_flutter", "supraventricular_tachycardia", "paced_rhythm", "other",
               "noisy"}
SKIN_LABELS = {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}


def assert_contract_result(result: dict, kind: str) -> None:
    assert result["kind"] == kind
    assert isinstance(result["label"], str) and result["label"]
    probs = result["probabilities"]
    assert isinstance(probs, dict) and probs
    assert all(isinstance(v, float | int) and 0 <= v <= 1 for v in probs.values())
    assert 0 <= result["confidence"] <= 1
    assert result["urgency"] in {"routine", "soon", "urgent"}
    assert set(result["model"]) >= {"name", "version", "sha256"}
    assert len(result["model"]["sha256"]) == 64
    assert isinstance(result["quality"]["ok"], bool) and isinstance(result["quality"]["issues"], list)
    assert result["explanation"] and "not a medical device" in result["disclaimer"]
    if kind == "ecg":
        assert result["rhythm"] == result["label"] and result["rhythm"] in ECG_RHYTHMS
        assert set(result["intervals"]) == {"hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms"}
        assert all(v is None or isinstance(v, float | int) for v in result["intervals"].values())
        assert isinstance(result["leads"], list) and result["leads"]
    elif kind == "skin":
        assert result["label"] in SKIN_LABELS and set(probs) == SKIN_LABELS
        assert 0 <= result["lesion_area_fraction"] <= 1
        assert isinstance(result["mask_png_base64"], str) and result["mask_png_base64"]
    elif kind == "ear":
        assert result["is_eardrum"] is True

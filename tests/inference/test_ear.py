"""Eardrum check through the shipped weights: the gate, the contract JSON, weight integrity.

The eardrums (Chile Ear Imagery and Ohio OtoMatch) and the skin photo (HAM10000) are read from
../shared/data and sit on the test side of the group / lesion split: see tests/held_out.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.inference.ear import CLASSIFIER_NAME, FINDINGS, GATE_NAME, analyze_ear
from backend.inference.errors import ModelIntegrityError, UnusableInputError
from backend.inference.images import load_image_rgb
from backend.inference.registry import ModelRegistry
from backend.settings import PROJECT_ROOT
from tests.contract import assert_contract_result
from tests.held_out import EARDRUMS, SKIN_NOT_EARDRUM

WEIGHTS = PROJECT_ROOT / "weights"


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(WEIGHTS, threads=2)


def _load(path: Path) -> np.ndarray:
    return load_image_rgb(path.read_bytes())


def _assert_not_eardrum(image: np.ndarray, registry: ModelRegistry) -> UnusableInputError:
    with pytest.raises(UnusableInputError) as info:
        analyze_ear(image, registry)
    err = info.value
    assert err.extra == {"is_eardrum": False}
    assert err.to_json()["is_eardrum"] is False
    assert "does not look like an eardrum" in err.message and "try again" in err.message
    return err


def test_blank_image_is_refused(registry):
    _assert_not_eardrum(np.full((480, 640, 3), 128, np.uint8), registry)


def test_black_frame_is_refused(registry):
    _assert_not_eardrum(np.zeros((480, 640, 3), np.uint8), registry)


def test_skin_photo_is_refused(registry):
    _assert_not_eardrum(_load(SKIN_NOT_EARDRUM), registry)


def _ecg_sheet() -> np.ndarray:
    """A plain photographed-looking ECG sheet: pink grid, black trace, drawn here."""
    h, w = 600, 800
    img = np.full((h, w, 3), (252, 240, 238), np.uint8)
    for x in range(0, w, 6):
        cv2.line(img, (x, 0), (x, h), (250, 200, 200) if x % 30 else (235, 120, 120), 1)
    for y in range(0, h, 6):
        cv2.line(img, (0, y), (w, y), (250, 200, 200) if y % 30 else (235, 120, 120), 1)
    t = np.arange(w)
    for row in range(3):
        base = 120 + row * 180
        phase = (t % 110) / 110.0
        beat = 60 * np.exp(-(((phase - 0.3) / 0.02) ** 2)) + 12 * np.exp(
            -(((phase - 0.6) / 0.06) ** 2)
        )
        pts = np.stack([t, base - beat], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, (15, 15, 15), 2, cv2.LINE_AA)
    return img


def test_ecg_sheet_is_refused(registry):
    _assert_not_eardrum(_ecg_sheet(), registry)


def test_held_out_eardrums_are_accepted_with_the_contract_json(registry):
    assert len(EARDRUMS) >= 2
    classifier = registry.get(CLASSIFIER_NAME)
    for path in EARDRUMS:
        result = analyze_ear(_load(path), registry)
        assert_contract_result(result, "ear")
        assert result["label"] in classifier.card["classes"]
        assert set(result["probabilities"]) == set(classifier.card["classes"])
        assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-2
        assert result["urgency"] == FINDINGS[result["label"]]["urgency"]
        assert result["model"] == classifier.model_ref()
        assert set(result["quality"]) == {"ok", "issues"}
        assert "fever" in result["explanation"] and result["explanation_ko"]


def test_every_class_has_a_finding_with_an_urgency_tier(registry):
    classes = registry.get(CLASSIFIER_NAME).card["classes"]
    assert set(classes) == set(FINDINGS)
    assert all(f["urgency"] in {"routine", "soon", "urgent"} for f in FINDINGS.values())
    assert FINDINGS["acute_otitis_media"]["urgency"] == "urgent"


def test_cards_carry_the_measured_metrics(registry):
    cls_card = registry.get(CLASSIFIER_NAME).card
    gate_card = registry.get(GATE_NAME).card
    assert cls_card["metrics"]["overall"]["n"] == cls_card["training_data"]["n_test"]
    assert {"chl", "tur", "ohi"} == set(cls_card["metrics"]["per_source"])
    assert 0.0 <= gate_card["metrics"]["held_out_negatives"]["rejection_rate"] <= 1.0
    assert set(gate_card["thresholds"]) == {
        "min_contrast",
        "min_brightness",
        "min_sharpness",
        "gate_probability",
        "max_energy",
    }


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, GATE_NAME])
def test_tampered_weights_are_refused(tmp_path, name):
    for p in WEIGHTS.glob("ear_*"):
        shutil.copy(p, tmp_path / p.name)
    data = bytearray((tmp_path / f"{name}.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / f"{name}.onnx").write_bytes(bytes(data))
    tampered = ModelRegistry(tmp_path)
    with pytest.raises(ModelIntegrityError):
        tampered.get(name)
    with pytest.raises(ModelIntegrityError):
        analyze_ear(_load(EARDRUMS[0]), tampered)

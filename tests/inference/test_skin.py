"""Skin check: contract JSON, quality gate, model integrity (no torch needed)."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from backend.inference.errors import ModelIntegrityError, UnusableInputError
from backend.inference.images import load_image_rgb
from backend.inference.registry import ModelRegistry
from backend.inference.skin import (
    CLASSES,
    FLIP_VIEWS,
    INPUT_H,
    INPUT_W,
    MODEL_NAME,
    analyze_skin,
    preprocess_skin,
    run_with_flips,
    urgency_for,
)
from backend.settings import PROJECT_ROOT
from tests.held_out import SKIN_BCC, SKIN_MEL, SKIN_NV

WEIGHTS = PROJECT_ROOT / "weights"


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(WEIGHTS, threads=1)


def fixture_image(prefix: str) -> np.ndarray:
    path = {"nv": SKIN_NV, "bcc": SKIN_BCC, "mel": SKIN_MEL}[prefix]
    return load_image_rgb(path.read_bytes())


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_registry_refuses_weights_whose_sha256_differs_from_card(tmp_path: Path) -> None:
    for suffix in (".onnx", ".json"):
        shutil.copy(WEIGHTS / f"{MODEL_NAME}{suffix}", tmp_path / f"{MODEL_NAME}{suffix}")
    onnx = tmp_path / f"{MODEL_NAME}.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        ModelRegistry(tmp_path).get(MODEL_NAME)


def test_card_states_licence_attribution_and_test_metrics(registry: ModelRegistry) -> None:
    card = registry.get(MODEL_NAME).card
    assert card["training_data"]["licence"].startswith("CC BY-NC 4.0")
    assert "Tschandl" in card["training_data"]["source"]
    test = card["metrics"]["test"]
    assert test["n_images"] == card["training_data"]["n_test"]
    for key in ("balanced_accuracy", "melanoma_auc", "dice", "iou", "ece_after_temperature"):
        assert 0.0 <= test[key] <= 1.0
    assert card["classes"] == list(CLASSES)


@pytest.mark.parametrize("prefix", ["nv", "bcc", "mel"])
def test_analyze_skin_returns_contract_json(registry: ModelRegistry, prefix: str) -> None:
    image = fixture_image(prefix)
    result = analyze_skin(image, registry)
    assert result["kind"] == "skin"
    assert set(result["probabilities"]) == set(CLASSES)
    assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-3
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["urgency"] in {"routine", "soon", "urgent"}
    assert set(result["model"]) == {"name", "version", "sha256"}
    assert result["quality"] == {"ok": True, "issues": []}
    assert result["explanation"] and result["explanation_ko"] and result["disclaimer"]
    assert 0.0 < result["lesion_area_fraction"] <= 1.0
    mask = decode_png(result["mask_png_base64"])
    assert mask.shape[:2] == image.shape[:2]
    assert abs(mask.astype(bool).mean() - result["lesion_area_fraction"]) < 1e-3
    saliency = decode_png(result["saliency_png_base64"])
    assert saliency.shape[2] == 4
    assert saliency.shape[0] / saliency.shape[1] == pytest.approx(
        image.shape[0] / image.shape[1], rel=0.02
    )


def test_portrait_photo_gets_a_portrait_mask(registry: ModelRegistry) -> None:
    image = np.ascontiguousarray(np.rot90(fixture_image("mel")))
    landscape = analyze_skin(fixture_image("mel"), registry)
    portrait = analyze_skin(image, registry)
    assert decode_png(portrait["mask_png_base64"]).shape[:2] == image.shape[:2]
    assert portrait["label"] == landscape["label"]


def test_large_photo_keeps_input_size_mask(registry: ModelRegistry) -> None:
    image = cv2.resize(fixture_image("nv"), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    result = analyze_skin(image, registry)
    assert decode_png(result["mask_png_base64"]).shape[:2] == (1200, 1600)


def test_preprocessing_shape_and_scale() -> None:
    x = preprocess_skin(fixture_image("nv"))
    assert x.shape == (1, 3, INPUT_H, INPUT_W) and x.dtype == np.float32
    assert -2.01 <= x.min() and x.max() <= 2.01


def test_unreadable_file_is_unusable_input() -> None:
    with pytest.raises(UnusableInputError, match="not a supported image"):
        load_image_rgb(b"this is not an image at all")
    truncated = SKIN_NV.read_bytes()[:400]
    with pytest.raises(UnusableInputError):
        analyze_skin(load_image_rgb(truncated))


def test_huge_image_is_unusable_input() -> None:
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")
    with pytest.raises(UnusableInputError, match="too large"):
        load_image_rgb(buf.getvalue())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda img: np.full_like(img, 180), "blank"),
        (lambda img: (img * 0.1).astype(np.uint8), "too dark"),
        (lambda img: np.clip(img.astype(int) + 200, 0, 255).astype(np.uint8), "overexposed"),
        (lambda img: cv2.GaussianBlur(img, (0, 0), 6), "blurry"),
    ],
    ids=["blank", "dark", "overexposed", "blurry"],
)
def test_quality_gate_explains_unusable_photos(registry: ModelRegistry, make, message: str) -> None:
    with pytest.raises(UnusableInputError, match=message) as info:
        analyze_skin(make(fixture_image("bcc")), registry)
    assert info.value.to_json()["quality"]["ok"] is False


def test_photo_without_a_lesion_is_refused(registry: ModelRegistry) -> None:
    """Plain skin: a soft light gradient and fine texture, but no spot."""
    rng = np.random.default_rng(0)
    skin = np.empty((300, 400, 3), np.float32)
    skin[:] = (224, 180, 160)
    skin += (30 * (np.arange(400) / 400 - 0.5))[None, :, None]
    skin += cv2.GaussianBlur(rng.normal(0, 10, skin.shape).astype(np.float32), (0, 0), 1.0)
    with pytest.raises(UnusableInputError, match="No skin spot"):
        analyze_skin(np.clip(skin, 0, 255).astype(np.uint8), registry)


def test_urgency_rule() -> None:
    base = dict.fromkeys(CLASSES, 0.0)
    assert urgency_for({**base, "nv": 1.0})[0] == "routine"
    assert urgency_for({**base, "mel": 0.9, "nv": 0.1}) == ("urgent", ["mel"])
    assert urgency_for({**base, "bcc": 0.6, "nv": 0.4}) == ("soon", ["bcc"])


def test_flip_averaging_flips_spatial_outputs_back_before_averaging() -> None:
    """A stand-in model whose mask is its input's first channel and whose logits read the left
    half: the averaged mask must be the photo's own (flipped back), and the logits the mean over
    the four views (left half, right half, left, right -> the whole image's mean)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 8)).astype(np.float32)
    seen = []

    def run(views: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(views.shape)
        left = views[:, 0, :, :4].mean(axis=(1, 2))
        return {"logits": np.stack([left, -left], axis=1), "mask_logits": views[:, :1].copy()}

    out = run_with_flips(run, x)
    assert seen == [(8, 3, 6, 8)]  # one batch: 4 views of each of the 2 photos
    np.testing.assert_allclose(out["mask_logits"], x[:, :1], rtol=1e-6)
    whole = x[:, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(out["logits"][:, 0], whole, rtol=1e-5, atol=1e-6)
    assert len(FLIP_VIEWS) == 4


def test_served_result_is_the_flip_average_of_the_model(registry: ModelRegistry) -> None:
    image = load_image_rgb(SKIN_MEL.read_bytes())
    model = registry.get("skin_lesion")
    x = preprocess_skin(image)
    single = model.run(x)["logits"][0]
    averaged = run_with_flips(model.run, x)["logits"][0]
    assert not np.allclose(single, averaged)  # the flips do change the numbers
    temperature = model.card["temperature"]
    expected = np.exp(averaged / temperature) / np.exp(averaged / temperature).sum()
    got = analyze_skin(image, registry)["probabilities"]
    np.testing.assert_allclose([got[c] for c in CLASSES], expected, atol=1e-4)

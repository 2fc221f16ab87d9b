"""Skin training: same preprocessing as the service, lesion-grouped split, CI-sized smoke run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from backend.inference.images import load_image_rgb
from backend.inference.skin import CLASSES, INPUT_H, INPUT_W, preprocess_skin
from tests.held_out import SKIN_MEL, SKIN_NV
from training.skin.data import SkinDataset, build_pack, lesion_split


def test_training_preprocessing_is_the_service_preprocessing() -> None:
    image = load_image_rgb(SKIN_MEL.read_bytes())
    mask = np.zeros(image.shape[:2], np.uint8)
    pack = SimpleNamespace(images=[image], masks=[mask], label=np.array([4]))
    x, m, y = SkinDataset(pack, np.array([0]), train=False)[0]
    served = preprocess_skin(image)[0]
    np.testing.assert_array_equal(x.numpy(), served)
    assert m.shape == (1, INPUT_H, INPUT_W) and y == 4
    # A fixed image gives fixed numbers (guards against silent changes to preprocessing).
    assert served.shape == (3, INPUT_H, INPUT_W)
    assert float(served.mean()) == pytest.approx(float(preprocess_skin(image.copy())[0].mean()))


def test_split_keeps_every_lesion_on_one_side() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for lesion in range(300):
        label = CLASSES[lesion % len(CLASSES)]
        for k in range(int(rng.integers(1, 4))):
            rows.append({"image_id": f"img{lesion}_{k}", "lesion_id": f"L{lesion}", "label": label})
    table = lesion_split(pd.DataFrame(rows))
    assert (table.groupby("lesion_id")["split"].nunique() == 1).all()
    assert set(table["split"]) == {"train", "val", "test"}
    assert table.equals(lesion_split(pd.DataFrame(rows)))  # deterministic
    for split in ("val", "test"):
        assert set(table.loc[table["split"] == split, "label"]) == set(CLASSES)


def synthetic_skin_dir(root: Path, per_class: int = 4) -> Path:
    """Tiny HAM10000-shaped folder: blobs of a class-specific colour on skin-coloured noise."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for c, label in enumerate(CLASSES):
        for k in range(per_class):
            image_id = f"ISIC_{c}{k:03d}"
            img = np.clip(rng.normal((200, 160, 150), 8, (150, 200, 3)), 0, 255).astype(np.uint8)
            mask = np.zeros((150, 200), np.uint8)
            centre = (int(rng.integers(70, 130)), int(rng.integers(50, 100)))
            cv2.ellipse(mask, centre, (35, 25), float(rng.uniform(0, 180)), 0, 360, 255, -1)
            img[mask > 0] = (40 + 30 * c, 60, 200 - 25 * c)
            cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), img[:, :, ::-1])
            cv2.imwrite(str(root / "masks" / f"{image_id}_segmentation.png"), mask)
            rows.append(
                {"image_id": image_id, "lesion_id": f"L{c}{k}", "label": label, "dx_type": "histo"}
            )
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@pytest.mark.slow
def test_training_smoke_one_step_export_and_ort_load(tmp_path: Path) -> None:
    import onnxruntime as ort

    from training.skin.export import export_onnx, load_model
    from training.skin.train import main as train_main

    data = synthetic_skin_dir(tmp_path / "data")
    pack = tmp_path / "pack.npz"
    build_pack(data, pack, tmp_path / "split.csv")
    out = tmp_path / "run"
    train_main(
        [
            "--pack",
            str(pack),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch",
            "4",
            "--max-steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert (out / "last.pt").exists() and (out / "history.json").exists()
    # Resuming after the last epoch trains nothing more but must load cleanly.
    train_main(
        ["--pack", str(pack), "--out", str(out), "--epochs", "1", "--device", "cpu", "--resume"]
    )
    onnx_path = tmp_path / "skin.onnx"
    model = load_model(out / "best.pt")
    export_onnx(model, onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = preprocess_skin(load_image_rgb(SKIN_NV.read_bytes()))
    logits, mask_logits, cam = sess.run(None, {"image": x})
    assert logits.shape == (1, len(CLASSES))
    assert mask_logits.shape == (1, 1, INPUT_H, INPUT_W)
    # SkinLiteNet's CAM is its /32 map: coarse, but the logits are exactly its mean.
    assert cam.shape[:2] == (1, len(CLASSES)) and min(cam.shape[2:]) >= 4
    assert np.abs(cam.mean(axis=(2, 3)) - logits).max() < 1e-4
    with torch.no_grad():
        ref = model(torch.from_numpy(x))[0].numpy()
    assert np.abs(ref - logits).max() < 1e-3


@pytest.mark.slow
def test_time_budget_ends_the_run_at_the_replanned_epoch_count(tmp_path: Path) -> None:
    """--time-budget measures the first two epochs and shortens --epochs to what fits (at least
    those two plus one); the loop must then stop there, not run the original count."""
    import json

    from training.skin.train import main as train_main

    data = synthetic_skin_dir(tmp_path / "data")
    pack = tmp_path / "pack.npz"
    build_pack(data, pack, tmp_path / "split.csv")
    out = tmp_path / "run"
    args = ["--pack", str(pack), "--out", str(out), "--epochs", "6", "--batch", "8"]
    train_main(args + ["--time-budget", "0.001", "--device", "cpu"])
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert torch.load(out / "last.pt", weights_only=False)["epochs"] == 3


def test_head_retraining_rewrites_only_the_cam_head(tmp_path: Path) -> None:
    """retrain_head: the pooled features are the head's input (logits = W f + b), and a new
    head written back keeps the mask output and logits == mean(cam) (the saliency stays the
    classifier's evidence)."""
    import onnxruntime as ort

    from training.skin.retrain_head import feature_model, head_parts, write_head

    shipped = Path(__file__).resolve().parents[2] / "weights" / "skin_lesion.onnx"
    images = [
        load_image_rgb(path.read_bytes()) for path in (SKIN_NV, SKIN_MEL)
    ]
    x = np.concatenate([preprocess_skin(im) for im in images])

    def run(path: Path, names: list[str] | None = None) -> list[np.ndarray]:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(names, {"image": x})

    parts = head_parts(onnx.load(str(shipped)))
    feat_path = tmp_path / "features.onnx"
    feature_model(shipped, feat_path)
    logits, mask, _, pooled = run(feat_path)
    assert pooled.shape == (2, parts["weight"].shape[1])
    # the shipped cam output may be int8-rounded: equal up to that rounding
    np.testing.assert_allclose(pooled @ parts["weight"].T + parts["bias"], logits, atol=0.05)

    rng = np.random.default_rng(0)
    w = rng.normal(size=parts["weight"].shape).astype(np.float32)
    b = rng.normal(size=parts["bias"].shape).astype(np.float32)
    new = tmp_path / "new.onnx"
    write_head(shipped, new, w, b)
    logits2, mask2, cam2 = run(new)
    np.testing.assert_array_equal(mask2, mask)
    np.testing.assert_allclose(logits2, pooled @ w.T + b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits2, cam2.mean(axis=(2, 3)), rtol=1e-4, atol=1e-4)
    graph = onnx.load(str(new)).graph
    assert [o.name for o in graph.output] == ["logits", "mask_logits", "cam"]
    # the old head's weight nodes (int8 DequantizeLinear or fp16 Cast) are gone, not left dangling
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    assert all(o in used for n in graph.node for o in n.output)


def test_ensemble_onnx_outputs_the_members_mean(tmp_path: Path) -> None:
    import onnxruntime as ort

    from training.common.onnx_members import members_of
    from training.skin.export import ensemble_onnx, export_onnx
    from training.skin.model import OUTPUT_NAMES, build_model

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.onnx")
        export_onnx(build_model("skinnet", len(CLASSES), pretrained=False).eval(), paths[-1])
    ensemble_onnx(paths, tmp_path / "ens.onnx")

    x = preprocess_skin(load_image_rgb(SKIN_NV.read_bytes()))
    x = np.concatenate([x, x[:, :, ::-1, :].copy()])

    def run(path: Path) -> list[np.ndarray]:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(list(OUTPUT_NAMES), {"image": x})

    members, ens = [run(p) for p in paths], run(tmp_path / "ens.onnx")
    assert not np.allclose(members[0][0], members[1][0])  # two different networks
    for k in range(len(OUTPUT_NAMES)):
        assert np.abs(ens[k] - (members[0][k] + members[1][k]) / 2).max() < 1e-4
    assert np.abs(ens[2].mean(axis=(2, 3)) - ens[0]).max() < 1e-4  # logits = mean(cam) still
    assert members_of(tmp_path / "ens.onnx") == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    ]
    assert members_of(paths[0]) == []

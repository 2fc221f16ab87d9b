"""The eardrum training code: split rules, colour normalisation, and a CI-sized end-to-end run."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from backend.inference.ear import INPUT_SIZE, crop_field_of_view
from training.common.classification_metrics import summary
from training.common.softmax_head import fit_softmax_head
from training.ear import data, model, synth, warmstart
from training.ear.augment import augment, to_float
from training.ear.evaluate import TTA_VIEWS, AveragedViews, export_onnx, linear_probe
from training.ear.train import sampling_weights, train_classifier, train_gate


def _labels(n_groups: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for g in range(n_groups):
        src = data.SOURCES[g % 3]
        label = ["normal", "earwax", "chronic_otitis_media"][g % 2 + (g % 5 == 0)]
        for k in range(int(rng.integers(1, 5))):
            rows.append(
                {
                    "image_id": f"{src}_{g}_{k}",
                    "group_id": f"{src}_g{g}",
                    "src": src,
                    "label": label,
                }
            )
    return pd.DataFrame(rows)


def test_group_split_keeps_each_group_on_one_side_and_is_seeded():
    df = _labels()
    split = data.group_split(df)
    assert set(split) == {"train", "val", "test"}
    assert df.assign(split=split).groupby("group_id").split.nunique().max() == 1
    pd.testing.assert_series_equal(split, data.group_split(df))
    assert not split.equals(data.group_split(df, seed=1))


def test_grey_world_removes_a_colour_cast():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(
        rng.uniform(0.1, 0.6, size=(1, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    )
    cast = x * torch.tensor([1.3, 0.9, 0.6]).view(1, 3, 1, 1)
    norm = model.ColourNorm(grey_world=True)
    assert torch.allclose(norm(x), norm(cast), atol=0.06)


def test_field_crop_centres_an_off_centre_otoscope_circle():
    img = np.zeros((600, 800, 3), np.uint8)
    yy, xx = np.mgrid[0:600, 0:800]
    img[(yy - 250) ** 2 + (xx - 500) ** 2 < 200**2] = (200, 120, 110)
    crop = crop_field_of_view(img)
    assert crop.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    lit = crop.max(axis=2) > 50
    cy, cx = np.argwhere(lit).mean(axis=0)
    assert abs(cy - INPUT_SIZE / 2) < 4 and abs(cx - INPUT_SIZE / 2) < 4
    assert lit.mean() > 0.7  # the circle fills the crop


def _tiny_arrays() -> dict[str, np.ndarray]:
    """Coloured discs as 'eardrums' of 8 classes and synthetic pictures as negatives."""
    rng = np.random.default_rng(2)
    x_ear, y_ear, split_ear = [], [], []
    yy, xx = np.mgrid[0:300, 0:300]
    disc = (yy - 150) ** 2 + (xx - 150) ** 2 < 140**2
    for i in range(48):
        img = np.zeros((300, 300, 3), np.uint8)
        img[disc] = rng.integers(60, 250, size=3)
        cv_noise = rng.integers(0, 40, size=(300, 300, 1)).astype(np.uint8)
        x_ear.append(
            crop_field_of_view(np.clip(img + cv_noise * disc[..., None], 0, 255).astype(np.uint8))
        )
        y_ear.append(i % len(data.CLASSES))
        split_ear.append(0 if i < 32 else 1 if i < 40 else 2)
    kinds = list(synth.GENERATORS)
    x_neg = [
        crop_field_of_view(synth.GENERATORS[kinds[i % len(kinds)]](np.random.default_rng(i)))
        for i in range(28)
    ]
    return {
        "x_ear": np.stack(x_ear),
        "y_ear": np.array(y_ear),
        "src_ear": np.arange(48) % 3,
        "split_ear": np.array(split_ear),
        "x_neg": np.stack(x_neg),
        "kind_neg": np.array([3 + i % len(kinds) for i in range(28)]),
        "split_neg": np.array([0 if i < 20 else 1 if i < 24 else 2 for i in range(28)]),
    }


@pytest.mark.slow
def test_training_smoke_runs_and_exports_an_onnx_that_matches_torch(tmp_path, capsys):
    torch.set_num_threads(1)
    arrays = _tiny_arrays()
    log: list[dict] = []
    cls = train_classifier(arrays, torch.device("cpu"), epochs=1, adv=0.3, seed=0, log=log)
    gate = train_gate(arrays, torch.device("cpu"), epochs=1, seed=0, log=log)
    assert {r["model"] for r in log} == {"classifier_adv0.3", "gate"}
    bars = capsys.readouterr().err  # a progress bar per model, with its count and figures
    assert "ear classifier (adv 0.3)" in bars and "ear gate" in bars and "1/1" in bars
    assert "val_ba=" in bars and "val_rejection=" in bars
    assert all(np.isfinite(r["loss"]) for r in log)

    net = model.classifier(len(data.CLASSES))
    net.load_state_dict(cls["state"])
    net.eval()
    path = tmp_path / "cls.onnx"
    export_onnx(net, path, ["logits", "features"])
    x = arrays["x_ear"][:4].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    with torch.no_grad():
        expected = net(torch.from_numpy(x))[0].numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)

    g = model.gate()
    g.load_state_dict(gate["state"])
    assert g(torch.from_numpy(x))[0].shape == (4, 1)


def test_augment_keeps_shape_and_range():
    x = torch.from_numpy(_tiny_arrays()["x_ear"][:6])
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, INPUT_SIZE, INPUT_SIZE)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_linear_probe_finds_a_planted_source_signal_and_not_a_missing_one():
    rng = np.random.default_rng(3)
    src = np.arange(300) % 3
    feats = rng.normal(size=(300, 8))
    planted = feats.copy()
    planted[:, 0] += src * 6.0
    assert (
        linear_probe(planted[:200], src[:200], planted[200:], src[200:], 3)["balanced_accuracy"]
        > 0.9
    )
    assert (
        linear_probe(feats[:200], src[:200], feats[200:], src[200:], 3)["balanced_accuracy"] < 0.55
    )


def test_sampling_weights_balance_classes_and_the_sources_within_a_class():
    # class 0: 30 images from source 0 and 10 from source 1; class 1: 5 images from source 2.
    y = np.array([0] * 40 + [1] * 5)
    src = np.array([0] * 30 + [1] * 10 + [2] * 5)
    w = sampling_weights(y, src, 2, class_power=1.0, source_power=1.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[y == 0].sum() == pytest.approx(0.5) and w[y == 1].sum() == pytest.approx(0.5)
    assert w[src == 0].sum() == pytest.approx(w[src == 1].sum())
    # source_power 0 keeps the sources' own shares inside the class (3:1 here).
    w0 = sampling_weights(y, src, 2, class_power=1.0, source_power=0.0)
    assert w0[src == 0].sum() == pytest.approx(3 * w0[src == 1].sum())
    # class_power 0 is plain uniform sampling over images.
    np.testing.assert_allclose(sampling_weights(y, src, 2, 0.0, 0.0), np.full(45, 1 / 45))


def test_warm_start_rebuilds_the_exported_classifier_from_its_onnx(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = to_float(torch.from_numpy(_tiny_arrays()["x_ear"][:16]))
    net = model.classifier(len(data.CLASSES))
    net.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, which the export folds away
        for _ in range(3):
            net(x * torch.rand(1) + 0.1 * torch.rand_like(x))
    net.eval()
    path = tmp_path / "cls.onnx"
    export_onnx(net, path, ["logits", "features"])

    fresh = model.classifier(len(data.CLASSES))
    biases = warmstart.state_from_onnx(fresh, path)
    assert len(biases) == 13  # every convolution of EarNet found by its scope name
    warmstart.recalibrate_bn(fresh, biases, x)
    fresh.eval()
    with torch.no_grad():
        expected, got = net(x)[0], fresh(x)[0]
        assert torch.allclose(got, expected, atol=1e-3)
        # In training mode (batch statistics; dropout off) the recalibrated BatchNorms start
        # from the same function too, on the batch they were calibrated on.
        fresh.train()
        fresh.drop.eval()
        assert torch.allclose(fresh(x)[0], expected, atol=1e-3)


def test_test_time_views_average_mirrored_and_rotated_inputs():
    torch.manual_seed(0)
    net = model.classifier(len(data.CLASSES)).eval()
    x = to_float(torch.from_numpy(_tiny_arrays()["x_ear"][:3]))
    tta = AveragedViews(net, TTA_VIEWS["flip_rot"]).eval()
    with torch.no_grad():
        logits, feats = tta(x)
        expected = (
            net(x)[0]
            + net(torch.flip(x, dims=(3,)))[0]
            + net(torch.rot90(x, 1, dims=(2, 3)))[0]
            + net(torch.rot90(x, 3, dims=(2, 3)))[0]
        ) / 4
        assert torch.allclose(logits, expected, atol=1e-5)
        assert feats.shape == (3, net.n_features)
        # With the mirror views, a mirrored photo gets the same answer as the original.
        flip = AveragedViews(net, TTA_VIEWS["flip"]).eval()
        assert torch.allclose(flip(torch.flip(x, dims=(3,)))[0], flip(x)[0], atol=1e-5)


def test_retrained_head_learns_a_rare_class_with_balanced_weights():
    rng = np.random.default_rng(4)
    f = np.abs(rng.normal(size=(400, 6))).astype(np.float32)  # post-ReLU-like features
    y = (f[:, 0] > 1.6).astype(np.int64)  # ~11 % positives
    src = rng.integers(0, 3, size=400)
    w = sampling_weights(y, src, 2, class_power=1.0, source_power=0.5)
    weight, bias = fit_softmax_head(f, y, w, 2, l2=1e-4, iters=200, standardise=False)
    assert weight.shape == (2, 6) and bias.shape == (2,)
    pred = (f @ weight.T + bias).argmax(1)
    assert summary(y, pred, 2)["balanced_accuracy"] > 0.9


@pytest.mark.slow
def test_head_retraining_rebuilds_the_checkpoints_own_architecture(tmp_path):
    """retrain_head used to rebuild every checkpoint as an EarNet: a Lite0 run's failed to load."""
    import json

    from training.ear import retrain_head

    arrays = _tiny_arrays()
    np.savez(tmp_path / "arrays.npz", **arrays)
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    net = model.classifier(len(data.CLASSES), "lite0", pretrained=False)
    torch.save({"state": net.state_dict(), "adv": 0.0, "arch": "lite0", "val_score": 0.0,
                "classes": list(data.CLASSES)}, run / "ear_classifier_adv0.0.pt")
    (run / "history.json").write_text(json.dumps({"log": [], "recipe": {"arch": "lite0"}}))
    retrain_head.main(["--run", str(run), "--out", str(out), "--cache",
                       str(tmp_path / "arrays.npz"), "--views", "1"])
    rebuilt = model.classifier(len(data.CLASSES), "lite0", pretrained=False)
    ck = torch.load(out / "ear_classifier_adv0.0.pt", map_location="cpu")
    rebuilt.load_state_dict(ck["state"])
    assert ck["arch"] == "lite0"
    assert json.loads((out / "history.json").read_text())["head_retraining"]["grid"]


@pytest.mark.slow
def test_fit_on_val_keeps_the_last_epoch_and_a_fixed_head(tmp_path):
    """--fit-on-val trains on train + val: nothing is left to select with, so the last epoch is
    kept, and the head is re-fitted once at the given source balance and L2 (no grid)."""
    import json

    from training.ear import retrain_head
    from training.ear.train import Recipe

    torch.set_num_threads(1)
    arrays = _tiny_arrays()
    ck_path = tmp_path / "state.pt"
    cls = train_classifier(arrays, torch.device("cpu"), epochs=3, adv=0.0, seed=0, log=[],
                           recipe=Recipe(fit_on_val=True), checkpoint=ck_path)
    last = torch.load(ck_path, map_location="cpu")["net"]
    assert all(torch.equal(cls["state"][k], v.cpu()) for k, v in last.items())

    np.savez(tmp_path / "arrays.npz", **arrays)
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    torch.save({"state": cls["state"], "adv": 0.0, "arch": "earnet", "val_score": 1.0,
                "classes": list(data.CLASSES)}, run / "ear_classifier_adv0.0.pt")
    (run / "history.json").write_text(json.dumps({"log": [], "recipe": {"fit_on_val": True}}))
    retrain_head.main(["--run", str(run), "--out", str(out), "--cache",
                       str(tmp_path / "arrays.npz"), "--views", "1", "--fit-on-val",
                       "--source-power", "0.5", "--l2", "0.001"])
    head = json.loads((out / "history.json").read_text())["head_retraining"]
    assert head["fit_on_val"] and len(head["grid"]) == 1
    assert head["selected"] == {"source_power": 0.5, "l2": 0.001}
    new = torch.load(out / "ear_classifier_adv0.0.pt", map_location="cpu")["state"]
    assert not torch.equal(new["head.weight"], cls["state"]["head.weight"])

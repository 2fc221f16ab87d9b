"""The ECG training code on tiny synthetic data: split rules, the score, a 1-epoch run, ONNX
export parity, and the global-boundary reference the interval evaluation relies on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from backend.settings import PROJECT_ROOT
from training.ecg.delineate_dataset import QRS, T, global_beats, label_mask, reference_intervals
from training.ecg.rhythm_dataset import cv_folds, split_records
from training.ecg.rhythm_export import export
from training.ecg.rhythm_model import RhythmNet
from training.ecg.rhythm_train import challenge_f1


def test_split_is_seeded_stratified_and_disjoint():
    y = np.repeat(np.arange(4), [400, 60, 200, 20])
    a, b = split_records(y), split_records(y)
    assert np.array_equal(a, b)
    for c in range(4):
        share = np.mean(a[y == c] == 2)
        assert share == pytest.approx(0.15, abs=0.03)
    assert set(np.unique(a)) == {0, 1, 2}


def test_challenge_score_is_mean_f1_of_normal_af_other():
    y = np.array([0, 0, 1, 1, 2, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 0, 3])
    score, f1 = challenge_f1(y, pred)
    assert (
        f1[0] == pytest.approx(0.5)
        and f1[1] == pytest.approx(0.8)
        and f1[2] == pytest.approx(2 / 3)
    )
    assert score == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def _tiny_dataset(path, n=24, fs=250):
    rng = np.random.default_rng(0)
    deltas, starts, lengths, ys = [], [], [], []
    pos = 0
    for i in range(n):
        length = int(fs * rng.uniform(10, 14))
        x = np.round(300 * np.sin(np.arange(length) * 2 * np.pi * (1 + i % 4) / fs)).astype(
            np.int32
        )
        deltas.append(np.diff(x, prepend=0).astype(np.int16))
        starts.append(pos)
        lengths.append(length)
        ys.append(i % 4)
        pos += length
    y = np.array(ys, dtype=np.int8)
    split = np.where(np.arange(n) % 6 == 5, 1, 0).astype(np.int8)
    np.savez_compressed(
        path,
        ids=np.array([f"r{i}" for i in range(n)]),
        delta=np.concatenate(deltas),
        start=np.array(starts),
        length=np.array(lengths),
        y=y,
        split=split,
        fs=fs,
        classes=np.array(["normal", "atrial_fibrillation", "other", "noisy"]),
    )


@pytest.mark.slow
def test_one_epoch_trains_and_saves_a_member(tmp_path):
    _tiny_dataset(tmp_path / "tiny.npz")
    cmd = [
        sys.executable,
        "-m",
        "training.ecg.rhythm_train",
        "--data",
        str(tmp_path / "tiny.npz"),
        "--out",
        str(tmp_path / "out"),
        "--epochs",
        "2",
        "--batch",
        "8",
        "--width",
        "8",
    ]
    run = subprocess.run(
        cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    state = torch.load(tmp_path / "out" / "rhythm_member0.pt")
    net = RhythmNet(width=8)
    net.load_state_dict(state)
    assert (tmp_path / "out" / "rhythm_history0.json").exists()


def test_cv_folds_are_stratified_seeded_and_cover_every_record():
    labels = np.repeat([0, 1, 2, 3], [500, 80, 250, 30])
    fold = cv_folds(labels, 5)
    assert np.array_equal(fold, cv_folds(labels, 5))
    assert set(np.unique(fold)) == {0, 1, 2, 3, 4}
    for c, n in ((0, 500), (1, 80), (2, 250), (3, 30)):
        assert np.bincount(fold[labels == c], minlength=5).tolist() == [n // 5] * 5


@pytest.mark.slow
def test_a_fold_run_trains_without_its_fold_and_keeps_the_last_weights(tmp_path):
    _tiny_dataset(tmp_path / "tiny.npz")
    cmd = [sys.executable, "-m", "training.ecg.rhythm_train", "--data", str(tmp_path / "tiny.npz")]
    cmd += ["--out", str(tmp_path / "out"), "--epochs", "2", "--batch", "8", "--width", "8"]
    cmd += ["--fold", "1", "--folds", "3", "--ema", "0.9"]  # the EMA copy is what gets saved
    run = subprocess.run(
        cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    z = np.load(tmp_path / "tiny.npz")
    n_train = int(np.sum(cv_folds(z["y"][z["split"] < 2], 3) != 1))
    assert f"train={n_train} val=0" in run.stdout
    RhythmNet(width=8).load_state_dict(torch.load(tmp_path / "out" / "rhythm_fold1.pt"))
    assert not (tmp_path / "out" / "rhythm_member0.pt").exists()  # nothing chosen on validation


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_last_epoch(tmp_path):
    import json

    _tiny_dataset(tmp_path / "tiny.npz")
    base = [sys.executable, "-m", "training.ecg.rhythm_train", "--data", str(tmp_path / "tiny.npz")]
    base += ["--out", str(tmp_path / "out"), "--batch", "8", "--width", "8"]

    def run(*extra):
        done = subprocess.run(
            base + list(extra),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    run("--epochs", "1")  # the "stopped" run: one epoch, then its checkpoint
    first = torch.load(tmp_path / "out" / "rhythm_member0.last.pt", weights_only=False)
    assert first["epoch"] == 1
    out = run("--epochs", "3", "--resume")
    assert "resumed member 0 at epoch 1" in out
    epochs = [json.loads(line)["epoch"] for line in out.splitlines() if line.startswith("{")]
    assert epochs == [2, 3]  # epoch 1 is not trained again
    history = json.loads((tmp_path / "out" / "rhythm_history0.json").read_text())
    assert [row["epoch"] for row in history["members"][0]["history"]] == [1, 2, 3]


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(0)
    net = RhythmNet(width=8).eval()
    export(net, tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((2, 1, 3000)).astype(np.float32)
    logits, cam = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"signal": x})
    with torch.no_grad():
        t_logits, t_cam = net(torch.from_numpy(x))
    assert np.allclose(logits, t_logits.numpy(), atol=1e-4)
    assert np.allclose(cam, t_cam.numpy(), atol=1e-4)
    assert np.allclose(cam.mean(axis=2), logits, atol=1e-4)  # CAM is what the logits average


def test_onnx_ensemble_averages_members_and_fp16_storage_halves_the_file(tmp_path):
    from training.common.onnx_quant import store_weights_fp16
    from training.ecg.rhythm_export import ensemble_onnx

    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(RhythmNet(width=8).eval())
        export(nets[-1], tmp_path / f"m{seed}.onnx")
    ensemble_onnx([tmp_path / "m0.onnx", tmp_path / "m1.onnx"], tmp_path / "ens.onnx")
    x = np.random.default_rng(2).standard_normal((2, 1, 3000)).astype(np.float32)
    logits, cam = ort.InferenceSession(str(tmp_path / "ens.onnx")).run(None, {"signal": x})
    with torch.no_grad():
        outs = [net(torch.from_numpy(x)) for net in nets]
    assert np.allclose(logits, (outs[0][0] + outs[1][0]).numpy() / 2, atol=1e-4)
    assert np.allclose(cam, (outs[0][1] + outs[1][1]).numpy() / 2, atol=1e-4)
    assert np.allclose(cam.mean(axis=2), logits, atol=1e-4)  # the saliency is still the evidence

    size = (tmp_path / "ens.onnx").stat().st_size
    store_weights_fp16(tmp_path / "ens.onnx")
    assert (tmp_path / "ens.onnx").stat().st_size < 0.6 * size
    half_logits, half_cam = ort.InferenceSession(str(tmp_path / "ens.onnx")).run(
        None, {"signal": x}
    )
    assert half_logits.dtype == np.float32  # weights stored in fp16, compute in fp32
    assert np.allclose(half_logits, logits, atol=1e-2) and np.allclose(half_cam, cam, atol=1e-2)
    assert not np.array_equal(half_logits, logits)  # the weights really were rounded


def test_int8_weight_storage_quarters_the_file_and_keeps_fp32_compute(tmp_path):
    from training.common.onnx_quant import store_weights_int8, weight_reader

    torch.manual_seed(0)
    export(RhythmNet(width=16).eval(), tmp_path / "m.onnx")
    x = np.random.default_rng(3).standard_normal((2, 1, 3000)).astype(np.float32)
    logits, _cam = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"signal": x})
    size = (tmp_path / "m.onnx").stat().st_size
    store_weights_int8(tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size < 0.35 * size
    q_logits, q_cam = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"signal": x})
    assert q_logits.dtype == np.float32
    assert np.allclose(q_logits, logits, atol=0.05) and not np.array_equal(q_logits, logits)
    assert np.allclose(q_cam.mean(axis=2), q_logits, atol=1e-4)
    import onnx

    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    assert dq and weight_reader(graph)(dq[0].output[0]).dtype == np.float32


def test_ensemble_records_its_members_through_fp16_storage(tmp_path):
    import hashlib

    from training.common.onnx_members import members_of
    from training.common.onnx_quant import store_weights_fp16
    from training.ecg.rhythm_export import ensemble_onnx

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(tmp_path / f"m{seed}.onnx")
        export(RhythmNet(width=8).eval(), members[-1])
    ensemble_onnx(members, tmp_path / "ens.onnx")
    store_weights_fp16(tmp_path / "ens.onnx")
    assert members_of(tmp_path / "ens.onnx") == [
        hashlib.sha256(m.read_bytes()).hexdigest() for m in members
    ]


def test_ensemble_card_carries_the_shipped_members_training_and_curves(tmp_path, monkeypatch):
    import json

    from backend.inference.registry import sha256_of
    from training.ecg import rhythm_evaluate
    from training.ecg.rhythm_export import ensemble_onnx

    labels = np.repeat(np.arange(4), 10).astype(np.int8)
    monkeypatch.setattr(rhythm_evaluate, "load_cinc2017", lambda: ([], [], labels, 300))
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(tmp_path / f"m{seed}.onnx")
        export(RhythmNet(width=8).eval(), members[-1])
    weights = tmp_path / "weights"
    weights.mkdir()
    shipped_training = {"args": {"seeds": "[0]"}, "best_val_score_per_member": [0.84]}
    (weights / "ecg_rhythm.json").write_text(
        json.dumps(
            {
                "version": "1.0.0",
                "sha256": sha256_of(members[0]),
                "selection": "seed 0, best on validation",
                "training": shipped_training,
            }
        )
    )
    (weights / "ecg_rhythm.training.png").write_bytes(b"the GPU run's curves")
    ensemble_onnx(members, weights / "ecg_rhythm.onnx")
    history = tmp_path / "rhythm_history1.json"
    rows = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.8, "val_score": 0.83}]
    history.write_text(
        json.dumps(
            {
                "args": {"seeds": "[1]"},
                "members": [{"seed": 1, "best_val_score": 0.83, "history": rows}],
            }
        )
    )

    with pytest.raises(ValueError, match="--selection-note"):
        rhythm_evaluate.write_card(weights / "ecg_rhythm.onnx", {}, [history], 2, False, True)
    assert json.loads((weights / "ecg_rhythm.json").read_text())["version"] == "1.0.0"
    assert not (weights / "ecg_rhythm.training.1.0.0.png").exists()
    rhythm_evaluate.write_card(
        weights / "ecg_rhythm.onnx", {}, [history], 2, False, True, "both members", "1.1.0"
    )
    card = json.loads((weights / "ecg_rhythm.json").read_text())
    assert card["version"] == "1.1.0" and card["selection"] == "both members"
    old, new = card["training"]["members"]
    assert old["sha256"] == sha256_of(members[0]) and old["version"] == "1.0.0"
    assert old["best_val_score_per_member"] == [0.84]
    assert new == {"seed": 1, "args": {"seeds": "[1]"}, "best_val_score": 0.83}
    kept = weights / old["training_curves"]
    assert kept.name == "ecg_rhythm.training.1.0.0.png"
    assert kept.read_bytes() == b"the GPU run's curves"
    assert (weights / "ecg_rhythm.training.png").read_bytes() != kept.read_bytes()


def test_global_boundaries_are_earliest_onset_latest_offset():
    rows = [
        ("I", "P", 100, 120, 150),
        ("II", "P", 95, 118, 148),
        ("I", "QRS", 180, 200, 225),
        ("II", "QRS", 176, 205, 230),
        ("V1", "QRS", 178, 190, 240),
        ("I", "T", 300, 350, 400),
        ("II", "T", 310, 360, 410),
        ("I", "QRS", 580, 600, 625),
        ("II", "QRS", 577, 602, 628),
    ]
    fid = pd.DataFrame(rows, columns=["lead", "wave", "onset", "peak", "offset"])
    beats = global_beats(fid)
    assert len(beats) == 2
    b = beats[0]
    assert (b.p_on, b.qrs_on, b.qrs_off, b.t_off) == (95, 176, 240, 410)
    ref = reference_intervals(beats)
    assert ref["qrs_ms"] == pytest.approx(np.median([(240 - 176) * 2, (628 - 577) * 2]))
    assert ref["qt_ms"] == pytest.approx((410 - 176) * 2)
    assert ref["hr_bpm"] == pytest.approx(60 / ((beats[1].qrs_peak - b.qrs_peak) / 500))
    mask = label_mask(beats, (95, 628), 700)
    assert mask[0] == -1 and mask[200] == QRS and mask[350] == T and mask[650] == -1


def test_rr_stage_learns_rr_irregularity_and_exports_to_matching_onnx(tmp_path):
    from backend.inference.ecg.rr_features import FEATURE_NAMES
    from training.ecg.rhythm_stack_train import export as export_stack
    from training.ecg.rhythm_stack_train import fit, predict

    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4)).astype(np.float32)  # an uninformative CNN
    feats = np.abs(rng.normal(0.5, 0.2, (n, len(FEATURE_NAMES)))).astype(np.float32)
    cv = FEATURE_NAMES.index("rr_cv")
    feats[:, cv] = np.where(y == 1, 0.25, 0.04) * rng.uniform(0.8, 1.2, n)  # AF: irregular RR
    model = fit(logits, feats, y, weight_decay=1e-3)
    pred = predict(model, logits, feats).argmax(1)
    assert np.mean((pred == 1) == (y == 1)) > 0.97
    export_stack(model, tmp_path / "stack.onnx")
    (onnx_logits,) = ort.InferenceSession(str(tmp_path / "stack.onnx")).run(
        None, {"cnn_logits": logits[:5], "features": feats[:5]}
    )
    assert np.allclose(onnx_logits, predict(model, logits[:5], feats[:5]), atol=1e-4)


def test_rr_stage_crops_are_10s_windows_inside_the_strip_and_reproducible():
    from training.ecg.rhythm_stack_train import CROP_S, crop_starts

    fs, n = 300, 300 * 31
    starts = crop_starts(n, fs, 2, seed=7)
    assert starts[0] == 0  # the first 10 s, as a 10 s record would show
    assert all(0 <= s <= n - int(CROP_S * fs) for s in starts)
    assert 2 <= len(starts) <= 3 and starts == sorted(set(starts))
    assert crop_starts(n, fs, 2, seed=7) == starts
    assert crop_starts(n, fs, 2, seed=8) != starts
    assert crop_starts(int(9.5 * fs), fs, 2, seed=7) == [0]  # a 9.5 s strip is its own crop


def test_rr_stage_crop_rank_counts_crops_within_each_record():
    from training.ecg.rhythm_stack_train import crop_rank

    record = np.array([4, 4, 4, 9, 9, 12])
    kind = np.array([0, 1, 1, 0, 1, 0])  # whole strip, then its first 10 s, then random crops
    assert crop_rank(record, kind).tolist() == [-1, 0, 1, -1, 0, -1]

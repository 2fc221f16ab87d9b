"""The delineation training code: the tuning fold never touches the held-out records, and the
time-stretch augmentation moves signal and labels together, and an ensemble export averages
its members' probabilities."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from backend.inference.registry import sha256_of
from training.common.onnx_members import flattened_from, members_of
from training.ecg import delineate_export, eval_intervals
from training.ecg.delineate_dataset import (
    IGNORE,
    QRS,
    P,
    T,
    has_wide_qrs_diagnosis,
    lead_label_masks,
    ludb_split,
    tuning_folds,
)
from training.ecg.delineate_export import ensemble, export
from training.ecg.delineate_model import DelineationUNet
from training.ecg.delineate_train import crops, lead_targets, record_weights


@pytest.fixture
def ludb_dir(tmp_path):
    rhythms = ["sinus_rhythm"] * 60 + ["atrial_fibrillation"] * 12 + ["other"] * 8
    pd.DataFrame(
        {
            "record_id": [f"ludb_{i:03d}" for i in range(len(rhythms))],
            "source": "ludb",
            "rhythm": rhythms,
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def test_tuning_folds_split_only_the_training_records(ludb_dir):
    split = ludb_split(ludb_dir)
    folds = tuning_folds(ludb_dir)
    test_ids = {r for r, s in split.items() if s == "test"}
    assert set(folds) == {r for r, s in split.items() if s == "train"}
    assert not test_ids & set(folds)
    assert tuning_folds(ludb_dir) == folds  # seeded
    val = [r for r, f in folds.items() if f == "val"]
    assert 0.2 * len(folds) <= len(val) <= 0.3 * len(folds)


def test_crops_without_stretch_are_plain_slices():
    torch.manual_seed(0)
    x = torch.randn(3, 12, 1000)
    m = torch.randint(0, 4, (3, 1000))
    idx = torch.tensor([2, 0])
    xs, target, start, _ = crops(x, m, idx, 256, 0.0)
    for k in range(2):
        s = int(start[k])
        assert torch.equal(xs[k], x[idx[k], :, s : s + 256])
        assert torch.equal(target[k], m[idx[k], s : s + 256])


def test_stretched_crops_scale_signal_and_wave_durations_together():
    torch.manual_seed(1)
    t = torch.arange(4000, dtype=torch.float32)
    x = t.repeat(1, 12, 1)  # a ramp: the crop's samples tell where they were read from
    m = ((t // 100) % 2).long()[None]  # 100-sample waves
    xs, target, _, pos = crops(x, m, torch.zeros(8, dtype=torch.long), 1024, 0.2)
    assert torch.allclose(xs[:, 0], pos, atol=1e-3)
    for k in range(8):
        scale = float(pos[k, 1] - pos[k, 0])
        assert 0.8 <= scale <= 1.2
        runs = torch.diff(torch.nonzero(torch.diff(target[k])).flatten())
        assert torch.all((runs.float() - 100 / scale).abs() <= 1.5)


def test_ensemble_onnx_gives_the_log_of_the_members_mean_softmax(tmp_path):
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(tmp_path / f"m{seed}.onnx")
        state = tmp_path / f"m{seed}.pt"
        torch.save(DelineationUNet().state_dict(), state)
        export(state, members[-1])
    out = tmp_path / "ensemble.onnx"
    ensemble(members, out)
    x = np.random.default_rng(0).normal(size=(1, 12, 512)).astype(np.float32)

    def run(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"signal": x})[0]

    probs = [torch.softmax(torch.from_numpy(run(m)), 1) for m in members]
    expected = torch.log((probs[0] + probs[1]) / 2).numpy()
    assert np.allclose(run(out), expected, atol=1e-4)
    assert members_of(out) == [hashlib.sha256(m.read_bytes()).hexdigest() for m in members]
    assert members_of(members[0]) == []


def test_ensemble_card_keeps_the_carried_members_training_and_adds_the_new_run(
    tmp_path, monkeypatch, ludb_dir
):
    monkeypatch.setattr(eval_intervals, "ludb_labels", lambda: pd.read_csv(ludb_dir / "labels.csv"))
    weights = tmp_path / "weights"
    weights.mkdir()
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        state = tmp_path / f"m{seed}.pt"
        torch.save(DelineationUNet().state_dict(), state)
        members.append(tmp_path / f"m{seed}.onnx")
        export(state, members[-1])
    shipped_training = {"args": {"seed": "0"}, "final_loss": 0.07}
    (weights / "ecg_delineate.json").write_text(
        json.dumps(
            {"version": "1.0.0", "sha256": sha256_of(members[0]), "training": shipped_training}
        )
    )
    ensemble(members, weights / "ecg_delineate.onnx")
    history = tmp_path / "history.json"
    history.write_text(
        json.dumps(
            {
                "args": {"seed": "1"},
                "history": [{"step": 100, "loss": 0.5}, {"step": 200, "loss": 0.2}],
            }
        )
    )

    for _ in range(2):  # main() writes the card before measuring and again after
        eval_intervals.write_card(
            weights, {}, ["ludb_000"], {"ludb_001": "train"}, [history], "1.1.0"
        )
    card = json.loads((weights / "ecg_delineate.json").read_text())
    assert card["version"] == "1.1.0"
    assert card["ensemble_members"] == 2
    assert card["training"]["members"] == [
        {**shipped_training, "sha256": sha256_of(members[0])},
        {"args": {"seed": "1"}, "final_loss": 0.2},
    ]
    assert (weights / "ecg_delineate.training.png").exists()


def _onnx_members(tmp_path, seeds):
    paths = []
    for seed in seeds:
        torch.manual_seed(seed)
        state = tmp_path / f"m{seed}.pt"
        torch.save(DelineationUNet().state_dict(), state)
        paths.append(tmp_path / f"m{seed}.onnx")
        export(state, paths[-1])
    return paths


def test_an_ensemble_given_as_member_is_taken_apart_so_each_model_weighs_the_same(
    tmp_path, monkeypatch
):
    m0, m1, m2 = _onnx_members(tmp_path, (0, 1, 2))
    shipped = tmp_path / "shipped.onnx"
    ensemble([m0, m1], shipped)
    out = tmp_path / "grown.onnx"
    argv = ["delineate_export", "--member", str(shipped), "--member", str(m2), "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    delineate_export.main()

    x = np.random.default_rng(1).normal(size=(1, 12, 512)).astype(np.float32)

    def run(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"signal": x})[0]

    probs = [torch.softmax(torch.from_numpy(run(m)), 1) for m in (m0, m1, m2)]
    assert np.allclose(run(out), torch.log(sum(probs) / 3).numpy(), atol=1e-4)
    assert members_of(out) == [sha256_of(m) for m in (m0, m1, m2)]
    assert flattened_from(out) == [sha256_of(shipped)]


def test_grown_ensemble_card_carries_every_earlier_member_and_keeps_their_curves(
    tmp_path, monkeypatch, ludb_dir
):
    monkeypatch.setattr(eval_intervals, "ludb_labels", lambda: pd.read_csv(ludb_dir / "labels.csv"))
    m0, m1, m2 = _onnx_members(tmp_path, (0, 1, 2))
    weights = tmp_path / "weights"
    weights.mkdir()
    ensemble([m0, m1], weights / "ecg_delineate.onnx")
    earlier = [
        {"args": {"seed": "0"}, "final_loss": 0.07},
        {"args": {"seed": "2"}, "final_loss": 0.1},
    ]
    card = {"version": "1.1.0", "sha256": sha256_of(weights / "ecg_delineate.onnx")}
    (weights / "ecg_delineate.json").write_text(
        json.dumps({**card, "training": {"members": earlier}})
    )
    (weights / "ecg_delineate.training.png").write_bytes(b"seed 2 curve")
    argv = ["x", "--member", str(weights / "ecg_delineate.onnx"), "--member", str(m2)]
    monkeypatch.setattr("sys.argv", [*argv, "--out", str(weights / "ecg_delineate.onnx")])
    delineate_export.main()
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"args": {"seed": "3"}, "history": [{"step": 100, "loss": 0.3}]}))

    for _ in range(2):  # main() writes the card before measuring and again after
        eval_intervals.write_card(
            weights, {}, ["ludb_000"], {"ludb_001": "train"}, [history], "1.2.0"
        )
    card = json.loads((weights / "ecg_delineate.json").read_text())
    assert card["ensemble_members"] == 3
    assert card["training"]["members"] == [*earlier, {"args": {"seed": "3"}, "final_loss": 0.3}]
    kept = weights / card["training"]["earlier_curves"]
    assert kept.name == "ecg_delineate.training.1.1.0.png"
    assert kept.read_bytes() == b"seed 2 curve"


def test_rebuilt_ensemble_card_carries_only_the_members_it_kept(tmp_path, monkeypatch, ludb_dir):
    monkeypatch.setattr(eval_intervals, "ludb_labels", lambda: pd.read_csv(ludb_dir / "labels.csv"))
    m0, m1, m2 = _onnx_members(tmp_path, (0, 1, 2))
    weights = tmp_path / "weights"
    weights.mkdir()
    ensemble([m0, m1], weights / "ecg_delineate.onnx")
    kept = {"args": {"seed": "0"}, "final_loss": 0.07, "sha256": sha256_of(m0)}
    replaced = {"args": {"seed": "2"}, "final_loss": 0.1}
    card = {"version": "1.1.0", "sha256": sha256_of(weights / "ecg_delineate.onnx")}
    (weights / "ecg_delineate.json").write_text(
        json.dumps({**card, "training": {"members": [kept, replaced]}})
    )
    (weights / "ecg_delineate.training.png").write_bytes(b"seed 2 curve")
    # m1 is replaced by a new run: the new file holds m0 (the original file) and m2
    ensemble([m0, m2], weights / "ecg_delineate.onnx")
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"args": {"seed": "3"}, "history": [{"step": 100, "loss": 0.3}]}))

    eval_intervals.write_card(weights, {}, ["ludb_000"], {"ludb_001": "train"}, [history], "1.3.0")
    card = json.loads((weights / "ecg_delineate.json").read_text())
    assert card["ensemble_members"] == 2
    assert card["training"]["members"] == [kept, {"args": {"seed": "3"}, "final_loss": 0.3}]
    assert card["training"]["earlier_curves"] == "ecg_delineate.training.1.1.0.png"


def test_torch_ensemble_twin_matches_the_ensemble_onnx(tmp_path):
    from training.ecg.delineate_model import DelineationEnsemble

    nets, members = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(DelineationUNet().eval())
        state = tmp_path / f"m{seed}.pt"
        torch.save(nets[-1].state_dict(), state)
        members.append(tmp_path / f"m{seed}.onnx")
        export(state, members[-1])
    ensemble(members, tmp_path / "ensemble.onnx")
    x = np.random.default_rng(1).normal(size=(2, 12, 256)).astype(np.float32)
    session = ort.InferenceSession(
        str(tmp_path / "ensemble.onnx"), providers=["CPUExecutionProvider"]
    )
    with torch.inference_mode():
        twin = DelineationEnsemble(nets)(torch.from_numpy(x)).numpy()
    assert np.allclose(session.run(None, {"signal": x})[0], twin, atol=1e-4)


def test_wide_qrs_records_are_drawn_more_often():
    # LUDB's own wording, typo included ("intravintricular")
    assert has_wide_qrs_diagnosis("Sinus rhythm.; Complete right bundle branch block.")
    assert has_wide_qrs_diagnosis("Incomplete left bundle branch block.")
    assert has_wide_qrs_diagnosis("UNIpolar ventricular pacing.")
    assert has_wide_qrs_diagnosis("Non-specific intravintricular conduction delay.")
    assert not has_wide_qrs_diagnosis("Left anterior hemiblock.; I degree AV block.")
    assert not has_wide_qrs_diagnosis("UNIpolar atrial pacing.")
    assert not has_wide_qrs_diagnosis(None)
    weights = record_weights(["a", "b", "c"], {"b"}, 3.0)
    assert weights.tolist() == [1.0, 3.0, 1.0]
    torch.manual_seed(0)
    draws = torch.multinomial(weights, 5000, replacement=True)
    assert abs((draws == 1).float().mean().item() - 0.6) < 0.03


def test_per_record_table_names_errors_and_wide_qrs_records(monkeypatch):
    monkeypatch.setattr(eval_intervals, "wide_qrs_records", lambda: {"ludb_116"})
    reference = {"pr_ms": 160.0, "qrs_ms": 228.0, "qt_ms": 400.0, "hr_bpm": 70.0}
    ours = {"pr_ms": None, "qrs_ms": 194.0, "qt_ms": 390.0, "hr_bpm": 70.0}
    table = eval_intervals.per_record_table(
        [{"record_id": "ludb_116", "reference": reference, "ours": ours},
         {"record_id": "ludb_002", "reference": reference, "ours": reference}]
    )
    first, second = table.to_dict("records")
    assert first["wide_qrs_diagnosis"] and not second["wide_qrs_diagnosis"]
    assert first["ours_qrs_ms_error"] == -34.0 and first["reference_qrs_ms"] == 228.0
    assert pd.isna(first["ours_pr_ms_error"]) and second["ours_qt_ms_error"] == 0.0


def test_lead_masks_hold_each_lead_s_own_marks_and_ignore_unmarked_leads():
    fid = pd.DataFrame(
        [
            ("i", "P", 100, 120, 140),
            ("i", "QRS", 200, 220, 250),
            ("i", "T", 300, 350, 400),
            ("V1", "QRS", 190, 215, 270),  # a wider QRS in V1, as in a right bundle-branch block
        ],
        columns=["lead", "wave", "onset", "peak", "offset"],
    )
    masks = lead_label_masks(fid, 500)
    lead_i, v1 = masks[0], masks[6]
    assert (lead_i[100:141] == P).all() and (lead_i[200:251] == QRS).all()
    assert (lead_i[300:401] == T).all() and lead_i[150] == 0
    assert (lead_i[:100] == IGNORE).all() and (lead_i[401:] == IGNORE).all()
    assert (v1[190:271] == QRS).all() and v1[189] == IGNORE
    assert (masks[1] == IGNORE).all()  # lead II has no marks: nothing to learn from it


def test_per_lead_targets_follow_the_crop_and_are_ignored_where_the_lead_is_hidden():
    lead_all = torch.arange(12)[None, :, None].repeat(2, 1, 300) % 4  # lead k is labelled k % 4
    lead_all[1, :, 150:] = IGNORE
    idx = torch.tensor([1, 0])
    pos = torch.arange(100, 200, dtype=torch.float32)[None].repeat(2, 1)
    visible = torch.ones(2, 12, 100)
    visible[1, 5] = 0
    target = lead_targets(lead_all, idx, pos, visible)
    assert target.shape == (2, 12, 100)
    assert (target[0, 3, :50] == 3).all() and (target[0, :, 50:] == IGNORE).all()
    assert (target[1, 5] == IGNORE).all() and (target[1, 6] == 2).all()


def test_the_per_lead_head_trains_but_is_not_exported(tmp_path):
    torch.manual_seed(0)
    net = DelineationUNet(lead_head=True).eval()
    x = torch.randn(2, 12, 256)
    global_logits, lead_logits = net.forward_with_leads(x)
    assert global_logits.shape == (2, 4, 256) and lead_logits.shape == (2, 4, 12, 256)
    torch.save(net.state_dict(), tmp_path / "delineate.pt")
    export(tmp_path / "delineate.pt", tmp_path / "delineate.onnx")
    session = ort.InferenceSession(
        str(tmp_path / "delineate.onnx"), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"signal": x.numpy()})
    assert np.allclose(out, global_logits.detach().numpy(), atol=1e-4)

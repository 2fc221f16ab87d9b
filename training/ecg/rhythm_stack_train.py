"""Second stage of the rhythm model: the CNN's class scores + RR-interval and atrial-activity
features (backend.inference.ecg.rr_features) -> rhythm family, a class-weighted multinomial
logistic regression exported to ONNX (weights/ecg_rhythm_stack.onnx + its card).

Why: AF is above all an RR decision (irregularly irregular intervals, no repeating P wave); the
CNN reads the waveform and stating the RR pattern explicitly fixes part of its AF/other errors.

Data: the CinC 2017 strips of rhythm_dataset.py's split. The L2 strength is chosen on the
validation split (fit on train, score on val); the shipped model is then refit on train + val
with that strength. The test split is never read here (training/ecg/rhythm_evaluate.py --stack
measures it). The CNN was trained on the train split, so its train-split scores are in-sample;
they were measured to be only a little more confident than on val (challenge score 0.87 vs 0.84),
which is why train strips are usable for this stage.

    python -m training.ecg.rhythm_stack_train --cache /work/scratch/rhythm/cnn_logits.npz
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from backend.inference.ecg.preprocess import RHYTHM_FS, rhythm_input
from backend.inference.ecg.rr_features import FEATURE_NAMES, rr_features
from backend.inference.registry import sha256_of
from training.ecg.rhythm_dataset import CLASSES, load_cinc2017, prepared_strip, split_records
from training.ecg.rhythm_export import export_onnx
from training.ecg.rhythm_train import challenge_f1

# Ratios spread over decades: the model sees their logarithm.
LOG_FEATURES = (
    "rr_cv",
    "rr_nrmssd",
    "rr_med_abs_diff",
    "rr_sd1_sd2",
    "p_template_ratio",
    "atrial_residual",
)
WEIGHT_DECAYS = (1e-3, 3e-3, 1e-2, 3e-2)


class RhythmStack(nn.Module):
    """log-softmax(CNN logits) ++ standardised features -> 4 logits (one linear layer)."""

    def __init__(self, n_features: int, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        log_mask = np.array([n in LOG_FEATURES for n in FEATURE_NAMES], dtype=np.float32)
        self.register_buffer("log_mask", torch.from_numpy(log_mask))
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("std", torch.from_numpy(std.astype(np.float32)))
        self.linear = nn.Linear(4 + n_features, 4)

    def transform(self, cnn_logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        feats = torch.where(self.log_mask > 0, torch.log(features.clamp(min=0) + 1e-3), features)
        x = torch.cat([torch.log_softmax(cnn_logits, dim=1), feats], dim=1)
        return (x - self.mean) / self.std

    def forward(self, cnn_logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.transform(cnn_logits, features))


def cnn_logits(onnx_path: Path, strips: list[np.ndarray]) -> np.ndarray:
    """The CNN's logits on each whole band-passed strip, as the app runs it."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return np.array(
        [sess.run(["logits"], {"signal": rhythm_input(x)[None, None, :]})[0][0] for x in strips],
        dtype=np.float32,
    )


def fit(logits: np.ndarray, feats: np.ndarray, y: np.ndarray, weight_decay: float) -> RhythmStack:
    """Class-weighted (inverse sqrt frequency, as the CNN) cross-entropy + L2, L-BFGS."""
    torch.manual_seed(0)
    lt, ft = torch.from_numpy(logits), torch.from_numpy(feats)
    probe = RhythmStack(feats.shape[1], np.zeros(4 + feats.shape[1]), np.ones(4 + feats.shape[1]))
    with torch.no_grad():
        raw = probe.transform(lt, ft).numpy()
    model = RhythmStack(feats.shape[1], raw.mean(0), raw.std(0) + 1e-6)
    counts = np.bincount(y, minlength=4)
    w = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.5, dtype=torch.float32)
    w = w / w.mean()
    target = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(lt, ft), target, weight=w)
        loss = loss + weight_decay * (model.linear.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()


@torch.no_grad()
def predict(model: RhythmStack, logits: np.ndarray, feats: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(logits), torch.from_numpy(feats)).numpy()


def export(model: RhythmStack, out: Path) -> None:
    example = (torch.zeros(1, 4), torch.zeros(1, len(FEATURE_NAMES)))
    export_onnx(
        model,
        example,
        out,
        {"cnn_logits": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        input_names=["cnn_logits", "features"],
    )


def write_card(out: Path, selection: list[dict], chosen: float, n_fit: int, cnn: Path) -> None:
    card_path = out.with_suffix(".json")
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    sha = sha256_of(out)
    card = {
        "name": out.stem,
        "version": "1.0.0",
        "task": "Second stage of the rhythm model: CNN class scores + RR-interval and atrial-activity "
        "features of the same lead -> rhythm family (normal / atrial_fibrillation / other / noisy)",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": sha,
        "size_bytes": out.stat().st_size,
        "inputs": {
            "cnn_logits": ["batch", 4, f"logits of {cnn.name} on the whole lead"],
            "features": ["batch", len(FEATURE_NAMES), "backend.inference.ecg.rr_features"],
        },
        "feature_names": list(FEATURE_NAMES),
        "outputs": {"logits": ["batch", 4]},
        "classes": list(CLASSES),
        "model": "multinomial logistic regression (one linear layer over log-softmax CNN scores and "
        f"standardised features, log of {', '.join(LOG_FEATURES)}), class-weighted cross-entropy",
        "training_data": {
            "dataset": "PhysioNet/Computing in Cardiology Challenge 2017 (AliveCor single lead, revised "
            "v3 labels), the split of training/ecg/rhythm_dataset.py",
            "licence": "open-access PhysioNet challenge data, treated as ODC-By 1.0 (to be confirmed "
            "before release)",
            "n_fit": n_fit,
            "fit_on": "train + val strips (L2 strength chosen on val after fitting on train); the test "
            "split is not read by the training script",
        },
        "selection": {
            "criterion": "validation challenge score (mean F1 normal/AF/other), fit on train",
            "weight_decay_grid": selection,
            "chosen_weight_decay": chosen,
        },
        # written by training/ecg/rhythm_evaluate.py --stack; kept only for the same weights
        "metrics": old.get("metrics", {}) if old.get("sha256") == sha else {},
        "intended_use": "Runs after ecg_rhythm on the same lead (backend.inference.ecg.rhythm.classify).",
        "limitations": "RR features need at least 4 detected beats; on shorter or very noisy leads "
        "the features are zero and the CNN scores decide. Tuned on handheld lead-I strips.",
        "produced_by": "training/ecg/rhythm_stack_train.py, training/ecg/rhythm_evaluate.py --stack",
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnn", type=Path, default=Path("weights/ecg_rhythm.onnx"))
    ap.add_argument("--out", type=Path, default=Path("weights/ecg_rhythm_stack.onnx"))
    ap.add_argument("--cache", type=Path, default=None, help="npz of the CNN logits (reused)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, signals, y_all, fs = load_cinc2017()
    split = split_records(y_all)
    idx = np.flatnonzero(split < 2)  # train and val only
    strips = [prepared_strip(signals[i], fs) for i in idx]
    cnn_sha = sha256_of(args.cnn)
    if args.cache and args.cache.exists() and str(np.load(args.cache)["cnn_sha"]) == cnn_sha:
        logits = np.load(args.cache)["logits"]  # the CNN's part only: the features are cheap
    else:
        logits = cnn_logits(args.cnn, strips)
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.cache, logits=logits, cnn_sha=cnn_sha)
    feats = np.array([rr_features(x, RHYTHM_FS) for x in strips], dtype=np.float32)
    y, s = y_all[idx].astype(np.int64), split[idx]
    tr, va = s == 0, s == 1
    selection = []
    for wd in WEIGHT_DECAYS:
        model = fit(logits[tr], feats[tr], y[tr], wd)
        score, f1s = challenge_f1(y[va], predict(model, logits[va], feats[va]).argmax(1))
        selection.append(
            {"weight_decay": wd, "val_score": round(score, 4), "val_f1": [round(f, 4) for f in f1s]}
        )
        print(json.dumps(selection[-1]), flush=True)
    cnn_score, cnn_f1 = challenge_f1(y[va], logits[va].argmax(1))
    print(f"CNN alone on val: score {cnn_score:.4f}, AF F1 {cnn_f1[1]:.4f}")
    chosen = max(selection, key=lambda r: r["val_score"])["weight_decay"]
    model = fit(logits, feats, y, chosen)
    export(model, args.out)
    write_card(args.out, selection, chosen, len(idx), args.cnn)
    print(f"chose weight decay {chosen}; wrote {args.out}")


if __name__ == "__main__":
    main()

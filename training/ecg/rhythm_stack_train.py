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

Most app input is 10 s long (12-lead records, photographed sheets), and RR statistics of 8-12
beats are far noisier than those of a 30 s strip. training/ecg/rhythm_crops_dev.py measures the
stage on validation 10 s crops (the first 10 s and VIEW_RANDOM_CROPS random windows of each strip,
each prepared on its own as the app prepares a 10 s record): there the whole-strip stage still
beats the CNN alone. --fit-crops N adds N crops per strip to the fit (CNN scores and features
computed on the crop) and then chooses the L2 strength on whole strips and crops alike; with
--fit-crops 1 it did not beat the shipped whole-strip stage on the held-out split, so the default
stays 0 (the shipped recipe). A non-linear stage (one hidden layer of 16 or 64 units beside the
linear path, AdamW at 3 weight decays, 50 or 200 epochs) did not beat it on validation either:
best challenge score 0.862 vs 0.860 but AF F1 0.862 vs 0.868, and lower on every 10 s-crop score.
Gradient-boosted trees on the same inputs (scikit-learn HistGradientBoosting, same class weights,
learning rate 0.03/0.1 x 7/15 leaves x L2 0/1 x 100/300 rounds) lost more: best validation
challenge score 0.858 and AF F1 at best 0.837 (10 s crops 0.796 vs 0.799). A likely reason for
both: the CNN's train-split logits are in-sample, and a flexible stage learns to trust them more
than they deserve on new strips; out-of-fold CNN scores would need the CNN retrained per fold.
Nor does moving the AF decision: an offset on the AF logit (-1 to +1 in steps of 0.1) of the
train-fitted stage never raised validation AF F1 above the unshifted 0.868 (whole strips; 10 s
crops 0.828 -> at best 0.829), so the decision stays the argmax. Nor does averaging the CNN's
logits over the strip and its sign flip (the CNN saw 30 % flipped strips in training): validation
challenge score 0.8405 -> 0.8409, AF F1 0.853 -> 0.853 (CNN alone, 2026-11-24), not worth 2x time.

Out-of-fold scores (1.1.0, the shipped recipe since 2026-11-24): five CNNs trained on train + val
minus one fold each (rhythm_train --fold, 32 epochs, no selection) score the strips of their own
fold, and the stage is fit on those honest scores of all 6,161 train + val strips, its L2 strength
chosen by the same folds' cross-validation; the served CNN is the average of the five fold
models. Cross-validated there, the CNN alone scores 0.831 (AF F1 0.817) and the stage 0.839 (AF
F1 0.821): the stage adds far less on new strips than the in-sample validation figures above
suggested. Gradient-boosted trees on the same out-of-fold inputs did no better (best 0.839, AF F1
at most 0.817). Held-out test, a rule set before the look (ship if both the challenge score and AF
F1 are at least 1.0.0's 0.8551 / 0.8586): 0.8625 / 0.8601, so 1.1.0 ships; the fold ensemble costs
~5x the CNN time (about +15 ms a 12-lead record on 2 threads).

    python -m training.ecg.rhythm_stack_train --cache /work/scratch/rhythm/crops_cache.npz
    python -m training.ecg.rhythm_stack_train --oof-folds FOLDS_DIR --cnn weights/ecg_rhythm.onnx
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.inference.ecg.preprocess import RHYTHM_FS, rhythm_input
from backend.inference.ecg.rr_features import FEATURE_NAMES, detect_r_peaks, rr_features
from backend.inference.registry import sha256_of
from training.ecg import rhythm_evaluate
from training.ecg.rhythm_dataset import (
    CLASSES,
    cv_folds,
    load_cinc2017,
    prepared_strip,
    split_records,
)
from training.ecg.rhythm_export import export_onnx, load_model
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
CROP_S = 10.0  # the app's main input: a 10 s 12-lead record or photographed sheet
VIEW_RANDOM_CROPS = 2  # random 10 s crops per strip besides the first 10 s, for validation


def crop_starts(n: int, fs: int, n_random: int, seed: int) -> list[int]:
    """Start samples of 10 s crops of a raw strip of n samples: the first 10 s and n_random
    seeded random windows (only the whole strip when it is not longer than 10 s)."""
    width = int(CROP_S * fs)
    if n <= width:
        return [0]
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, n - width + 1, n_random) if n_random else []
    return sorted({0, *(int(v) for v in extra)})


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
    """The CNN's logits on each whole band-passed strip, as rhythm_evaluate scores it."""
    return rhythm_evaluate.predict(rhythm_evaluate.session(onnx_path), strips).astype(np.float32)


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


def write_card(
    out: Path,
    selection: list[dict],
    chosen: float,
    n_fit: int,
    n_crops: int,
    cnn: Path,
    version: str = "1.0.0",
    oof_folds: int = 0,
) -> None:
    card_path = out.with_suffix(".json")
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    sha = sha256_of(out)
    fit_on, criterion = _fit_and_selection_text(n_crops, oof_folds)
    card = {
        "name": out.stem,
        "version": version,
        "task": "Second stage of the rhythm model: CNN class scores + RR-interval and atrial-activity "
        "features of the same lead -> rhythm family (normal / atrial_fibrillation / other / noisy)",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": sha,
        "size_bytes": out.stat().st_size,
        "inputs": {
            "cnn_logits": [
                "batch",
                4,
                f"logits of {cnn.name} (sha256 {sha256_of(cnn)}) on the whole lead",
            ],
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
            "n_fit_10s_crops": n_crops,
            "fit_on": fit_on,
        },
        "selection": {
            "criterion": criterion,
            "weight_decay_grid": selection,
            "chosen_weight_decay": chosen,
        },
        # written by training/ecg/rhythm_evaluate.py --stack; kept only for the same weights
        "metrics": old.get("metrics", {}) if old.get("sha256") == sha else {},
        "intended_use": "Runs after ecg_rhythm on the same lead (backend.inference.ecg.rhythm.classify).",
        "limitations": "RR features need at least 4 detected beats; on shorter or very noisy leads "
        "the features are zero and the CNN scores decide. Fit on handheld lead-I strips (see "
        "training_data.fit_on); training/ecg/rhythm_crops_dev.py measures whole strips and 10 s "
        "crops on validation.",
        "produced_by": "training/ecg/rhythm_stack_train.py, training/ecg/rhythm_evaluate.py --stack",
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def _fit_and_selection_text(n_crops: int, oof_folds: int) -> tuple[str, str]:
    """The card's "fit_on" and selection "criterion" for the recipe that was run."""
    if oof_folds:
        fit_on = (
            f"the out-of-fold CNN logits of all train + val strips ({oof_folds} folds, "
            "rhythm_dataset.cv_folds: each strip scored by the fold model that did not train on "
            "it; the served CNN is the average of those fold models), L2 strength chosen by the "
            "same folds' cross-validation"
        )
        criterion = (
            f"{oof_folds}-fold cross-validated challenge score (mean F1 normal/AF/other, pooled "
            "over the folds) on out-of-fold CNN logits"
        )
    elif n_crops:
        fit_on = (
            "train + val strips and their 10 s crops (cut from the raw strip and prepared on "
            "their own as the app prepares a 10 s record; features and CNN scores computed on "
            "the crop) (L2 strength chosen on val after fitting on train)"
        )
        criterion = (
            "mean of the validation challenge scores (mean F1 normal/AF/other) on whole strips "
            "and on their 10 s crops, fit on train"
        )
    else:
        fit_on = "train + val strips (L2 strength chosen on val after fitting on train)"
        criterion = (
            "validation challenge score (mean F1 normal/AF/other) on whole strips; the 10 s-crop "
            "scores are shown for information, fit on train"
        )
    return fit_on + "; the test split is not read by the training script", criterion


def build_views(cnn: Path, random_crops: int) -> dict[str, np.ndarray]:
    """CNN logits, RR features and beat counts of every train/val strip (kind 0) and of its 10 s
    crops (kind 1), each crop cut from the raw 300 Hz strip and prepared on its own as the app
    prepares a 10 s record. The test split is not read."""
    _, signals, y_all, fs = load_cinc2017()
    split = split_records(y_all)
    views, rec, kind = [], [], []
    for i in np.flatnonzero(split < 2):
        views.append(prepared_strip(signals[i], fs))
        rec.append(i)
        kind.append(0)
        for s in (
            crop_starts(len(signals[i]), fs, random_crops, seed=int(i)) if random_crops >= 0 else []
        ):
            views.append(prepared_strip(signals[i][s : s + int(CROP_S * fs)], fs))
            rec.append(i)
            kind.append(1)
    logits = cnn_logits(cnn, views)
    feats = np.array([rr_features(x, RHYTHM_FS) for x in views], dtype=np.float32)
    beats = np.array([len(detect_r_peaks(x, RHYTHM_FS)) for x in views], dtype=np.int32)
    rec_a = np.array(rec)
    return {
        "logits": logits,
        "feats": feats,
        "beats": beats,
        "y": y_all[rec_a].astype(np.int64),
        "split": split[rec_a].astype(np.int64),
        "kind": np.array(kind, dtype=np.int64),
        "record": rec_a,
    }


def crop_rank(record: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """0 for each record's first 10 s crop, 1, 2... for its random crops (-1 for whole strips);
    build_views writes a record's views together, the first 10 s first."""
    rank = np.full(len(record), -1)
    for i in range(len(record)):
        if kind[i] == 1:
            rank[i] = rank[i - 1] + 1  # the view before is the whole strip or the previous crop
    return rank


@torch.no_grad()
def oof_views(folds_dir: Path, n_folds: int) -> dict[str, np.ndarray]:
    """Out-of-fold CNN logits and RR features of every train/val strip: each strip is scored by
    the fold model that never saw it (rhythm_train --fold k, rhythm_fold<k>.pt in folds_dir), so
    the stage learns how far to trust CNN scores on new strips. The test split is not read."""
    _, signals, y_all, fs = load_cinc2017()
    split = split_records(y_all)
    trval = np.flatnonzero(split < 2)
    fold = cv_folds(y_all[trval], n_folds)
    nets = [load_model([folds_dir / f"rhythm_fold{k}.pt"]) for k in range(n_folds)]
    logits, feats = [], []
    for i, k in zip(trval, fold):
        x = prepared_strip(signals[i], fs)
        logits.append(nets[k](torch.from_numpy(rhythm_input(x)[None, None, :]))[0][0].numpy())
        feats.append(rr_features(x, RHYTHM_FS))
    return {
        "logits": np.array(logits, dtype=np.float32),
        "feats": np.array(feats, dtype=np.float32),
        "y": y_all[trval].astype(np.int64),
        "fold": fold.astype(np.int64),
    }


def cross_validated_selection(d: dict[str, np.ndarray]) -> list[dict]:
    """Challenge score of each L2 strength, pooled over the folds (fit on the other folds)."""
    logits, feats, y, fold = d["logits"], d["feats"], d["y"], d["fold"]
    selection = []
    for wd in WEIGHT_DECAYS:
        pred = np.zeros(len(y), dtype=np.int64)
        for k in np.unique(fold):
            fit_on = fold != k
            model = fit(logits[fit_on], feats[fit_on], y[fit_on], wd)
            pred[~fit_on] = predict(model, logits[~fit_on], feats[~fit_on]).argmax(1)
        score, f1s = challenge_f1(y, pred)
        selection.append(
            {"weight_decay": wd, "cv_score": round(score, 4), "cv_f1": [round(f, 4) for f in f1s]}
        )
        print(json.dumps(selection[-1]), flush=True)
    score, f1s = challenge_f1(y, logits.argmax(1))
    print(f"out-of-fold CNN alone: score {score:.4f}, AF F1 {f1s[1]:.4f}")
    return selection


def cached_views(cnn: Path, random_crops: int, cache: Path | None) -> dict[str, np.ndarray]:
    key = f"{sha256_of(cnn)}:{random_crops}:{len(FEATURE_NAMES)}"
    if cache and cache.exists() and str(np.load(cache)["key"]) == key:
        return dict(np.load(cache))
    d = build_views(cnn, random_crops)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=key, **d)
    return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnn", type=Path, default=Path("weights/ecg_rhythm.onnx"))
    ap.add_argument("--out", type=Path, default=Path("weights/ecg_rhythm_stack.onnx"))
    ap.add_argument("--cache", type=Path, default=None, help="npz of the views' CNN logits etc.")
    ap.add_argument(
        "--fit-crops",
        type=int,
        default=0,
        help="10 s crops per strip added to the fit: 0 = none (the shipped recipe), 1 = the first "
        "10 s (one whole and one 10 s view per record), up to 1 + VIEW_RANDOM_CROPS",
    )
    ap.add_argument(
        "--oof-folds",
        type=Path,
        default=None,
        help="folder of rhythm_train --fold models (rhythm_fold0.pt...): fit on their out-of-fold "
        "logits of all train + val strips, L2 strength by cross-validation (--cnn must be their "
        "averaging ensemble, the served CNN)",
    )
    ap.add_argument("--n-folds", type=int, default=5)
    ap.add_argument("--version", default="1.0.0", help="the card's model version")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.oof_folds:
        d = oof_views(args.oof_folds, args.n_folds)
        selection = cross_validated_selection(d)
        chosen = max(selection, key=lambda r: r["cv_score"])["weight_decay"]
        model = fit(d["logits"], d["feats"], d["y"], chosen)
        export(model, args.out)
        write_card(
            args.out, selection, chosen, len(d["y"]), 0, args.cnn, args.version, args.n_folds
        )
        print(f"chose weight decay {chosen}; wrote {args.out}")
        return
    d = cached_views(args.cnn, VIEW_RANDOM_CROPS, args.cache)
    logits, feats, y, s, k = d["logits"], d["feats"], d["y"], d["split"], d["kind"]
    use = (k == 0) | (crop_rank(d["record"], k) < args.fit_crops)
    tr, va_full, va_crop = use & (s == 0), (s == 1) & (k == 0), (s == 1) & (k == 1)
    selection = []
    for wd in WEIGHT_DECAYS:
        model = fit(logits[tr], feats[tr], y[tr], wd)
        row = {"weight_decay": wd}
        for name, sel in (("val", va_full), ("val_10s_crops", va_crop)):
            if sel.any():
                score, f1s = challenge_f1(y[sel], predict(model, logits[sel], feats[sel]).argmax(1))
                row[f"{name}_score"] = round(score, 4)
                row[f"{name}_f1"] = [round(f, 4) for f in f1s]
        selection.append(row)
        print(json.dumps(row), flush=True)
    for name, sel in (("val", va_full), ("val 10 s crops", va_crop)):
        if sel.any():
            cnn_score, cnn_f1 = challenge_f1(y[sel], logits[sel].argmax(1))
            print(f"CNN alone on {name}: score {cnn_score:.4f}, AF F1 {cnn_f1[1]:.4f}")

    def criterion(r: dict) -> float:  # with crops in the fit, whole strips and crops weigh the same
        keys = ("val_score", "val_10s_crops_score") if args.fit_crops else ("val_score",)
        return float(np.mean([r[c] for c in keys]))

    chosen = max(selection, key=criterion)["weight_decay"]
    fit_on = use & (s < 2)
    model = fit(logits[fit_on], feats[fit_on], y[fit_on], chosen)
    export(model, args.out)
    n_strips = int(np.sum(fit_on & (k == 0)))
    n_crops = int(np.sum(fit_on & (k == 1)))
    write_card(args.out, selection, chosen, n_strips, n_crops, args.cnn, args.version)
    print(f"chose weight decay {chosen}; wrote {args.out}")


if __name__ == "__main__":
    main()

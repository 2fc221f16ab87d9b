"""Measure the exported rhythm model (ONNX Runtime, as the app runs it) on a CinC 2017 split and
write its card: the challenge score (mean F1 of normal, AF, other), per-class F1, the confusion
matrix, and the training curves (weights/ecg_rhythm.training.png).

    python -m training.ecg.rhythm_evaluate --onnx weights/ecg_rhythm.onnx --split test --write-card \
        --history /work/scratch/ecg/gpu/rhythm_history0.json

For an ensemble of the shipped model and a new run (rhythm_export.py --onnx-member), --history
names the new run only: the shipped model's training record is carried from the previous card,
and its curves stay beside the card as ecg_rhythm.training.<its version>.png.

With --stack it measures what the app serves, the CNN followed by the RR second stage
(backend.inference.ecg.rhythm.classify with both models from the registry, sha256 checked), and
writes the figures onto the second stage's card (metrics.held_out_cinc2017_test) and onto the
CNN's card (metrics.held_out_cinc2017_test_with_rr_stage) without touching the rest of it:

    python -m training.ecg.rhythm_evaluate --stack --split test --write-card
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from backend.inference.ecg import rhythm as rh
from backend.inference.ecg.preprocess import RHYTHM_FS, rhythm_input
from backend.inference.registry import ModelRegistry, sha256_of
from training.common.ensemble_cards import carried_training, keep_earlier_curves
from training.ecg.rhythm_dataset import (
    CLASSES,
    SPLIT_NAMES,
    load_cinc2017,
    prepared_strip,
    split_records,
)
from training.ecg.rhythm_train import challenge_f1


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, strips: list[np.ndarray]) -> np.ndarray:
    logits = [
        sess.run(["logits"], {"signal": rhythm_input(x)[None, None, :]})[0][0] for x in strips
    ]
    return np.array(logits)


def confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    m = np.zeros((4, 4), dtype=int)
    for a, b in zip(y, pred):
        m[a, b] += 1
    return m.tolist()


def predict_two_stage(weights: Path, strips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(two-stage, CNN-alone) probabilities per strip, through the app's own classify()."""
    registry = ModelRegistry(weights, threads=1)
    cnn, stack = registry.get(rh.MODEL_NAME), registry.get(rh.STACK_MODEL_NAME)
    both, alone = [], []
    for x in strips:
        out = rh.classify(cnn, {"I": x}, stack)
        both.append([out.probabilities[f] for f in rh.FAMILIES])
        alone.append([out.cnn_probabilities[f] for f in rh.FAMILIES])
    return np.array(both), np.array(alone)


def evaluate(onnx_path: Path, split_name: str, stack: bool = False) -> dict:
    _, signals, y, fs = load_cinc2017()
    split = split_records(y)
    idx = np.flatnonzero(split == SPLIT_NAMES.index(split_name))
    strips = [prepared_strip(signals[i], fs) for i in idx]
    extra = {}
    if stack:
        probs, cnn_probs = predict_two_stage(onnx_path.parent, strips)
        pred = probs.argmax(1)
        cnn_score, cnn_f1 = challenge_f1(y[idx], cnn_probs.argmax(1))
        extra = {
            "model": "ecg_rhythm CNN + ecg_rhythm_stack (RR features), as served",
            "cnn_alone": {
                "challenge_score_mean_f1_normal_af_other": round(cnn_score, 4),
                "f1": {c: round(f, 4) for c, f in zip(CLASSES, cnn_f1)},
            },
        }
    else:
        pred = predict(session(onnx_path), strips).argmax(1)
    score, f1s = challenge_f1(y[idx], pred)
    return {
        **extra,
        "split": split_name,
        "n": len(idx),
        "class_counts": {c: int(n) for c, n in zip(CLASSES, np.bincount(y[idx], minlength=4))},
        "challenge_score_mean_f1_normal_af_other": round(score, 4),
        "f1": {c: round(f, 4) for c, f in zip(CLASSES, f1s)},
        "accuracy": round(float(np.mean(pred == y[idx])), 4),
        "confusion_matrix": {
            "rows_true_cols_pred": list(CLASSES),
            "counts": confusion(y[idx], pred),
        },
    }


def plot_history(history_files: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for hf in history_files:
        run = json.loads(hf.read_text())
        fold = run["args"].get("fold", "None")
        for member in run["members"]:
            h = member["history"]
            a1.plot(
                [r["epoch"] for r in h],
                [r["train_loss"] for r in h],
                label=f"seed {member['seed']}" if fold == "None" else f"fold {fold}",
            )
            v = [r for r in h if "val_score" in r]
            if v:
                a2.plot(
                    [r["epoch"] for r in v],
                    [r["val_score"] for r in v],
                    label=f"seed {member['seed']}",
                )
    a1.set(xlabel="epoch", ylabel="train loss (weighted CE)", title="training loss")
    a2.set(xlabel="epoch", ylabel="mean F1 (N, AF, O)", title="validation challenge score")
    a1.legend()
    if a2.lines:
        a2.legend()
    else:  # fold models are not scored during training (their fold is the stage-2 data)
        a2.text(0.5, 0.5, "fold models: no validation\nscores during training", ha="center",
                va="center", transform=a2.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def write_card(
    onnx_path: Path,
    metrics: dict,
    history_files: list[Path],
    members: int,
    quantised: bool,
    fp16_weights: bool = False,
    selection_note: str | None = None,
    version: str = "1.0.0",
    int8_weights: bool = False,
) -> None:
    _, _, y, _ = load_cinc2017()
    split = split_records(y)
    card_path = onnx_path.with_suffix(".json")
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    card = {
        "name": onnx_path.stem,
        "version": version,
        "task": "ECG rhythm family from one lead: normal / atrial_fibrillation / other / noisy",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": sha256_of(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "input": {
            "name": "signal",
            "shape": ["batch", 1, "samples (>= 9 s advised, any length)"],
            "layout": "NCL",
            "sampling_rate_hz": RHYTHM_FS,
            "units": "standardised",
            "preprocessing": "resample to 250 Hz, 0.5-40 Hz zero-phase Butterworth band-pass, subtract mean, "
            "divide by (std + 0.001 mV), clip +-20 (backend.inference.ecg.preprocess.rhythm_input)",
            "mean": "per strip",
            "std": "per strip",
        },
        "outputs": {
            "logits": ["batch", 4],
            "cam": ["batch", 4, "samples / 32 (class activation map, saliency)"],
        },
        "classes": list(CLASSES),
        "ensemble_members": members,
        "quantised": quantised,
        "weights_storage": "float16 initializers, each cast to float32 when the session is created: "
        "compute is float32 (training/ecg/rhythm_export.py --fp16-weights)"
        if fp16_weights
        else "int8 initializers, per output channel, each dequantised to float32 when the session "
        "is created: activations and compute are float32 (training/ecg/rhythm_export.py "
        "--int8-weights)"
        if int8_weights
        else "float32",
        "training_data": {
            "dataset": "PhysioNet/Computing in Cardiology Challenge 2017 (AliveCor single lead, revised v3 labels)",
            "source": "Clifford GD et al., CinC 44 (2017), doi:10.22489/CinC.2017.065-469",
            "licence": "open-access PhysioNet challenge data, treated as ODC-By 1.0 (to be confirmed before release)",
            "n_train": int(np.sum(split == 0)),
            "n_val": int(np.sum(split == 1)),
            "n_test": int(np.sum(split == 2)),
            "split_rule": "each record is its own group (no patient ids in CinC 2017; a person may own several "
            "strips: known leak risk), stratified 75/10/15 % by class, numpy seed 2017 "
            "(training/ecg/rhythm_dataset.py)",
        },
        # metrics.twelve_lead is added by eval_rhythm_12lead.py, run after this script
        "metrics": {"held_out_cinc2017_test": metrics},
        "intended_use": "Rhythm family of a resting ECG lead (handheld strip, 6-lead device or a 12-lead record/"
        "digitised sheet) as a patient-facing second opinion; sinus is split into brady/normal/tachy "
        "by the measured heart rate outside the model.",
        "limitations": "Trained on one handheld device's lead I-like strips; other leads, 12-lead machines and "
        "digitised paper differ in filtering and morphology (see metrics.twelve_lead). 'other' is a "
        "mixed bag (ectopy, blocks, flutter, ...). Not for paced rhythms (the app names a rhythm paced "
        "from its pacemaker spikes before this model's family is used: backend/inference/ecg/"
        "pacing.py) or children.",
        "produced_by": "training/ecg/rhythm_dataset.py, training/ecg/rhythm_train.py, training/ecg/rhythm_export.py, "
        "training/ecg/rhythm_evaluate.py, training/ecg/eval_rhythm_12lead.py",
    }
    if history_files:
        runs = [json.loads(h.read_text()) for h in history_files]
        carried = carried_training(old, onnx_path)
        if carried and not selection_note:
            # the previous card's selection text describes the single earlier model
            raise ValueError(
                f"{onnx_path} grows the ensemble of {card_path.name}: say how the members "
                "were chosen with --selection-note"
            )
        _name_single_earlier_model(carried, old, card_path)
        if carried:
            # An ensemble of the previous card's model and new runs: the new runs' figures join
            # the previous model's training record, which this script cannot re-create.
            card["selection"] = selection_note
            card["training"] = {
                "members": carried
                + [
                    {"seed": m["seed"], "args": r["args"], "best_val_score": m["best_val_score"]}
                    for r in runs
                    for m in r["members"]
                ]
            }
        elif all(r["args"].get("fold", "None") != "None" for r in runs):
            # cross-validation fold models (rhythm_train --fold): fixed epochs, no selection
            card["selection"] = selection_note or (
                f"the average of {len(runs)} fold models, each trained on train + val minus its "
                "fold for a fixed number of epochs; nothing chosen on validation"
            )
            card["training_data"]["fold_models_train_on"] = (
                "train + val minus one fold each (rhythm_dataset.cv_folds)"
            )
            card["training"] = {
                "args": runs[0]["args"],
                "fold_models": [
                    {"fold": r["args"]["fold"], "final_train_loss": m["history"][-1]["train_loss"]}
                    for r in runs
                    for m in r["members"]
                ],
            }
        else:
            best = max((m for r in runs for m in r["members"]), key=lambda m: m["best_val_score"])
            card["selection"] = selection_note or (
                f"{members} member(s); trained seeds "
                f"{[m['seed'] for r in runs for m in r['members']]}, best validation challenge "
                f"score: seed {best['seed']} ({best['best_val_score']:.4f}). An int8 (QDQ, "
                "per-channel) 3-seed ensemble scored lower on validation, so the fp32 single model "
                "ships (quantised: false)."
            )
            card["training"] = {
                "args": runs[0]["args"],
                "best_val_score_per_member": [
                    m["best_val_score"] for r in runs for m in r["members"]
                ],
            }
        plot_history(history_files, onnx_path.with_suffix(".training.png"))
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def _name_single_earlier_model(carried: list[dict], old: dict, card_path: Path) -> None:
    """A carried single earlier model's entry also names its version, selection and kept
    training curves."""
    if carried and "members" not in old["training"]:
        carried[0].update(
            version=old.get("version"),
            selection=old.get("selection"),
            training_curves=keep_earlier_curves(card_path, old.get("version")),
        )


def write_stack_metrics(weights: Path, metrics: dict) -> None:
    """The served two-stage figures onto both cards (the CNN card's other fields untouched)."""
    stack_card = weights / f"{rh.STACK_MODEL_NAME}.json"
    card = json.loads(stack_card.read_text())
    card["metrics"] = {**card.get("metrics", {}), "held_out_cinc2017_test": metrics}
    stack_card.write_text(json.dumps(card, indent=2) + "\n")
    cnn_card = weights / f"{rh.MODEL_NAME}.json"
    card = json.loads(cnn_card.read_text())
    card["metrics"]["held_out_cinc2017_test_with_rr_stage"] = metrics
    cnn_card.write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", type=Path, default=Path("weights/ecg_rhythm.onnx"))
    ap.add_argument("--split", choices=SPLIT_NAMES, default="test")
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--history", type=Path, nargs="*", default=[])
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--quantised", action="store_true")
    ap.add_argument("--fp16-weights", action="store_true", help="the file stores fp16 weights")
    ap.add_argument("--int8-weights", action="store_true", help="the file stores int8 weights")
    ap.add_argument("--selection-note", default=None, help="how the members were chosen (card)")
    ap.add_argument("--version", default="1.0.0", help="the card's model version")
    ap.add_argument(
        "--stack", action="store_true", help="measure CNN + second stage from the --onnx folder"
    )
    args = ap.parse_args()
    metrics = evaluate(args.onnx, args.split, stack=args.stack)
    print(json.dumps(metrics, indent=1))
    if args.write_card and args.stack:
        write_stack_metrics(args.onnx.parent, metrics)
    elif args.write_card:
        write_card(
            args.onnx,
            metrics,
            args.history,
            args.members,
            args.quantised,
            args.fp16_weights,
            args.selection_note,
            args.version,
            args.int8_weights,
        )


if __name__ == "__main__":
    main()

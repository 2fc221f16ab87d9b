"""Evaluate weights/skin_lesion.onnx on the held-out lesion-grouped split and write its card.

    python -m training.skin.evaluate --history /work/scratch/skin/gpu1/history.json
    python -m training.skin.evaluate --onnx NEW.onnx --base-card weights/skin_lesion.json \
        --head-report /work/scratch/skin/head/head_report.json --version 1.1.0

    python -m training.skin.evaluate --history NEW/history.json --member-card OLD_CARD.json \
        --version 3.0.0 --training-note "..."     # an ensemble made by export --with-member

The second form is for a model whose head was re-fitted by training/skin/retrain_head.py:
the training history, plot and quantisation report of the base model's card are carried over.

Runs the exported model with ONNX Runtime (what the service runs) on the val and test splits,
fits the temperature on val, measures on TEST: balanced accuracy, per-class recall, melanoma
AUC (one-vs-rest), Dice and IoU, ECE before/after temperature, and what the urgency rule of
backend/inference/skin.py does. Writes weights/skin_lesion.json and skin_lesion.training.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from backend.inference.registry import sha256_of
from backend.inference.skin import (
    CLASSES,
    INPUT_H,
    INPUT_W,
    MEAN,
    MIN_LESION_FRACTION,
    MODEL_NAME,
    SOON_THRESHOLDS,
    STD,
    URGENT_MEL_PROB,
    keep_largest_region,
    preprocess_skin,
    run_with_flips,
    sigmoid,
    urgency_for,
)
from training.common.efficientnet_lite import WEIGHTS_SOURCE
from training.common.onnx_members import members_of
from training.skin.data import SCRATCH, SPLIT_RULE, Pack, mask_to_model
from training.skin.export import QUANT_REPORT, has_fp16_weights, is_int8
from training.skin.metrics import classification_report, dice_iou, ece, fit_temperature, softmax

WEIGHTS = Path("weights")
VERSION = "1.0.0"


def run_split(
    onnx_path: Path, pack: Pack, split: str, batch: int = 32, flips: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ORT logits (N,7), predicted masks (N,H,W) bool, true masks, labels for one split; with
    `flips`, through the service's flip averaging (backend.inference.skin.run_with_flips)."""
    from training.skin.export import session

    sess = session(onnx_path)
    names = [o.name for o in sess.get_outputs()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, sess.run(None, {"image": x})))

    idx = pack.indices(split)
    logits, masks = [], []
    for s in range(0, len(idx), batch):
        x = np.concatenate([preprocess_skin(pack.images[i]) for i in idx[s : s + batch]])
        out = run_with_flips(run, x) if flips else run(x)
        logits.append(out["logits"])
        masks.extend(keep_largest_region(sigmoid(m)) >= 0.5 for m in out["mask_logits"][:, 0])
    targets = np.stack([mask_to_model(pack.masks[i]) > 0.5 for i in idx])
    return np.concatenate(logits), np.stack(masks), targets, pack.label[idx]


def split_metrics(
    logits: np.ndarray, masks: np.ndarray, targets: np.ndarray, y: np.ndarray
) -> dict:
    m = classification_report(logits, y, CLASSES)
    dice, iou = dice_iou(masks, targets)
    m.update(
        dice=round(float(dice.mean()), 4),
        iou=round(float(iou.mean()), 4),
        n_images=len(y),
        mask_empty_fraction=round(float((masks.mean(axis=(1, 2)) < MIN_LESION_FRACTION).mean()), 4),
    )
    return m


def urgency_metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    tiers = np.array([urgency_for(dict(zip(CLASSES, p)))[0] for p in probs])
    flagged = tiers != "routine"
    mel = y == CLASSES.index("mel")
    malignant = np.isin(y, [CLASSES.index(c) for c in ("mel", "bcc", "akiec")])
    return {
        "rule": {
            "urgent_if_mel_prob_at_least": URGENT_MEL_PROB,
            "soon_if_prob_at_least": SOON_THRESHOLDS,
        },
        "melanoma_flagged_soon_or_urgent": round(float(flagged[mel].mean()), 4),
        "melanoma_flagged_urgent": round(float((tiers[mel] == "urgent").mean()), 4),
        "malignant_flagged_soon_or_urgent": round(float(flagged[malignant].mean()), 4),
        "benign_flagged_soon_or_urgent": round(float(flagged[~malignant].mean()), 4),
        "n_melanoma": int(mel.sum()),
        "n_malignant": int(malignant.sum()),
        "n_benign": int((~malignant).sum()),
    }


def plot_history(history: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["train_ce"] for h in history], label="train cross-entropy (weighted)")
    ax[0].plot(ep, [h["train_seg"] for h in history], label="train mask loss (BCE + Dice)")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[0].set_title("training loss")
    for key, name in (
        ("balanced_accuracy", "balanced accuracy"),
        ("melanoma_auc", "melanoma AUC"),
        ("dice", "Dice"),
    ):
        ax[1].plot(ep, [h["val"][key] for h in history], label=name)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylim(0, 1)
    ax[1].legend()
    ax[1].set_title("validation split (EMA weights)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=WEIGHTS / f"{MODEL_NAME}.onnx")
    ap.add_argument("--pack", type=Path, default=SCRATCH / "pack.npz")
    ap.add_argument("--history", type=Path, help="history.json of the training run")
    ap.add_argument(
        "--base-card", type=Path, help="card whose training/quantisation blocks are carried over"
    )
    ap.add_argument("--head-report", type=Path, help="head_report.json of retrain_head.py")
    ap.add_argument("--version", default=VERSION)
    ap.add_argument("--training-note", default="", help="how the weights were trained (card)")
    ap.add_argument(
        "--architecture",
        choices=("skinnet", "lite0"),
        default="lite0",
        help="training/skin/model.py network the weights belong to (card; bench/bench_skin.py)",
    )
    ap.add_argument(
        "--member-card",
        type=Path,
        action="append",
        default=[],
        help="card of an earlier model averaged into --onnx by export --with-member (repeatable)",
    )
    args = ap.parse_args()

    pack = Pack(args.pack)
    val = run_split(args.onnx, pack, "val")
    test = run_split(args.onnx, pack, "test")
    temperature = fit_temperature(val[0], val[3])
    test_metrics = split_metrics(*test)
    p_raw, p_cal = softmax(test[0]), softmax(test[0] / temperature)
    test_metrics.update(
        ece_before_temperature=round(ece(p_raw, test[3]), 4),
        ece_after_temperature=round(ece(p_cal, test[3]), 4),
    )
    val_metrics = split_metrics(*val)
    val_single_view = split_metrics(*run_split(args.onnx, pack, "val", flips=False))
    histo = pack.dx_type[pack.indices("test")] == "histo"
    test_histo = classification_report(test[0][histo], test[3][histo], CLASSES)
    test_histo["n_images"] = int(histo.sum())
    if (args.history is None) == (args.base_card is None):
        raise SystemExit("give exactly one of --history and --base-card")
    base_card = json.loads(args.base_card.read_text()) if args.base_card else None
    if args.history is not None:
        history = json.loads(args.history.read_text())
        plot_history(history, args.onnx.with_suffix(".training.png"))

    counts = {s: int((pack.split == s).sum()) for s in ("train", "val", "test")}
    from training.skin.export import session

    cam_h, cam_w = (
        session(args.onnx)
        .run(["cam"], {"image": np.zeros((1, 3, INPUT_H, INPUT_W), np.float32)})[0]
        .shape[2:]
    )
    quant = is_int8(args.onnx)
    storage = (
        "int8 QDQ"
        if quant
        else "fp32 compute, weights stored as fp16 (export --fp16-weights)"
        if has_fp16_weights(args.onnx)
        else "fp32"
    )
    quant_report = json.loads(QUANT_REPORT.read_text()) if QUANT_REPORT.exists() else None
    if base_card is not None:
        quant_report = base_card["quantisation"]
    if args.head_report is not None:
        quant_report = {
            **quant_report,
            "head": "the re-fitted CAM head (1x1 conv) is fp32 and its output is not "
            "re-quantised; the val_* figures above are those of the base model",
        }
    if base_card is not None:
        training = dict(base_card["training"])
        if args.training_note:
            training["note"] = training["note"] + " " + args.training_note
    else:
        training = {
            "from_scratch": args.architecture == "skinnet",
            "pretrained_weights": "none" if args.architecture == "skinnet" else WEIGHTS_SOURCE,
            "epochs_run": len(history),
            "selected_epoch": int(
                max(
                    history,
                    key=lambda h: sum(
                        h["val"][k] for k in ("balanced_accuracy", "melanoma_auc", "dice")
                    ),
                )["epoch"]
            ),
            "note": args.training_note,
            "augmentation": "training/common/augment.py phone_photo: rotation, scale 0.6-1.35, "
            "aspect, flips, colour cast, brightness/contrast/gamma/saturation, blur, glare, "
            "noise, JPEG",
            "class_balance": "sampler ~ freq^-0.5 and loss weights ~ freq^-0.5",
        }
    if args.head_report is not None:
        training["head_retraining"] = json.loads(args.head_report.read_text())
    member_sums = members_of(args.onnx)
    if member_sums:
        earlier = [json.loads(p.read_text()) for p in args.member_card]
        if len(earlier) != len(member_sums) - 1:
            raise SystemExit(
                f"{len(member_sums)} members: give a --member-card for all but the last"
            )
        training = {
            "ensemble": "the graph averages the outputs (logits, mask logits, CAMs) of these "
            "members, as exported; the temperature and every metric below are the ensemble's",
            "members": [
                {
                    "sha256": sha,
                    "from_card": f"{c['name']} {c['version']}",
                    "val_balanced_accuracy_as_served": c["metrics"]["val"]["balanced_accuracy"],
                    "training": c["training"],
                    "quantisation": c["quantisation"],
                }
                for sha, c in zip(member_sums, earlier)
            ]
            + [{"sha256": member_sums[-1], "training": training, "quantisation": quant_report}],
        }
        quant_report = {
            "note": "each member keeps its own storage (int8, fp16 or fp32): see members"
        }
    card = {
        "name": MODEL_NAME,
        "version": args.version,
        "task": "skin lesion: 7-class classification + lesion segmentation + class activation maps",
        "architecture": args.architecture,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": sha256_of(args.onnx),
        "size_bytes": args.onnx.stat().st_size,
        "format": "ONNX opset 17, single file, " + storage,
        "quantisation": quant_report,
        "input": {
            "name": "image",
            "shape": [None, 3, INPUT_H, INPUT_W],
            "layout": "NCHW",
            "colour_order": "RGB",
            "dtype": "float32",
            "mean": list(MEAN),
            "std": list(STD),
            "scale": "x / 255, then (x - mean) / std",
            "preprocessing": "backend.inference.skin.preprocess_skin: portrait photos rotated to "
            "landscape, area-resized to 192x144 (aspect not kept), normalised",
        },
        "outputs": {
            "logits": "(N, 7) class scores; probabilities = softmax(logits / temperature)",
            "mask_logits": "(N, 1, 144, 192) lesion mask logits; lesion where > 0",
            "cam": f"(N, 7, {cam_h}, {cam_w}) class activation maps; logits = mean(cam) exactly",
        },
        "classes": list(CLASSES),
        "temperature": round(temperature, 4),
        "training_data": {
            "dataset": "HAM10000 (dermoscopic images, 200x150 copy) with lesion masks",
            "source": "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large "
            "collection of multi-source dermatoscopic images of common pigmented skin lesions. "
            "Scientific Data 5:180161 (2018), doi:10.1038/sdata.2018.161; data "
            "doi:10.7910/DVN/DBW86T; segmentation masks by the same authors.",
            "licence": "CC BY-NC 4.0 (non-commercial use, attribution required)",
            "attribution": "Tschandl et al. 2018, HAM10000",
            "n_train": counts["train"],
            "n_val": counts["val"],
            "n_test": counts["test"],
            "split_rule": SPLIT_RULE,
            "split_file": "written by training/skin/data.py (/work/scratch/skin/split.csv)",
        },
        "training": training,
        "metrics": {
            "test": test_metrics,
            "test_histopathology_confirmed_only": test_histo,
            "val": val_metrics,
            "urgency_on_test": urgency_metrics(p_cal, test[3]),
            "val_without_flip_averaging": {
                k: val_single_view[k] for k in ("balanced_accuracy", "melanoma_auc", "dice")
            },
            "notes": "measured with ONNX Runtime on the held-out lesion-grouped test split, as "
            "served: outputs averaged over the photo and its three flips "
            "(backend.inference.skin.run_with_flips); "
            "Dice/IoU per image at 192x144 after keeping the largest region (as served), averaged; ECE top-1, 15 bins; temperature fitted on "
            "val only",
        },
        "intended_use": "Second opinion for a person photographing a skin spot at home: which of "
        "seven common lesion types it most resembles, its outline, and how soon to see a doctor. "
        "Not a diagnosis; not for use by itself to rule out melanoma.",
        "limitations": [
            (
                "Trained on dermoscopic images (contact plate, polarised light); phone photos look "
                "different and accuracy on them has not been measured."
            ),
            (
                "HAM10000 comes mostly from fair-skinned European/Australian patients; performance "
                "on darker skin is unknown."
            ),
            (
                "Only seven classes: other conditions (e.g. squamous cell carcinoma, rashes, "
                "infections) are forced into one of them."
            ),
            "Small test classes (df, vasc) make their per-class recall noisy.",
            *(
                ["Trained from scratch (no pretrained weights available offline) in one short run."]
                if args.architecture == "skinnet"
                else [
                    (
                        "Fine-tuned from ImageNet weights for a few epochs on 2 CPU cores (no GPU "
                        "this session); longer training and ensembles would likely gain more."
                    )
                ]
            ),
        ],
        "produced_by": "training/skin/evaluate.py (weights from training/skin/train.py, "
        "exported by training/skin/export.py"
        + (", head re-fitted by training/skin/retrain_head.py)" if args.head_report else ")"),
    }
    card_path = args.onnx.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(card["metrics"], indent=1))
    print(f"temperature {temperature:.3f}; wrote {card_path}")


if __name__ == "__main__":
    main()

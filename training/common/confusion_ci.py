"""95 % bootstrap intervals for the classification figures on a model card, from its confusion
matrices: how far a held-out score could move with another draw of test images of the same size.

The test splits here are small (5 otitis externa images, 94 AF strips), so a target a few points
above or below a measured figure is often inside its interval; the closing notes say so with these
numbers. Resampling the (true, predicted) pairs of a confusion matrix is the same as resampling
the test examples, so nothing needs re-running.

    python -m training.common.confusion_ci weights/ear_classifier.json weights/ecg_rhythm_stack.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from training.common.classification_metrics import confusion, per_class

N_RESAMPLES = 5000


def pairs_from_confusion(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) label arrays with counts[i, j] pairs (i, j); rows true, columns predicted."""
    true, pred = np.nonzero(counts)
    reps = counts[true, pred]
    return np.repeat(true, reps), np.repeat(pred, reps)


def scores(cm: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Balanced accuracy and macro F1 over the classes present (classification_metrics), per-class
    F1, and the CinC 2017 challenge score when the classes are the rhythm families."""
    metrics = per_class(cm)
    f1 = metrics["f1"]
    present = metrics["support"] > 0
    out = {
        "balanced_accuracy": float(metrics["recall"][present].mean()),
        "macro_f1": float(f1[present].mean()),
    }
    out.update({f"f1_{c}": float(f1[i]) for i, c in enumerate(classes)})
    if classes[:3] == ["normal", "atrial_fibrillation", "other"]:
        out["challenge_score"] = float(f1[:3].mean())
    return out


def bootstrap(
    counts: np.ndarray, classes: list[str], n: int = N_RESAMPLES, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each score on the matrix itself and its 2.5 / 97.5 percentiles over `n` resamples."""
    true, pred = pairs_from_confusion(counts)
    k = counts.shape[0]
    point = scores(counts, classes)
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in point}
    for _ in range(n):
        idx = rng.integers(0, len(true), len(true))
        for name, value in scores(confusion(true[idx], pred[idx], k), classes).items():
            draws[name].append(value)
    return {
        name: {
            "value": round(point[name], 4),
            "ci95_low": round(float(np.nanpercentile(draws[name], 2.5)), 4),
            "ci95_high": round(float(np.nanpercentile(draws[name], 97.5)), 4),
        }
        for name in point
    }


def confusion_matrices(
    node: object, where: str = ""
) -> Iterator[tuple[str, list[str], np.ndarray]]:
    """Every square confusion matrix on a card: a dict with "rows_true_cols_pred" (class names)
    and its counts under "counts" or "matrix"."""
    if isinstance(node, dict):
        classes = node.get("rows_true_cols_pred")
        counts = node.get("counts", node.get("matrix"))
        if isinstance(classes, list) and isinstance(counts, list):
            m = np.asarray(counts, dtype=int)
            if m.shape == (len(classes), len(classes)):
                yield where, classes, m
        for key, value in node.items():
            yield from confusion_matrices(value, f"{where}.{key}" if where else key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cards", type=Path, nargs="+")
    ap.add_argument("--resamples", type=int, default=N_RESAMPLES)
    args = ap.parse_args()
    for card in args.cards:
        found = list(confusion_matrices(json.loads(card.read_text())))
        if not found:
            print(f"{card}: no confusion matrix")
        for where, classes, counts in found:
            print(f"{card} :: {where} (n={counts.sum()}, {args.resamples} resamples)")
            for name, s in bootstrap(counts, classes, args.resamples).items():
                print(f"  {name:32s} {s['value']:.3f}  [{s['ci95_low']:.3f}, {s['ci95_high']:.3f}]")


if __name__ == "__main__":
    main()

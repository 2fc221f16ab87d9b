"""Metrics for the skin model (numpy only): balanced accuracy, AUC, Dice/IoU, ECE, temperature."""

from __future__ import annotations

import itertools

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def per_class_recall(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    rec = np.full(n_classes, np.nan)
    for c in range(n_classes):
        sel = y == c
        if sel.any():
            rec[c] = float((pred[sel] == c).mean())
    return rec


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    return float(np.nanmean(per_class_recall(y, pred, n_classes)))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """One-vs-rest ROC AUC via the rank statistic (ties get average ranks)."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def dice_iou(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and IoU of boolean masks shaped (N, ...)."""
    p = pred.reshape(len(pred), -1).astype(bool)
    t = target.reshape(len(target), -1).astype(bool)
    inter = (p & t).sum(1).astype(np.float64)
    ps, ts = p.sum(1), t.sum(1)
    union = ps + ts - inter
    dice = np.where(ps + ts > 0, 2 * inter / np.maximum(ps + ts, 1), 1.0)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return dice, iou


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence (equal-width bins)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(total)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits / temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling (Guo et al., 2017): the T minimising validation NLL."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(
        lambda log_t: nll(logits, y, float(np.exp(log_t))), bounds=(-3, 3), method="bounded"
    )
    return float(np.exp(res.x))


def classification_report(logits: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    probs = softmax(logits)
    pred = probs.argmax(1)
    rec = per_class_recall(y, pred, len(classes))
    mel = classes.index("mel")
    return {
        "balanced_accuracy": round(float(np.nanmean(rec)), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "per_class_recall": {c: round(float(r), 4) for c, r in zip(classes, rec)},
        "melanoma_auc": round(roc_auc(y == mel, probs[:, mel]), 4),
    }

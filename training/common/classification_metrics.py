"""Classification metrics in plain numpy (no scikit-learn in the environment)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(tp),
        where=(precision + recall) > 0,
    )
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def summary(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 over the classes present in y_true."""
    cm = confusion(y_true, y_pred, n)
    pc = per_class(cm)
    present = pc["support"] > 0
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "balanced_accuracy": float(pc["recall"][present].mean()) if present.any() else float("nan"),
        "macro_f1": float(pc["f1"][present].mean()) if present.any() else float("nan"),
    }

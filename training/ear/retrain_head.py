"""Re-train only the classifier's last layer on balanced data (decoupled "cRT" step).

    python -m training.ear.retrain_head --run RUN --out RUN_HEAD

The backbone of RUN's selected checkpoint is frozen; penultimate features of several
augmented copies of every training image are computed once, and a weighted multinomial
logistic regression replaces the head. The sample weights balance the classes and, within a
class, the sources (training/ear/train.py:sampling_weights), so a class is not recognised by
its majority camera. The L2 strength and the source balance are chosen on the validation
split (mean of balanced accuracy and macro-F1); the test split is not read.

With --fit-on-val (for a run trained by train.py --fit-on-val) the head is fitted on train + val
with the source balance and L2 given (chosen earlier on val), and always replaces the old head.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from training.common.classification_metrics import summary
from training.common.softmax_head import fit_softmax_head
from training.ear import data, model
from training.ear.augment import augment, to_float
from training.ear.train import sampling_weights


@torch.no_grad()
def features(net: torch.nn.Module, x: np.ndarray, views: int, seed: int) -> np.ndarray:
    """(views * N, F) penultimate features; view 0 is the plain image, the rest augmented."""
    net.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    for v in range(views):
        for i in range(0, len(x), 128):
            xb = torch.from_numpy(x[i : i + 128])
            xb = to_float(xb) if v == 0 else augment(xb, g)
            out.append(net.embed(xb).numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/work/scratch/ear/arrays.npz"))
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--seed", type=int, default=data.SEED)
    ap.add_argument("--fit-on-val", action="store_true", help="fit on train + val, no selection")
    ap.add_argument("--source-power", type=float, default=0.5, help="with --fit-on-val")
    ap.add_argument("--l2", type=float, default=1e-3, help="with --fit-on-val")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    z = np.load(args.cache)
    x, y, src, split = z["x_ear"], z["y_ear"], z["src_ear"], z["split_ear"]
    tr = np.flatnonzero((y >= 0) & np.isin(split, (0, 1) if args.fit_on_val else (0,)))
    va = np.flatnonzero((y >= 0) & (split == 1))
    n_cls = len(data.CLASSES)

    ck_path = min(args.run.glob("ear_classifier_adv*.pt"))
    ck = torch.load(ck_path, map_location="cpu")
    net = model.classifier(n_cls, ck.get("arch", "earnet"), pretrained=False)
    net.load_state_dict(ck["state"])
    net.eval()

    f_tr = features(net, x[tr], args.views, args.seed)
    y_tr = np.tile(y[tr], args.views)
    s_tr = np.tile(src[tr], args.views)
    f_va = features(net, x[va], 1, args.seed)
    with torch.no_grad():
        base = net.head(torch.from_numpy(f_va)).argmax(1).numpy()
    m0 = summary(y[va], base, n_cls)
    print(f"current head: val BA {m0['balanced_accuracy']:.4f} F1 {m0['macro_f1']:.4f}", flush=True)

    grid = []
    source_powers = (args.source_power,) if args.fit_on_val else (0.0, 0.5, 1.0)
    for source_power in source_powers:
        w = sampling_weights(y_tr, s_tr, n_cls, 1.0, source_power)
        for l2 in (args.l2,) if args.fit_on_val else (1e-4, 1e-3, 1e-2):
            wt, b = fit_softmax_head(f_tr, y_tr, w, n_cls, l2, iters=200, standardise=False)
            pred = (f_va @ wt.T + b).argmax(1)
            m = summary(y[va], pred, n_cls)
            score = 0.5 * (m["balanced_accuracy"] + m["macro_f1"])
            grid.append(
                {
                    "source_power": source_power,
                    "l2": l2,
                    "val_balanced_accuracy": round(m["balanced_accuracy"], 4),
                    "val_macro_f1": round(m["macro_f1"], 4),
                    "val_score": score,
                    "head": (wt, b),
                }
            )
            print(
                f"source_power {source_power} l2 {l2:g}: val BA {m['balanced_accuracy']:.4f} "
                f"F1 {m['macro_f1']:.4f}",
                flush=True,
            )
    best = max(grid, key=lambda r: r["val_score"])
    current = 0.5 * (m0["balanced_accuracy"] + m0["macro_f1"])
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in ck["state"].items()}
    kept_head = best["val_score"] <= current and not args.fit_on_val
    if not kept_head:
        state["head.weight"] = torch.from_numpy(best["head"][0]).float()
        state["head.bias"] = torch.from_numpy(best["head"][1]).float()
    torch.save(
        {**ck, "state": state, "val_score": max(current, best["val_score"])},
        args.out / ck_path.name,
    )
    history = json.loads((args.run / "history.json").read_text())
    history["head_retraining"] = {
        "from": str(ck_path),
        "views_per_train_image": args.views,
        "fit_on_val": args.fit_on_val,
        "class_power": 1.0,
        "val_current_head": {
            "balanced_accuracy": round(m0["balanced_accuracy"], 4),
            "macro_f1": round(m0["macro_f1"], 4),
        },
        "grid": [{k: v for k, v in r.items() if k != "head"} for r in grid],
        "selected": None if kept_head else {k: best[k] for k in ("source_power", "l2")},
    }
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    for extra in args.run.glob("*.png"):
        shutil.copy(extra, args.out / extra.name)
    print("selected:", history["head_retraining"]["selected"])


if __name__ == "__main__":
    main()

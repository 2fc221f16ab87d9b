"""Dev measurement of the rhythm model on 10 s input, on the CinC 2017 VALIDATION split only.

Most of what the app reads is 10 s long (a 12-lead record, a photographed sheet), while CinC 2017
strips are 9-61 s (median 30 s). RR statistics of 8-12 beats are far noisier than of 30-40, so a
second stage fit on whole strips may hurt on 10 s input. This script cuts each strip into 10 s
crops of the RAW 300 Hz signal (the first 10 s and VIEW_RANDOM_CROPS seeded random windows), then
prepares each crop exactly as the app prepares a 10 s record (resample to 250 Hz + band-pass on
the crop alone, backend.inference.ecg.preprocess) and measures, per view (full strip / 10 s crop):

  - CNN alone,
  - the second stage fit on train whole strips only (the 3c9dd1d recipe),
  - fit on whole strips + their first 10 s (rhythm_stack_train --fit-crops 1, the default),
  - fit on whole strips + all their 10 s crops (--fit-crops 3),
  - either stage used only when the lead holds at least T beats (CNN alone below).

Every candidate is fit on the TRAIN split and scored on VAL; the test split is never read. The
CNN and RR features of every view are cached (keyed by the CNN's sha256).

    python -m training.ecg.rhythm_crops_dev --cache /work/scratch/rhythm/crops_cache.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.ecg.rhythm_stack_train import (
    VIEW_RANDOM_CROPS,
    WEIGHT_DECAYS,
    cached_views,
    crop_rank,
    fit,
    predict,
)
from training.ecg.rhythm_train import challenge_f1

BEAT_THRESHOLDS = (8, 10, 12)


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    score, f1s = challenge_f1(y, pred)
    return {"score": round(score, 4), "af_f1": round(f1s[1], 4), "f1": [round(f, 4) for f in f1s]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnn", type=Path, default=Path("weights/ecg_rhythm.onnx"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--weight-decay", type=float, nargs="*", default=[1e-2, 3e-2])
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = cached_views(args.cnn, VIEW_RANDOM_CROPS, args.cache)
    L, F, B, y, s, k = d["logits"], d["feats"], d["beats"], d["y"], d["split"], d["kind"]
    tr, va = s == 0, s == 1
    rank = crop_rank(d["record"], k)
    stacks = {}
    for wd in args.weight_decay:
        assert wd in WEIGHT_DECAYS
        for fit_crops, what in (
            (0, "whole strips"),
            (1, "whole + first 10 s"),
            (3, "whole + all 10 s crops"),
        ):
            sel = tr & (rank < fit_crops)
            stacks[f"stack fit on {what}, wd {wd}"] = fit(L[sel], F[sel], y[sel], wd)
    results: dict[str, dict] = {}
    for view, sel in (("val full strips", va & (k == 0)), ("val 10 s crops", va & (k == 1))):
        res = {"n": int(sel.sum()), "median_beats": float(np.median(B[sel]))}
        cnn_pred = L[sel].argmax(1)
        res["CNN alone"] = scores(y[sel], cnn_pred)
        for name, model in stacks.items():
            pred = predict(model, L[sel], F[sel]).argmax(1)
            res[name] = scores(y[sel], pred)
            for t in BEAT_THRESHOLDS:
                gated = np.where(B[sel] >= t, pred, cnn_pred)
                res[f"{name}, only with >= {t} beats"] = scores(y[sel], gated)
        results[view] = res
    for view, res in results.items():
        print(f"== {view}: n {res['n']}, median beats {res['median_beats']:.0f}")
        for name, r in res.items():
            if isinstance(r, dict):
                print(
                    f"  {name:55s} challenge {r['score']:.4f}  AF F1 {r['af_f1']:.4f}  F1 {r['f1']}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

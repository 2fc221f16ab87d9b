"""CinC 2017 single-lead strips -> the rhythm CNN's training arrays, with the seeded held-out split.

Each strip is resampled 300 -> 250 Hz and band-passed exactly as at run time
(backend.inference.ecg.preprocess), then stored as delta-coded int16 microvolts.

Split rule: CinC 2017 gives no patient ids, so each record is its own group (data README);
records are split 75/10/15 % train/val/test, stratified by class, numpy seed 2017.

    python -m training.ecg.rhythm_dataset --out .gpu/ecg/cinc250.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from backend.inference.ecg.preprocess import RHYTHM_FS, bandpass, resample
from training.common.shared_data import SHARED_DATA

DATA = SHARED_DATA / "ecg"
CLASSES = ("normal", "atrial_fibrillation", "other", "noisy")
LABEL_OF_RHYTHM = {"sinus_rhythm": 0, "atrial_fibrillation": 1, "other": 2, "noisy": 3}
SPLIT_SEED = 2017
SPLIT_NAMES = ("train", "val", "test")


def split_records(labels: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """0 train / 1 val / 2 test per record, stratified by class (each record is its own group)."""
    rng = np.random.default_rng(seed)
    split = np.zeros(len(labels), dtype=np.int8)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(0.15 * len(idx))
        n_val = round(0.10 * len(idx))
        split[idx[:n_test]] = 2
        split[idx[n_test : n_test + n_val]] = 1
    return split


def cv_folds(labels: np.ndarray, n_folds: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """Fold 0..n_folds-1 of each record in `labels` (the train + val records, in dataset order),
    stratified by class: out-of-fold CNN scores for the second stage (rhythm_stack_train --oof)."""
    rng = np.random.default_rng(seed + 1)
    fold = np.zeros(len(labels), dtype=np.int8)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold[idx] = np.arange(len(idx)) % n_folds
    return fold


def load_cinc2017(data_dir: Path = DATA) -> tuple[list[str], list[np.ndarray], np.ndarray, int]:
    """Record ids, raw signals in mV, class indices, sampling rate."""
    lab = pd.read_csv(data_dir / "labels.csv")
    lab = lab[lab.source == "cinc2017"].set_index("record_id")
    z = np.load(data_dir / "records/cinc2017/signals.npz")
    ids = [str(i) for i in z["ids"]]
    delta, start, length = z["delta"], z["start"], z["length"]
    signals = [
        np.cumsum(delta[s : s + n].astype(np.int32)).astype(np.float64) / 1000.0
        for s, n in zip(start, length)
    ]
    y = np.array([LABEL_OF_RHYTHM[lab.loc[i, "rhythm"]] for i in ids], dtype=np.int8)
    return ids, signals, y, int(z["fs"])


def prepared_strip(x_mv: np.ndarray, fs: int) -> np.ndarray:
    return bandpass(resample(x_mv, fs, RHYTHM_FS), RHYTHM_FS)


def build(out: Path, limit: int | None = None) -> None:
    ids, signals, y, fs = load_cinc2017()
    split = split_records(y)
    if limit:
        keep = np.random.default_rng(0).permutation(len(ids))[:limit]
        ids, signals, y, split = (
            [ids[i] for i in keep],
            [signals[i] for i in keep],
            y[keep],
            split[keep],
        )
    coded, lengths = [], []
    for x in signals:
        uv = np.round(prepared_strip(x, fs) * 1000).astype(np.int32)
        uv = np.clip(uv, -32000, 32000)
        coded.append(np.diff(uv, prepend=0).astype(np.int16))
        lengths.append(len(uv))
    lengths_a = np.array(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths_a)[:-1]])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        ids=np.array(ids),
        delta=np.concatenate(coded),
        start=starts,
        length=lengths_a,
        y=y,
        split=split,
        fs=RHYTHM_FS,
        classes=np.array(CLASSES),
    )
    for s, name in enumerate(SPLIT_NAMES):
        print(name, np.bincount(y[split == s], minlength=4).tolist())


def decode(z) -> list[np.ndarray]:
    """Band-passed 250 Hz strips in mV from a file written by build()."""
    d = z["delta"]
    return [
        np.cumsum(d[s : s + n].astype(np.int32)).astype(np.float32) / 1000.0
        for s, n in zip(z["start"], z["length"])
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(".gpu/ecg/cinc250.npz"))
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    build(args.out, args.limit)

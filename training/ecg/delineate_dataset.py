"""LUDB (cardiologist P/QRS/T marks on all 12 leads) -> global wave masks for the delineation model,
the reference global intervals, and the seeded patient split.

Global boundaries follow IEC 60601-2-51: per beat, the earliest onset and the latest offset over
all leads. P and T marks are attached to the beat whose QRS follows (P) or precedes (T) them.

Split rule: LUDB has one record per subject, so the record is the patient group; 25 % of the
records of each rhythm are held out for testing (numpy seed 11) and never trained on. For tuning
the post-processing (which needs errors of a model that has not seen the records), the training
records are split once more: `tuning_folds` puts 25 % of each rhythm in "val" (seed 12); a model
trained on the "fit" side only is scored on "val", and the shipped model is trained on all of them.

    python -m training.ecg.delineate_dataset --out .gpu/ecg/ludb_train.npz
    python -m training.ecg.delineate_dataset --fold fit --out .gpu/ecg/ludb_fit.npz
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from backend.inference.ecg.preprocess import DELINEATION_FS, bandpass, standard_lead_matrix
from backend.inference.ecg.record import STANDARD_LEADS
from training.common.shared_data import SHARED_DATA

DATA = SHARED_DATA / "ecg"
SPLIT_SEED = 11
TUNING_SEED = 12
IGNORE = -1
BG, P, QRS, T = 0, 1, 2, 3


def ludb_labels(data_dir: Path = DATA) -> pd.DataFrame:
    lab = pd.read_csv(data_dir / "labels.csv")
    return lab[lab.source == "ludb"].reset_index(drop=True)


def _hold_out_per_rhythm(lab: pd.DataFrame, seed: int, names: tuple[str, str]) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    split = {}
    for _, group in lab.groupby("rhythm", sort=True):
        ids = list(rng.permutation(group.record_id.to_numpy()))
        n_out = round(0.25 * len(ids))
        for i, rid in enumerate(ids):
            split[rid] = names[0] if i < n_out else names[1]
    return split


def ludb_split(data_dir: Path = DATA, seed: int = SPLIT_SEED) -> dict[str, str]:
    """record_id -> "test" (held out, never tuned on) or "train"."""
    return _hold_out_per_rhythm(ludb_labels(data_dir), seed, ("test", "train"))


def tuning_folds(data_dir: Path = DATA, seed: int = TUNING_SEED) -> dict[str, str]:
    """Training record_id -> "val" or "fit" (the held-out test records are not in it)."""
    lab = ludb_labels(data_dir)
    split = ludb_split(data_dir)
    train = lab[lab.record_id.map(split) == "train"]
    return _hold_out_per_rhythm(train, seed, ("val", "fit"))


# LUDB diagnoses that widen or deform the QRS complex: few of the training records have them,
# and the held-out records with the largest QRS errors (bundle-branch blocks, pacing) are these.
WIDE_QRS_DIAGNOSIS = re.compile(
    r"bundle branch block|ventricular pacing|intravintricular conduction delay", re.IGNORECASE
)


def has_wide_qrs_diagnosis(dx_codes: str) -> bool:
    return bool(WIDE_QRS_DIAGNOSIS.search(dx_codes or ""))


def wide_qrs_records(data_dir: Path = DATA) -> set[str]:
    lab = ludb_labels(data_dir)
    return set(lab.record_id[lab.dx_codes.fillna("").map(has_wide_qrs_diagnosis)])


@dataclass
class GlobalBeat:
    qrs_on: int
    qrs_off: int
    qrs_peak: int
    p_on: int | None = None
    p_off: int | None = None
    t_on: int | None = None
    t_off: int | None = None


def _valid(values: pd.Series) -> list[int]:
    return [int(v) for v in values if v >= 0]


def global_beats(fid: pd.DataFrame) -> list[GlobalBeat]:
    """Beats of one record with global (all-lead) boundaries, in sample units at 500 Hz."""
    # One beat's QRS marks overlap in time across leads; consecutive beats' marks never do.
    qrs = fid[(fid.wave == "QRS") & (fid.onset >= 0) & (fid.offset >= 0)].sort_values("onset")
    groups: list[list[int]] = []
    group_end = -1
    for idx, on, off in zip(qrs.index, qrs.onset, qrs.offset):
        if groups and on <= group_end:
            groups[-1].append(idx)
            group_end = max(group_end, off)
        else:
            groups.append([idx])
            group_end = off
    beats = []
    for g in groups:
        rows = qrs.loc[g]
        on, off = _valid(rows.onset), _valid(rows.offset)
        if not on or not off:
            continue
        beats.append(GlobalBeat(min(on), max(off), int(np.median(rows.peak))))
    if not beats:
        return beats
    ons = np.array([b.qrs_on for b in beats])
    for wave in ("P", "T"):
        rows = fid[fid.wave == wave]
        attach: dict[int, list[pd.Series]] = {}
        for _, r in rows.iterrows():
            if wave == "P":  # P belongs to the next QRS
                k = int(np.searchsorted(ons, r.peak, side="right"))
                if k >= len(beats):
                    continue
            else:  # T belongs to the previous QRS
                k = int(np.searchsorted(ons, r.peak, side="right")) - 1
                if k < 0:
                    continue
            attach.setdefault(k, []).append(r)
        for k, rs in attach.items():
            frame = pd.DataFrame(rs)
            on, off = _valid(frame.onset), _valid(frame.offset)
            if not on or not off:
                continue
            if wave == "P":
                beats[k].p_on, beats[k].p_off = min(on), max(off)
            else:
                beats[k].t_on, beats[k].t_off = min(on), max(off)
    return beats


def annotated_span(fid: pd.DataFrame) -> tuple[int, int]:
    on = fid.onset[fid.onset >= 0]
    off = fid.offset[fid.offset >= 0]
    return int(on.min()), int(off.max())


def label_mask(beats: list[GlobalBeat], span: tuple[int, int], n: int) -> np.ndarray:
    mask = np.full(n, IGNORE, dtype=np.int8)
    mask[span[0] : span[1] + 1] = BG
    for b in beats:
        if b.p_on is not None:
            mask[b.p_on : b.p_off + 1] = P
        if b.t_on is not None:
            mask[b.t_on : b.t_off + 1] = T
    for b in beats:  # QRS wins where a wide T or P touches it
        mask[b.qrs_on : b.qrs_off + 1] = QRS
    return mask


def lead_label_masks(fid: pd.DataFrame, n: int) -> np.ndarray:
    """(12, n) wave labels of each lead's own marks (STANDARD_LEADS order; IGNORE outside the
    lead's annotated span or where the lead has no marks). Targets for the auxiliary per-lead
    head of delineate_train --lead-loss-weight."""
    out = np.full((len(STANDARD_LEADS), n), IGNORE, dtype=np.int8)
    for k, lead in enumerate(STANDARD_LEADS):
        rows = fid[(fid.lead.str.lower() == lead.lower()) & (fid.onset >= 0) & (fid.offset >= 0)]
        if rows.empty:
            continue
        out[k, rows.onset.min() : rows.offset.max() + 1] = BG
        for wave, cls in (("P", P), ("T", T), ("QRS", QRS)):  # QRS last: it wins an overlap
            for on, off in zip(rows.onset[rows.wave == wave], rows.offset[rows.wave == wave]):
                out[k, on : off + 1] = cls
    return out


def reference_intervals(
    beats: list[GlobalBeat], fs: int = DELINEATION_FS
) -> dict[str, float | None]:
    """Median over annotated beats of global PR, QRS, QT (ms) and HR from the mean RR (bpm)."""
    ms = 1000.0 / fs
    pr = [(b.qrs_on - b.p_on) * ms for b in beats if b.p_on is not None]
    qrs = [(b.qrs_off - b.qrs_on) * ms for b in beats]
    qt = [(b.t_off - b.qrs_on) * ms for b in beats if b.t_off is not None]
    peaks = np.array([b.qrs_peak for b in beats])
    rr = np.diff(peaks) / fs
    return {
        "hr_bpm": float(60.0 / rr.mean()) if len(rr) else None,
        "pr_ms": float(np.median(pr)) if len(pr) >= max(2, len(beats) // 2) else None,
        "qrs_ms": float(np.median(qrs)) if qrs else None,
        "qt_ms": float(np.median(qt)) if qt else None,
    }


def load_record(record_id: str, data_dir: Path = DATA) -> tuple[np.ndarray, list[str], int]:
    rec = wfdb.rdrecord(str(data_dir / "records/ludb" / record_id))
    return rec.p_signal, list(rec.sig_name), int(rec.fs)


def fiducials(data_dir: Path = DATA) -> pd.DataFrame:
    return pd.read_csv(data_dir / "fiducials.csv")


def build(out: Path, fold: str = "train") -> None:
    """fold "train": every training record (the shipped model); "fit": the tuning fold's fit side."""
    split = ludb_split() if fold == "train" else tuning_folds()
    fid_all = fiducials()
    xs, masks, lead_masks, ids = [], [], [], []
    for rid in sorted(r for r, s in split.items() if s == fold):
        fid = fid_all[fid_all.record_id == rid]
        sig, names, fs = load_record(rid)
        assert fs == DELINEATION_FS
        mat, _ = standard_lead_matrix(sig, names)
        filt = bandpass(mat, fs)
        xs.append(np.clip(np.round(filt * 1000), -32000, 32000).astype(np.int16).T)
        masks.append(label_mask(global_beats(fid), annotated_span(fid), sig.shape[0]))
        lead_masks.append(lead_label_masks(fid, sig.shape[0]))
        ids.append(rid)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x=np.stack(xs),
        mask=np.stack(masks),
        lead_mask=np.stack(lead_masks),
        ids=np.array(ids),
    )
    print(f"{len(ids)} {fold} records -> {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(".gpu/ecg/ludb_train.npz"))
    ap.add_argument("--fold", choices=("train", "fit"), default="train")
    args = ap.parse_args()
    build(args.out, args.fold)

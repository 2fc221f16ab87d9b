"""The pacemaker-spike detector (backend.inference.ecg.pacing) on every record of the data folder.

Twelve-lead records (LUDB, PTB-XL, Georgia, Ningbo): a record is paced when its statements name
pacing ("... pacing.") or atrial-synchronous pacing ("P-synchrony."); only LUDB has such records
(8 of the 169 here). Per record: the spikes found, the beats they started, and the app's full result
(label and urgency). Then how many unpaced records were called paced.

CinC 2017 strips (AliveCor lead I, 300 Hz): no pacing labels, and few handheld-device users are
paced, so every strip called paced is counted and listed for a look; strips with fewer than two
spikes cannot be paced (pacing.MIN_PACED_BEATS) and are not analysed.

The detector's thresholds were set while looking at these same records (there is no other paced
ECG here), so the figures show that it works on them, not how it generalises; the synthetic tests
(tests/inference/ecg/test_pacing.py) pin its behaviour.

    python -m training.ecg.eval_pacing [--out training/ecg/eval_pacing_results.txt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from backend.inference.ecg import pacing
from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.readers import read_ecg_path
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError
from backend.inference.registry import ModelRegistry
from training.common.progress import progress_bar
from training.common.shared_data import SHARED_DATA
from training.ecg.rhythm_dataset import CLASSES, load_cinc2017

DATA = SHARED_DATA / "ecg"
PACED_STATEMENTS = ("pacing.", "P-synchrony.")


def is_paced_by_statement(dx: object) -> bool:
    return isinstance(dx, str) and any(s in dx for s in PACED_STATEMENTS)


def twelve_lead(registry: ModelRegistry) -> list[str]:
    lab = pd.read_csv(DATA / "labels.csv")
    lab = lab[lab.n_leads == 12].reset_index(drop=True)
    paced_rows, false_paced, n_unpaced = [], [], 0
    bar = progress_bar(len(lab), "twelve-lead records", unit="record")
    for row in lab.itertuples():
        record = read_ecg_path(DATA / f"{row.path}.hea")
        result = analyze_ecg_record(record, registry)
        detail = result["intervals_detail"]["pacing"]
        paced_truth = is_paced_by_statement(row.dx_codes)
        if paced_truth:
            statement = "; ".join(
                s.strip() for s in row.dx_codes.split(";") if "pacing" in s or "synchrony" in s
            )
            paced_rows.append(
                f"  {row.record_id}  {statement:56s} spikes {detail['spikes']:3d}  paced beats "
                f"{detail['paced_beats']:2d}/{result['intervals_detail']['n_beats']:2d} "
                f"({detail['chambers'] or '-'})  -> {result['label']}, {result['urgency']}"
            )
        else:
            n_unpaced += 1
            if result["label"] == "paced_rhythm":
                false_paced.append(row.record_id)
        bar.update(1)
    bar.close()
    found = sum("-> paced_rhythm" in r for r in paced_rows)
    return [
        (f"twelve-lead records: {len(lab)}; paced by their statements ({', '.join(PACED_STATEMENTS)}):"
        f" {len(paced_rows)}"),
        f"paced records called paced_rhythm: {found}/{len(paced_rows)}",
        *paced_rows,
        f"unpaced records called paced_rhythm: {len(false_paced)}/{n_unpaced}"
        + (f" ({', '.join(false_paced)})" if false_paced else ""),
    ]


def cinc_strips(registry: ModelRegistry) -> list[str]:
    ids, signals, y, fs = load_cinc2017()
    called, with_spikes = [], 0
    bar = progress_bar(len(ids), "CinC 2017 strips", unit="strip")
    for record_id, x, label in zip(ids, signals, y):
        # the app's own result, for the strips that could be paced at all
        if len(pacing.spike_times_s(x[:, None], fs, ["I"])) >= 2:
            with_spikes += 1
            record = EcgRecord(signal=x[:, None], fs=float(fs), lead_names=["I"], source="file")
            try:
                result = analyze_ecg_record(record, registry)
            except UnusableInputError:
                result = None
            if result is not None and result["label"] == "paced_rhythm":
                detail = result["intervals_detail"]["pacing"]
                called.append(f"{record_id} ({CLASSES[label]}, {detail})")
        bar.update(1)
    bar.close()
    return [
        (f"CinC 2017 strips (single lead, {fs} Hz, no pacing labels): {len(ids)}; with >= 2 spikes:"
        f" {with_spikes}; called paced: {len(called)}"),
        *(f"  {c}" for c in called),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    registry = ModelRegistry(args.weights, threads=1)
    lines = [
        ("Pacemaker spikes (backend/inference/ecg/pacing.py): "
        f"spike >= {pacing.SPIKE_MIN_MV} mV second difference, {pacing.SPIKE_OVER_BACKGROUND}x "
        f"the 4-10 ms before it, in {pacing.MIN_CHANNELS} independent leads; paced rhythm when "
        f">= {pacing.PACED_BEAT_SHARE:.0%} of beats have a spike at their QRS onset or a PR "
        f"before it and >= {pacing.TIED_SPIKE_SHARE:.0%} of spikes start a beat"),
        *twelve_lead(registry),
        *cinc_strips(registry),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

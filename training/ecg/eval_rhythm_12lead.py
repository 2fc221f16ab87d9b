"""The FULL rhythm output (CNN family + brady/normal/tachy split + SVT rule) on every twelve-lead
record of the data folder (LUDB, PTB-XL, Georgia, Ningbo): per-class accuracy (recall), per
source, and the confusion; written onto the rhythm model's card as metrics.twelve_lead.

None of these records was used to train the rhythm CNN (CinC 2017 only). LUDB's held-out
delineation split does not matter here; all 12-lead records are scored.

    python -m training.ecg.eval_rhythm_12lead
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.readers import read_ecg_path
from backend.inference.errors import UnusableInputError
from backend.inference.registry import ModelRegistry

DATA = Path("/work/shared/data/ecg")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--no-card", action="store_true")
    args = ap.parse_args()
    registry = ModelRegistry(args.weights, threads=1)
    lab = pd.read_csv(DATA / "labels.csv")
    lab = lab[lab.n_leads == 12].reset_index(drop=True)
    confusion: dict[str, Counter] = defaultdict(Counter)
    per_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in lab.itertuples():
        sex = row.sex if isinstance(row.sex, str) else None
        try:
            got = analyze_ecg_record(read_ecg_path(DATA / f"{row.path}.hea"), registry, sex=sex)[
                "rhythm"
            ]
        except UnusableInputError:
            got = "refused"
        confusion[row.rhythm][got] += 1
        per_source[row.source][0] += int(got == row.rhythm)
        per_source[row.source][1] += 1
    classes = sorted(confusion)
    predicted = sorted({p for c in confusion.values() for p in c})
    per_class = {
        c: {
            "n": sum(confusion[c].values()),
            "accuracy": round(confusion[c][c] / sum(confusion[c].values()), 3),
        }
        for c in classes
    }
    total = sum(v["n"] for v in per_class.values())
    correct = sum(confusion[c][c] for c in classes)
    lines = [
        f"Full rhythm output on {total} twelve-lead records (ludb, ptbxl, georgia, ningbo)",
        f"{'true rhythm':30s} {'n':>4s} {'accuracy':>9s}   predictions",
    ]
    for c in classes:
        preds = ", ".join(f"{p} {n}" for p, n in confusion[c].most_common())
        lines.append(f"{c:30s} {per_class[c]['n']:4d} {per_class[c]['accuracy']:9.3f}   {preds}")
    lines.append(
        f"overall accuracy {correct / total:.3f}; per source: "
        + ", ".join(f"{s} {a}/{n}" for s, (a, n) in sorted(per_source.items()))
    )
    text = "\n".join(lines)
    print(text)
    if args.no_card:
        return
    card_path = args.weights / "ecg_rhythm.json"
    card = json.loads(card_path.read_text())
    card["metrics"]["twelve_lead"] = {
        "records": total,
        "sources": sorted(per_source),
        "per_class_accuracy": per_class,
        "overall_accuracy": round(correct / total, 3),
        "per_source_accuracy": {s: round(a / n, 3) for s, (a, n) in per_source.items()},
        "confusion": {c: dict(confusion[c]) for c in classes},
        "predicted_labels": predicted,
        "lead_choice": "lead II (first of backend.inference.ecg.rhythm.RHYTHM_LEADS with >= 8 s)",
        "pipeline": "CNN + RR second stage (ecg_rhythm_stack) on that lead, then the label rules of "
        "backend.inference.ecg.rhythm.final_rhythm",
        "caveat": "these 220 records are the only twelve-lead rhythm data here: they are not a "
        "tuning-free test of the label rules (the sinus-tachycardia rule, thresholds."
        "DOMINANT_RR_SHARE, was written after reading why tachycardic records were called other)",
        "measured_by": "training/ecg/eval_rhythm_12lead.py",
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()

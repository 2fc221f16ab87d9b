"""What a phone photo of an ECG print costs the analysis: the app's result from the digitised
photo against its result from the record the sheet was printed from.

    .venv/bin/python -m training.ecg.eval_photo_analysis [--n SHEETS_PER_MODE] [--tuning] [--out FILE]

The records are the digitiser's held-out list (eval_digitize.holdout_records, never tuned on;
--tuning scores the rest). Each is rendered as a clean scan and as a phone-like photo in the 3x4 +
rhythm II and 6x2 layouts (eval_digitize's seeds), digitised with digitize_photo and analysed with
analyze_ecg_record, as `carelens analyze ecg PHOTO` does. Two references: the record read from
its file (what the app says of the file), and the samples the sheet prints read exactly (a 3x4
sheet prints each lead for 2.5 s only: what the layout costs before any digitising). Printed: per
interval, the differences between the three (mean, SD, median, share within 20 ms), how often
an interval measured from a reference is missing from the other, the rhythm label's and the
urgency's agreement with the changes listed, and how many photos were refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from backend.inference.dispatch import digitize_print
from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.digitize import digitize_photo
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import UnusableInputError
from backend.inference.registry import default_registry
from training.ecg.eval_digitize import _provenance, holdout_records, sheet_plan, tuning_records
from training.ecg.render import DATA_DIR, FS, load_twelve_lead, render_sample, scanned_pdf

INTERVALS = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms")


def file_record(signals: dict[str, np.ndarray]) -> EcgRecord:
    """The record as a file holds it (leads NaN where `signals` are: the printed samples only)."""
    names = list(signals)
    return EcgRecord(
        signal=np.stack([signals[n] for n in names], axis=1),
        fs=float(FS),
        lead_names=names,
        source="file",
    )


def _result_columns(prefix: str, result: dict) -> dict:
    return {
        f"{prefix}_label": result["label"],
        f"{prefix}_urgency": result["urgency"],
        **{f"{prefix}_{k}": result["intervals"][k] for k in INTERVALS},
    }


def compare(records: list[str], n_per_mode: int, modes, log=print) -> pd.DataFrame:
    """One row per sheet: the file's and the photo's result side by side."""
    registry = default_registry()
    lab = pd.read_csv(DATA_DIR / "labels.csv").set_index("record_id")
    rows, from_file = [], {}
    for mode in modes:
        t_start = time.time()
        for k, (rid, seed, layout) in enumerate(sheet_plan(records, n_per_mode)):
            signals = load_twelve_lead(DATA_DIR / lab.loc[rid, "path"])
            if rid not in from_file:
                from_file[rid] = analyze_ecg_record(file_record(signals), registry)
            ref = from_file[rid]
            # a PDF sheet is the clean scan of the same seed, read through the PDF path
            sheet_mode = "clean" if mode == "pdf" else mode
            r = render_sample(signals, seed=seed, mode=sheet_mode, layout=layout)
            row = {
                "record": rid,
                "seed": seed,
                "mode": mode,
                "layout": layout,
                **_result_columns("file", ref),
                # the same samples the sheet prints, read exactly: what the layout alone costs
                **_result_columns("printed", analyze_ecg_record(file_record(r.truth), registry)),
            }
            try:
                record = (
                    digitize_print(scanned_pdf(r.image)) if mode == "pdf"
                    else digitize_photo(r.image)
                )
                got = analyze_ecg_record(record, registry)
            except UnusableInputError as exc:
                row.update(refused=exc.message)
            else:
                row.update(refused="", **_result_columns("photo", got))
            rows.append(row)
            if (k + 1) % 10 == 0:
                log(f"  [{mode}] {k + 1}/{n_per_mode} sheets ({time.time() - t_start:.0f} s)")
    return pd.DataFrame(rows)


def interval_differences(read: pd.DataFrame, a: str, b: str) -> list[str]:
    lines = [
        f"  {a} - {b}: {'n':>5}{'mean':>8}{'SD':>8}{'median':>8}{'close':>7}{'lost':>7}",
    ]
    for k in INTERVALS:
        both = read[read[f"{a}_{k}"].notna() & read[f"{b}_{k}"].notna()]
        lost = int((read[f"{b}_{k}"].notna() & read[f"{a}_{k}"].isna()).sum())
        d = (both[f"{a}_{k}"] - both[f"{b}_{k}"]).astype(float).to_numpy()
        tol = 5.0 if k == "hr_bpm" else 20.0
        stats = (
            f"{d.mean():>8.1f}{d.std(ddof=1):>8.1f}{np.median(d):>8.1f}"
            f"{np.mean(np.abs(d) <= tol):>7.0%}"
            if len(d) > 1
            else " " * 31
        )
        lines.append(f"    {k:<{len(a) + len(b) + 1}}{len(d):>5}{stats}{lost:>7}")
    return lines


def _agreement(read: pd.DataFrame, a: str, b: str) -> list[str]:
    same_label = (read[f"{a}_label"] == read[f"{b}_label"]).mean()
    same_urgency = (read[f"{a}_urgency"] == read[f"{b}_urgency"]).mean()
    lines = [f"  {a} as {b}: rhythm label {same_label:.1%}, urgency {same_urgency:.1%}"]
    for what in ("label", "urgency"):
        moved = Counter(
            f"{x} -> {y}"
            for x, y in zip(read[f"{b}_{what}"], read[f"{a}_{what}"], strict=True)
            if x != y
        )
        lines += [f"    {what} {change}: {cnt}" for change, cnt in moved.most_common()]
    return lines


def summarise(df: pd.DataFrame, n_records: int) -> str:
    lines = [
        f"records: {n_records}; sheets: {len(df)}",
        "file: the record read from its file; printed: the samples the sheet prints, read exactly;",
        "photo: the sheet digitised. Differences in ms (hr_bpm in bpm); close: within 20 ms",
        "(5 bpm); lost: measured from the second, null from the first.",
        "",
    ]
    for mode, m in df.groupby("mode", sort=False):
        read = m[m.refused == ""]
        lines.append(f"[{mode}] {len(m)} sheets, {len(m) - len(read)} refused")
        lines += interval_differences(read, "photo", "file")
        lines += interval_differences(read, "printed", "file")
        lines += interval_differences(read, "photo", "printed")
        lines += _agreement(read, "photo", "file")
        lines += _agreement(read, "printed", "file")
        for lay, part in read.groupby("layout"):
            lines.append(
                f"    {lay}: photo label as file {(part.photo_label == part.file_label).mean():.1%}"
                f", urgency {(part.photo_urgency == part.file_urgency).mean():.1%} "
                f"({len(part)} sheets)"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=88, help="sheets per mode (default 88: 2 per record)")
    ap.add_argument("--tuning", action="store_true", help="score the tuning records instead")
    ap.add_argument(
        "--modes",
        default="clean,phone",
        help="comma-separated: clean, phone, pdf (the clean scan saved as an image PDF)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--csv", type=Path, default=None, help="write the per-sheet table here")
    args = ap.parse_args(argv)
    recs = tuning_records() if args.tuning else holdout_records()
    modes = tuple(m for m in args.modes.split(",") if m)
    print(f"{len(recs)} records; {args.n} sheets per mode", flush=True)
    df = compare(recs, args.n, modes, log=lambda m: print(m, flush=True))
    if args.csv:
        df.to_csv(args.csv, index=False)
    text = summarise(df, len(recs))
    print(text)
    if args.out:
        args.out.write_text(_provenance(args, "eval_photo_analysis.py") + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A watch's ECG PDF read back: real CinC 2017 strips (AliveCor lead I, the closest real signal to
an Apple Watch's) drawn as the Health app's PDF (render.wearable_pdf), then read by the app
(backend.inference.dispatch: PDFium -> photo digitiser with the single-lead rows -> analysis).

Per strip it compares the result from the PDF with the result from the strip's own samples
(analyze_ecg_record on the 300 Hz signal): same rhythm label, heart-rate difference, and both
against the strip's CinC label (as a rhythm family). The strips come from the rhythm model's
VALIDATION split (rhythm_dataset.split_records) that last at least 30 s, up to --per-class of
each family, cut to their first 30 s: a watch always records 30 s, printed as three 10 s rows.
Since rhythm 2.0.0 (five fold models trained on train + val) those strips are training data of
the rhythm model, so the accuracy against the CinC label is in-sample; the PDF-vs-samples
agreement, which measures the digitisation, is what this script is for.

--rows-check measures what the digitiser's ONE_LEAD_MIN_CORR rests on: the QRS-template
similarity (digitize.qrs_template_similarity) of the twelve 2.5 s pieces a 3x4 sheet prints, on
every twelve-lead record of ../shared/data/ecg, against twelve consecutive 2.5 s pieces of 30 s
CinC 2017 strips (one lead throughout, as on a watch's print read as a 3x4 sheet).

--sheets-check N does the same on pixels: the digitiser's held-out twelve-lead records
(eval_digitize.holdout_records) drawn as 3x4 sheets WITHOUT a rhythm strip (three rows, the
layout a watch's print could pass for), N clean scans and N phone photos; it counts how many are
taken for a watch's print (layout lead-I-rows). It should be none.

    python -m training.ecg.eval_watch_pdf --per-class 25
    python -m training.ecg.eval_watch_pdf --rows-check
    python -m training.ecg.eval_watch_pdf --sheets-check 100
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import pandas as pd

from backend.inference.dispatch import analyze_files
from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.record import EcgRecord
from training.common.progress import progress_bar
from training.ecg.eval_photo_analysis import INTERVALS, interval_differences
from training.ecg.render import wearable_pdf
from training.ecg.rhythm_dataset import CLASSES, DATA, load_cinc2017, split_records

WATCH_S = 30.0


def family(rhythm: str) -> str:
    """The contract's rhythm label as the CinC 2017 family it belongs to."""
    if rhythm.startswith("sinus_"):
        return "normal"
    if rhythm in ("atrial_fibrillation", "noisy"):
        return rhythm
    return "noisy" if rhythm == "unreadable" else "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows-check", action="store_true")
    ap.add_argument("--sheets-check", type=int, default=0, metavar="N")
    args = ap.parse_args()
    if args.sheets_check:
        sheets_check(args.sheets_check)
        return
    ids, signals, y, fs = load_cinc2017()
    if args.rows_check:
        rows_check(signals, y, fs)
        return
    long_enough = np.array([len(x) >= WATCH_S * fs for x in signals])
    val = np.flatnonzero((split_records(y) == 1) & long_enough)
    rng = np.random.default_rng(args.seed)
    chosen = np.concatenate(
        [rng.permutation(val[y[val] == c])[: args.per_class] for c in range(len(CLASSES))]
    )
    rows = []
    bar = progress_bar(len(chosen), "watch PDFs", unit="strip")
    for i in chosen:
        x = signals[i][: int(WATCH_S * fs)]
        x = x - np.median(x)
        direct = analyze_ecg_record(
            EcgRecord(signal=x[:, None], fs=float(fs), lead_names=["I"], source="file")
        )
        document = wearable_pdf(x, fs)
        t0 = time.perf_counter()
        try:
            pdf = analyze_files("ecg", {"ecg.pdf": document})
            refused = None
        except Exception as exc:  # noqa: BLE001 - a refusal is a result here, counted below
            pdf, refused = None, getattr(exc, "message", repr(exc))
        rows.append(
            {
                "id": ids[i],
                "label": CLASSES[y[i]],
                "direct": direct["rhythm"],
                "pdf": pdf["rhythm"] if pdf else "refused",
                "refused": refused,
                **{f"samples_{k}": direct["intervals"][k] for k in INTERVALS},
                **{f"pdf_{k}": pdf["intervals"][k] if pdf else None for k in INTERVALS},
                "seconds": time.perf_counter() - t0,
            }
        )
        bar.update()
    bar.close()
    report(rows, fs)


def rows_check(signals: list[np.ndarray], y: np.ndarray, fs: int) -> None:
    from scipy.signal import resample_poly

    from backend.inference.ecg.digitize import FS_OUT, ONE_LEAD_MIN_CORR, qrs_template_similarity
    from training.ecg.render import LAYOUT_3X4, load_twelve_lead

    piece = int(2.5 * FS_OUT)
    labels = pd.read_csv(DATA / "labels.csv")
    twelve = labels[labels.n_leads == 12]
    sheets = []
    bar = progress_bar(len(twelve), "12-lead records", unit="record")
    for path in twelve.path:
        lead = load_twelve_lead(DATA / path)  # 500 Hz = FS_OUT
        pieces = [lead[name][c * piece : (c + 1) * piece]
                  for row in LAYOUT_3X4 for c, name in enumerate(row)]
        sheets.append(qrs_template_similarity(pieces))
        bar.update()
    bar.close()
    long_ones = [i for i, x in enumerate(signals) if len(x) >= WATCH_S * fs]
    watches, classes = [], []
    bar = progress_bar(len(long_ones), "30 s strips", unit="strip")
    for i in long_ones:
        x = resample_poly(signals[i][: int(WATCH_S * fs)], FS_OUT, fs)
        watches.append(qrs_template_similarity([x[k * piece : (k + 1) * piece] for k in range(12)]))
        classes.append(y[i])
        bar.update()
    bar.close()
    s12 = np.array([v for v in sheets if v is not None])
    print(f"QRS-template similarity of a 3x4 sheet's twelve pieces, {len(sheets)} twelve-lead "
          f"records ({len(sheets) - s12.size} without enough beats): max {s12.max():.3f}, "
          f"99th percentile {np.quantile(s12, 0.99):.3f}, median {np.median(s12):.3f}")
    sw = np.array([np.nan if v is None else v for v in watches])
    cls = np.array(classes)
    print(f"... of twelve consecutive pieces of one lead, {sw.size} CinC 2017 strips of 30 s+: "
          f"median {np.nanmedian(sw):.3f}")
    for threshold in (0.6, 0.65, ONE_LEAD_MIN_CORR, 0.75, 0.8):
        flagged = int((s12 >= threshold).sum())
        found = np.nan_to_num(sw, nan=-1) >= threshold
        per_class = ", ".join(f"{c} {found[cls == k].mean():.2f}" for k, c in enumerate(CLASSES))
        mark = "  <- ONE_LEAD_MIN_CORR" if threshold == ONE_LEAD_MIN_CORR else ""
        print(f"  threshold {threshold:.2f}: twelve-lead sheets taken for one lead {flagged}/"
              f"{s12.size}; one-lead strips found {found.mean():.3f} ({per_class}){mark}")


def sheets_check(n_per_mode: int) -> None:
    from backend.inference.ecg.digitize import CONTINUOUS_LAYOUT, digitize_photo
    from backend.inference.errors import UnusableInputError
    from training.ecg.eval_digitize import holdout_records, record_path
    from training.ecg.render import load_twelve_lead, render_sample

    records = holdout_records()
    for mode in ("clean", "phone"):
        layouts: Counter = Counter()
        bar = progress_bar(n_per_mode, f"{mode} 3-row sheets", unit="sheet")
        for k in range(n_per_mode):
            signals = load_twelve_lead(record_path(records[k % len(records)]))
            rendered = render_sample(signals, seed=k, mode=mode, layout="3x4-no-rhythm")
            try:
                layouts[digitize_photo(rendered.image).meta["layout"]] += 1
            except UnusableInputError:
                layouts["refused"] += 1
            bar.update()
        bar.close()
        print(f"[{mode}] {n_per_mode} held-out 12-lead sheets of three rows (no rhythm strip), "
              f"read as: {dict(layouts)}; taken for a watch's print: "
              f"{layouts[CONTINUOUS_LAYOUT]}")


def report(rows: list[dict], fs: int) -> None:
    n = len(rows)
    read = [r for r in rows if r["pdf"] != "refused"]
    same = sum(r["pdf"] == r["direct"] for r in read)
    same_family = sum(family(r["pdf"]) == family(r["direct"]) for r in read)
    intervals = pd.DataFrame(
        read, columns=[f"{p}_{k}" for p in ("pdf", "samples") for k in INTERVALS]
    ).astype(float)
    hr = (intervals.pdf_hr_bpm - intervals.samples_hr_bpm).dropna().to_numpy()
    print(f"CinC 2017 validation strips drawn as a watch's PDF and read back: {n} ({fs} Hz source)")
    print(f"read: {len(read)}/{n}; refused: {n - len(read)}")
    for r in rows:
        if r["refused"]:
            print(f"  refused {r['id']} ({r['label']}): {r['refused']}")
    print(f"same rhythm label as the strip's own samples: {same}/{len(read)}")
    print(f"same rhythm family: {same_family}/{len(read)}")
    if hr.size:
        print(
            f"heart rate, PDF - samples: mean {hr.mean():+.2f} bpm, SD {hr.std():.2f}, "
            f"within 2 bpm {np.mean(np.abs(hr) <= 2):.0%} (n={hr.size})"
        )
    print("family accuracy against the CinC label, per class (samples / PDF):")
    for c in CLASSES:
        sub = [r for r in rows if r["label"] == c]
        if sub:
            a = np.mean([family(r["direct"]) == c for r in sub])
            b = np.mean([family(r["pdf"]) == c for r in sub])
            print(f"  {c:20s} n={len(sub):3d}  {a:.2f} / {b:.2f}")
    print("PDF vs samples label pairs that differ:",
          dict(Counter((r["direct"], r["pdf"]) for r in read if r["pdf"] != r["direct"])))
    # what PDF_INTERVALS_NOTE rests on: one lead's intervals from the print against the samples'
    print("intervals, PDF against the strip's own samples (ms; close: within 20 ms, 5 bpm):")
    print("\n".join(interval_differences(intervals, "pdf", "samples")))
    secs = np.array([r["seconds"] for r in rows])
    print(f"seconds to read and analyse one PDF: median {np.median(secs):.2f}")


if __name__ == "__main__":
    main()

"""Per-lead SNR of the photo digitiser on a held-out split of the twelve-lead records.

    .venv/bin/python -m training.ecg.eval_digitize [--n SHEETS_PER_MODE] [--out FILE]

The held-out list (>= 40 records, grouped by patient, seeded) is written once to
training/ecg/digitize_holdout.txt and never used for tuning; `tuning_records()` gives the rest.
Each held-out record is rendered several times with different seeds, as a clean scan and as a
phone-like photo, in the 3x4 + rhythm II and 6x2 layouts, and digitised.

SNR follows the PhysioNet Challenge 2024 definition: per lead, over the window where the lead is
printed, the output is shifted by up to +-0.2 s and its vertical offset removed (the shift with
the best SNR is kept); SNR = 10 log10(sum(truth^2) / sum((output - truth)^2)). NaN output inside
the window counts as 0 mV; a lead that is printed but not found scores 0 dB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from backend.inference.ecg.digitize import digitize_photo
from backend.inference.errors import UnusableInputError
from training.ecg.render import DATA_DIR, FS, load_twelve_lead, render_sample

HOLDOUT_FILE = Path(__file__).with_name("digitize_holdout.txt")
HOLDOUT_SEED = 20240610
HOLDOUT_N = 44
MAX_SHIFT_S = 0.2


def snr_db(truth: np.ndarray, output: np.ndarray | None, fs: int = FS) -> float:
    """Challenge SNR of one lead; `truth` is NaN outside the printed window."""
    if output is None:
        return 0.0
    win = np.isfinite(truth)
    if win.sum() < 10:
        return float("nan")
    idx = np.nonzero(win)[0]
    i0, i1 = idx[0], idx[-1] + 1
    t = truth[i0:i1]
    max_shift = round(MAX_SHIFT_S * fs)
    out = np.nan_to_num(np.asarray(output, dtype=np.float64), nan=0.0)
    out = np.pad(out, (max_shift, max_shift))
    power = float(np.sum(t**2))
    if power <= 0:
        return float("nan")
    best = -np.inf
    for shift in range(-max_shift, max_shift + 1):
        o = out[i0 + shift + max_shift : i1 + shift + max_shift]
        d = o - t
        noise = float(np.sum((d - d.mean()) ** 2)) + 1e-12
        best = max(best, 10 * np.log10(power / noise))
    return float(best)


def score_record(truth: dict[str, np.ndarray], record) -> dict[str, float]:
    """lead -> SNR for every printed lead (0 dB for leads not found)."""
    out = {}
    for lead, tr in truth.items():
        sig = record.lead(lead) if record is not None and lead in record.lead_names else None
        n = len(tr)
        if sig is not None and len(sig) != n:
            sig = np.pad(sig, (0, max(0, n - len(sig))), constant_values=np.nan)[:n]
        out[lead] = snr_db(tr, sig) if sig is not None else 0.0
    return out


def holdout_records(data_dir: Path = DATA_DIR) -> list[str]:
    """The fixed held-out list (written on first use), grouped by patient_id."""
    if HOLDOUT_FILE.exists():
        return [
            ln.strip()
            for ln in HOLDOUT_FILE.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
    lab = pd.read_csv(data_dir / "labels.csv")
    lab = lab[lab.n_leads == 12]
    patients = sorted(lab.patient_id.unique())
    rng = np.random.default_rng(HOLDOUT_SEED)
    chosen = set(rng.permutation(patients)[:HOLDOUT_N])
    recs = sorted(lab[lab.patient_id.isin(chosen)].record_id)
    HOLDOUT_FILE.write_text(
        "# Held-out twelve-lead records for the photo digitiser (never used for tuning).\n"
        f"# {len(recs)} records of {len(chosen)} patients, seed {HOLDOUT_SEED}, grouped by patient_id.\n"
        + "\n".join(recs)
        + "\n"
    )
    return recs


def tuning_records(data_dir: Path = DATA_DIR) -> list[str]:
    lab = pd.read_csv(data_dir / "labels.csv")
    lab = lab[lab.n_leads == 12]
    held = set(holdout_records(data_dir))
    held_patients = set(lab[lab.record_id.isin(held)].patient_id)
    return sorted(lab[~lab.patient_id.isin(held_patients)].record_id)


def record_path(record_id: str, data_dir: Path = DATA_DIR) -> Path:
    lab = pd.read_csv(data_dir / "labels.csv")
    return data_dir / lab.set_index("record_id").loc[record_id, "path"]


def sheet_plan(records: list[str], n_per_mode: int, seed0: int = 0):
    """(record, seed, layout) of each sheet of one mode: the records in turn, 3x4 and 6x2 in
    turn, a new seed per sheet. eval_photo_analysis draws the same sheets."""
    for k in range(n_per_mode):
        seed = seed0 + 1000 * (k // len(records)) + k
        yield records[k % len(records)], seed, ("3x4", "6x2")[k % 2]


def evaluate(
    records: list[str], n_per_mode: int, modes=("clean", "phone"), seed0: int = 0, log=print
) -> dict[str, pd.DataFrame]:
    lab = pd.read_csv(DATA_DIR / "labels.csv").set_index("record_id")
    results = {}
    for mode in modes:
        rows = []
        t_start = time.time()
        for k, (rid, seed, layout) in enumerate(sheet_plan(records, n_per_mode, seed0)):
            sig = load_twelve_lead(DATA_DIR / lab.loc[rid, "path"])
            r = render_sample(sig, seed=seed, mode=mode, layout=layout)
            t0 = time.time()
            try:
                rec = digitize_photo(r.image)
                err = ""
            except UnusableInputError as exc:
                rec, err = None, exc.message
            except Exception as exc:  # noqa: BLE001 -- a crash scores as a rejection and is listed
                rec, err = None, f"CRASH {type(exc).__name__}: {exc}"[:200]
            dt = time.time() - t0
            snrs = score_record(r.truth, rec)
            for lead, v in snrs.items():
                rows.append(
                    {
                        "record": rid,
                        "seed": seed,
                        "layout": layout,
                        "lead": lead,
                        "snr": v,
                        "found": rec is not None and lead in rec.lead_names,
                        "error": err,
                        "secs": dt,
                    }
                )
            if (k + 1) % 10 == 0:
                df = pd.DataFrame(rows)
                log(
                    f"  [{mode}] {k + 1}/{n_per_mode} sheets, median SNR so far "
                    f"{df.snr.median():.2f} dB ({time.time() - t_start:.0f} s)"
                )
        results[mode] = pd.DataFrame(rows)
    return results


def summarise(results: dict[str, pd.DataFrame], n_records: int, tuning: bool = False) -> str:
    records = "tuning records" if tuning else "held-out records"
    listed = "all but" if tuning else "list:"
    lines = [f"{records}: {n_records} ({listed} {HOLDOUT_FILE.name})", ""]
    lines.append(
        f"{'mode':<7}{'sheets':>7}{'leads':>7}{'found':>8}{'p10':>8}{'p50':>8}{'p90':>8}"
        f"{'mean':>8}{'rejected':>10}{'s/sheet':>9}"
    )
    for mode, df in results.items():
        sheets = df.groupby(["record", "seed"]).ngroups
        rejected = df[df.error != ""].groupby(["record", "seed"]).ngroups
        p10, p50, p90 = np.nanpercentile(df.snr, [10, 50, 90])
        lines.append(
            f"{mode:<7}{sheets:>7}{len(df):>7}{df.found.mean():>8.1%}{p10:>8.2f}{p50:>8.2f}"
            f"{p90:>8.2f}{df.snr.mean():>8.2f}{rejected:>10}{df.secs.mean() * 1:>9.2f}"
        )
    lines.append("")
    for mode, df in results.items():
        lines.append(
            f"[{mode}] median SNR (dB) by layout: "
            + ", ".join(f"{k} {v:.2f}" for k, v in df.groupby("layout").snr.median().items())
        )
        lines.append(
            f"[{mode}] median SNR (dB) by lead: "
            + ", ".join(f"{k} {v:.1f}" for k, v in df.groupby("lead").snr.median().items())
        )
        errs = df[df.error != ""].groupby(["record", "seed"]).error.first().value_counts()
        for msg, cnt in errs.items():
            lines.append(f"[{mode}] rejected {cnt}x: {msg}")
    return "\n".join(lines)


def _provenance(args, script: str = "eval_digitize.py") -> str:
    """First line of the results file: how and from which commit it was produced."""
    import datetime
    import subprocess

    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        rev = "?"
    split = "tuning" if args.tuning else "held-out"
    return (
        f"# training/ecg/{script} --n {args.n} --modes {args.modes} ({split}), "
        f"{datetime.date.today().isoformat()}, digitiser at commit {rev or '?'}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="sheets per mode (default 200)")
    ap.add_argument("--out", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--tuning", action="store_true", help="score the tuning records instead")
    ap.add_argument("--modes", default="clean,phone", help="comma-separated: clean, phone")
    args = ap.parse_args(argv)
    recs = tuning_records() if args.tuning else holdout_records()
    print(
        f"{'tuning' if args.tuning else 'held-out'} records: {len(recs)}; {args.n} sheets per mode",
        flush=True,
    )
    modes = tuple(m for m in args.modes.split(",") if m)
    res = evaluate(recs, args.n, modes=modes, log=lambda m: print(m, flush=True))
    text = summarise(res, len(recs), tuning=args.tuning)
    print(text)
    if args.out:
        args.out.write_text(_provenance(args) + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

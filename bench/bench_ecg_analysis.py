"""ECG analysis latency: a 10 s 12-lead WFDB file -> the full result JSON, on 2 CPU threads,
and the rhythm / delineation models under ONNX Runtime vs torch eager in the same run.

    .venv/bin/python bench/bench_ecg_analysis.py [--record /path/to/record.hea] [--runs 30]

Without --record it uses LUDB record 2 from ../shared/data when present, otherwise a synthetic
12-lead ECG written as WFDB. Torch eager runs the same architectures with random weights (the
exported ONNX is the shipped artefact; speed does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

THREADS = 2
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from backend.inference.ecg.analyze import analyze_ecg_record
from backend.inference.ecg.readers import read_ecg_path
from backend.inference.registry import ModelRegistry
from bench.timing import time_calls
from training.common.shared_data import SHARED_DATA

LUDB_RECORD = SHARED_DATA / "ecg" / "records" / "ludb" / "ludb_002.hea"


def timed(fn, runs: int) -> tuple[float, float, float]:
    """p50 and p90 wall time and p50 process CPU time (ms)."""
    wall, cpu = time_calls(fn, runs)
    return float(np.median(wall)), float(np.percentile(wall, 90)), float(np.median(cpu))


def synthetic_record(tmp: Path) -> Path:
    import wfdb

    sys.path.insert(0, str(ROOT / "tests" / "inference" / "ecg"))
    from ecg_synth import synthetic_ecg

    rec = synthetic_ecg(hr=72)
    wfdb.wrsamp(
        "synthetic",
        fs=500,
        units=["mV"] * 12,
        sig_name=rec.lead_names,
        p_signal=rec.signal,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp),
    )
    return tmp / "synthetic.hea"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    path = args.record or (LUDB_RECORD if LUDB_RECORD.exists() else synthetic_record(tmp))
    registry = ModelRegistry(ROOT / "weights", threads=THREADS)

    def full() -> dict:
        return analyze_ecg_record(read_ecg_path(path), registry)

    result = full()
    rows = [
        ("full result (read + quality + delineate + rhythm + explain)", *timed(full, args.runs))
    ]

    import torch

    from training.ecg.delineate_model import DelineationEnsemble, DelineationUNet
    from training.ecg.rhythm_model import RhythmEnsemble, RhythmNet

    torch.set_num_threads(THREADS)
    rhythm = registry.get("ecg_rhythm")
    members = int(rhythm.card.get("ensemble_members", 1))
    torch_rhythm = (
        RhythmNet() if members == 1 else RhythmEnsemble([RhythmNet() for _ in range(members)])
    ).eval()
    x_r = np.random.default_rng(0).standard_normal((1, 1, 2500)).astype(np.float32)
    delin = registry.get("ecg_delineate")
    delin_members = int(delin.card.get("ensemble_members", 1))
    torch_delin = (
        DelineationUNet()
        if delin_members == 1
        else DelineationEnsemble([DelineationUNet() for _ in range(delin_members)])
    ).eval()
    x_d = np.random.default_rng(0).standard_normal((1, 12, 5008)).astype(np.float32)

    def torch_run(model, x):
        with torch.inference_mode():
            model(torch.from_numpy(x))

    ort_r = timed(lambda: rhythm.run(x_r), args.runs * 3)
    tch_r = timed(lambda: torch_run(torch_rhythm, x_r), args.runs * 3)
    ort_d = timed(lambda: delin.run(x_d), args.runs)
    tch_d = timed(lambda: torch_run(torch_delin, x_d), args.runs)
    rows += [
        (f"rhythm CNN x{members}, 1 lead x 10 s, ONNX Runtime", *ort_r),
        (f"rhythm CNN x{members}, 1 lead x 10 s, torch eager", *tch_r),
        (f"delineation U-Net x{delin_members}, 12 x 10 s, ONNX Runtime", *ort_d),
        (f"delineation U-Net x{delin_members}, 12 x 10 s, torch eager", *tch_d),
    ]
    print(f"record: {path} ({len(result['leads'])} leads); threads: {THREADS}; runs: {args.runs}")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work inflates times)"
    )
    print(f"result: rhythm={result['rhythm']} intervals={result['intervals']}")
    print(f"{'step':62s} {'p50 ms':>8s} {'p90 ms':>8s} {'CPU p50':>8s}")
    for name, p50, p90, cpu in rows:
        print(f"{name:62s} {p50:8.1f} {p90:8.1f} {cpu:8.1f}")
    print(
        f"torch eager / ONNX Runtime p50: rhythm {tch_r[0] / ort_r[0]:.2f}x, delineation {tch_d[0] / ort_d[0]:.2f}x"
    )
    print(
        f"target full result p50 <= 100 ms: {'met' if rows[0][1] <= 100 else 'NOT met'} "
        f"(wall {rows[0][1]:.0f} ms; CPU time {rows[0][3]:.0f} ms over {THREADS} threads)"
    )


if __name__ == "__main__":
    main()

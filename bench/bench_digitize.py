"""Photo (12 MP JPEG) -> WFDB: wall time p50/p90 on 2 threads and peak memory.

    .venv/bin/python bench/bench_digitize.py [--runs 7]

The photo is a rendered, "photographed" 3x4 sheet (training/ecg/render.py, synthetic signal) at
4000x3000 px, JPEG-encoded. Timed path = what `carelens digitize` does: load_image_rgb(bytes)
-> digitize_photo -> write_wfdb. Compared with the same photo downscaled to 2000 px on the long
side first (what the PWA uploads after client-side downscaling).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.inference.ecg.digitize import digitize_photo, write_wfdb
from backend.inference.images import load_image_rgb
from training.ecg.render import render_sample, synthetic_twelve_lead


def make_photo(long_side: int) -> bytes:
    r = render_sample(
        synthetic_twelve_lead(2), seed=21, mode="phone", layout="3x4", out_long_side=long_side
    )
    img = r.image
    h, w = img.shape[:2]
    if long_side == 4000 and (w, h) != (4000, 3000):
        img = cv2.resize(img, (4000, 3000), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def run_once(data: bytes, out_dir: Path) -> tuple[float, float]:
    """Wall and process CPU seconds (CPU time is the figure that survives a busy machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    rec = digitize_photo(load_image_rgb(data))
    write_wfdb(rec, out_dir, "bench")
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    cv2.setNumThreads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, side in (("12 MP JPEG (4000x3000)", 4000), ("downscaled 2000 px", 2000)):
            data = make_photo(side)
            run_once(data, Path(tmp))  # warm-up (imports, allocator)
            both = np.array([run_once(data, Path(tmp)) for _ in range(args.runs)])
            times, cpu = both[:, 0], both[:, 1]
            tracemalloc.start()
            run_once(data, Path(tmp))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append(
                (
                    label,
                    len(data) / 1e6,
                    np.percentile(times, 50),
                    np.percentile(times, 90),
                    np.percentile(cpu, 50),
                    peak / 2**20,
                )
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"photo -> WFDB, cv2 threads = {cv2.getNumThreads()}, runs = {args.runs}")
    print(
        f"{'input':<26}{'JPEG MB':>9}{'p50 s':>8}{'p90 s':>8}{'p50 cpu s':>11}{'peak traced MiB':>17}"
    )
    for label, mb, p50, p90, cpu50, peak in rows:
        print(f"{label:<26}{mb:>9.2f}{p50:>8.2f}{p90:>8.2f}{cpu50:>11.2f}{peak:>17.0f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"process peak RSS (ru_maxrss): {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

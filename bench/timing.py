"""Per-call timing shared by the bench scripts.

Each call is measured twice: wall-clock and process CPU time (which includes ONNX Runtime's
pool threads). On a shared, loaded machine the wall time mostly measures waiting for a core;
the CPU time is what the work itself costs (wall time on an idle machine is at most that).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(wall ms, CPU ms) per call over `runs` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return np.array(wall), np.array(cpu)

"""A bounded worker pool for ONNX inference.

ONNX Runtime calls block, so they run in threads, never on the event loop. The pool admits
at most `workers + queue_size` jobs; beyond that it refuses at once (the API answers 503 with
Retry-After) instead of building an unbounded backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from backend.services.errors import ServiceError


class InferenceBusyError(ServiceError):
    def __init__(self, retry_after_s: int):
        super().__init__(
            "CareLens is busy analysing other checks. Please try again in a few seconds.",
            status_code=503,
        )
        self.retry_after_s = retry_after_s


class InferencePool:
    def __init__(self, workers: int = 2, queue_size: int = 8):
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._admitted = 0
        self.latencies: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=2000))

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self, kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._admitted >= self.capacity:
            raise InferenceBusyError(retry_after_s=max(1, self._admitted // self.workers))
        self._admitted += 1
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))
        finally:
            self._admitted -= 1
            self.latencies[kind].append(time.perf_counter() - started)

    def latency_percentiles(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind, values in self.latencies.items():
            ordered = sorted(values)
            if not ordered:
                continue

            def pct(p: float, ordered=ordered) -> float:
                return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)

            out[kind] = {"n": len(ordered), "p50_ms": pct(0.5), "p95_ms": pct(0.95),
                         "p99_ms": pct(0.99)}
        return out

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

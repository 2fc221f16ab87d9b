"""Load test: a realistic mix against a real `carelens serve` (SQLite, then PostgreSQL with
several workers), printing throughput, p50/p95/p99 per request type and errors.

    .venv/bin/python bench/load.py                      # 50 users x 60 s, SQLite then PostgreSQL
    .venv/bin/python bench/load.py --users 20 --seconds 20 --only sqlite

The mix per virtual user, with think time between steps: open the home page, the vitals page,
log a blood pressure reading, read the vitals list, and every few rounds upload a skin photo
(inference). 503 answers from the inference pool (backpressure, with Retry-After) are
counted apart from errors: they are the designed answer to overload, not a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live_server import LiveServer

PAGE_KINDS = {"GET /", "GET /vitals"}


def skin_photo() -> bytes:
    rng = np.random.default_rng(7)
    img = np.full((768, 1024, 3), (200, 160, 140), np.uint8)
    yy, xx = np.mgrid[:768, :1024]
    img[(yy - 384) ** 2 + (xx - 512) ** 2 < 150**2] = (95, 60, 45)
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.shed = 0

    def record(self, kind: str, seconds: float, status: int | None) -> None:
        if status is None or (status >= 500 and status != 503) or (400 <= status < 500):
            self.errors[f"{kind} -> {status}"] += 1
        elif status == 503:
            self.shed += 1
        else:
            self.latency[kind].append(seconds)


async def sign_up(client: httpx.AsyncClient, index: int) -> dict:
    email = f"load{index}-{uuid.uuid4().hex[:6]}@example.org"
    password = "load test passphrase"
    await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    token = (await client.post("/api/v1/auth/token",
                               json={"email": email, "password": password})).json()["token"]
    return {"Authorization": f"Bearer {token}"}


async def virtual_user(client: httpx.AsyncClient, index: int, headers: dict, deadline: float,
                       photo: bytes, stats: Stats, upload_every: int) -> None:
    rng = random.Random(index)
    round_no = 0
    while time.perf_counter() < deadline:
        round_no += 1
        steps = [("GET /", "GET", "/", {}), ("GET /vitals", "GET", "/vitals", {}),
                 ("POST /api/v1/vitals", "POST", "/api/v1/vitals", {"json": {
                     "type": "blood_pressure", "systolic": rng.randint(105, 150),
                     "diastolic": rng.randint(65, 95), "unit": "mmHg",
                     "measured_at": "2026-11-20T08:00:00+09:00"}}),
                 ("GET /api/v1/vitals", "GET", "/api/v1/vitals?type=blood_pressure", {})]
        if round_no % upload_every == index % upload_every:
            steps.append(("POST /api/v1/checks/skin", "POST", "/api/v1/checks/skin",
                          {"files": {"file": ("spot.jpg", photo, "image/jpeg")}}))
        for kind, method, path, kwargs in steps:
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            try:
                hdrs = headers if path.startswith("/api/") else {}
                response = await client.request(method, path, headers=hdrs, **kwargs)
                status = response.status_code
            except httpx.HTTPError:
                status = None
            stats.record(kind, time.perf_counter() - started, status)
            await asyncio.sleep(rng.uniform(0.2, 0.6))  # think time


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


async def run_load(url: str, users: int, seconds: float, upload_every: int) -> Stats:
    stats = Stats()
    photo = skin_photo()
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        # Accounts are made before the clock starts (argon2 hashing is deliberately slow).
        headers = [await sign_up(client, i) for i in range(users)]
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(virtual_user(client, i, headers[i], deadline, photo, stats,
                                            upload_every) for i in range(users)))
    return stats


def report(name: str, stats: Stats, seconds: float) -> dict:
    total = sum(len(v) for v in stats.latency.values())
    errors = sum(stats.errors.values())
    print(f"\n== {name}: {total} ok requests in {seconds:.0f} s = {total / seconds:.1f} req/s, "
          f"errors {errors}, shed by backpressure (503) {stats.shed}")
    print(f"{'request':28} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind in sorted(stats.latency):
        values = stats.latency[kind]
        print(f"{kind:28} {len(values):>6} {pct(values, .5):>8.1f} {pct(values, .95):>8.1f} "
              f"{pct(values, .99):>8.1f}")
    pages = [v for k in PAGE_KINDS for v in stats.latency.get(k, [])]
    page_p95 = pct(pages, 0.95)
    print(f"pages p95 while inference runs: {page_p95:.1f} ms (target <= 100 ms)")
    for key, count in sorted(stats.errors.items()):
        print(f"  error {key}: {count}")
    return {"errors": errors, "page_p95": page_p95}


def postgres_database() -> tuple[str, callable]:
    import asyncpg

    admin = os.environ.get("CARELENS_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
    name = f"carelens_load_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin.replace("postgres://", "postgresql://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    return admin.rsplit("/", 1)[0] + f"/{name}", lambda: asyncio.run(
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--upload-every", type=int, default=6,
                        help="each user uploads a photo every N rounds")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--pg-workers", type=int, default=2)
    parser.add_argument("--sqlite-workers", type=int, default=1)
    args = parser.parse_args()
    env_common = {"CARELENS_RATE_LIMIT_AUTH": "100000", "CARELENS_RATE_LIMIT_UPLOAD": "100000",
                  "CARELENS_INFERENCE_QUEUE": "4"}
    results = {}
    if args.only in (None, "sqlite"):
        server = LiveServer(Path(tempfile.mkdtemp(prefix="load-sqlite-")),
                            env={**env_common, "CARELENS_WORKERS": str(args.sqlite_workers)})
        server.start()
        try:
            stats = asyncio.run(run_load(server.url, args.users, args.seconds, args.upload_every))
            results["sqlite"] = report(f"SQLite, {args.sqlite_workers} worker(s)", stats,
                                       args.seconds)
        finally:
            server.stop()
    if args.only in (None, "postgres"):
        url, drop = postgres_database()
        data = Path(tempfile.mkdtemp(prefix="load-pg-"))
        server = LiveServer(data, env={**env_common, "DATABASE_URL": url})
        server.env["CARELENS_WORKERS"] = str(args.pg_workers)
        server.start()
        try:
            stats = asyncio.run(run_load(server.url, args.users, args.seconds, args.upload_every))
            results["postgres"] = report(f"PostgreSQL, {args.pg_workers} workers", stats,
                                         args.seconds)
        finally:
            server.stop()
            drop()
    ok = all(r["errors"] == 0 for r in results.values())
    print("\nresult:", "0 errors" if ok else "ERRORS", {k: round(v["page_p95"], 1)
                                                        for k, v in results.items()})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Nearest-place query on 100,000 places in SQLite: the service's bounding box + haversine
(lat/lon indexes) against the obvious alternative, haversine over the whole table in Python.

    .venv/bin/python bench/bench_places.py [--places 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PICCOLO_CONF", "backend.piccolo_conf")

from backend.services import places
from backend.settings import Settings
from backend.tables.db import configure_database, run_migrations
from backend.tables.places import Place

# Where Korea's ~100k medical institutions are: dense in the big cities, sparse elsewhere.
CITIES = [(37.55, 126.98, 0.12, 0.45), (35.16, 129.06, 0.08, 0.15), (37.45, 126.70, 0.06, 0.08),
          (35.87, 128.60, 0.06, 0.08), (35.15, 126.85, 0.05, 0.06), (36.35, 127.38, 0.05, 0.06)]


def random_place(rng: random.Random) -> tuple:
    r = rng.random()
    acc = 0.0
    for lat, lon, spread, weight in CITIES:
        acc += weight
        if r < acc:
            return lat + rng.gauss(0, spread), lon + rng.gauss(0, spread * 1.2)
    return rng.uniform(34.5, 38.3), rng.uniform(126.3, 129.4)


def fill(db_path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lat, lon = random_place(rng)
        kind = rng.choices(places.KINDS, weights=[8, 50, 25, 5, 6, 6])[0]
        rows.append((f"place {i}", kind, f"address {i}", "", lat, lon, "bench"))
    with sqlite3.connect(db_path) as db:
        db.executemany("INSERT INTO places (name, kind, address, phone, lat, lon, source) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("ANALYZE")


async def full_scan_nearest(lat: float, lon: float, kind: str | None, limit: int) -> list:
    """The obvious alternative: every row into Python, haversine each, sort."""
    query = Place.select(Place.id, Place.name, Place.kind, Place.lat, Place.lon)
    if kind:
        query = query.where(Place.kind == kind)
    rows = await query
    ranked = sorted(rows, key=lambda r: places.haversine_km(lat, lon, r["lat"], r["lon"]))
    return ranked[:limit]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def bench(n_places: int, n_queries: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-places-"))
    settings = replace(Settings(), data_dir=tmp, database_url="", database_pool=False)
    await run_migrations(settings)
    configure_database(settings)
    t0 = time.perf_counter()
    fill(settings.sqlite_path, n_places)
    print(f"filled {n_places:,} places into {settings.sqlite_path} in "
          f"{time.perf_counter() - t0:.1f} s")

    rng = random.Random(1)
    # Query points: people in Seoul (most users) and anywhere in the country.
    points = [(37.55 + rng.gauss(0, 0.08), 126.98 + rng.gauss(0, 0.1)) if i % 4 else
              (rng.uniform(34.8, 38.0), rng.uniform(126.6, 129.2)) for i in range(n_queries)]
    kinds = [None, None, "pharmacy", "dermatology", "ent", "cardiology"]

    results = []
    for label, fn, count in (("bbox + haversine (service)", places.nearest, n_queries),
                             ("full table haversine in Python", full_scan_nearest,
                              max(10, n_queries // 10))):
        timings = []
        for i, (lat, lon) in enumerate(points[:count]):
            kind = kinds[i % len(kinds)]
            start = time.perf_counter()
            if fn is places.nearest:
                await fn(lat, lon, kind=kind, limit=10)
            else:
                await fn(lat, lon, kind, 10)
            timings.append((time.perf_counter() - start) * 1000)
        results.append((label, count, statistics.median(timings), pct(timings, 0.95),
                        max(timings)))

    # Same answers: the service's top 10 equals the full scan's top 10.
    mismatches = 0
    for lat, lon in points[:20]:
        a = [p.id for p in await places.nearest(lat, lon, limit=10)]
        b = [r["id"] for r in await full_scan_nearest(lat, lon, None, 10)]
        mismatches += a != b

    print(f"\nnearest 10 of {n_places:,} places, SQLite, 1 process")
    print(f"{'method':<34}{'queries':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, count, p50, p95, worst in results:
        print(f"{label:<34}{count:>8}{p50:>10.2f}{p95:>10.2f}{worst:>10.2f}")
    print(f"speed-up at p50: {results[1][2] / results[0][2]:.0f}x; "
          f"top-10 mismatches vs full scan: {mismatches}/20")
    ok = results[0][3] < 20 and mismatches == 0
    print("PASS: p95 < 20 ms and identical answers" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--places", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    return asyncio.run(bench(args.places, args.queries))


if __name__ == "__main__":
    sys.exit(main())

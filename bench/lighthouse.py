"""Lighthouse scores of the home page and the result pages under mobile emulation.

Runs the real app (`carelens serve` on a throwaway data dir), signs a user in, makes one check
per kind (a real analysis of the test fixtures when the weights are there; otherwise stored
results, said so in the output), then runs bench/lighthouse.mjs (npm lighthouse, Debian
chromium via CHROME_PATH) and prints performance / accessibility per page against the
targets (performance >= 90, accessibility >= 95).

    .venv/bin/python bench/lighthouse.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.checks_support import FIXTURE_IMAGES, PASSWORD, seed_results
from tests.browser.conftest import LiveServer

TARGETS = {"performance": 90, "accessibility": 95}


def sign_in(server: LiveServer, email: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=120)
    client.post("/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "display_name": "Bench"})
    page = client.get("/login").text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "_csrf_token": token, "next": "/"})
    assert response.status_code in (302, 303), response.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return client, cookie


def make_checks(server: LiveServer, client: httpx.Client, email: str) -> tuple[dict[str, int], str]:
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    ids: dict[str, int] = {}
    for kind, image in FIXTURE_IMAGES.items():
        response = client.post(f"/api/v1/checks/{kind}", headers={"x-csrftoken": token},
                               files={"file": (image.name, image.read_bytes(), "image/jpeg")})
        if response.status_code != 201:
            print(f"# {kind}: real analysis unavailable ({response.status_code}: "
                  f"{response.json().get('error')}); using stored results instead")
            return seed_results(server, email), "stored results"
        ids[kind] = response.json()["id"]
    return ids, "real analyses of tests/fixtures/checks"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp))
        server.start()
        try:
            email = "lighthouse@example.org"
            client, cookie = sign_in(server, email)
            ids, source = make_checks(server, client, email)
            urls = [server.url + "/"] + [f"{server.url}/checks/{ids[k]}" for k in ("ecg", "skin", "ear")]
            env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium"),
                   "LIGHTHOUSE_COOKIE": cookie}
            out = subprocess.run(["node", str(ROOT / "bench" / "lighthouse.mjs"), *urls], check=False,
                                 env=env,
                                 cwd=ROOT, capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                print(out.stderr[-3000:])
                return 1
            rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        finally:
            server.stop()
    names = {urls[0]: "home /", urls[1]: "result ECG", urls[2]: "result skin", urls[3]: "result ear"}
    print(f"Lighthouse (npm), mobile emulation, Debian chromium; results from {source}")
    print(f"{'page':<14}{'perf':>6}{'a11y':>6}{'best':>6}{'FCP ms':>8}{'LCP ms':>8}{'TBT ms':>8}{'CLS':>7}  ok")
    all_ok = True
    for row in rows:
        ok = all(row[k] >= v for k, v in TARGETS.items()) and not row["runtime_error"]
        all_ok &= ok
        cls = row["cls"] if row["cls"] is not None else float("nan")
        print(f"{names.get(row['url'], row['url']):<14}{row['performance']:>6}{row['accessibility']:>6}"
              f"{row['best_practices']:>6}{row['fcp_ms']:>8}{row['lcp_ms']:>8}{row['tbt_ms']:>8}"
              f"{cls:>7.3f}  {'yes' if ok else 'NO'}")
        if row["a11y_failed"] or row["runtime_error"]:
            print(f"    a11y audits below 0.9: {row['a11y_failed']}  error: {row['runtime_error']}")
        if not row["final_url"].startswith(row["url"]):
            print(f"    redirected to {row['final_url']}")
    print(f"targets: performance >= {TARGETS['performance']}, accessibility >= {TARGETS['accessibility']}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

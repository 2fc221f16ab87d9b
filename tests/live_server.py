"""`carelens serve` in a subprocess on a free port with its own data directory: for browser
tests, memory measurements and kill-the-server durability tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, data_dir: Path, env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CARELENS_DATA_DIR": str(self.data_dir), "PORT": str(self.port),
                    "HOST": "127.0.0.1", "SECRET_KEY": "live-test-secret", "DATABASE_URL": "",
                    "CARELENS_RATE_LIMIT_AUTH": "1000", "CARELENS_RATE_LIMIT_UPLOAD": "1000",
                    **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError((self.data_dir / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        raise RuntimeError("server did not start in 90 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — what a power cut or OOM kill does."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process: its peak resident memory so far."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def register(self, email: str, password: str = "correct horse battery staple") -> dict:
        httpx.post(self.url + "/api/v1/auth/register",
                   json={"email": email, "password": password}, timeout=30)
        token = httpx.post(self.url + "/api/v1/auth/token",
                           json={"email": email, "password": password}, timeout=30).json()["token"]
        return {"Authorization": f"Bearer {token}"}

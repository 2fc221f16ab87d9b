"""One Settings object, read from the environment (12-factor)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    data_dir: Path = PROJECT_ROOT / "data"
    database_url: str = ""  # empty -> SQLite file data_dir/carelens.sqlite
    database_pool: bool = True  # PostgreSQL connection pool (tests turn it off: one loop each)
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""  # empty -> generated once and kept under data_dir
    production: bool = False  # Secure cookies, HSTS
    weights_dir: Path = PROJECT_ROOT / "weights"
    inference_threads: int = 2  # ONNX Runtime intra-op threads per session
    inference_workers: int = 2  # concurrent inference jobs
    inference_queue: int = 8  # waiting jobs before 503
    rate_limit_auth_per_minute: int = 10
    rate_limit_upload_per_minute: int = 30
    trusted_proxies: tuple[str, ...] = ()
    vapid_private_key: str = ""  # empty -> generated once under data_dir
    vapid_subject: str = "mailto:admin@carelens.example.org"
    # Reminder scheduler in the app process (off by default so test apps stay quiet;
    # from_env turns it on unless CARELENS_SCHEDULER=0).
    scheduler_enabled: bool = False
    scheduler_interval_s: float = 30.0
    default_locale: str = "en"
    max_upload_bytes: int = 15 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    extra: dict = field(default_factory=dict)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "carelens.sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        data_dir = Path(env.get("CARELENS_DATA_DIR", str(PROJECT_ROOT / "data")))
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL", ""),
            host=env.get("HOST", "127.0.0.1"),
            port=int(env.get("PORT", "8000")),
            secret_key=env.get("SECRET_KEY", ""),
            production=_env_bool("CARELENS_PRODUCTION", False),
            weights_dir=Path(env.get("CARELENS_WEIGHTS_DIR", str(PROJECT_ROOT / "weights"))),
            inference_threads=int(env.get("CARELENS_INFERENCE_THREADS", "2")),
            inference_workers=int(env.get("CARELENS_INFERENCE_WORKERS", "2")),
            inference_queue=int(env.get("CARELENS_INFERENCE_QUEUE", "8")),
            rate_limit_auth_per_minute=int(env.get("CARELENS_RATE_LIMIT_AUTH", "10")),
            rate_limit_upload_per_minute=int(env.get("CARELENS_RATE_LIMIT_UPLOAD", "30")),
            trusted_proxies=_env_list("CARELENS_TRUSTED_PROXIES"),
            vapid_private_key=env.get("VAPID_PRIVATE_KEY", ""),
            vapid_subject=env.get("VAPID_SUBJECT", "mailto:admin@carelens.example.org"),
            scheduler_enabled=_env_bool("CARELENS_SCHEDULER", True),
            scheduler_interval_s=float(env.get("CARELENS_SCHEDULER_INTERVAL", "30")),
            default_locale=env.get("CARELENS_LOCALE", "en"),
        )

    def resolved_secret_key(self) -> str:
        """SECRET_KEY from the environment, else one generated on first start and kept."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()

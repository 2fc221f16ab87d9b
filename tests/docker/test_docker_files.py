"""Docker cannot run on these machines: validate what can be validated statically."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_app_and_postgres_with_healthchecks_and_volumes():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"app", "db"}
    assert services["db"]["image"].startswith("postgres:")
    assert "healthcheck" in services["db"] and "healthcheck" in services["app"]
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    env = services["app"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert any(v.endswith(":/app/data") for v in services["app"]["volumes"])
    assert set(compose["volumes"]) >= {"pgdata", "appdata"}
    build = services["app"]["build"]
    assert (ROOT / "docker" / build["context"] / build["dockerfile"]).exists()


def test_dockerfile_is_slim_non_root_and_installs_only_runtime_dependencies():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] != "root"
    installs = re.findall(r"^RUN pip install (.+)$", dockerfile, re.MULTILINE)
    assert installs == ["."], installs  # the project's runtime dependencies, no extras
    assert "torch" not in "\n".join(l for l in dockerfile.splitlines() if not l.startswith("#"))
    for copied in ("backend", "pwa", "weights"):
        assert re.search(rf"^COPY {copied}\b", dockerfile, re.MULTILINE), copied
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def test_torch_is_only_in_the_train_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert "torch" not in runtime
    assert any(dep.startswith("torch==") for dep in project["optional-dependencies"]["train"])
    assert project["name"] == "carelens"
    assert project["scripts"]["carelens"] == "backend.cli:main"


def test_runtime_code_never_imports_torch():
    offenders = [
        str(path.relative_to(ROOT)) for path in (ROOT / "backend").rglob("*.py")
        if re.search(r"^\s*(import torch|from torch)", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []

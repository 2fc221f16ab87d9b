"""`carelens migrate` and `carelens createadmin` as a user runs them."""

import asyncio
import os
import subprocess
import sys

from backend.services.accounts import verify_password
from backend.tables.db import configure_database
from tests.conftest import base_settings


def run_cli(args, data_dir, stdin=""):
    env = {**os.environ, "CARELENS_DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], input=stdin,
                          check=False, capture_output=True, text=True, env=env, timeout=120)


def test_createadmin_reads_password_from_stdin_and_makes_an_admin(tmp_path):
    assert run_cli(["migrate"], tmp_path).returncode == 0
    done = run_cli(["createadmin", "Boss@Example.org"], tmp_path, "a long admin passphrase\n")
    assert done.returncode == 0, done.stderr
    assert "boss@example.org" in done.stdout

    async def stored():
        from backend.tables.accounts import User

        configure_database(base_settings(tmp_path))
        return await User.objects().where(User.email == "boss@example.org").first()

    user = asyncio.run(stored())
    assert user.is_admin
    assert verify_password(user.password_hash, "a long admin passphrase")


def test_createadmin_refuses_a_short_password(tmp_path):
    result = run_cli(["createadmin", "a@example.org"], tmp_path, "short\n")
    assert result.returncode == 1
    assert "12 characters" in result.stderr


def test_analyze_reports_a_missing_file_as_exit_2_json(tmp_path):
    result = run_cli(["analyze", "skin", str(tmp_path / "nope.jpg"), "--json"], tmp_path)
    assert result.returncode == 2
    assert '"error"' in result.stdout and "not found" in result.stdout.lower()

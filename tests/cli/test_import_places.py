"""`carelens import-places FILE` as a real subprocess on a throwaway SQLite database."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "backend" / "sample_data" / "places_sample.csv"


def _run(tmp_path, *args):
    env = {**os.environ, "CARELENS_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}
    return subprocess.run([sys.executable, "-m", "backend.cli", "import-places", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_import_sample_file_then_replace(tmp_path):
    result = _run(tmp_path, str(SAMPLE), "--progress")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # 36 demo rows; the dental and oriental-medicine clinics are skipped.
    assert report == {"imported": 34, "skipped": 2, "format": "korean-public-data-csv"}
    assert "100%" in result.stderr
    again = _run(tmp_path, str(SAMPLE), "--replace")
    assert json.loads(again.stdout)["imported"] == 34
    with sqlite3.connect(tmp_path / "carelens.sqlite") as db:
        kinds = dict(db.execute("SELECT kind, COUNT(*) FROM places GROUP BY kind").fetchall())
        total = db.execute("SELECT COUNT(*) FROM places").fetchone()[0]
    assert total == 34  # --replace removed the first import of the same source
    assert kinds["pharmacy"] == 10 and kinds["dermatology"] == 4 and kinds["ent"] == 4
    assert kinds["cardiology"] == 4


def test_import_unknown_layout_exits_2_with_json_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = _run(tmp_path, str(bad))
    assert result.returncode == 2
    assert "Unknown CSV layout" in json.loads(result.stdout)["error"]

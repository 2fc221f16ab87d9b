"""Shared pieces of the check-flow browser tests: a fake camera fed by a real picture, a
signed-in phone context, seeded results, and axe-core run inside the page."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from PIL import Image

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS, PHONE
from tests.held_out import EARDRUM_CAMERA, SKIN_NV_CAMERA

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "checks"
# Test runs write screenshots to test-artifacts/; CARELENS_UPDATE_SCREENSHOTS=1 refreshes the
# committed ones in docs/screenshots (so an ordinary test run leaves the tree clean).
SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("CARELENS_UPDATE_SCREENSHOTS")
               else ROOT / "test-artifacts")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery staple"
FIXTURE_IMAGES = {
    "ecg": FIXTURES / "ecg_photo.jpg",
    "skin": SKIN_NV_CAMERA,
    "ear": EARDRUM_CAMERA,
}


def camera_feed(image: Path, out_dir: Path, size: tuple[int, int] = (1280, 960),
                frames: int = 20) -> Path:
    """An .mjpeg (concatenated JPEG frames) Chromium plays as the camera. The picture is
    letterboxed into a 4:3 frame so its aspect ratio stays as it was."""
    picture = Image.open(image).convert("RGB")
    frame = Image.new("RGB", size, (236, 236, 236))
    scale = min(size[0] / picture.width, size[1] / picture.height)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                             Image.Resampling.LANCZOS)
    frame.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
    path = out_dir / f"{image.stem}.mjpeg"
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", quality=92)
    path.write_bytes(buffer.getvalue() * frames)
    return path


def launch_with_camera(browser_type, feed: Path):
    return browser_type.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={feed}",
    ])


def phone_context(browser, **kwargs):
    return browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                               has_touch=True, locale="en-US", permissions=["camera"], **kwargs)


def sign_up(page, base_url: str) -> str:
    """Registers a fresh user through the form (which logs in); returns the e-mail."""
    email = f"user-{uuid.uuid4().hex[:8]}@example.org"
    page.goto(base_url + "/register")
    page.fill("#display_name", "Min")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form[action='/register'] button[type=submit]").click()
    page.wait_for_url(base_url + "/")
    return email


SEED_SCRIPT = """
import asyncio, json, sys
from backend.settings import get_settings
from backend.tables.db import configure_database
from backend.tables.accounts import User
from backend.tables.checks import Check

async def main(email, rows):
    configure_database(get_settings())
    user = await User.objects().where(User.email == email).first()
    ids = []
    for kind, result, photo in rows:
        name, media = "", ""
        if photo:
            import shutil, secrets
            settings = get_settings()
            settings.uploads_dir.mkdir(parents=True, exist_ok=True)
            name, media = secrets.token_hex(8) + ".jpg", "image/jpeg"
            shutil.copy(photo, settings.uploads_dir / name)
        check = Check(owner=user.id, kind=kind, status="done", result=result, input_file=name,
                      input_media_type=media, model_name=result["model"]["name"],
                      model_version=result["model"]["version"])
        await check.save()
        ids.append(check.id)
    print(json.dumps(ids))

asyncio.run(main(sys.argv[1], json.load(sys.stdin)))
"""


def seed_results(server, email: str) -> dict[str, int]:
    """Stores one finished check per kind for `email` in the live server's database (a
    separate process, so this test process keeps its own database engine)."""
    from tests.api.test_check_pages import ear_result, ecg_result, photo_and_mask, skin_result

    _photo, mask = photo_and_mask()
    rows = [("ecg", ecg_result(), None),
            ("skin", skin_result(mask), str(FIXTURE_IMAGES["skin"])),
            ("ear", ear_result(), str(FIXTURE_IMAGES["ear"]))]
    out = subprocess.run([sys.executable, "-c", SEED_SCRIPT, email], input=json.dumps(rows),
                         env=server.env, cwd=ROOT, capture_output=True, text=True, check=True)
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(zip(["ecg", "skin", "ear"], ids))


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Runs axe-core (npm package, injected from node_modules) on the current page."""
    assert AXE.exists(), "run `npm ci` at the repository root (axe-core)"
    # evaluate() runs through DevTools, outside the page's CSP (which forbids inline script).
    page.evaluate(AXE.read_text() + "\n;true")
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }")
    return [v for v in result if v["impact"] in impacts]


def save_screenshot(page, name: str, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path

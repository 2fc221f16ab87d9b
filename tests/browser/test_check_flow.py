"""The check flow in headless Chromium at 390x844 with a fake camera playing a real picture:
camera page -> capture -> upload (progress) -> analysis -> result page, for ECG, skin and
ear; the offline queue; and the plain form without JavaScript."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from tests.browser.checks_support import (
    FIXTURE_IMAGES,
    axe_violations,
    camera_feed,
    launch_with_camera,
    phone_context,
    save_screenshot,
    sign_up,
)
from tests.browser.conftest import PHONE
from tests.inference.ecg.ecg_synth import synthetic_ecg

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RESULT_URL = re.compile(r".*/checks/\d+$")
# Slow enough that a ~150 KB photo takes about a second: the progress bar has to move.
SLOW_UPLOAD = {"offline": False, "latency": 40, "downloadThroughput": -1,
               "uploadThroughput": 96 * 1024}


def wait_for_result(page, timeout_s: float = 90.0) -> None:
    """Until the result page opens; fails at once with the page's message if the check failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if RESULT_URL.match(page.url) and page.locator("h1#result-label").count():
            return
        error = page.locator("#capture-error, .error[role=alert]")
        if error.count() and error.first.is_visible():
            pytest.fail(f"the check failed: {error.first.inner_text()}")
        page.wait_for_timeout(300)
    pytest.fail(f"no result page after {timeout_s} s (at {page.url})")


def assert_trace_fills_the_box(page) -> None:
    page.wait_for_function("() => document.querySelector('img.trace').complete")
    trace_width, box_width = page.evaluate(
        "[document.querySelector('img.trace').getBoundingClientRect().width,"
        " document.querySelector('.trace-scroll').clientWidth]"
    )
    assert trace_width >= box_width - 1, (trace_width, box_width)


def open_camera(page, base_url: str, kind: str) -> None:
    page.goto(f"{base_url}/checks/{kind}")
    page.wait_for_selector("#camera:not([hidden])", timeout=15000)
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0",
                           timeout=15000)
    # The live hint ran on a real frame of the fixture picture.
    page.wait_for_function(
        "() => document.getElementById('camera-hint').dataset.brightness !== undefined",
                           timeout=10000)


@pytest.mark.parametrize("kind", ["ecg", "skin", "ear"])
def test_camera_capture_upload_progress_result(browser, live_server, tmp_path, kind):
    feed = camera_feed(FIXTURE_IMAGES[kind], tmp_path)
    camera_browser = launch_with_camera(browser.browser_type, feed)
    context = phone_context(camera_browser)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        sign_up(page, live_server.url)
        open_camera(page, live_server.url, kind)
        hint = page.locator("#camera-hint")
        assert int(hint.get_attribute("data-brightness")) > 50  # the picture, not black frames
        assert not axe_violations(page)
        save_screenshot(page, f"capture-{kind}")

        page.click("#capture-button")
        page.wait_for_selector("#camera-shot:not([hidden])")
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", SLOW_UPLOAD)
        with page.expect_request(lambda r: r.method == "POST" and "/api/v1/checks/" in r.url) as req:
            page.click("#use-button")
        assert "multipart/form-data" in req.value.headers.get("content-type", "")
        # A real progress bar: it shows a value strictly between 0 and 100 during the upload.
        page.wait_for_function(
            "() => { const p = document.getElementById('upload-progress');"
            " return p.hasAttribute('value') && p.value > 0 && p.value < 100; }", timeout=20000)
        save_screenshot(page, f"progress-{kind}")
        cdp.send("Network.emulateNetworkConditions", {**SLOW_UPLOAD, "uploadThroughput": -1})

        wait_for_result(page)
        assert page.locator(".disclaimer").inner_text().strip()
        assert page.locator("a[href$='/card.png']").count() == 1
        assert page.locator("a[href$='/report.pdf']").count() == 1
        if kind == "skin":
            assert page.locator("img.outline").count() == 1
        if kind == "ecg":
            assert page.locator("table.intervals tbody tr").count() == 5
            assert_trace_fills_the_box(page)
        assert not axe_violations(page)
        save_screenshot(page, f"result-{kind}")
        save_screenshot(page, f"result-{kind}-full", full_page=True)
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        context.close()
        camera_browser.close()


def test_offline_check_is_queued_then_sent_when_back_online(browser, live_server,
                                                            tmp_path):
    feed = camera_feed(FIXTURE_IMAGES["ear"], tmp_path)
    camera_browser = launch_with_camera(browser.browser_type, feed)
    context = phone_context(camera_browser)
    page = context.new_page()
    try:
        sign_up(page, live_server.url)
        open_camera(page, live_server.url, "ear")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        context.set_offline(True)
        page.click("#capture-button")
        page.click("#use-button")
        page.wait_for_selector("#queued:not([hidden])")
        queued = page.evaluate("""() => new Promise((resolve) => {
            const req = indexedDB.open('carelens', 1);
            req.onsuccess = () => { const t = req.result.transaction('queued-checks', 'readonly');
              const all = t.objectStore('queued-checks').getAll();
              all.onsuccess = () => resolve(all.result.map(r => ({kind: r.kind, n: r.files.length,
                                                                   size: r.files[0].blob.size}))); };
        })""")
        assert queued and queued[0]["kind"] == "ear" and queued[0]["size"] > 1000
        assert page.locator("#queued-list li[data-queued]").count() == 1
        save_screenshot(page, "offline-queued")

        context.set_offline(False)
        link = page.locator("#queued-list a[href^='/checks/']")
        link.wait_for(timeout=30000)
        page.wait_for_selector("#queued-list li.ready a[data-status]", timeout=90000)
        assert link.get_attribute("data-status") == "done"
        remaining = page.evaluate("""() => new Promise((resolve) => {
            const req = indexedDB.open('carelens', 1);
            req.onsuccess = () => { const all = req.result.transaction('queued-checks')
              .objectStore('queued-checks').count(); all.onsuccess = () => resolve(all.result); };
        })""")
        assert remaining == 0
        link.click()
        page.wait_for_url(RESULT_URL)
        assert page.locator("h1#result-label").inner_text().strip()
    finally:
        context.close()
        camera_browser.close()


def test_no_javascript_form_reports_unusable_photo(browser, live_server, tmp_path):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_up(page, live_server.url)
        page.goto(live_server.url + "/checks/ear")
        assert page.locator("#camera").is_hidden()
        bad = tmp_path / "not-a-photo.jpg"
        bad.write_text("these are words, not pixels")
        page.set_input_files("#file-photo", str(bad))
        page.click("#submit-button")
        error = page.locator("#capture-error")
        assert error.is_visible() and len(error.inner_text().strip()) > 10
        assert page.url.endswith("/checks/ear")
    finally:
        context.close()


@pytest.mark.parametrize("kind", ["ecg", "skin", "ear"])
def test_no_javascript_form_upload_shows_the_result(browser, live_server, kind):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_up(page, live_server.url)
        page.goto(f"{live_server.url}/checks/{kind}")
        page.set_input_files("#file-photo", str(FIXTURE_IMAGES[kind]))
        page.click("#submit-button")
        wait_for_result(page)
    finally:
        context.close()


def test_twelve_lead_file_result_trace_fills_the_phone_width(browser, live_server, tmp_path):
    # a 10 s 12-lead file is drawn as 12 rows: tall and narrow at any fixed height
    record = synthetic_ecg(hr=72)
    csv = tmp_path / "twelve_lead.csv"
    np.savetxt(csv, record.signal, delimiter=",", header=",".join(record.lead_names),
               comments="", fmt="%.4f")
    context = phone_context(browser)
    try:
        page = context.new_page()
        sign_up(page, live_server.url)
        page.goto(f"{live_server.url}/checks/ecg")
        page.set_input_files("#file-ecg", str(csv))
        page.click("#submit-button")
        wait_for_result(page)
        assert page.locator("table.intervals tbody tr").count() == 5
        # the file has no time column: the rate CareLens assumed is shown, not hidden
        assert "500 Hz was assumed" in page.locator("ul.quality-notes").inner_text()
        assert_trace_fills_the_box(page)
        save_screenshot(page, "result-ecg-12-lead-file", full_page=True)
    finally:
        context.close()

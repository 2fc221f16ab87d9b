"""The PWA shell in headless Chromium at phone size: manifest, service worker, offline page."""

import json

import httpx
import pytest

from tests.browser.conftest import LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_home_manifest_service_worker_and_offline_page(phone, tmp_path):
    server = LiveServer(tmp_path)
    server.start()
    try:
        page = phone.new_page()
        page.goto(server.url + "/")
        assert page.viewport_size == {"width": 390, "height": 844}
        assert page.locator("h1").first.is_visible()

        href = page.locator('link[rel="manifest"]').get_attribute("href")
        response = httpx.get(server.url + href)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/manifest+json")
        manifest = json.loads(response.text)
        assert manifest["display"] == "standalone"
        assert manifest["start_url"].startswith("/")
        assert manifest["name"] and manifest["short_name"] and manifest["theme_color"]
        sizes = {(icon["sizes"], icon.get("purpose", "any")) for icon in manifest["icons"]}
        assert ("192x192", "any") in sizes and ("512x512", "any") in sizes
        assert ("512x512", "maskable") in sizes
        for icon in manifest["icons"]:
            assert httpx.get(server.url + icon["src"]).status_code == 200

        state = page.evaluate(
            """async () => {
                const reg = await navigator.serviceWorker.ready;
                return reg.active ? reg.active.state : null;
            }"""
        )
        assert state in ("activated", "activating")
        page.wait_for_function(
            "navigator.serviceWorker.controller !== null || location.reload() === undefined",
            timeout=15000,
        )
        page.reload()
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        path = screenshot(page, "home-390x844")
        assert path.exists()

        server.stop()
        page.goto(server.url + "/vitals")
        assert page.locator("#offline-message").is_visible()
        screenshot(page, "offline-390x844")
    finally:
        server.stop()


def test_korean_ui_from_accept_language(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR",
                                  extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    try:
        page = context.new_page()
        page.goto(live_server.url + "/login")
        assert page.locator("html").get_attribute("lang") == "ko"
        assert page.locator("h1").inner_text() == "로그인"
        page.locator("button[name=lang]").click()
        assert page.locator("h1").inner_text() == "Log in"
    finally:
        context.close()

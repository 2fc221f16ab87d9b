"""axe-core (npm) in headless Chromium at 390x844 and 360 px: no serious or critical
violations on the check-flow pages, in English and Korean; touch targets >= 44 px; nothing
wider than a 360 px screen."""

from __future__ import annotations

import pytest

from tests.browser.checks_support import axe_violations, save_screenshot, seed_results, sign_up
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Interactive elements a thumb must hit (WCAG 2.5.5 target size, 44x44 CSS px).
TARGETS_JS = """() => Array.from(document.querySelectorAll(
    'main a.button, main button, main .filter, main input[type=file], main .toggle-label, nav a, header button'))
  .filter(e => e.offsetParent !== null)
  .map(e => { const r = e.getBoundingClientRect();
              return {text: (e.textContent || e.id || e.tagName).trim().slice(0, 40), w: r.width, h: r.height}; })
  .filter(r => r.h < 44 || r.w < 44)"""


@pytest.fixture(scope="module")
def seeded(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    email = sign_up(page, live_server.url)
    ids = seed_results(live_server, email)
    state = context.storage_state()
    context.close()
    return ids, state


PAGES = ["/", "/checks/ecg", "/checks/skin", "/checks/ear", "/history", "/history?kind=skin"]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_check_pages_have_no_serious_axe_violations(browser, live_server, seeded, lang):
    ids, state = seeded
    context = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=state,
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "lang", "value": lang, "url": live_server.url}])
    page = context.new_page()
    failures = {}
    for path in [*PAGES, *(f"/checks/{i}" for i in ids.values())]:
        page.goto(live_server.url + path)
        found = axe_violations(page)
        if found:
            failures[path] = found
        small = page.evaluate(TARGETS_JS)
        if small:
            failures[path + " (touch targets)"] = small
    if lang == "en":
        for kind, check_id in ids.items():
            page.goto(f"{live_server.url}/checks/{check_id}")
            screenshot(page, f"result-{kind}-seeded")
        page.goto(live_server.url + "/history")
        save_screenshot(page, "history", full_page=True)
    context.close()
    assert not failures, failures


def test_pages_fit_a_360px_screen(browser, live_server, seeded):
    ids, state = seeded
    context = browser.new_context(viewport={"width": 360, "height": 740}, storage_state=state,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    for path in [*PAGES, *(f"/checks/{i}" for i in ids.values())]:
        page.goto(live_server.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
    context.close()

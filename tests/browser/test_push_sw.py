"""The service worker's push and notificationclick handlers in real Chromium: a push is
delivered through the DevTools protocol (ServiceWorker.deliverPushMessage), the notification
is shown, and clicking it opens the result page."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct horse battery staple"


def _log_in(page, base: str, email: str) -> None:
    response = httpx.post(base + "/api/v1/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": "Push Tester"}, timeout=30)
    assert response.status_code == 201, response.text
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()


def _wait(page, predicate, timeout: float = 15.0, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(200)  # (not time.sleep: playwright delivers events meanwhile)
    raise AssertionError(f"timed out waiting for {what}")


def test_push_shows_notification_and_click_opens_result(browser, live_server):
    base = live_server.url
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    try:
        context.grant_permissions(["notifications"], origin=base)
        page = context.new_page()
        _log_in(page, base, "sw-push@example.org")
        page.goto(base + "/settings")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        page.reload()  # now controlled by the service worker
        assert page.evaluate("Boolean(navigator.serviceWorker.controller)")

        cdp = context.new_cdp_session(page)
        registrations: list[dict] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated",
               lambda event: registrations.extend(event["registrations"]))
        cdp.send("ServiceWorker.enable")
        registration = _wait(page, lambda: next(
            (r for r in registrations if r["scopeURL"] == base + "/" and not r["isDeleted"]),
            None), what="the service worker registration")

        message = {"title": "Your skin result is ready", "body": "Tap to see the result.",
                   "url": "/checks/4242", "tag": "check-4242", "silent": False}
        cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": base, "registrationId": registration["registrationId"],
            "data": json.dumps(message)})

        shown = _wait(page, lambda: page.evaluate(
            """navigator.serviceWorker.ready
                 .then((r) => r.getNotifications())
                 .then((ns) => ns.map((n) => ({title: n.title, body: n.body, tag: n.tag,
                                               data: n.data})))"""),
            what="the notification")
        assert shown == [{"title": "Your skin result is ready", "body": "Tap to see the result.",
                          "tag": "check-4242", "data": {"url": "/checks/4242"}}]
        screenshot(page, "push-notification-settings")

        # Click: the service worker's notificationclick handler gets the notification and
        # navigates this (controlled) window to the result page.
        worker = _wait(page, lambda: next((w for w in context.service_workers
                                     if w.url.endswith("/sw.js")), None),
                       what="the service worker target")
        clicked = worker.evaluate("""async () => {
            const [notification] = await self.registration.getNotifications();
            self.dispatchEvent(new NotificationEvent("notificationclick", {notification}));
            return notification.data.url;
        }""")
        assert clicked == "/checks/4242"
        page.wait_for_url(base + "/checks/4242", timeout=15000)
        remaining = page.evaluate(
            "navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((n) => n.length)")
        assert remaining == 0  # the handler closed it
    finally:
        context.close()

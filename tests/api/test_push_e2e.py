"""Web push end to end, no mocks on the sending side: a test browser subscribes through the
API, pywebpush sends to a push-service stand-in on 127.0.0.1, the test decrypts (aes128gcm)
and verifies the VAPID JWT (ES256, aud, exp <= 24 h)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from backend.services.push import MAX_PAYLOAD_BYTES, Notification
from backend.services.reminders import ReminderScheduler
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.push import PushDelivery, PushSubscription, Reminder
from tests.push_standin import PushStandIn, TestBrowser, verify_vapid


@pytest.fixture
def standin():
    with PushStandIn() as server:
        yield server


async def subscribe(client, headers, browser: TestBrowser) -> None:
    response = await client.post("/api/v1/push/subscriptions", headers=headers,
                                 json=browser.subscription_json())
    assert response.status_code == 201, response.text


async def server_key(client) -> str:
    response = await client.get("/api/v1/push/vapid-public-key")
    assert response.status_code == 200
    return response.json()["public_key"]


async def test_push_test_endpoint_delivers_encrypted_signed_message(client, make_user, standin):
    headers = await make_user("push@example.org")
    browser = TestBrowser(standin.origin + "/push/device-1")
    await subscribe(client, headers, browser)

    response = await client.post("/api/v1/push/test", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"sent": 1, "failed": 0, "removed": 0}

    [message] = standin.to("/push/device-1")
    payload = browser.decrypt(message)
    assert payload["title"] == "CareLens test notification"
    assert payload["url"] == "/settings"
    settings = client.app.state.settings
    verify_vapid(message, await server_key(client), standin.origin, settings.vapid_subject)
    assert int(message.headers["ttl"]) > 0
    assert message.headers["urgency"] == "normal"
    assert message.headers["topic"] == "test"
    assert len(message.body) <= 4096
    delivery = await PushDelivery.objects().first()
    assert delivery.ok and delivery.status_code == 201


async def test_results_ready_notification_links_to_the_check(client, make_user, standin):
    headers = await make_user("results@example.org")
    browser = TestBrowser(standin.origin + "/push/results")
    await subscribe(client, headers, browser)
    user = await User.objects().where(User.email == "results@example.org").first()
    check = Check(owner=user.id, kind="skin", status="done", result={"kind": "skin"})
    await check.save()

    await client.app.state.on_check_done(check)
    await asyncio.gather(*client.app.state.push_tasks)

    [message] = standin.wait_for("/push/results", 1)
    payload = browser.decrypt(message)
    assert payload["title"] == "Your skin result is ready"
    assert payload["url"] == f"/checks/{check.id}"
    assert message.headers["topic"] == f"check-{check.id}"
    assert message.headers["urgency"] == "high"
    verify_vapid(message, await server_key(client), standin.origin,
                 client.app.state.settings.vapid_subject)


async def test_due_reminder_is_pushed_and_rescheduled(client, make_user, standin):
    headers = await make_user("reminder@example.org")
    browser = TestBrowser(standin.origin + "/push/reminder")
    await subscribe(client, headers, browser)
    response = await client.post("/api/v1/reminders", headers=headers, json={
        "kind": "blood_pressure", "time_of_day": "08:00", "timezone": "Asia/Seoul",
        "days": "daily"})
    assert response.status_code == 201, response.text
    reminder_id = response.json()["id"]
    now = datetime.now(UTC)
    await Reminder.update({Reminder.next_due_at: now - timedelta(minutes=1)}).where(
        Reminder.id == reminder_id)

    scheduler = ReminderScheduler(client.app.state.push, worker_id="test-worker")
    assert await scheduler.tick(now) == 1
    assert await scheduler.tick(now) == 0  # nothing left: sent once

    [message] = standin.to("/push/reminder")
    payload = browser.decrypt(message)
    assert payload["title"] == "Time to measure your blood pressure"
    assert payload["url"] == "/vitals?type=blood_pressure"
    verify_vapid(message, await server_key(client), standin.origin,
                 client.app.state.settings.vapid_subject)
    row = await Reminder.objects().where(Reminder.id == reminder_id).first()
    assert row.claimed_by == "" and row.last_sent_at is not None
    # Next 08:00 in Seoul (UTC+9) is 23:00 UTC.
    assert row.next_due_at > now and row.next_due_at.astimezone(UTC).hour == 23


async def test_gone_subscription_is_deleted(client, make_user, standin):
    headers = await make_user("gone@example.org")
    live = TestBrowser(standin.origin + "/push/live")
    gone = TestBrowser(standin.origin + "/push/gone")
    standin.replies["/push/gone"] = [410]
    await subscribe(client, headers, live)
    await subscribe(client, headers, gone)

    response = await client.post("/api/v1/push/test", headers=headers)
    assert response.json() == {"sent": 1, "failed": 0, "removed": 1}
    endpoints = await PushSubscription.select(PushSubscription.endpoint).output(as_list=True)
    assert endpoints == [live.endpoint]
    statuses = sorted(d.status_code for d in await PushDelivery.objects())
    assert statuses == [201, 410]


async def test_rate_limited_and_failing_push_service_is_retried(client, make_user, standin):
    headers = await make_user("retry@example.org")
    browser = TestBrowser(standin.origin + "/push/busy")
    standin.replies["/push/busy"] = [429, 503, 201]
    await subscribe(client, headers, browser)
    client.app.state.push.backoff_s = 0.05
    response = await client.post("/api/v1/push/test", headers=headers)
    assert response.json()["sent"] == 1
    assert len(standin.to("/push/busy")) == 3
    browser.decrypt(standin.to("/push/busy")[-1])


async def test_unsubscribe_and_bad_subscriptions(client, make_user, standin):
    headers = await make_user("unsub@example.org")
    browser = TestBrowser(standin.origin + "/push/unsub")
    await subscribe(client, headers, browser)
    response = await client.request("DELETE", "/api/v1/push/subscriptions", headers=headers,
                                    json={"endpoint": browser.endpoint})
    assert response.status_code == 204
    assert await PushSubscription.count() == 0
    response = await client.post("/api/v1/push/test", headers=headers)
    assert response.status_code == 409
    # Not a push service: the server would POST to it, so only https (or loopback in dev).
    bad = browser.subscription_json() | {"endpoint": "http://10.0.0.5/internal"}
    response = await client.post("/api/v1/push/subscriptions", headers=headers, json=bad)
    assert response.status_code == 422 and "endpoint" in response.json()["error"]
    bad = browser.subscription_json()
    bad["keys"]["auth"] = "short"
    response = await client.post("/api/v1/push/subscriptions", headers=headers, json=bad)
    assert response.status_code == 422
    response = await client.post("/api/v1/push/subscriptions", json=browser.subscription_json())
    assert response.status_code in (401, 403)


def test_payload_stays_under_the_rfc8291_limit():
    note = Notification(title="t", body="가" * 5000, url="/x")
    assert len(note.payload()) <= MAX_PAYLOAD_BYTES

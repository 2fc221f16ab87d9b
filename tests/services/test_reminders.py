"""Reminders: next occurrence in the user's time zone (daily/weekly, DST), quiet hours, and
the missed-reminder policy (send once if late by less than CATCH_UP_HOURS, else skip)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.services import reminders as r
from backend.services.errors import ServiceError
from backend.services.push import PushService, in_quiet_hours, load_vapid
from backend.tables.accounts import User
from backend.tables.push import Reminder
from tests.push_standin import PushStandIn, TestBrowser


def test_daily_at_local_time():
    after = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 09:00 in Seoul
    due = r.next_due_at("08:00", "Asia/Seoul", r.WEEKDAYS, after)
    assert due == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 08:00 on 2 March in Seoul
    assert r.next_due_at("08:00", "Asia/Seoul", r.WEEKDAYS, due) == due + timedelta(days=1)


def test_weekly_on_chosen_days():
    after = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
    due = r.next_due_at("07:30", "Europe/Berlin", ("mon",), after)
    assert due == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # Monday 07:30 CET
    assert r.parse_days("Mon, fri") == ("mon", "fri")
    assert r.parse_days("daily") == r.WEEKDAYS
    with pytest.raises(ServiceError):
        r.parse_days("someday")


def test_daylight_saving_keeps_the_local_time():
    # New York switches to EDT on 8 March 2026: 08:00 local is 13:00 UTC before, 12:00 after.
    before = r.next_due_at("08:00", "America/New_York", r.WEEKDAYS,
                           datetime(2026, 3, 7, 0, 0, tzinfo=UTC))
    after = r.next_due_at("08:00", "America/New_York", r.WEEKDAYS, before)
    assert (before.hour, after.hour) == (13, 12)
    # 02:30 does not exist on that day; it fires once, just after the gap, not never.
    gap = r.next_due_at("02:30", "America/New_York", r.WEEKDAYS,
                        datetime(2026, 3, 8, 5, 0, tzinfo=UTC))
    assert gap.date().day == 8


def test_quiet_hours_wrap_midnight():
    user = User(quiet_start="22:00", quiet_end="07:00", timezone="Asia/Seoul")
    assert in_quiet_hours(user, datetime(2026, 3, 1, 14, 0, tzinfo=UTC))  # 23:00 Seoul
    assert in_quiet_hours(user, datetime(2026, 3, 1, 21, 59, tzinfo=UTC))  # 06:59
    assert not in_quiet_hours(user, datetime(2026, 3, 1, 22, 0, tzinfo=UTC))  # 07:00
    assert not in_quiet_hours(User(quiet_start="", quiet_end="", timezone="UTC"),
                              datetime(2026, 3, 1, 3, 0, tzinfo=UTC))


async def _setup(client, make_user, standin, email):
    headers = await make_user(email)
    browser = TestBrowser(f"{standin.origin}/push/{email}")
    response = await client.post("/api/v1/push/subscriptions", headers=headers,
                                 json=browser.subscription_json())
    assert response.status_code == 201
    return browser, await User.objects().where(User.email == email).first()


async def test_missed_reminders_send_once_if_recent_and_skip_if_stale(client, make_user, tmp_path):
    with PushStandIn() as standin:
        browser, user = await _setup(client, make_user, standin, "late@example.org")
        now = datetime.now(UTC)
        recent = await r.create_reminder(user, "glucose", "08:00", "UTC", "daily")
        stale = await r.create_reminder(user, "weight", "08:00", "UTC", "daily")
        # Down for a while: one reminder is 1 h late, the other a week.
        await Reminder.update({Reminder.next_due_at: now - timedelta(hours=1)}).where(
            Reminder.id == recent.id)
        await Reminder.update({Reminder.next_due_at: now - timedelta(days=7)}).where(
            Reminder.id == stale.id)
        push = PushService(load_vapid(tmp_path), "mailto:ops@example.org")
        assert await r.ReminderScheduler(push, worker_id="w").tick(now) == 1
        [message] = standin.received
        payload = browser.decrypt(message)
        assert payload["title"] == "Time to check your blood glucose"
        assert "late" in payload["body"]
        rows = {row.id: row for row in await Reminder.objects()}
        assert rows[recent.id].last_sent_at is not None
        assert rows[stale.id].last_sent_at is None
        assert all(row.next_due_at > now for row in rows.values())


async def test_nothing_is_sent_in_quiet_hours(client, make_user, tmp_path):
    with PushStandIn() as standin:
        _, user = await _setup(client, make_user, standin, "quiet@example.org")
        now = datetime.now(UTC)
        local_now = now.strftime("%H:%M")
        row = await r.create_reminder(user, "blood_pressure", "08:00", "UTC", "daily")
        end = (now + timedelta(hours=1)).strftime("%H:%M")
        await User.update({User.quiet_start: local_now, User.quiet_end: end}).where(
            User.id == user.id)
        await Reminder.update({Reminder.next_due_at: now - timedelta(minutes=1)}).where(
            Reminder.id == row.id)
        push = PushService(load_vapid(tmp_path), "mailto:ops@example.org")
        assert await r.ReminderScheduler(push, worker_id="w").tick(now) == 0
        assert standin.received == []
        assert (await Reminder.objects().first()).next_due_at > now


async def test_reminder_api_validation(client, make_user):
    headers = await make_user("api-rem@example.org")
    ok = await client.post("/api/v1/reminders", headers=headers, json={
        "kind": "weight", "time_of_day": "7:05", "timezone": "Europe/Paris",
        "days": ["mon", "thu"]})
    assert ok.status_code == 201, ok.text
    assert ok.json()["time_of_day"] == "07:05" and ok.json()["days"] == ["mon", "thu"]
    for bad in ({"kind": "weight", "time_of_day": "25:00"},
                {"kind": "dance", "time_of_day": "08:00"},
                {"kind": "weight", "time_of_day": "08:00", "timezone": "Mars/Olympus"}):
        response = await client.post("/api/v1/reminders", headers=headers, json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]
    listed = await client.get("/api/v1/reminders", headers=headers)
    assert [x["kind"] for x in listed.json()] == ["weight"]
    gone = await client.delete(f"/api/v1/reminders/{ok.json()['id']}", headers=headers)
    assert gone.status_code == 204

"""Two scheduler workers against PostgreSQL: 200 due reminders, each delivered exactly once
(counted at the push-service stand-in)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from backend.services.push import PushService, load_vapid
from backend.services.reminders import ReminderScheduler
from backend.tables.accounts import User
from backend.tables.db import configure_database
from backend.tables.piccolo_app import ALL_TABLES
from backend.tables.push import PushDelivery, PushSubscription, Reminder
from tests.push_standin import PushStandIn, TestBrowser

pytestmark = pytest.mark.postgres

KINDS = ("blood_pressure", "glucose", "weight", "heart_rate")


@pytest.fixture
async def pg(postgres_settings):
    """The test database with a connection pool (as the app runs it), tables emptied."""
    engine = configure_database(postgres_settings)
    await engine.start_connection_pool(min_size=2, max_size=12)
    for table in reversed(ALL_TABLES):
        await table.delete(force=True)
    yield engine
    await engine.close_connection_pool()


async def _due_reminders(standin: PushStandIn, users: int) -> dict[str, TestBrowser]:
    """`users` users with one subscribed browser each and one due reminder per kind."""
    await User.insert(*[User(email=f"u{i}@example.org", password_hash="x",
                             display_name=f"u{i}") for i in range(users)])
    ids = await User.select(User.id, User.email).order_by(User.id)
    due = datetime.now(UTC) - timedelta(minutes=2)
    browsers: dict[str, TestBrowser] = {}
    subs, reminders = [], []
    for row in ids:
        browser = TestBrowser(f"{standin.origin}/push/{row['id']}")
        browsers[f"/push/{row['id']}"] = browser
        keys = browser.subscription_json()["keys"]
        subs.append(PushSubscription(owner=row["id"], endpoint=browser.endpoint,
                                     p256dh=keys["p256dh"], auth=keys["auth"]))
        for kind in KINDS:
            reminders.append(Reminder(owner=row["id"], kind=kind, time_of_day="08:00",
                                      timezone="Asia/Seoul", next_due_at=due))
    await PushSubscription.insert(*subs)
    await Reminder.insert(*reminders)
    return browsers


async def test_two_workers_send_each_of_200_reminders_once(pg, tmp_path):
    with PushStandIn() as standin:
        browsers = await _due_reminders(standin, users=50)
        assert await Reminder.count() == 200
        push = PushService(load_vapid(tmp_path), "mailto:ops@example.org", timeout_s=5)
        workers = [ReminderScheduler(push, worker_id=f"worker-{n}", batch=10, concurrency=4)
                   for n in range(2)]

        sent = await asyncio.gather(*(w.tick() for w in workers))

        assert sum(sent) == 200
        assert all(n > 0 for n in sent), f"both workers should have taken a share: {sent}"
        received = standin.received
        assert len(received) == 200
        per_reminder = Counter((m.path, m.headers["topic"]) for m in received)
        assert set(per_reminder.values()) == {1}
        assert len(per_reminder) == 200
        # Each message is a real push for that browser's reminder.
        sample = received[0]
        assert browsers[sample.path].decrypt(sample)["title"].startswith("Time to")
    assert await PushDelivery.count().where(PushDelivery.ok.eq(True)) == 200
    rows = await Reminder.objects()
    assert all(r.claimed_by == "" and r.next_due_at > datetime.now(UTC) for r in rows)
    # A second round finds nothing due: nothing is sent again.
    assert sum(await asyncio.gather(*(w.tick() for w in workers))) == 0


async def test_concurrent_claims_are_disjoint(pg, tmp_path):
    await User.insert(User(email="c@example.org", password_hash="x", display_name="c"))
    owner = (await User.select(User.id).first())["id"]
    now = datetime.now(UTC)
    await Reminder.insert(*[Reminder(owner=owner, kind="glucose", time_of_day="08:00",
                                     next_due_at=now - timedelta(minutes=1))
                            for _ in range(120)])
    push = PushService(load_vapid(tmp_path), "mailto:ops@example.org")
    claimers = [ReminderScheduler(push, worker_id=f"w{n}", batch=15) for n in range(8)]

    async def claim_all(worker: ReminderScheduler) -> list[int]:
        mine: list[int] = []
        while batch := await worker.claim(now):
            mine.extend(batch)
        return mine

    claimed = await asyncio.gather(*(claim_all(w) for w in claimers))
    flat = [i for ids in claimed for i in ids]
    assert len(flat) == len(set(flat)) == 120
    # A stale claim (its worker died) is taken over after the lease, not before.
    later = now + timedelta(seconds=60)
    assert await claimers[0].claim(later) == []
    much_later = now + timedelta(seconds=claimers[0].lease.total_seconds() + 1)
    assert len(await claimers[0].claim(much_later)) == 15

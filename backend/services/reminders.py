"""Reminders: "measure your blood pressure at 08:00" in the user's own time zone, and the
scheduler that sends them.

Each reminder row carries next_due_at (UTC). A scheduler worker claims due rows with one
conditional UPDATE ... RETURNING (claimed_by is empty, or the earlier claim is older than the
lease), so two app processes on PostgreSQL never send one reminder twice: when both try to
claim the same row, PostgreSQL makes the second UPDATE wait for the first and re-checks its
WHERE clause on the new row version, which no longer matches. SQLite has a single writer, so
the same statement is atomic there too. After sending, the worker moves next_due_at to the
next occurrence and releases the claim in one UPDATE guarded by its own worker id.

Missed reminders (the server was down at 08:00): when it comes back, a reminder that is at
most CATCH_UP_HOURS late is sent once, marked as late; an older one is skipped. Either way
next_due_at jumps to the next occurrence after now, so a week of downtime never produces a
burst of seven notifications. Nothing is sent inside the user's quiet hours. If a worker
dies between claiming and releasing, the claim expires after the lease and another worker
takes the row (at-least-once in that crash case only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from backend.i18n import current_locale
from backend.i18n import gettext as _
from backend.services.errors import ServiceError
from backend.services.local_time import user_zone
from backend.services.push import (
    Notification,
    PushService,
    in_quiet_hours,
    parse_hhmm,
)
from backend.tables.accounts import User
from backend.tables.push import Reminder

log = logging.getLogger("carelens.reminders")

KINDS = ("blood_pressure", "glucose", "weight", "heart_rate", "ecg")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CATCH_UP_HOURS = 3.0  # a reminder later than this after an outage is skipped, not sent
LEASE_SECONDS = 300  # a claim older than this is considered abandoned by a dead worker
MAX_REMINDERS_PER_USER = 20


def parse_days(days: Any) -> tuple[str, ...]:
    if days in (None, "", "daily", ["daily"]):
        return WEEKDAYS
    items = days.split(",") if isinstance(days, str) else list(days)
    chosen = {str(d).strip().lower()[:3] for d in items if str(d).strip()}
    if not chosen or not chosen <= set(WEEKDAYS):
        raise ServiceError(_("Days must be weekday names such as mon,wed,fri (or daily)."), 422)
    return tuple(d for d in WEEKDAYS if d in chosen)


def next_due_at(time_of_day: str, tz_name: str, days: tuple[str, ...] | str,
                after: datetime) -> datetime:
    """The first instant strictly after `after` when the local clock in `tz_name` reads
    `time_of_day` on one of `days`. DST-safe: a local time that does not exist on a
    spring-forward day fires at the equivalent instant just after the gap."""
    hm = parse_hhmm(time_of_day)
    if hm is None:
        raise ServiceError(_("The time must look like 08:00."), 422)
    wanted = parse_days(days) if isinstance(days, str) else days
    zone = user_zone(tz_name)
    local_day: date = after.astimezone(zone).date()
    for offset in range(8):
        day = local_day + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in wanted:
            continue
        candidate = datetime.combine(day, time(hm[0], hm[1]), tzinfo=zone).astimezone(UTC)
        if candidate > after:
            return candidate
    raise AssertionError("a weekday set always matches within 8 days")


def reminder_to_json(row: Reminder) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "time_of_day": row.time_of_day,
        "timezone": row.timezone, "days": row.days.split(","), "enabled": row.enabled,
        "next_due_at": row.next_due_at.isoformat() if row.next_due_at else None,
        "last_sent_at": row.last_sent_at.isoformat() if row.last_sent_at else None,
    }


async def create_reminder(user: User, kind: str, time_of_day: str, tz_name: str | None,
                          days: Any, now: datetime | None = None) -> Reminder:
    if kind not in KINDS:
        raise ServiceError(_("Unknown reminder; use blood_pressure, glucose, weight, "
                             "heart_rate or ecg."), 422)
    tz_name = tz_name or user.timezone or "UTC"
    if user_zone(tz_name).key != tz_name:
        raise ServiceError(_("Unknown time zone %(tz)s; use a name like Asia/Seoul.",
                             tz=tz_name), 422)
    hm = parse_hhmm(time_of_day)
    if hm is None:
        raise ServiceError(_("The time must look like 08:00."), 422)
    time_of_day = f"{hm[0]:02d}:{hm[1]:02d}"
    wanted = parse_days(days)
    count = await Reminder.count().where(Reminder.owner == user.id)
    if count >= MAX_REMINDERS_PER_USER:
        raise ServiceError(_("You have reached the maximum number of reminders."), 422)
    now = now or datetime.now(UTC)
    due = next_due_at(time_of_day, tz_name, wanted, now)
    if in_quiet_hours(user, due):
        raise ServiceError(_("This time is inside your quiet hours; choose another time or "
                             "change the quiet hours."), 422)
    row = Reminder(owner=user.id, kind=kind, time_of_day=time_of_day, timezone=tz_name,
                   days=",".join(wanted), next_due_at=due)
    await row.save()
    return row


async def list_reminders(user: User) -> list[Reminder]:
    return await Reminder.objects().where(Reminder.owner == user.id).order_by(Reminder.id)


async def delete_reminder(user: User, reminder_id: int) -> None:
    deleted = await Reminder.delete().where(
        (Reminder.id == reminder_id) & (Reminder.owner == user.id)).returning(Reminder.id)
    if not deleted:
        raise ServiceError(_("This reminder does not exist."), 404)


def reminder_notification(kind: str, late: bool) -> Notification:
    titles = {
        "blood_pressure": (_("Time to measure your blood pressure"), "/vitals?type=blood_pressure"),
        "glucose": (_("Time to check your blood glucose"), "/vitals?type=glucose"),
        "weight": (_("Time to weigh yourself"), "/vitals?type=weight"),
        "heart_rate": (_("Time to measure your heart rate"), "/vitals?type=heart_rate"),
        "ecg": (_("Time for your ECG check"), "/"),
    }
    title, url = titles.get(kind, (_("CareLens reminder"), "/"))
    body = (_("A little late: the server was briefly unavailable. Log it in ten seconds.")
            if late else _("Log it in ten seconds."))
    return Notification(title=title, body=body, url=url, topic=f"reminder-{kind}",
                        urgency="normal", ttl=4 * 3600, tag=f"reminder-{kind}")


def default_worker_id() -> str:
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ReminderScheduler:
    """Claims due reminders in batches and sends them. Several of these may run at once (in
    one process or many); the claim makes each due occurrence go out once."""

    def __init__(self, push: PushService, *, worker_id: str | None = None,
                 interval_s: float = 30.0, batch: int = 50, concurrency: int = 8,
                 catch_up_hours: float = CATCH_UP_HOURS, lease_s: int = LEASE_SECONDS):
        self.push = push
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.interval_s = interval_s
        self.batch = batch
        self.catch_up = timedelta(hours=catch_up_hours)
        self.lease = timedelta(seconds=lease_s)
        self._semaphore = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    def _claimable(self, now: datetime):
        return (
            Reminder.enabled.eq(True)
            & (Reminder.next_due_at <= now)
            & ((Reminder.claimed_by == "") | (Reminder.claimed_at < now - self.lease))
        )

    async def claim(self, now: datetime | None = None) -> list[int]:
        """Atomically marks up to `batch` due reminders as ours; returns their ids."""
        now = now or datetime.now(UTC)
        oldest_first = (Reminder.select(Reminder.id).where(self._claimable(now))
                        .order_by(Reminder.next_due_at).limit(self.batch))
        # The claim conditions are repeated on the UPDATE itself: they are what PostgreSQL
        # re-checks on a row another worker has just claimed (the sub-select only picks a
        # batch from this statement's snapshot).
        rows = await Reminder.update(
            {Reminder.claimed_by: self.worker_id, Reminder.claimed_at: now}
        ).where(self._claimable(now) & Reminder.id.is_in(oldest_first)).returning(Reminder.id)
        return [row["id"] for row in rows]

    async def _process(self, reminder_id: int, now: datetime) -> bool:
        async with self._semaphore:
            reminder = await Reminder.objects().where(
                (Reminder.id == reminder_id) & (Reminder.claimed_by == self.worker_id)).first()
            if reminder is None:
                return False
            user = await User.objects().where(User.id == reminder.owner).first()
            due = reminder.next_due_at or now
            late = now - due
            sent = False
            if user is not None and late <= self.catch_up and not in_quiet_hours(user, now):
                token = current_locale.set(user.locale or "en")
                try:
                    note = reminder_notification(reminder.kind, late > timedelta(minutes=10))
                finally:
                    current_locale.reset(token)
                report = await self.push.send_to_user(user.id, note)
                sent = report.sent > 0
            elif late > self.catch_up:
                log.info("reminder %s skipped: %s late", reminder.id, late)
            following = next_due_at(reminder.time_of_day, reminder.timezone, reminder.days,
                                    max(now, due))
            values: dict = {Reminder.next_due_at: following, Reminder.claimed_by: "",
                            Reminder.claimed_at: None}
            if sent:
                values[Reminder.last_sent_at] = now
            await Reminder.update(values).where(
                (Reminder.id == reminder.id) & (Reminder.claimed_by == self.worker_id))
            return sent

    async def tick(self, now: datetime | None = None) -> int:
        """Claims and processes due reminders until none is left; returns how many were sent."""
        sent = 0
        while True:
            moment = now or datetime.now(UTC)
            ids = await self.claim(moment)
            if not ids:
                # Empty can also mean another worker claimed this statement's whole batch
                # first (the sub-select saw the rows before that claim committed).
                if await Reminder.exists().where(self._claimable(moment)):
                    await asyncio.sleep(0.01)
                    continue
                return sent
            results = await asyncio.gather(*(self._process(i, moment) for i in ids),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    # The row stays claimed; another tick takes it after the lease.
                    log.error("reminder failed", exc_info=result)
                else:
                    sent += int(result)

    async def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:  # a database hiccup must not end the loop
                log.exception("reminder scheduler tick failed")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.run_forever(), name="reminder-scheduler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

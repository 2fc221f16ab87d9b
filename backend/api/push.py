"""Web push and reminders: subscriptions, test push, VAPID key, reminders (JSON), the
settings-page forms for quiet hours and reminders, and install_push(app), which wires the
push service, results-ready notifications and the reminder scheduler into the app."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Litestar, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.api.web import requires_login
from backend.i18n import current_locale
from backend.i18n import gettext as _
from backend.services import push as push_service
from backend.services import reminders as reminder_service
from backend.services.errors import ServiceError
from backend.settings import Settings
from backend.tables.accounts import User

log = logging.getLogger("carelens.push")
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class SubscriptionKeys:
    p256dh: str
    auth: str


@dataclass
class SubscriptionIn:
    """The browser's PushSubscription.toJSON()."""

    endpoint: str
    keys: SubscriptionKeys
    expirationTime: int | None = None


@dataclass
class UnsubscribeIn:
    endpoint: str
    keys: SubscriptionKeys | None = None
    expirationTime: int | None = None


@dataclass
class SubscriptionOut:
    id: int
    endpoint: str


@dataclass
class VapidKeyOut:
    public_key: str


@dataclass
class SendReportOut:
    sent: int
    failed: int
    removed: int


@dataclass
class ReminderIn:
    kind: str
    time_of_day: str
    timezone: str | None = None
    days: list[str] | str | None = None


@dataclass
class ReminderOut:
    id: int
    kind: str
    time_of_day: str
    timezone: str
    days: list[str]
    enabled: bool
    next_due_at: str | None
    last_sent_at: str | None


@dataclass
class ReminderForm:
    kind: str = "blood_pressure"
    time_of_day: str = "08:00"
    timezone: str = ""
    days: list[str] = field(default_factory=list)


@dataclass
class QuietHoursForm:
    quiet_start: str = ""
    quiet_end: str = ""


def push_of(request: Request) -> push_service.PushService:
    return request.app.state.push


class PushController(Controller):
    path = "/api/v1/push"
    tags = ("push",)

    @get("/vapid-public-key")
    async def vapid_public_key(self, request: Request) -> VapidKeyOut:
        """The applicationServerKey for pushManager.subscribe() (base64url, uncompressed P-256)."""
        return VapidKeyOut(public_key=push_of(request).public_key)

    @post("/subscriptions", guards=[requires_login], status_code=HTTP_201_CREATED)
    async def subscribe(
        self,
        request: Request,
        data: JSONBody[SubscriptionIn],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> SubscriptionOut:
        row = await push_service.subscribe(
            current_user, data.endpoint, data.keys.p256dh, data.keys.auth,
            user_agent=request.headers.get("user-agent", ""), production=settings.production)
        return SubscriptionOut(id=row.id, endpoint=row.endpoint)

    @delete("/subscriptions", guards=[requires_login], status_code=HTTP_204_NO_CONTENT)
    async def unsubscribe(
        self,
        data: JSONBody[UnsubscribeIn],
        current_user: NamedDependency[User],
    ) -> None:
        await push_service.unsubscribe(current_user, data.endpoint)

    @post("/test", guards=[requires_login], status_code=HTTP_200_OK)
    async def test(self, request: Request, current_user: NamedDependency[User]) -> SendReportOut:
        """Sends a test notification to every device of the caller, now."""
        if not await push_service.subscriptions_of(current_user.id):
            raise ServiceError(_("No device is subscribed yet. Turn on notifications first."),
                               409)
        note = push_service.Notification(
            title=_("CareLens test notification"),
            body=_("Notifications work on this device."), url="/settings",
            topic="test", urgency="normal", ttl=600, tag="test")
        report = await push_of(request).send_to_user(current_user.id, note)
        return SendReportOut(**report.to_json())


class RemindersController(Controller):
    path = "/api/v1/reminders"
    tags = ("reminders",)
    guards = (requires_login,)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self,
        data: JSONBody[ReminderIn],
        current_user: NamedDependency[User],
    ) -> ReminderOut:
        row = await reminder_service.create_reminder(
            current_user, data.kind, data.time_of_day, data.timezone, data.days)
        return ReminderOut(**reminder_service.reminder_to_json(row))

    @get("/")
    async def list_reminders(self, current_user: NamedDependency[User]) -> list[ReminderOut]:
        return [ReminderOut(**reminder_service.reminder_to_json(r))
                for r in await reminder_service.list_reminders(current_user)]

    @delete("/{reminder_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, reminder_id: FromPath[int], current_user: NamedDependency[User]) -> None:
        await reminder_service.delete_reminder(current_user, reminder_id)


class NotificationSettingsController(Controller):
    """The forms of the settings page's notifications section (works without JavaScript;
    push.js adds subscribe/unsubscribe, which needs the browser's Push API)."""

    path = "/settings"
    guards = (requires_login,)
    include_in_schema = False

    @get("/notifications")
    async def page(
        self,
        current_user: NamedDependency[User],
        notice: FromQuery[str] = "",
    ) -> Template:
        notices = {
            "quiet_saved": ("notice", _("Quiet hours were saved.")),
            "quiet_invalid": ("error", _("Quiet hours need a start and an end like 22:00.")),
            "reminder_saved": ("notice", _("The reminder was saved.")),
            "reminder_deleted": ("notice", _("The reminder was deleted.")),
        }
        context = await notification_context(current_user)
        kind, message = notices.get(notice, ("", ""))
        if notice.startswith("reminder_invalid:"):
            kind, message = "error", notice.split(":", 1)[1][:300]
        return Template("vitals/notifications.html", context={
            "user": current_user, kind or "none": message, **context})

    @post("/quiet-hours")
    async def quiet_hours(self, current_user: NamedDependency[User],
                          data: Annotated[QuietHoursForm, Form]) -> Redirect:
        start, end = data.quiet_start.strip(), data.quiet_end.strip()
        if (start or end) and not (push_service.parse_hhmm(start)
                                   and push_service.parse_hhmm(end)):
            return Redirect("/settings/notifications?notice=quiet_invalid")
        await User.update({User.quiet_start: start, User.quiet_end: end}).where(
            User.id == current_user.id)
        return Redirect("/settings/notifications?notice=quiet_saved")

    @post("/reminders")
    async def add_reminder(self, current_user: NamedDependency[User],
                           data: Annotated[ReminderForm, Form]) -> Redirect:
        try:
            await reminder_service.create_reminder(
                current_user, data.kind, data.time_of_day,
                data.timezone or current_user.timezone, data.days or None)
        except ServiceError as exc:
            return Redirect("/settings/notifications?" + urlencode(
                {"notice": "reminder_invalid:" + exc.message}))
        return Redirect("/settings/notifications?notice=reminder_saved")

    @post("/reminders/{reminder_id:int}/delete")
    async def remove_reminder(
        self,
        reminder_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> Redirect:
        # Another member's reminder id answers 404 like any other foreign id.
        await reminder_service.delete_reminder(current_user, reminder_id)
        return Redirect("/settings/notifications?notice=reminder_deleted")


def install_push(app: Litestar) -> None:
    """Push service on app.state.push, results-ready notifications (app.state.on_check_done,
    called by services/checks.py) and, if enabled in Settings, the reminder scheduler."""
    settings: Settings = app.state.settings
    vapid = push_service.load_vapid(settings.data_dir, settings.vapid_private_key)
    service = push_service.PushService(vapid, settings.vapid_subject)
    app.state.push = service
    pending: set[asyncio.Task] = set()
    app.state.push_tasks = pending

    async def notify_result(check: Any) -> None:
        user = await User.objects().where(User.id == check.owner).first()
        if user is None:
            return
        token = current_locale.set(user.locale or settings.default_locale)
        try:
            note = push_service.results_ready(check)
        finally:
            current_locale.reset(token)
        from datetime import UTC, datetime

        if push_service.in_quiet_hours(user, datetime.now(UTC)):
            note.silent, note.urgency = True, "low"  # shown without sound at night
        await service.send_to_user(user.id, note)

    async def on_check_done(check: Any) -> None:
        # In the background: a slow push service must not hold up the upload's reply.
        task = asyncio.create_task(notify_result(check))
        pending.add(task)
        task.add_done_callback(pending.discard)
        task.add_done_callback(_log_failure)

    app.state.on_check_done = on_check_done

    if settings.scheduler_enabled:
        scheduler = reminder_service.ReminderScheduler(
            service, interval_s=settings.scheduler_interval_s)
        app.state.scheduler = scheduler
        app.on_startup.append(scheduler.start)
        app.on_shutdown.append(scheduler.stop)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("results-ready notification failed", exc_info=task.exception())


async def notification_context(user: User) -> dict[str, Any]:
    """What the settings page's notifications section shows."""
    return {
        "reminders": await reminder_service.list_reminders(user),
        "reminder_kinds": reminder_service.KINDS,
        "weekdays": reminder_service.WEEKDAYS,
        "device_count": len(await push_service.subscriptions_of(user.id)),
    }

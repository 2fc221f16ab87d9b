"""A member's local time: the zone of their profile (UTC when unset or unknown). Pages, the
doctor PDF and the image card show check and reading times in it; reminders fire in it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def user_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_user_zone(value: datetime | str | None, tz_name: str | None) -> datetime | None:
    """An aware datetime or ISO string (naive counts as UTC) in the member's zone."""
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(user_zone(tz_name))


def local_time_text(
    value: datetime | str | None, tz_name: str | None, date_only: bool = False
) -> str:
    """"2026-11-24 09:27 KST": the member's wall-clock time, with the zone so that a time read
    without JavaScript (or in a PDF) is never mistaken for another zone's; or the day alone."""
    moment = in_user_zone(value, tz_name)
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M %Z").strip()

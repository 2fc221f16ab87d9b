"""A member's local time, as pages, the PDF and the image card print it."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.services.local_time import in_user_zone, local_time_text, user_zone

MIDNIGHT_UTC = datetime(2026, 11, 24, 0, 27, tzinfo=UTC)


def test_times_read_in_the_members_zone_with_its_name():
    assert local_time_text(MIDNIGHT_UTC, "Asia/Seoul") == "2026-11-24 09:27 KST"
    assert local_time_text(MIDNIGHT_UTC, "America/New_York") == "2026-11-23 19:27 EST"
    assert local_time_text("2026-11-24T00:27:00+00:00", "Asia/Seoul") == "2026-11-24 09:27 KST"
    assert local_time_text(datetime(2026, 11, 24, 0, 27), "Asia/Seoul").endswith("09:27 KST")
    assert local_time_text(MIDNIGHT_UTC, "America/New_York", date_only=True) == "2026-11-23"


def test_an_unknown_or_missing_zone_is_utc_and_no_time_is_empty():
    assert local_time_text(MIDNIGHT_UTC, "Mars/Olympus") == "2026-11-24 00:27 UTC"
    assert local_time_text(MIDNIGHT_UTC, None) == "2026-11-24 00:27 UTC"
    assert user_zone("../etc/passwd").key == "UTC"
    assert local_time_text(None, "Asia/Seoul") == "" and in_user_zone("", "UTC") is None

"""When a scheduled change happens: local time of a time zone, across daylight-saving changes, never in the past."""

from datetime import UTC, datetime

import pytest

from rampup.core.scheduled_changes import scheduled_instant
from rampup.errors import InvalidInput

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday; Berlin is UTC+1 until 29 March
MONDAY_9_BERLIN = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "zone", "utc"),
    [
        ("2026-03-09 09:00", "Europe/Berlin", MONDAY_9_BERLIN),  # winter: +01:00
        ("2026-04-06T09:00", "Europe/Berlin", datetime(2026, 4, 6, 7, 0, tzinfo=UTC)),  # summer: +02:00
        ("2026-03-29 03:00", "Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # just after the jump
        ("2026-10-25 02:30", "Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # twice: the first
        ("2026-10-25 02:30+01:00", "Europe/Berlin", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # the second
        ("2026-03-09 09:00Z", "America/New_York", datetime(2026, 3, 9, 9, 0, tzinfo=UTC)),  # an offset wins
        ("22:00", "UTC", datetime(2026, 3, 2, 22, 0, tzinfo=UTC)),  # today's, still ahead
        ("09:00", "UTC", datetime(2026, 3, 3, 9, 0, tzinfo=UTC)),  # now exactly: tomorrow's
        ("09:30", "Asia/Tokyo", datetime(2026, 3, 3, 0, 30, tzinfo=UTC)),  # 18:00 in Tokyo now: tomorrow
        ("monday 09:00", "Europe/Berlin", MONDAY_9_BERLIN),  # 10:00 in Berlin now: next week's
        ("Mon 11:00", "Europe/Berlin", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),  # today's, still ahead
        ("Friday 22:00", "UTC", datetime(2026, 3, 6, 22, 0, tzinfo=UTC)),
    ],
)
def test_a_local_time_is_the_instant_it_names_in_its_zone(at: str, zone: str, utc: datetime) -> None:
    assert scheduled_instant(at, zone, NOW) == (utc, zone)


@pytest.mark.parametrize(
    ("at", "zone", "where", "says"),
    [
        ("2026-03-29 02:30", "Europe/Berlin", "at", "does not exist in Europe/Berlin"),
        ("2026-03-02 09:59", "Europe/Berlin", "at", "in the past"),  # 08:59 UTC
        ("2026-03-02T09:00:00+00:00", "UTC", "at", "in the past"),  # now is not ahead
        ("2027-03-04 09:00", "UTC", "at", "at most 366 days ahead"),
        ("next monday", "UTC", "at", "not a date and time"),
        ("25:00", "UTC", "at", "not a time of day"),
        ("someday 09:00", "UTC", "at", "not a date and time"),
        ("", "UTC", "at", "date and time"),
        ("2026-03-09 09:00", "Mars/Olympus", "timezone", "unknown time zone"),
        ("2026-03-09 09:00", "", "timezone", "IANA name"),
    ],
)
def test_a_time_that_cannot_be_scheduled_is_refused_saying_where(
    at: str, zone: str, where: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        scheduled_instant(at, zone, NOW)
    assert refused.value.where == where and says in refused.value.message

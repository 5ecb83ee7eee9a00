"""Report schedules with injected time: which period is due when, in a time zone, across daylight-saving
changes; and what a schedule may be."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rampup.core.schedules import Schedule, due_period, next_send, parse_schedule
from rampup.errors import InvalidInput

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def schedule(**body: Any) -> Schedule:
    return parse_schedule({"rollout_id": 7, "channels": ["support-email"], **body}, "dana", CREATED)


def run(s: Schedule, start: datetime, end: datetime, step: timedelta) -> list[tuple[str, datetime]]:
    """Tick from start to end; returns each period sent and when."""
    sent: list[tuple[str, datetime]] = []
    now, last = start, None
    while now <= end:
        period = due_period(s, last, now)
        if period is not None:
            sent.append((period, now))
            last = period
        now += step
    return sent


def test_daily_at_8_in_berlin_fires_once_per_local_day_across_the_spring_dst_change() -> None:
    s = schedule(kind="support", hour=8, timezone="Europe/Berlin")
    sent = run(
        s,
        datetime(2026, 3, 26, 0, 0, tzinfo=UTC),
        datetime(2026, 4, 1, 23, 59, tzinfo=UTC),
        timedelta(minutes=5),
    )
    assert [p for p, _ in sent] == [(date(2026, 3, 26) + timedelta(days=i)).isoformat() for i in range(7)]
    assert all(at.astimezone(BERLIN).strftime("%H:%M") == "08:00" for _, at in sent)
    # 08:00 CET is 07:00 UTC; from Sunday 29 March, 08:00 CEST is 06:00 UTC.
    assert [at.hour for _, at in sent] == [7, 7, 7, 6, 6, 6, 6]


def test_daily_fires_once_per_day_across_the_autumn_change_even_at_an_hour_that_happens_twice() -> None:
    s = schedule(kind="daily", hour=2, minute=30, timezone="Europe/Berlin")
    sent = run(
        s,
        datetime(2026, 10, 23, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 27, 23, 59, tzinfo=UTC),
        timedelta(minutes=5),
    )
    assert [p for p, _ in sent] == ["2026-10-23", "2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27"]
    # 25 October: 02:30 happens at 00:30 UTC (summer time) and again at 01:30 UTC; the first one sends.
    assert sent[2][1] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_a_time_skipped_by_the_spring_change_still_sends_that_day() -> None:
    s = schedule(kind="daily", hour=2, minute=30, timezone="Europe/Berlin")
    sent = run(
        s,
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 12, 0, tzinfo=UTC),
        timedelta(minutes=5),
    )
    assert [p for p, _ in sent] == ["2026-03-29", "2026-03-30"]
    assert sent[0][1] == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST: 02:30 did not exist


def test_weekly_on_friday_fires_once_per_iso_week_across_dst() -> None:
    s = schedule(kind="weekly", hour=16, weekday="friday", timezone="Europe/Berlin")
    sent = run(
        s,
        datetime(2026, 10, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 8, 23, 0, tzinfo=UTC),
        timedelta(minutes=30),
    )
    assert [p for p, _ in sent] == ["2026-W42", "2026-W43", "2026-W44", "2026-W45"]
    assert [at.astimezone(BERLIN).strftime("%a %d %H:%M") for _, at in sent] == [
        "Fri 16 16:00",
        "Fri 23 16:00",
        "Fri 30 16:00",
        "Fri 06 16:00",
    ]
    assert [at.hour for _, at in sent] == [14, 14, 15, 15]  # CEST, then CET from 25 October


def test_a_schedule_sends_only_slots_after_it_was_created() -> None:
    s = replace(
        schedule(kind="daily", hour=8, timezone="Europe/Berlin"),
        created_at=datetime(2026, 11, 26, 9, tzinfo=UTC),
    )
    assert (
        due_period(s, None, datetime(2026, 11, 26, 9, 30, tzinfo=UTC)) is None
    )  # today's 08:00 came before it
    assert next_send(s, None, datetime(2026, 11, 26, 9, 30, tzinfo=UTC)) == datetime(
        2026, 11, 27, 7, 0, tzinfo=UTC
    )
    assert due_period(s, None, datetime(2026, 11, 27, 7, 0, tzinfo=UTC)) == "2026-11-27"
    assert due_period(s, "2026-11-27", datetime(2026, 11, 27, 20, 0, tzinfo=UTC)) is None
    assert next_send(s, "2026-11-27", datetime(2026, 11, 27, 20, 0, tzinfo=UTC)) == datetime(
        2026, 11, 28, 7, 0, tzinfo=UTC
    )
    assert next_send(schedule(kind="completion"), None, NOW) is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"kind": "monthly", "hour": 8}, "kind"),
        ({"kind": "daily"}, "hour"),
        ({"kind": "daily", "hour": 24}, "hour"),
        ({"kind": "daily", "hour": 8, "minute": 60}, "minute"),
        ({"kind": "daily", "hour": True}, "hour"),
        ({"kind": "daily", "hour": 8, "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "daily", "hour": 8, "weekday": 4}, "weekday"),
        ({"kind": "weekly", "hour": 8}, "weekday"),
        ({"kind": "weekly", "hour": 8, "weekday": "someday"}, "weekday"),
        ({"kind": "completion", "hour": 8}, "hour"),
        ({"kind": "daily", "hour": 8, "every": "day"}, "every"),
    ],
)
def test_bad_schedules_are_rejected_saying_where(body: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        schedule(**body)
    assert caught.value.where == where


def test_a_schedule_names_one_rollout_or_a_flag_and_environment() -> None:
    with pytest.raises(InvalidInput):
        parse_schedule(
            {"kind": "completion", "rollout_id": 7, "flag": "ws", "channels": ["x"]}, "dana", CREATED
        )
    with pytest.raises(InvalidInput):
        parse_schedule({"kind": "completion", "flag": "ws", "channels": ["x"]}, "dana", CREATED)
    with pytest.raises(InvalidInput):
        parse_schedule({"kind": "completion", "rollout_id": 7, "channels": []}, "dana", CREATED)
    parsed = parse_schedule(
        {
            "kind": "weekly",
            "flag": "ws",
            "environment": "production",
            "channels": ["a", "a"],
            "hour": 16,
            "weekday": "Fri",
        },
        "dana",
        CREATED,
    )
    assert parsed == Schedule(
        "weekly", ("a",), "dana", CREATED, flag="ws", environment="production", hour=16, weekday=4
    )
    assert Schedule.from_dict(parsed.to_dict()) == parsed

"""Evaluation counts from two processes' counters on one database: every evaluation lands once, on its day,
however the counts and flushes interleave, and threads counting at once lose nothing."""

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from rampup.adapters.clock import ManualClock
from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[ManualClock, Container, Container]]:
    clock = ManualClock(datetime(2030, 1, 1, 12, tzinfo=UTC))
    settings = Settings(database_url=database_url, admin_token="t0ken")
    a, b = build_container(settings, clock=clock), build_container(settings, clock=clock)
    prepare(a)
    a.flags.create_flag({"key": "counted"}, "test")
    yield clock, a, b
    a.close()
    b.close()


def days(c: Container) -> list[tuple[date, int]]:
    counts = c.lifecycle.evaluations("counted").counts["production"]
    return [(d.calendar_day, d.count) for d in counts]


def test_counts_from_two_processes_and_many_threads_land_once_on_their_day(
    two: tuple[ManualClock, Container, Container],
) -> None:
    clock, a, b = two

    def count() -> None:
        for _ in range(5_000):
            a.usage.hit("production", "counted")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):
        a.usage.flush()  # flushes while the threads still count
    for t in threads:
        t.join()
    b.usage.hit("production", "counted")
    a.usage.flush()
    b.usage.flush()
    assert days(a) == [(date(2030, 1, 1), 20_001)]
    assert a.usage.flush() == 0  # nothing new: nothing written twice

    clock.advance(timedelta(days=1))
    b.usage.hit("production", "counted")
    b.usage.hit("production", "nobody")  # not a flag: not counted
    assert b.usage.flush() == 1
    assert days(b) == [(date(2030, 1, 1), 20_001), (date(2030, 1, 2), 1)]
    assert b.lifecycle.evaluations("counted").counts["production"][-1].last_at == clock()

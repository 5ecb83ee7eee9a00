"""Clocks the test moves: for the SDK's telemetry sender (`Tracker(clock=ManualClock())`), and the services'
wall clock (`SetClock`)."""

import threading
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.support.waiting import wait_until

__all__ = ["ManualClock", "SetClock"]

POLL_S = 0.002  # how often a waiting thread looks at its event and the time; paces a wait, times nothing


class ManualClock:
    """A `rampup.sdk.clock.Clock` that stands still until `advance`. Binary fractions (0.25, 0.5) keep sums of
    steps exact, so a test can assert on the times it reads."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._waiting: dict[threading.Thread, float] = {}  # each thread waiting on the clock, and until when
        self._threads: set[threading.Thread] = set()  # every thread that ever waited on it

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def wait(self, wake: threading.Event, deadline: float) -> bool:
        me = threading.current_thread()
        with self._lock:
            self._threads.add(me)
            self._waiting[me] = deadline
        try:
            while not wake.wait(POLL_S):
                if self.monotonic() >= deadline:
                    return False
            return True
        finally:
            with self._lock:
                del self._waiting[me]

    def advance(self, seconds: float) -> None:
        """Moves the time on, then waits until every thread on the clock waits for a later time again: what
        was due by now has happened."""
        with self._lock:
            self._now += seconds
            now = self._now
        wait_until(self._settled, f"the threads on the clock done with what was due by {now}")

    def advance_until(self, condition: Callable[[], object], what: str, *, step: float, limit: float) -> None:
        """Moves the time on a `step` at a time until `condition()`; fails after `limit` seconds of it."""
        start = self.monotonic()
        while not condition():
            if self.monotonic() - start >= limit:
                pytest.fail(f"{what}: not so after {limit} s on the clock")
            self.advance(step)

    def _settled(self) -> bool:
        with self._lock:
            alive = [t for t in self._threads if t.is_alive()]
            return bool(alive) and all(self._waiting.get(t, self._now) > self._now for t in alive)


class SetClock:
    """The services' wall clock (`rampup.core.ports.Clock`), standing at `now` until the test sets it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

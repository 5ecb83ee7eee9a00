"""Clocks: the system's, and a manual one that moves only when told (for tests and demos that drive time)."""

import threading
from datetime import UTC, datetime, timedelta

from rampup.errors import InvalidInput

__all__ = ["system_clock", "ManualClock"]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until `advance` or `set_to`. Every reader in the process sees the same instant,
    so a test can make a rollout's hours pass in one call and know that nothing moved in between."""

    def __init__(self, start: datetime) -> None:
        self._now = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise InvalidInput("the clock only moves forward", where="advance")
        with self._lock:
            self._now += by
            return self._now

    def set_to(self, instant: datetime) -> datetime:
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
        with self._lock:
            if instant < self._now:
                raise InvalidInput(
                    f"the clock only moves forward: it is {self._now.isoformat()} already", where="to"
                )
            self._now = instant
            return self._now

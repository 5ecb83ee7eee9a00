"""Time as the SDK's telemetry sender sees it: flush intervals, retry backoff and exposure intervals.

Injectable, so that a test drives these intervals with a clock of its own instead of waiting them out.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "SYSTEM_CLOCK"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        ...

    def wait(self, wake: threading.Event, deadline: float) -> bool:
        """Blocks until `wake` is set (True) or this clock reads `deadline` (False)."""
        ...


class SystemClock:
    """The machine's monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, wake: threading.Event, deadline: float) -> bool:
        return wake.wait(max(0.0, deadline - time.monotonic()))


SYSTEM_CLOCK = SystemClock()

"""Waiting for a condition rather than for a duration."""

import time
from collections.abc import Callable

import pytest

__all__ = ["wait_until", "PATIENCE_S"]

# Generous on purpose: a passing test never waits this long, and a busy machine (a server can take minutes to
# import and migrate when many run at once) must not fail a correct one.
PATIENCE_S = 180.0


def wait_until(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = PATIENCE_S,
    detail: Callable[[], object] = lambda: "",
    interval: float = 0.02,
) -> float:
    """Seconds until `condition()` was true; fails the test with `what` (and `detail()`, e.g. a server's log
    or the state seen last) when it is still false after `timeout` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(interval)
    return time.monotonic() - start

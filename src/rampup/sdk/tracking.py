"""Telemetry from the SDK: a bounded in-memory buffer drained by one background thread in batches.

The application never waits for the network: `add` appends under a lock held only for O(1) work, and when
the buffer is full the oldest event is dropped and counted. The sender retries what the server did not
take (network errors, 429 honouring Retry-After, 5xx) with exponential backoff, putting the batch back at
the front of the buffer so that, if the outage lasts, the oldest events are the first to go.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

__all__ = ["Tracker", "TrackerStats", "RequestScope", "current_request", "Event", "checked_tags"]

log = logging.getLogger("rampup.sdk")

Event = dict[str, Any]
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
MAX_EXPOSURE_KEYS = (
    250_000  # dedup memory bound (~15 MB); beyond it duplicates are sent, never unbounded growth
)
_EVENT_INDEX = re.compile(r"^events\[(\d+)\]")
_RETRYABLE = frozenset({408, 425, 429})


class RequestScope:
    """What one request evaluated, filled by the client and the OpenFeature hook, read by the middleware."""

    __slots__ = ("flags", "targeting_key", "error")

    def __init__(self) -> None:
        self.flags: dict[str, bool | str | int | float] = {}
        self.targeting_key: str | None = None
        self.error: BaseException | None = None  # an exception a framework turned into a 500 itself (Flask)

    def saw(self, flag_key: str, reported: bool | str | int | float, targeting_key: str | None) -> None:
        self.flags[flag_key] = reported
        if self.targeting_key is None and targeting_key:
            self.targeting_key = targeting_key


# Mutated, never re-set, inside a request: a copied context (a thread pool, a task) still reaches the same scope.
current_request: ContextVar[RequestScope | None] = ContextVar("rampup_request", default=None)


@dataclass(frozen=True, slots=True)
class TrackerStats:
    sent: int  # accepted by the server (2xx)
    dropped: int  # pushed out of a full buffer, or still unsent at close
    rejected: int  # refused by the server as invalid (4xx other than 408/425/429): retrying would not help
    buffered: int
    retries: int  # failed attempts that were retried
    last_error: str | None


class Tracker:
    def __init__(
        self,
        http: httpx.Client,
        path: str,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        exposure_interval: float = 3600.0,
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self._http = http
        self._path = path
        self._capacity = capacity
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._exposure_interval = exposure_interval
        self._buffer: deque[tuple[float, Event]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)  # notified when the buffer empties or a send ends
        self._in_flight = 0
        self._closing = False
        self._force = False
        self._failures = 0
        self._next_send = time.monotonic() + flush_interval
        self._seen: set[int] = set()
        self._seen_until = time.monotonic() + exposure_interval
        self._sent = self._dropped = self._rejected = self._retries = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="rampup-telemetry", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ application side

    def add(self, event: Event, at: float | None = None) -> None:
        item = (time.time() if at is None else at, event)
        with self._lock:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self._dropped += 1
                self._buffer.append(item)
                return
            self._buffer.append(item)
            # Wake the sender once, when a batch fills up: waking it on every add during an outage would spin.
            full = len(self._buffer) == self._batch_size
        if full:
            self._wake.set()

    def expose(
        self, flag_key: str, targeting_key: str | None, variant: str, tags: Mapping[str, str] | None = None
    ) -> None:
        """An exposure event, once per (flag, user, variant) per exposure interval; `tags` carry the unit of a
        flag bucketed by an attribute."""
        # The hash, not the tuple: a third of the memory, and no reference keeping the user's string alive.
        key = hash((flag_key, targeting_key, variant))
        seen = self._seen  # the sender swaps in a fresh set each interval; a race only costs a duplicate
        if key in seen:
            return
        if len(seen) >= MAX_EXPOSURE_KEYS:
            seen.clear()
        seen.add(key)
        event = {"type": "exposure", "targeting_key": targeting_key, "flag": flag_key, "variant": variant}
        self.add(event if tags is None else {**event, "tags": tags})

    def stats(self) -> TrackerStats:
        with self._lock:
            return TrackerStats(
                self._sent, self._dropped, self._rejected, len(self._buffer), self._retries, self._last_error
            )

    def flush(self, timeout: float) -> bool:
        """Send what is buffered now; True when all of it was sent (or rejected) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._force = True
        self._wake.set()
        with self._idle:
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Last attempt to send what is buffered, for at most `timeout` seconds; what is left is dropped."""
        with self._lock:
            self._closing = True
            self._force = True
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            if self._buffer:
                log.warning("rampup: %d telemetry events not sent at close", len(self._buffer))
                self._dropped += len(self._buffer)
                self._buffer.clear()
        self._http.close()

    # ------------------------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        while True:
            with self._lock:
                closing, force = self._closing, self._force
            if not (closing or force):
                self._wake.wait(max(0.0, self._next_send - time.monotonic()))
                self._wake.clear()
            self._rotate_exposures()
            with self._lock:
                closing, force, self._force = self._closing, self._force, False
                ready = len(self._buffer) >= self._batch_size and self._failures == 0
            if closing or force or ready or time.monotonic() >= self._next_send:
                try:
                    self._drain()
                except Exception:  # a bug here must not stop telemetry for the life of the process
                    log.exception("rampup: unexpected error in the telemetry thread")
                    self._notify_idle()
            if closing:
                return

    def _rotate_exposures(self) -> None:
        now = time.monotonic()
        if now >= self._seen_until:
            self._seen = set()
            self._seen_until = now + self._exposure_interval

    def _drain(self) -> None:
        """Sends batch after batch until the buffer is empty or a send fails (then backs off)."""
        while True:
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
                self._in_flight = len(batch)
            if not batch:
                self._next_send = time.monotonic() + self._flush_interval
                self._notify_idle()
                return
            retry_after = self._send(batch)
            self._notify_idle()
            if retry_after is not None:
                self._failures += 1
                backoff = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (self._failures - 1)) * random.uniform(
                    0.75, 1.0
                )
                self._next_send = time.monotonic() + max(backoff, retry_after)
                return
            self._failures = 0

    def _notify_idle(self) -> None:
        with self._idle:
            self._in_flight = 0
            self._idle.notify_all()

    def _send(self, batch: list[tuple[float, Event]]) -> float | None:
        """Sends one batch; None when it is settled (sent or refused for good), else seconds to wait at least."""
        try:
            body = msgspec.json.encode({"events": [{**event, "timestamp": _iso(at)} for at, event in batch]})
        except (TypeError, ValueError) as exc:  # msgspec.EncodeError is a ValueError
            self._reject(batch, f"unencodable events: {exc}")
            return None
        try:
            response = self._http.post(self._path, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return self._requeue(batch, f"{type(exc).__name__}: {exc}", 0.0)
        status = response.status_code
        if status < 300:
            with self._lock:
                self._sent += len(batch)
            return None
        if status == 413 and len(batch) > 1:  # smaller batches from now on; these events go again at once
            with self._lock:
                self._batch_size = max(1, len(batch) // 2)
                self._buffer.extendleft(reversed(batch))
            return None
        if status in _RETRYABLE or status >= 500:
            return self._requeue(batch, f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        message, where = _error_of(response)
        index = _EVENT_INDEX.match(where or "")
        if status == 422 and index and int(index.group(1)) < len(batch):
            # One bad event refuses the whole batch: drop that one and send the rest again at once.
            bad = int(index.group(1))
            log.warning(
                "rampup: the server refused a telemetry event (%s at %s): %s", message, where, batch[bad][1]
            )
            with self._lock:
                self._rejected += 1
                self._last_error = f"HTTP 422: {message} ({where})"
                self._buffer.extendleft(reversed(batch[:bad] + batch[bad + 1 :]))
            return None
        self._reject(batch, f"HTTP {status}: {message}")
        return None

    def _reject(self, batch: list[tuple[float, Event]], error: str) -> None:
        log.warning("rampup: %d telemetry events refused for good (%s)", len(batch), error)
        with self._lock:
            self._rejected += len(batch)
            self._last_error = error

    def _requeue(self, batch: list[tuple[float, Event]], error: str, retry_after: float) -> float:
        with self._lock:
            if self._last_error is None or self._failures == 0:
                log.warning("rampup: telemetry not sent (%s); retrying with backoff", error)
            self._last_error = error
            self._retries += 1
            self._buffer.extendleft(reversed(batch))
            while len(self._buffer) > self._capacity:
                self._buffer.popleft()
                self._dropped += 1
        return retry_after


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds or as an HTTP date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), RETRY_MAX_S) if math.isfinite(seconds) else 0.0


def _error_of(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json()["error"]
        return str(error.get("message", "")), error.get("where")
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200], None


def checked_tags(tags: Mapping[str, Any] | None) -> dict[str, str | int | float | bool] | None:
    """Tags the server will take (names of 1–200 characters, scalar values); anything else is dropped here
    rather than have the server refuse the whole batch."""
    if not tags:
        return None
    clean: dict[str, str | int | float | bool] = {}
    for name, value in tags.items():
        if isinstance(name, str) and 0 < len(name) <= 200:
            if isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value)):
                clean[name] = value
    return clean or None

"""Telemetry from the SDK: a bounded in-memory buffer drained by one background thread.

The application never waits for the network: `add` appends under a lock held only for O(1) work, and when
the buffer is full the oldest event is dropped and counted. By default (`mode="summaries"`) the sender folds
requests, errors and exposures into one summary per flush interval (`sdk/summaries.py`: the server's own
fold) and sends the rest as events; `mode="events"` sends every event as it is. The sender retries what the
server did not take (network errors, 429 honouring Retry-After, 5xx) with exponential backoff, keeping the
batch or summary first in line, so that, if the outage lasts, the oldest are the first to go — and are counted.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import math
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from rampup.core.flags import CompiledFlag
from rampup.sdk.clock import SYSTEM_CLOCK, Clock
from rampup.sdk.summaries import FOLDED, Attribution, Chunk, Item

__all__ = ["Tracker", "TrackerStats", "RequestScope", "current_request", "Event", "checked_tags"]

log = logging.getLogger("rampup.sdk")

Event = dict[str, Any]
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
MAX_EXPOSURE_KEYS = (
    250_000  # dedup memory bound (~15 MB); beyond it duplicates are sent, never unbounded growth
)
SUMMARIES_PATH = "/api/v1/summaries"
SUMMARY_CELLS = 10_000  # a summary is sent before it grows past this: far under the server's body limit
MODES = ("summaries", "events")
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
    sent: int  # accepted by the server (2xx), as events or in summaries
    dropped: int  # out of a full buffer, in summaries past `summary_capacity`, or unsent at close
    rejected: int  # refused as invalid (a 4xx but 408/425/429; unfoldable): retrying would not help
    buffered: int  # events not yet accepted, raw or summarized
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
        mode: str = "summaries",
        flags: Callable[[], Mapping[str, CompiledFlag]] = dict,
        summary_capacity: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`path`: where events go. In `mode="summaries"`, `flags()` gives the flag states summaries are
        attributed with (the client's; without them, summaries hold environment-wide figures only), and at most
        `summary_capacity` cells wait unsent (the oldest summaries beyond it are dropped and their events
        counted as dropped). `clock` times the flush interval, retries and the exposure interval."""
        if capacity < 1 or batch_size < 1 or summary_capacity < 1:
            raise ValueError("capacity, batch_size and summary_capacity must be at least 1")
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        self._http = http
        self._path = path
        self._clock = clock
        self._summarize = mode == "summaries"
        self._flags = flags
        self._attribution = Attribution()
        self._summary_capacity = summary_capacity
        self._folding: deque[Item] = deque()  # events to fold into the current summary
        # Summary ids: random per tracker, then numbered, so no two trackers anywhere send the same one.
        self._summary_ids = (f"{secrets.token_hex(16)}-{n}" for n in itertools.count())
        self._current = Chunk(next(self._summary_ids))
        self._chunks: deque[Chunk] = deque()  # sealed summaries, oldest first; only the sender touches them
        self._summarized = 0  # events folding, folded or in sealed summaries: not yet settled
        self._sending = 0  # of which in the summary being sent
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
        self._next_send = clock.monotonic() + flush_interval
        self._seen: set[int] = set()
        self._seen_until = clock.monotonic() + exposure_interval
        self._sent = self._dropped = self._rejected = self._retries = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="rampup-telemetry", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ application side

    def add(self, event: Event, at: float | None = None) -> None:
        item = (time.time() if at is None else at, event)
        if self._summarize and event.get("type") in FOLDED:
            self._fold_later(item)
            return
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

    @property
    def summarizes(self) -> bool:
        return self._summarize

    def request(
        self,
        targeting_key: str | None,
        flags: dict[str, bool | str | int | float],
        duration_ms: float,
        ok: bool,
        tags: dict[str, str],
    ) -> None:
        """The middleware's request in summary mode: a tuple, turned into the server's Observation and folded
        by the sender, so the request's thread builds no event."""
        # Its time in whole ms, as the server keeps it: no event, so no ISO timestamp to make and decode.
        self._fold_later((time.time_ns() // 1_000_000, targeting_key, flags, duration_ms, ok, tags))

    def _fold_later(self, item: Item) -> None:
        with self._lock:
            if len(self._folding) >= self._capacity:
                self._folding.popleft()
                self._dropped += 1
                self._summarized -= 1
            self._folding.append(item)
            self._summarized += 1
            full = len(self._folding) == self._batch_size
        if full:  # the sender folds a batch at a time, so the queue stays short however long the interval
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
                self._sent,
                self._dropped,
                self._rejected,
                len(self._buffer) + self._summarized,
                self._retries,
                self._last_error,
            )

    def flush(self, timeout: float) -> bool:
        """Send what is buffered now; True when all of it was sent (or rejected) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._force = True
        self._wake.set()
        with self._idle:
            while self._buffer or self._in_flight or self._summarized:
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
            # A summary still being sent settles itself (sent, or never counted), like a batch in flight.
            unsent = len(self._buffer) + self._summarized - self._sending
            if unsent:
                log.warning("rampup: %d telemetry events not sent at close", unsent)
                self._dropped += unsent
                self._buffer.clear()
                self._summarized = self._sending
        self._http.close()

    # ------------------------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        while True:
            with self._lock:
                closing, force = self._closing, self._force
            if not (closing or force):
                self._clock.wait(self._wake, self._next_send)
                self._wake.clear()
            self._rotate_exposures()
            with self._lock:
                closing, force, self._force = self._closing, self._force, False
                ready = len(self._buffer) >= self._batch_size and self._failures == 0
            try:
                self._fold()
                if closing or force or ready or self._clock.monotonic() >= self._next_send:
                    self._drain()
            except Exception:  # a bug here must not stop telemetry for the life of the process
                log.exception("rampup: unexpected error in the telemetry thread")
                self._notify_idle()
            if closing:
                return

    def _rotate_exposures(self) -> None:
        now = self._clock.monotonic()
        if now >= self._seen_until:
            self._seen = set()
            self._seen_until = now + self._exposure_interval

    def _fold(self) -> None:
        """Folds what waits into the current summary, sealing it when it is as large as one is sent."""
        with self._lock:
            items = list(self._folding)
            self._folding.clear()
        if not items:
            return
        refused = self._current.fold(items, self._attribution, self._flags())
        if refused:
            event, exc = refused[0]
            log.warning(
                "rampup: %d telemetry events refused (%s at %s): %s", len(refused), exc, exc.where, event
            )
            with self._lock:
                self._rejected += len(refused)
                self._summarized -= len(refused)
                self._last_error = f"{exc.message} ({exc.where})"
        if self._current.cells >= SUMMARY_CELLS:
            self._seal()

    def _seal(self) -> None:
        """The current summary joins those to send; past `summary_capacity` cells the oldest go, counted."""
        if self._current.events:
            self._chunks.append(self._current)
            self._current = Chunk(next(self._summary_ids))
        held = sum(chunk.cells for chunk in self._chunks)
        while held > self._summary_capacity and len(self._chunks) > 1:  # the newest is always kept
            oldest = self._chunks.popleft()
            held -= oldest.cells
            log.warning("rampup: a summary of %d telemetry events dropped: too many unsent", oldest.events)
            with self._lock:
                self._dropped += oldest.events
                self._summarized -= oldest.events

    def _drain(self) -> None:
        """Sends summary after summary, then batch after batch, until none is left or a send fails (then
        backs off)."""
        self._seal()
        while self._chunks:
            if not self._settled(self._send_summary(self._chunks[0])):
                return
        while True:
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
                self._in_flight = len(batch)
            if not batch:
                self._next_send = self._clock.monotonic() + self._flush_interval
                self._notify_idle()
                return
            if not self._settled(self._send(batch)):
                return

    def _settled(self, retry_after: float | None) -> bool:
        """After a send: True to go on, False when it failed and the sender backs off."""
        self._notify_idle()
        if retry_after is None:
            self._failures = 0
            return True
        self._failures += 1
        backoff = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (self._failures - 1)) * random.uniform(0.75, 1.0)
        self._next_send = self._clock.monotonic() + max(backoff, retry_after)
        return False

    def _notify_idle(self) -> None:
        with self._idle:
            self._in_flight = self._sending = 0
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

    def _send_summary(self, chunk: Chunk) -> float | None:
        """Sends the oldest summary; None when it is settled (and out of the line), else seconds to wait."""
        with self._lock:
            self._sending = chunk.events
        try:
            response = self._http.post(
                SUMMARIES_PATH, content=chunk.body(), headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return self._retry(f"{type(exc).__name__}: {exc}", 0.0)
        status = response.status_code
        if status in _RETRYABLE or status >= 500:
            return self._retry(f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        if status < 300:
            self._settle(chunk, None)
            return None
        message, where = _error_of(response)
        if status == 422 and chunk.drop_cell(where):  # a flag deleted meanwhile: the rest goes again at once
            log.warning("rampup: a telemetry summary's cell refused (%s at %s)", message, where)
            with self._lock:
                self._last_error = f"HTTP 422: {message} ({where})"
            return None
        log.warning("rampup: a summary of %d telemetry events refused for good (%s)", chunk.events, message)
        self._settle(chunk, f"HTTP {status}: {message}")
        return None

    def _settle(self, chunk: Chunk, error: str | None) -> None:
        self._chunks.popleft()
        with self._lock:
            self._summarized -= chunk.events
            if error is None:
                self._sent += chunk.events
            else:
                self._rejected += chunk.events
                self._last_error = error

    def _retry(self, error: str, retry_after: float) -> float:
        with self._lock:
            if self._last_error is None or self._failures == 0:
                log.warning("rampup: telemetry not sent (%s); retrying with backoff", error)
            self._last_error = error
            self._retries += 1
        return retry_after

    def _reject(self, batch: list[tuple[float, Event]], error: str) -> None:
        log.warning("rampup: %d telemetry events refused for good (%s)", len(batch), error)
        with self._lock:
            self._rejected += len(batch)
            self._last_error = error

    def _requeue(self, batch: list[tuple[float, Event]], error: str, retry_after: float) -> float:
        self._retry(error, retry_after)
        with self._lock:
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

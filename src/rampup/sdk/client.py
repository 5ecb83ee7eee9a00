"""The Rampup client: flags evaluated in process from the environment's configuration.

The configuration is the server's own document (`/api/v1/sdk/flags`), decoded with the server's codec into
the server's `CompiledFlag`s, so every answer is the server's answer, bit for bit. One background thread
keeps it current over server-sent events (`/api/v1/sdk/stream`); when the stream fails it polls with ETag
and reconnects with backoff. Evaluation reads a dictionary that is swapped whole, never mutated, so it needs
no lock, and it never raises: a problem answers the caller's default and is counted in `stats()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from mmh3 import hash as _murmur3

from rampup import __version__
from rampup.adapters.codecs.sdk_config import decode_config
from rampup.core.bucketing import BUCKETS, TARGETING_KEY
from rampup.core.feedback import MAX_COMMENT, clip, parse_scale, rating_of, score
from rampup.core.flags import CompiledFlag, ErrorCode, FlagType, Reason, Resolution
from rampup.core.targeting import EvaluationContext
from rampup.errors import InvalidInput
from rampup.sdk.clock import SYSTEM_CLOCK, Clock
from rampup.sdk.tracking import Tracker, TrackerStats, checked_tags, current_request

__all__ = ["Client", "Evaluation", "Stats"]

log = logging.getLogger("rampup.sdk")

Evaluation = Resolution  # flag_key, value, variant, reason, version, error_code, error_message

STREAM_READ_TIMEOUT_S = 45.0  # the server sends a keepalive every 15 s: three missed means the stream is dead
RETRY_BASE_S = 0.25
RETRY_MAX_S = 10.0
NOT_READY = "NOT_READY"  # counted for evaluations before any configuration arrived
EVENT_DISCARDED = (
    "EVENT_DISCARDED"  # counted for track calls with bad input, without telemetry, or after close
)


@dataclass(frozen=True, slots=True)
class Stats:
    environment: str | None
    revision: int | None
    source: str | None  # where the configuration in use came from: "bootstrap", "stream" or "poll"
    updated_at: float | None  # Unix time the server last sent or confirmed it
    streaming: bool  # the stream is connected right now
    connects: int  # stream connections made
    polls: int
    config_errors: int  # failed fetches, dropped streams, unreadable documents
    # By kind: evaluation error codes (FLAG_NOT_FOUND, TYPE_MISMATCH, TARGETING_KEY_MISSING, GENERAL,
    # NOT_READY), each an evaluation answered with the caller's default; EVENT_DISCARDED for track calls.
    errors: Mapping[str, int] = field(default_factory=dict)
    events: TrackerStats | None = None  # None without an ingest token


class Client:
    """Flags of one environment, evaluated in process. Thread-safe; use one per process (after any fork)."""

    def __init__(
        self,
        server_url: str,
        sdk_token: str,
        *,
        bootstrap: str | os.PathLike[str] | None = None,
        ingest_token: str | None = None,
        environment: str | None = None,
        stream: bool = True,
        poll_interval: float = 10.0,
        start_timeout: float = 5.0,
        timeout: float = 5.0,
        exposures: bool = True,
        buffer_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        exposure_interval: float = 3600.0,
        telemetry: str = "summaries",
        summary_capacity: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """
        server_url, sdk_token: the Rampup server and an `sdk` token of the environment to serve.
        bootstrap: a configuration file (what `GET /api/v1/sdk/flags` answers) to start from when the server
            cannot be reached; the client keeps the last configuration it received there.
        ingest_token: a token with the `ingest` scope (an `ingest` token, or a `write` token): telemetry is off
            without one. environment: for tokens not bound to one environment (`write`, `admin`).
        stream: follow server-sent events (else poll every `poll_interval` seconds). start_timeout: how long
            the constructor waits for the server's first answer. timeout: for every request.
        exposures: send an exposure event per user, flag and variant once per `exposure_interval` seconds.
        buffer_size, batch_size, flush_interval: telemetry buffering (see docs/sdk.md).
        telemetry: "summaries" (requests, errors and exposures folded into one summary per flush interval,
            at most `summary_capacity` cells held unsent) or "events" (every event sent as it is).
        clock: what telemetry is timed by: the flush interval, retries, the exposure interval and the
            middleware's request durations (a test passes its own to drive them).
        """
        # The hot path reads only these two: flag key → (bucket prefix, threshold) for boolean flags without
        # rules, and flag key → CompiledFlag for everything else. Both are replaced whole, never mutated.
        self._split: dict[str, tuple[str, int]] = {}
        self._flags: dict[str, CompiledFlag] = {}
        self._environment: str | None = None
        self._revision: int | None = None
        self._etag: str | None = (
            None  # never from the bootstrap file: another environment may share its revision
        )
        self._source: str | None = None
        self._updated_at: float | None = None
        self._bootstrap = Path(bootstrap) if bootstrap is not None else None
        self._use_stream = stream
        self._poll_interval = poll_interval
        self._clock = clock
        self._timeout = timeout
        self._params = {"environment": environment} if environment else {}
        self._lock = threading.Lock()
        self._errors: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._connects = self._polls = self._config_errors = 0
        self._streaming = False
        self._stream_socket: socket.socket | None = None
        self._listeners: list[Callable[[set[str]], None]] = []
        self._ready = threading.Event()
        self._first_attempt = threading.Event()
        self._closed = threading.Event()
        base = server_url.rstrip("/")
        agent = {"User-Agent": f"rampup-python-sdk/{__version__}"}
        self._http = httpx.Client(
            base_url=base, timeout=timeout, headers={**agent, "Authorization": f"Bearer {sdk_token}"}
        )
        self._tracker: Tracker | None = None
        if ingest_token is not None:
            events_http = httpx.Client(
                base_url=base,
                timeout=timeout,
                params=self._params,
                headers={**agent, "Authorization": f"Bearer {ingest_token}"},
            )
            self._tracker = Tracker(
                events_http,
                "/api/v1/events",
                capacity=buffer_size,
                batch_size=batch_size,
                flush_interval=flush_interval,
                exposure_interval=exposure_interval,
                mode=telemetry,
                flags=lambda: self._flags,
                summary_capacity=summary_capacity,
                clock=clock,
            )
        self._exposures = exposures and self._tracker is not None
        # Whether evaluations are reported at all (exposures, the middleware's request scope): off costs nothing.
        self._observe = self._exposures
        if self._bootstrap is not None:
            self._load_bootstrap(self._bootstrap)
        self._thread = threading.Thread(target=self._run, name="rampup-config", daemon=True)
        self._thread.start()
        # Wait for the server's answer, not for the start timeout: a refused connection returns at once.
        self._first_attempt.wait(start_timeout)

    # ------------------------------------------------------------------------------------------ evaluation

    def is_enabled(
        self,
        flag_key: str,
        targeting_key: str,
        attributes: Mapping[str, Any] | None = None,
        default: bool = False,
    ) -> bool:
        """Whether a boolean flag is on for this user; `default` if it cannot be answered. Never raises."""
        try:
            prefix, threshold = self._split[flag_key]
            if not targeting_key:
                return self._is_enabled_in_full(flag_key, targeting_key, attributes, default)
            # CompiledFlag.is_on's fast path, inlined (one Python call less is a third of the cost);
            # the arguments are positional because keywords cost a few more nanoseconds: seed 0, unsigned.
            on: bool = _murmur3(prefix + targeting_key, 0, False) % BUCKETS < threshold
        except Exception:  # KeyError: rules, another type, no such flag; TypeError: a key that is no string
            return self._is_enabled_in_full(flag_key, targeting_key, attributes, default)
        if self._observe:
            self._observed(flag_key, targeting_key, on, "on" if on else "off")
        return on

    def evaluate(
        self,
        flag_key: str,
        targeting_key: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        default: Any = None,
    ) -> Evaluation:
        """The full answer (value, variant, reason, version; error code when the default was served). Never raises."""
        return self._evaluate(flag_key, targeting_key, attributes, default, None)

    def _is_enabled_in_full(
        self, flag_key: str, targeting_key: str | None, attributes: Mapping[str, Any] | None, default: bool
    ) -> bool:
        resolution = self._evaluate(flag_key, targeting_key, attributes, default, FlagType.BOOLEAN)
        return resolution.value is True if resolution.error_code is None else default

    def _evaluate(
        self,
        flag_key: str,
        targeting_key: str | None,
        attributes: Mapping[str, Any] | None,
        default: Any,
        expected: FlagType | None,
    ) -> Evaluation:
        try:
            flag = self._flags.get(flag_key)
            if flag is None:
                if not self._ready.is_set():
                    return self._error(
                        NOT_READY,
                        ErrorCode.GENERAL,
                        flag_key,
                        default,
                        "no flag configuration yet: the server has not answered and there is no bootstrap file",
                    )
                return self._error(
                    ErrorCode.FLAG_NOT_FOUND,
                    ErrorCode.FLAG_NOT_FOUND,
                    flag_key,
                    default,
                    f"flag {flag_key!r} not found",
                )
            if targeting_key is not None and not isinstance(targeting_key, str):
                return self._error(
                    ErrorCode.INVALID_CONTEXT,
                    ErrorCode.INVALID_CONTEXT,
                    flag_key,
                    default,
                    f"the targeting key must be a string, not {type(targeting_key).__name__}",
                )
            if expected is not None and flag.definition.type is not expected:
                return self._error(
                    ErrorCode.TYPE_MISMATCH,
                    ErrorCode.TYPE_MISMATCH,
                    flag_key,
                    default,
                    f"flag {flag_key!r} is a {flag.definition.type.value} flag, not {expected.value}",
                )
            resolution = flag.evaluate(
                EvaluationContext(targeting_key, {} if attributes is None else attributes)
            )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self._count(ErrorCode.GENERAL, f"evaluating {flag_key!r} failed: {message}")
            return Resolution(flag_key, default, None, Reason.ERROR, 0, ErrorCode.GENERAL, message)
        if resolution.error_code is not None:
            self._count(resolution.error_code, f"{flag_key!r}: {resolution.error_message}")
            return Resolution(
                flag_key,
                default,
                None,
                Reason.ERROR,
                resolution.version,
                resolution.error_code,
                resolution.error_message,
            )
        if self._observe and resolution.variant is not None:
            value = resolution.value
            self._observed(
                flag_key,
                targeting_key,
                value if type(value) is bool else resolution.variant,
                resolution.variant,
                _unit_tags(resolution, attributes),
            )
        return resolution

    def _observed(
        self,
        flag_key: str,
        targeting_key: str | None,
        reported: bool | str,
        variant: str,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        scope = current_request.get()
        if scope is not None:
            scope.saw(flag_key, reported, targeting_key)
        if self._exposures and self._tracker is not None:
            self._tracker.expose(flag_key, targeting_key, variant, tags)

    def _error(self, counted: str, code: ErrorCode, flag_key: str, default: Any, message: str) -> Evaluation:
        self._count(counted, message)
        return Resolution(flag_key, default, None, Reason.ERROR, 0, code, message)

    def _count(self, kind: str, detail: str) -> None:
        kind = str(kind)
        with self._lock:
            self._errors[kind] += 1
            first = kind not in self._warned
            self._warned.add(kind)
        if first:  # once per kind: a hot loop must not flood the log
            log.warning(
                "rampup: %s (%s); further %s errors are only counted in Client.stats()", detail, kind, kind
            )

    # ------------------------------------------------------------------------------------------ telemetry

    def track(
        self,
        name: str,
        targeting_key: str | None = None,
        *,
        value: float | None = None,
        engagement: bool = False,
        tags: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """A custom event (`engagement=True` feeds the engagement metric). Never blocks, never raises."""
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            self._dropped("track: an event name is a string of 1 to 200 characters")
            return
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not abs(value) <= 1e300
        ):
            self._dropped(f"track: value of {name!r} must be a finite number")
            return
        event: dict[str, Any] = {"type": "custom", "name": name, "engagement": bool(engagement)}
        if value is not None:
            event["value"] = float(value)
        self._add(event, targeting_key, tags)

    def track_error(
        self,
        error: BaseException | str,
        targeting_key: str | None = None,
        *,
        unhandled: bool = False,
        tags: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """An error event (`unhandled=True` feeds the unhandled_exceptions metric). Never blocks, never raises."""
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self._add(
            {"type": "error", "unhandled": bool(unhandled), "message": message[:10_000]}, targeting_key, tags
        )

    def feedback(
        self,
        rating: float | str | bool | None = None,
        targeting_key: str | None = None,
        *,
        scale: str = "1-5",
        comment: str | None = None,
        tags: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """A user's feedback: a rating on `scale` ("1-5", "0-10", "thumbs" with "up"/"down"), a comment, or
        both; attributed like every event (inside a request, to what the user saw). A comment over 5,000
        characters is cut there. Never blocks, never raises: a rating off its scale is discarded and counted."""
        event: dict[str, Any] = {"type": "feedback", "scale": scale}
        try:
            declared = parse_scale(scale, "scale")
            if rating is not None:
                score(rating_of(rating, declared, "rating"), declared, "rating")
                event["rating"] = rating
        except InvalidInput as exc:
            self._dropped(f"feedback: {exc.message}")
            return
        if isinstance(comment, str) and comment:
            event["comment"] = clip(comment, MAX_COMMENT)
        if "rating" not in event and "comment" not in event:
            self._dropped("feedback: give a rating, a comment or both")
            return
        self._add(event, targeting_key, tags)

    def _add(
        self,
        event: dict[str, Any],
        targeting_key: str | None,
        tags: Mapping[str, str | int | float | bool] | None,
    ) -> None:
        """Adds the flags and user of the current request, when there is one: what this user saw."""
        tracker = self._tracking()
        if tracker is None:
            return
        try:
            scope = current_request.get()
            if scope is not None:
                targeting_key = targeting_key or scope.targeting_key
                if scope.flags:
                    event["flags"] = dict(scope.flags)
            if (user := _user(targeting_key)) is not None:
                event["targeting_key"] = user
            if clean := checked_tags(tags):
                event["tags"] = clean
            tracker.add(event)
        except Exception as exc:
            self._dropped(f"{type(exc).__name__}: {exc}")

    def _tracking(self) -> Tracker | None:
        """The tracker, or None (and the event counted as discarded) when telemetry is off or the client closed."""
        if self._tracker is None or self._closed.is_set():
            self._dropped(
                "telemetry is off: give the client an ingest_token"
                if self._tracker is None
                else "the client is closed"
            )
            return None
        return self._tracker

    def _summarizes_requests(self) -> bool:
        return self._tracker is not None and self._tracker.summarizes

    def _request(
        self,
        targeting_key: str | None,
        flags: dict[str, bool | str | int | float],
        duration_ms: float,
        ok: bool,
        tags: dict[str, str],
    ) -> None:
        """The middleware's request when requests are summarized: no event is built (`Tracker.request`)."""
        if (tracker := self._tracking()) is not None:
            tracker.request(_user(targeting_key), flags, duration_ms, ok, tags)

    def _dropped(self, reason: str) -> None:
        self._count(EVENT_DISCARDED, f"telemetry event discarded: {reason}")

    def _record_requests(self) -> None:
        """Called by the middleware: from now on evaluations also fill the current request's scope."""
        self._observe = True

    def flush(self, timeout: float = 5.0) -> bool:
        """Sends buffered telemetry now; True when all of it went out within `timeout` seconds."""
        return self._tracker.flush(timeout) if self._tracker is not None else True

    # ------------------------------------------------------------------------------------------ state

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Waits until a configuration is in use (from the server or the bootstrap file)."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stats(self) -> Stats:
        with self._lock:
            errors = dict(self._errors)
        return Stats(
            self._environment,
            self._revision,
            self._source,
            self._updated_at,
            self._streaming,
            self._connects,
            self._polls,
            self._config_errors,
            errors,
            self._tracker.stats() if self._tracker is not None else None,
        )

    def _on_change(self, listener: Callable[[set[str]], None]) -> None:
        """listener(keys of the flags that changed), on the config thread after each new configuration."""
        self._listeners.append(listener)

    def close(self, timeout: float = 5.0) -> None:
        """Stops the config thread and sends what telemetry is buffered (for at most `timeout` seconds).
        Evaluations keep answering from the last configuration."""
        if self._closed.is_set():
            return
        deadline = time.monotonic() + timeout
        self._closed.set()
        sock = self._stream_socket
        if sock is not None:
            # Wakes the thread blocked reading the stream (closing the socket alone would not); it may be gone.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._tracker is not None:
            self._tracker.close(max(0.0, deadline - time.monotonic()))
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ config thread

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                # A poll first, and between stream attempts: the client is ready even when a proxy holds the
                # stream back, and keeps up by polling while the stream cannot connect.
                self._poll()
                self._first_attempt.set()
                if self._use_stream and not self._closed.is_set():
                    failures = 0 if self._stream_once() else failures + 1
                    pause = min(RETRY_MAX_S, RETRY_BASE_S * 2**failures) * random.uniform(0.75, 1.0)
                else:
                    pause = self._poll_interval
            except Exception:  # a bug here must not stop updates for the life of the process
                log.exception("rampup: unexpected error in the configuration thread")
                pause = RETRY_MAX_S
            self._closed.wait(pause)
        self._first_attempt.set()

    def _stream_once(self) -> bool:
        """Follows the stream until it ends; True if it delivered a configuration."""
        delivered = False
        timeout = httpx.Timeout(self._timeout, read=STREAM_READ_TIMEOUT_S)
        try:
            with self._http.stream(
                "GET",
                "/api/v1/sdk/stream",
                params=self._params,
                timeout=timeout,
                headers={"Accept": "text/event-stream"},
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._config_failed(
                        f"the stream answered HTTP {response.status_code}: {response.text[:200]}"
                    )
                    return False
                self._stream_socket = _socket_of(response)
                if self._closed.is_set():
                    return False
                self._connects += 1
                self._streaming = True
                for event, data, event_id in _server_sent_events(response.iter_lines()):
                    if event == "config":
                        etag = f'"{event_id}"' if event_id else None
                        delivered = self._install(data.encode(), "stream", etag) or delivered
            if not self._closed.is_set():
                self._config_failed("the stream ended")
        except (httpx.HTTPError, OSError) as exc:
            if not self._closed.is_set():
                self._config_failed(f"the stream failed: {type(exc).__name__}: {exc}")
        finally:
            self._streaming = False
            self._stream_socket = None
        return delivered

    def _poll(self) -> None:
        self._polls += 1
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._http.get("/api/v1/sdk/flags", params=self._params, headers=headers)
        except httpx.HTTPError as exc:
            self._config_failed(f"polling failed: {type(exc).__name__}: {exc}")
            return
        if response.status_code == 304:
            self._updated_at = time.time()
        elif response.status_code == 200:
            self._install(response.content, "poll", response.headers.get("etag"))
        else:
            self._config_failed(f"polling answered HTTP {response.status_code}: {response.text[:200]}")

    def _config_failed(self, reason: str) -> None:
        with self._lock:
            self._config_errors += 1
            first = "config" not in self._warned
            self._warned.add("config")
        # Once per outage: a server that is down for an hour must not write a line per retry.
        (log.warning if first else log.debug)(
            "rampup: %s; serving the last configuration (revision %s)", reason, self._revision
        )

    def _install(self, document: bytes, source: str, etag: str | None) -> bool:
        try:
            environment, revision, flags = decode_config(document)
        except Exception as exc:
            self._config_failed(f"unreadable configuration from {source}: {type(exc).__name__}: {exc}")
            return False
        if source != "bootstrap":
            self._etag = etag
            self._updated_at = time.time()
            with self._lock:
                if "config" in self._warned:
                    log.warning("rampup: configuration updates restored (%s)", source)
                self._warned.discard("config")
        if (environment, revision) == (self._environment, self._revision):
            return True
        previous = self._flags
        self._split = {key: split for key, flag in flags.items() if (split := flag.fast_split) is not None}
        self._flags = flags
        self._environment, self._revision, self._source = environment, revision, source
        self._ready.set()
        if self._bootstrap is not None and source != "bootstrap":
            self._save_bootstrap(self._bootstrap, document)
        changed = {k for k, f in flags.items() if k not in previous or previous[k].version != f.version}
        changed.update(previous.keys() - flags.keys())
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:
                log.exception("rampup: a configuration listener failed")
        return True

    def _load_bootstrap(self, path: Path) -> None:
        try:
            document = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._config_failed(f"cannot read the bootstrap file {path}: {exc}")
            return
        self._install(document, "bootstrap", None)

    def _save_bootstrap(self, path: Path, document: bytes) -> None:
        """The last good configuration, for the next start without a server. Replaced atomically, so several
        processes may share the file and none ever reads half of one."""
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            temporary.write_bytes(document)
            os.replace(temporary, path)
        except OSError as exc:
            self._config_failed(f"cannot write the bootstrap file {path}: {exc}")
            temporary.unlink(missing_ok=True)


def _user(targeting_key: Any) -> str | None:
    """The user an event may name: the server takes a string of 1 to 256 characters, and nothing else."""
    return targeting_key if isinstance(targeting_key, str) and 0 < len(targeting_key) <= 256 else None


def _unit_tags(resolution: Resolution, attributes: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    """The attribute a split bucketed by, as an event tag: the server counts this exposure for that unit."""
    bucketed_by = resolution.metadata.get("bucketedBy")
    if bucketed_by is None or bucketed_by == TARGETING_KEY or attributes is None:
        return None
    return {bucketed_by: str(attributes[bucketed_by])}


def _socket_of(response: httpx.Response) -> socket.socket | None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    return sock if isinstance(sock, socket.socket) else None


def _server_sent_events(lines: Iterator[str]) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) per event of a text/event-stream, as the HTML standard parses it."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, data = "message", []
            continue
        if line.startswith(":"):  # a comment: the server's keepalive
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value

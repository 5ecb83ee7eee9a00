"""The Sentry protocol: envelopes and legacy store bodies → Observations; auth header parsing.

What counts: error events (unhandled when an exception's mechanism says
`handled: false`), transactions (`http.server` ones are requests with a latency; a non-ok status is a
failure; page loads carry `measurements.lcp`), sessions (errored, crashed or abnormal ones fail), and user
feedback: the `feedback` event that `captureFeedback` and the feedback widget send (`contexts.feedback`, a
rating from a `rating` tag on the scale a `rating_scale` tag names, 1-5 by default) and the legacy
`user_report` item. Feedback that has no user or flags of its own takes them from the event it names. The
name and e-mail address people leave with their feedback are not kept. Other item types are accepted and
ignored.
"""

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

import msgspec

from rampup.adapters.codecs.native import FUTURE_TOLERANCE_MS, to_ms, unstorable
from rampup.core.feedback import MAX_COMMENT, clip, parse_scale, rating_of, score
from rampup.core.telemetry import Kind, Observation
from rampup.errors import BadRequest, InvalidInput, TooLarge

__all__ = ["parse_envelope", "parse_store", "sentry_key", "FLAG_TAG_SUFFIX", "MAX_OBSERVATIONS"]

MAX_OBSERVATIONS = 100_000  # per request
MAX_SESSIONS = 1_000_000_000  # in one aggregate bucket and status

FLAG_TAG_SUFFIX = "_enabled"  # the flag tag: workstation_enabled=true
_json = msgspec.json.Decoder()
_TERMINAL_SESSION = {"exited", "crashed", "abnormal", "errored"}
_FAILED_SESSION = {"crashed", "abnormal", "errored"}


def sentry_key(auth_header: str | None, query_key: str | None) -> str | None:
    """The DSN's public key, from `X-Sentry-Auth: Sentry sentry_key=…, …` or `?sentry_key=`."""
    if auth_header:
        _, _, pairs = auth_header.partition(" ")
        for pair in pairs.split(","):
            name, _, value = pair.strip().partition("=")
            if name == "sentry_key" and value:
                return value
    return query_key


def _decode(raw: bytes, where: str) -> Any:
    try:
        return _json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"not valid JSON: {exc}", where=where) from None
    except RecursionError:  # the decoder recurses per level of nesting; no SDK nests anywhere near this deep
        raise BadRequest("JSON nested too deeply", where=where) from None


def parse_envelope(body: bytes, now_ms: int) -> tuple[str | None, list[Observation]]:
    """(event id, observations) of an envelope: a header line, then item header / payload pairs."""
    header_line, _, rest = body.partition(b"\n")
    header = _decode(header_line, "envelope header")
    if not isinstance(header, dict):
        raise InvalidInput("the envelope header must be a JSON object", where="envelope header")
    observations: list[Observation] = []
    position, number = 0, 0
    while position < len(rest):
        if rest[position : position + 1] == b"\n":
            position += 1
            continue
        line_end = rest.find(b"\n", position)
        line_end = len(rest) if line_end < 0 else line_end
        where = f"item {number}"
        item = _decode(rest[position:line_end], f"{where} header")
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise InvalidInput("an item header is a JSON object with a 'type'", where=f"{where} header")
        start = line_end + 1
        length = item.get("length")
        if length is None:
            end = rest.find(b"\n", start)
            end = len(rest) if end < 0 else end
        elif isinstance(length, int) and length >= 0 and start + length <= len(rest):
            end = start + length
        else:
            raise BadRequest(
                f"item length {length!r} runs past the end of the envelope", where=f"{where} header"
            )
        budget = MAX_OBSERVATIONS - len(observations)
        observations.extend(islice(_item(item["type"], rest[start:end], now_ms, where), budget + 1))
        if len(observations) > MAX_OBSERVATIONS:
            raise TooLarge(f"more than {MAX_OBSERVATIONS} sessions and events in one envelope")
        position, number = end + 1, number + 1
    event_id = header.get("event_id")
    return event_id if isinstance(event_id, str) else None, _storable(observations)


def parse_store(body: bytes, now_ms: int) -> tuple[str | None, list[Observation]]:
    """The legacy /store/ endpoint: the body is one event."""
    event = _decode(body, "body")
    if not isinstance(event, dict):
        raise InvalidInput("the body must be a JSON object", where="body")
    kind = str(event["type"]) if event.get("type") in ("transaction", "feedback") else "event"
    event_id = event.get("event_id")
    observations = list(_payload(kind, event, _Times(now_ms, "body")))
    return event_id if isinstance(event_id, str) else None, _storable(observations)


def _storable(observations: list[Observation]) -> list[Observation]:
    """SDK payloads are free-form: drop what a database cannot store (NUL characters, infinities) rather than
    refuse a whole envelope for one odd string."""
    return [o for o in observations if unstorable(o) is None]


def _item(kind: str, payload: bytes, now_ms: int, where: str) -> Iterator[Observation]:
    if kind not in ("event", "transaction", "session", "sessions", "feedback", "user_report"):
        return  # client_report, attachment, check_in, span, log, …: accepted, not counted
    data = _decode(payload, f"{where} ({kind})")
    if not isinstance(data, dict):
        raise InvalidInput(f"a {kind} item is a JSON object", where=f"{where} ({kind})")
    yield from _payload(kind, data, _Times(now_ms, f"{where} ({kind})"))


def _payload(kind: str, data: dict[str, Any], times: "_Times") -> Iterator[Observation]:
    match kind:
        case "event":
            yield _error(data, times)
        case "transaction":
            yield from _transaction(data, times)
        case "session":
            session = _session(data, times)
            if session is not None:
                yield session
        case "sessions":
            yield from _session_aggregates(data, times)
        case "feedback":
            yield _feedback(data, times)
        case "user_report":
            yield _user_report(data, times)


class _Times:
    """An item's timestamps → ms, refused (as the native API refuses them) when they cannot be an event's time:
    before 1970 or more than a day in the future, where a stored or aggregated time would mean nothing."""

    def __init__(self, now_ms: int, where: str) -> None:
        self._now_ms = now_ms
        self._where = where

    def ms(self, value: Any, field: str, default: int | None = None) -> int:
        at_ms = default if default is not None else self._now_ms
        if isinstance(value, int | float) and not isinstance(value, bool):
            at_ms = int(max(-1, min(value, 1e12)) * 1000)  # seconds, clamped: a 400-digit number is no float
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                at_ms = to_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        if at_ms > self._now_ms + FUTURE_TOLERANCE_MS:
            raise InvalidInput(f"{field} is more than a day in the future", where=self.at(field))
        if at_ms < 0:
            raise InvalidInput(f"{field} is before 1970", where=self.at(field))
        return at_ms

    def at(self, field: str) -> str:
        return f"{self._where}.{field}"


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    tags = data.get("tags")
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(p[0]): str(p[1]) for p in tags if isinstance(p, list | tuple) and len(p) == 2}
    return {}


def _flags(data: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any] | None:
    flags: dict[str, Any] = {
        k[: -len(FLAG_TAG_SUFFIX)]: v
        for k, v in tags.items()
        if k.endswith(FLAG_TAG_SUFFIX) and len(k) > len(FLAG_TAG_SUFFIX)
    }
    contexts = data.get("contexts")
    context = contexts.get("flags") if isinstance(contexts, dict) else None
    values = context.get("values") if isinstance(context, dict) else None
    for entry in values if isinstance(values, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("flag"), str) and "result" in entry:
            flags.setdefault(entry["flag"], entry["result"])
    return flags or None


def _user(data: Mapping[str, Any]) -> str | None:
    user = data.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    return str(user_id)[:256] if user_id not in (None, "") else None


def _common(kind: Kind, data: Mapping[str, Any], at_ms: int) -> Observation:
    tags = _tags(data)
    return Observation(kind, at_ms, _user(data), _flags(data, tags), tags=tags or None)


def _error(data: dict[str, Any], times: _Times) -> Observation:
    o = _common(Kind.ERROR, data, times.ms(data.get("timestamp"), "timestamp"))
    exception = data.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else exception
    if isinstance(values, list):
        for value in values:
            mechanism = value.get("mechanism") if isinstance(value, dict) else None
            if isinstance(mechanism, dict) and mechanism.get("handled") is False:
                o.failed = True
        last = values[-1] if values and isinstance(values[-1], dict) else {}
        o.message = f"{last.get('type', '')}: {last.get('value', '')}"[:10_000]
    elif isinstance(data.get("message"), str):
        o.message = data["message"][:10_000]
    o.event_id = _event_id(data.get("event_id"))
    return o


def _event_id(value: Any) -> str | None:
    """Sentry's 32 hex digits (some SDKs add dashes)."""
    return value.replace("-", "").lower()[:64] if isinstance(value, str) and value else None


def _feedback(data: dict[str, Any], times: _Times) -> Observation:
    o = _common(Kind.FEEDBACK, data, times.ms(data.get("timestamp"), "timestamp"))
    contexts = data.get("contexts")
    context = contexts.get("feedback") if isinstance(contexts, dict) else None
    context = context if isinstance(context, dict) else {}
    message = context.get("message")
    o.message = clip(message, MAX_COMMENT) if isinstance(message, str) and message else None
    o.event_id = _event_id(data.get("event_id"))
    o.refers_to = _event_id(context.get("associated_event_id"))
    tags = o.tags or {}
    if "rating" in tags:
        try:
            scale = parse_scale(tags.get("rating_scale", "1-5"), "rating_scale")
            o.value = score(rating_of(tags["rating"], scale, "rating"), scale, "rating")
            o.name = scale.text
        except InvalidInput:
            pass  # a widget's odd tag must not cost the comment: kept unrated
    return o


def _user_report(data: dict[str, Any], times: _Times) -> Observation:
    """The legacy report: a comment about one event, with the reporter's name and address (not kept)."""
    comments = data.get("comments")
    o = Observation(Kind.FEEDBACK, times.ms(data.get("timestamp"), "timestamp"))
    o.message = clip(comments, MAX_COMMENT) if isinstance(comments, str) and comments else None
    o.refers_to = _event_id(data.get("event_id"))
    return o


def _transaction(data: dict[str, Any], times: _Times) -> Iterator[Observation]:
    end_ms = times.ms(data.get("timestamp"), "timestamp")
    start_ms = times.ms(data.get("start_timestamp"), "start_timestamp", end_ms)
    contexts = data.get("contexts")
    trace = contexts.get("trace") if isinstance(contexts, dict) else None
    trace = trace if isinstance(trace, dict) else {}
    request = _common(Kind.REQUEST, data, end_ms)
    request.failed = trace.get("status") not in (None, "ok")
    if trace.get("op") == "http.server":
        request.value = float(max(0, end_ms - start_ms))
    request.name = str(data.get("transaction", ""))[:200] or None
    yield request
    measurements = data.get("measurements")
    lcp = measurements.get("lcp") if isinstance(measurements, dict) else None
    if isinstance(lcp, dict) and isinstance(lcp.get("value"), int | float) and lcp["value"] >= 0:
        page = _common(Kind.PAGE_LOAD, data, end_ms)
        page.value = float(lcp["value"]) * (1000 if lcp.get("unit") == "second" else 1)
        yield page


def _session(data: dict[str, Any], times: _Times) -> Observation | None:
    status = data.get("status")
    if status not in _TERMINAL_SESSION:
        return None  # an update of a session still running: it counts once, when it ends
    errors = data.get("errors")
    o = Observation(
        Kind.SESSION,
        times.ms(data.get("timestamp") or data.get("started"), "timestamp"),
        str(data["did"])[:256] if data.get("did") else None,
    )
    o.failed = status in _FAILED_SESSION or (isinstance(errors, int) and errors > 0)
    return o


def _session_aggregates(data: dict[str, Any], times: _Times) -> Iterator[Observation]:
    aggregates = data.get("aggregates")
    for i, bucket in enumerate(aggregates if isinstance(aggregates, list) else ()):
        if not isinstance(bucket, dict):
            continue
        at_ms = times.ms(bucket.get("started"), f"aggregates[{i}].started")
        user = str(bucket["did"])[:256] if bucket.get("did") else None
        for status in ("exited", "errored", "abnormal", "crashed"):
            count = bucket.get(status)
            if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
                continue
            if count > MAX_SESSIONS:
                raise InvalidInput(
                    f"more than {MAX_SESSIONS} sessions in one aggregate",
                    where=times.at(f"aggregates[{i}].{status}"),
                )
            # One observation standing for `count` sessions: what they cost is the same for 1 and for 10⁹.
            yield Observation(Kind.SESSION, at_ms, user, failed=status != "exited", count=count)

"""Rampup's own ingest batch: `{"events": [{"type": "request", …}, …]}` → Observations.

Decoded and validated in one pass by msgspec (typed structs, tagged by "type"); the first problem is
reported with its path, e.g. `events[3].duration_ms`, and the whole batch is refused.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from rampup.core.feedback import MAX_COMMENT, parse_scale, rating_of, score
from rampup.core.telemetry import Kind, Observation
from rampup.errors import BadRequest, InvalidInput, TooLarge

__all__ = ["MAX_EVENTS", "decode_batch", "observations_of", "batch_schema", "to_ms", "unstorable"]

MAX_EVENTS = 10_000
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000

Key = Annotated[str, Meta(min_length=1, max_length=256)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
# Bounded floats: a number that overflows JSON's doubles decodes to infinity, which no database stores.
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]
FlagValue = bool | int | Finite | str
NonNegative = Annotated[float, Meta(ge=0, le=1e300)]


class _Event(Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    timestamp: datetime | None = None
    targeting_key: Key | None = None
    flags: dict[Name, FlagValue] | None = None
    tags: dict[Name, str | int | float | bool] | None = None


class Request(_Event, tag="request"):
    duration_ms: NonNegative | None = None
    ok: bool = True
    status: int | None = None


class Exposure(_Event, tag="exposure"):
    flag: Name
    variant: Name


class Error(_Event, tag="error"):
    unhandled: bool = False
    message: Annotated[str, Meta(max_length=10_000)] | None = None


class PageLoad(_Event, tag="page_load"):
    lcp_ms: NonNegative


class Custom(_Event, tag="custom"):
    name: Name
    value: Finite | None = None
    engagement: bool = False


class DataLoss(_Event, tag="data_loss"):
    message: Annotated[str, Meta(max_length=10_000)] | None = None


class Feedback(_Event, tag="feedback"):
    rating: Finite | Annotated[str, Meta(max_length=16)] | bool | None = None  # thumbs: "up"/"down" too
    scale: Annotated[str, Meta(max_length=32)] = "1-5"
    comment: Annotated[str, Meta(max_length=MAX_COMMENT)] | None = None


Event = Request | Exposure | Error | PageLoad | Custom | DataLoss | Feedback
TYPES = ("request", "exposure", "error", "page_load", "custom", "data_loss", "feedback")


class Batch(Struct, forbid_unknown_fields=True):
    events: list[Event]


_decoder = msgspec.json.Decoder(Batch)


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _where(message: str) -> str | None:
    _, sep, path = message.rpartition(" - at `$")
    return path.rstrip("`").lstrip(".") if sep else None


# Per event type, its Observation from the event, its time and its tags: one positional call, the cheapest way to
# make one (ingest's decoding is most of its cost per event after the fold).
Tags = dict[str, str] | None


def _request(e: Request, at: int, tags: Tags) -> Observation:
    return Observation(
        Kind.REQUEST, at, e.targeting_key, e.flags, e.duration_ms, not e.ok, None, None, False, tags
    )


def _exposure(e: Exposure, at: int, tags: Tags) -> Observation:
    flags = {**(e.flags or {}), e.flag: e.variant}
    return Observation(Kind.EXPOSURE, at, e.targeting_key, flags, None, False, e.flag, e.variant, False, tags)


def _error(e: Error, at: int, tags: Tags) -> Observation:
    return Observation(
        Kind.ERROR, at, e.targeting_key, e.flags, None, e.unhandled, None, None, False, tags, e.message
    )


def _page_load(e: PageLoad, at: int, tags: Tags) -> Observation:
    return Observation(Kind.PAGE_LOAD, at, e.targeting_key, e.flags, e.lcp_ms, False, None, None, False, tags)


def _custom(e: Custom, at: int, tags: Tags) -> Observation:
    return Observation(
        Kind.CUSTOM, at, e.targeting_key, e.flags, e.value, False, e.name, None, e.engagement, tags
    )


def _data_loss(e: DataLoss, at: int, tags: Tags) -> Observation:
    return Observation(Kind.DATA_LOSS, at, e.targeting_key, e.flags, tags=tags, message=e.message)


def _feedback(e: Feedback, at: int, tags: Tags) -> Observation:
    """The scale travels in `name`, the score (1–5) in `value`, the comment in `message`."""
    scale = parse_scale(e.scale, "scale")
    if e.rating is None and not e.comment:
        raise InvalidInput("feedback needs a rating, a comment or both", where="rating")
    o = Observation(Kind.FEEDBACK, at, e.targeting_key, e.flags, tags=tags, message=e.comment or None)
    if e.rating is not None:
        o.value = score(rating_of(e.rating, scale, "rating"), scale, "rating")
        o.name = scale.text
    return o


# A dictionary lookup is the cheapest dispatch on the hot path.
_CONVERT: dict[type, Callable[[Any, int, Tags], Observation]] = {
    Request: _request,
    Exposure: _exposure,
    Error: _error,
    PageLoad: _page_load,
    Custom: _custom,
    DataLoss: _data_loss,
    Feedback: _feedback,
}


def _observation(e: Event, now_ms: int) -> Observation:
    moment = e.timestamp
    at = now_ms if moment is None else to_ms(moment)
    tags: Tags = e.tags  # type: ignore[assignment]
    if tags:
        for v in tags.values():  # a loop, not all(…): no generator per event
            if type(v) is not str:
                tags = {k: str(v) for k, v in tags.items()}
                break
    else:
        tags = None
    return _CONVERT[type(e)](e, at, tags)


def decode_batch(body: bytes, now_ms: int) -> list[Observation]:
    try:
        batch = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        where, message = _where(str(exc)), str(exc).split(" - at ")[0]
        if where and where.endswith(".type"):
            message = f"{message}: an event's type is one of {', '.join(TYPES)}"
        raise InvalidInput(message, where=where) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", where="body") from None
    if len(batch.events) > MAX_EVENTS:
        raise TooLarge(f"{len(batch.events)} events in one request; send at most {MAX_EVENTS}")
    try:
        observations = [_observation(e, now_ms) for e in batch.events]
    except InvalidInput:
        _locate(batch.events, now_ms)
        raise
    latest = now_ms + FUTURE_TOLERANCE_MS
    nul = b"\\u0000" in body  # JSON carries a NUL only escaped: look closer only then
    for i, o in enumerate(observations):
        if o.at_ms > latest:
            raise InvalidInput("timestamp is more than a day in the future", where=f"events[{i}].timestamp")
        if nul and (problem := unstorable(o)):
            raise InvalidInput(problem, where=f"events[{i}]")
    return observations


def observations_of(
    events: Sequence[tuple[int, Mapping[str, Any]]],
) -> tuple[list[Observation], list[tuple[int, InvalidInput]]]:
    """Events as a client holds them before encoding (the batch's JSON shape, with their times in ms apart): the
    Observations the server would decode from them, and the index of each it would refuse, with why. The SDK
    folds its summaries from these, so a summary is what the server would have made of the events."""
    decoded: Sequence[Event | InvalidInput]
    try:
        body = msgspec.json.encode([event for _, event in events])
        decoded = _events_decoder.decode(body)
        nul = b"\\u0000" in body  # as decode_batch: JSON carries a NUL only escaped, look closer only then
    except (msgspec.ValidationError, TypeError, ValueError):  # msgspec.EncodeError is a ValueError
        decoded, nul = [_one(event) for _, event in events], True  # slower, but says which
    observations, refused = [], []
    for i, (e, (at_ms, _)) in enumerate(zip(decoded, events, strict=True)):
        try:
            if isinstance(e, InvalidInput):
                raise e
            o = _observation(e, at_ms)
            if nul and (problem := unstorable(o)):
                raise InvalidInput(problem)
            observations.append(o)
        except InvalidInput as exc:
            refused.append((i, exc))
    return observations, refused


_events_decoder = msgspec.json.Decoder(list[Event])


def _one(event: Mapping[str, Any]) -> Event | InvalidInput:
    try:
        return msgspec.json.decode(msgspec.json.encode(event), type=Event)
    except msgspec.ValidationError as exc:
        return InvalidInput(str(exc).split(" - at ")[0], where=_where(str(exc)))
    except (TypeError, ValueError) as exc:
        return InvalidInput(f"not encodable: {exc}")


def _locate(events: list[Event], now_ms: int) -> None:
    """A conversion refused an event: find which, and say so with its index (the hot path never counts)."""
    for i, e in enumerate(events):
        try:
            _observation(e, now_ms)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, where=f"events[{i}].{exc.where}") from None


def unstorable(o: Observation) -> str | None:
    """What no database would store faithfully: NUL characters, non-finite numbers."""
    if o.value is not None and not math.isfinite(o.value):
        return "a value is not a finite number"
    texts = [
        o.targeting_key,
        o.name,
        o.variant,
        o.message,
        *(o.flags or {}),
        *(o.tags or {}),
        *(o.tags or {}).values(),
        *(v for v in (o.flags or {}).values() if isinstance(v, str)),
    ]
    if any(t is not None and "\x00" in t for t in texts):
        return "a string contains a NUL character"
    if any(isinstance(v, float) and not math.isfinite(v) for v in (o.flags or {}).values()):
        return "a flag value is not a finite number"
    return None


def batch_schema() -> dict[str, object]:
    """JSON Schema of the batch, for /openapi.json."""
    (schema,), components = msgspec.json.schema_components(
        [Batch], ref_template="#/components/schemas/{name}"
    )
    return {"schema": schema, "components": components}

"""Telemetry summaries: a client's per-second aggregates and per-unit-day counts instead of the events they fold.

A summary is exactly what the server's own fold makes of a batch (`core.rollups.fold_seconds`), so storing it
gives the same rollups and unit days, hence the same metric answers and gate verdicts, as the events would:

    {"id": "5f0c…9a1e-17",
     "seconds": [{"flag": "checkout", "variant": "on", "metric": "error_rate", "second": 1764500000,
                  "count": 120, "failures": 2, "total": 0, "total_sq": 0,
                  "last_value": null, "last_at_ms": null, "sketch": null}, …],
     "units": [{"flag": "checkout", "variant": "on", "day": 20422, "unit": "user-1",
                "events": 3, "engaged": 0, "failures": 1, "exposures": 1}, …],
     "version": 2,
     "latencies": [{"flag": "checkout", "variant": "on", "day": 20422, "unit": "user-1",
                    "metric": "api_latency", "octaves": {"6": 2, "7": 1}}, …]}

`id` (optional, 1–64 letters, digits, `-` and `_`) names the summary: the server stores a summary with an id
once, and answers a summary sent again with that id (after a lost answer) as it did, without counting it twice.
`flag` "" and `variant` "all" is the environment-wide slot. Version 2 (`version`, absent in version 1) adds
`latencies`: each user's values of a sketched metric that day per octave (⌊log₂ ms⌋ → count), which lets the gates
compare percentiles with control per user; a version 1 summary holds none. A unit's `exposures` (0 when absent,
and left out when 0, so that a server from before them takes the summary) counts its exposure events of the
unit's flag, among its `events`: what tells a user the flag served whose own telemetry never came. Decoding
checks every figure's own consistency (failures ≤ count, failures and exposures ≤ events, a sketch no bigger
than its count, the last value inside its second); the service checks flags, variants and metrics against the
environment.
"""

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from rampup.adapters.codecs.native import FUTURE_TOLERANCE_MS
from rampup.core.rollups import Aggregate, LatencyKey, Second, UnitKey, latency_groups
from rampup.core.sketch import ZERO_LEVEL
from rampup.errors import BadRequest, InvalidInput

__all__ = ["decode_summary", "encode_summary", "MAX_CELLS"]

MAX_CELLS = 100_000  # per list: a summary of a minute of a busy service is a few thousand

Text = Annotated[str, Meta(max_length=256)]
Count = Annotated[int, Meta(ge=0, le=2**53)]
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]
NonNegative = Annotated[float, Meta(ge=0, le=1e300)]
Bucket = Annotated[int, Meta(ge=-(2**31), le=2**31)]


class Cell(Struct, forbid_unknown_fields=True):
    flag: Text
    variant: Text
    metric: Annotated[str, Meta(min_length=1, max_length=256)]
    second: Annotated[int, Meta(ge=0, le=2**40)]
    count: Count
    failures: Count = 0
    total: Finite = 0.0
    total_sq: NonNegative = 0.0
    last_value: Finite | None = None
    last_at_ms: Annotated[int, Meta(ge=0)] | None = None
    sketch: dict[Bucket, Annotated[int, Meta(ge=1, le=2**53)]] | None = None


PerUnit = Annotated[int, Meta(ge=0, le=1_000_000)]  # one user's events in one summary; the store sums them


class Unit(Struct, forbid_unknown_fields=True):
    flag: Annotated[str, Meta(min_length=1, max_length=256)]
    variant: Annotated[str, Meta(min_length=1, max_length=256)]
    day: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    unit: Annotated[str, Meta(min_length=1, max_length=256)]
    events: Annotated[int, Meta(ge=1, le=1_000_000)]
    engaged: PerUnit = 0
    failures: PerUnit = 0
    exposures: PerUnit = 0  # of the unit's flag, among its events


class Latency(Struct, forbid_unknown_fields=True):
    flag: Annotated[str, Meta(min_length=1, max_length=256)]
    variant: Annotated[str, Meta(min_length=1, max_length=256)]
    day: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    unit: Annotated[str, Meta(min_length=1, max_length=256)]
    metric: Annotated[str, Meta(min_length=1, max_length=256)]
    octaves: Annotated[
        dict[Annotated[int, Meta(ge=ZERO_LEVEL, le=64)], Annotated[int, Meta(ge=1, le=1_000_000)]],
        Meta(min_length=1, max_length=128),
    ]


VERSION = 2  # 2: per-user latency octaves

SummaryId = Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")]


class Summary(Struct, forbid_unknown_fields=True):
    seconds: Annotated[list[Cell], Meta(max_length=MAX_CELLS)]
    units: Annotated[list[Unit], Meta(max_length=MAX_CELLS)] = []
    id: SummaryId | None = None
    version: Annotated[int, Meta(ge=1, le=VERSION)] = 1
    latencies: Annotated[list[Latency], Meta(max_length=MAX_CELLS)] = []


_decoder = msgspec.json.Decoder(Summary)


def decode_summary(
    body: bytes, now_ms: int
) -> tuple[dict[Second, Aggregate], dict[UnitKey, list[int]], dict[LatencyKey, int], str | None]:
    """Its cells, its unit days, its users' latency octaves and its id."""
    try:
        summary = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise InvalidInput(message, where=path.rstrip("`").lstrip(".") or None) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"not a JSON summary: {exc}") from exc
    latest = (now_ms + FUTURE_TOLERANCE_MS) // 1000  # as for raw events: no second more than a day ahead
    seconds: dict[Second, Aggregate] = {}
    for i, cell in enumerate(summary.seconds):
        if cell.second > latest:
            raise InvalidInput("a second more than a day in the future", where=f"seconds[{i}].second")
        key = (cell.flag, cell.variant, cell.metric, cell.second)
        if key in seconds:
            raise InvalidInput("the same flag, variant, metric and second twice", where=f"seconds[{i}]")
        seconds[key] = _aggregate(cell, f"seconds[{i}]")
    return seconds, _units(summary, latest // 86400), _latencies(summary, latest // 86400), summary.id


def _units(summary: Summary, last_day: int) -> dict[UnitKey, list[int]]:
    units: dict[UnitKey, list[int]] = {}
    for i, u in enumerate(summary.units):
        unit = UnitKey(u.flag, u.variant, u.day, u.unit)
        if unit in units:
            raise InvalidInput("the same flag, variant, day and unit twice", where=f"units[{i}]")
        if u.day > last_day:
            raise InvalidInput("a day more than a day in the future", where=f"units[{i}].day")
        if u.failures > u.events:
            raise InvalidInput("more failures than events", where=f"units[{i}].failures")
        if u.exposures > u.events:
            raise InvalidInput("more exposures than events", where=f"units[{i}].exposures")
        units[unit] = [u.events, u.engaged, u.failures, u.exposures]
    return units


def _latencies(summary: Summary, last_day: int) -> dict[LatencyKey, int]:
    if summary.latencies and summary.version < 2:
        raise InvalidInput("latencies come in a version 2 summary", where="version")
    latencies: dict[LatencyKey, int] = {}
    for i, lat in enumerate(summary.latencies):
        if lat.day > last_day:
            raise InvalidInput("a day more than a day in the future", where=f"latencies[{i}].day")
        for octave, count in lat.octaves.items():
            key = LatencyKey(lat.flag, lat.variant, lat.day, lat.unit, lat.metric, octave)
            if key in latencies:
                raise InvalidInput(
                    "the same flag, variant, day, unit and metric twice", where=f"latencies[{i}]"
                )
            latencies[key] = count
    return latencies


def _aggregate(cell: Cell, where: str) -> Aggregate:
    if cell.failures > cell.count:
        raise InvalidInput("more failures than the count", where=f"{where}.failures")
    if cell.sketch and sum(cell.sketch.values()) > cell.count:
        raise InvalidInput("a sketch holding more values than the count", where=f"{where}.sketch")
    if (cell.last_value is None) != (cell.last_at_ms is None):
        raise InvalidInput("last_value and last_at_ms go together", where=f"{where}.last_at_ms")
    if cell.last_at_ms is not None and cell.last_at_ms // 1000 != cell.second:
        raise InvalidInput("last_at_ms outside its second", where=f"{where}.last_at_ms")
    return Aggregate(
        cell.count,
        cell.failures,
        cell.total,
        cell.total_sq,
        cell.last_value,
        cell.last_at_ms,
        dict(cell.sketch) if cell.sketch else None,
    )


def encode_summary(
    seconds: dict[Second, Aggregate],
    units: dict[UnitKey, list[int]],
    latencies: dict[LatencyKey, int],
    summary_id: str | None = None,
) -> bytes:
    return msgspec.json.encode(
        {
            **({"id": summary_id} if summary_id else {}),
            "seconds": [
                {
                    "flag": flag,
                    "variant": variant,
                    "metric": metric,
                    "second": second,
                    "count": a.count,
                    "failures": a.failures,
                    "total": a.total,
                    "total_sq": a.total_sq,
                    "last_value": a.last_value,
                    "last_at_ms": a.last_at_ms,
                    "sketch": a.sketch,
                }
                for (flag, variant, metric, second), a in seconds.items()
            ],
            "units": [
                {
                    "flag": k.flag,
                    "variant": k.variant,
                    "day": k.day,
                    "unit": k.targeting_key,
                    "events": c[0],
                    "engaged": c[1],
                    "failures": c[2],
                    # only when there are any: a server older than them refuses fields it does not know
                    **({"exposures": c[3]} if c[3] else {}),
                }
                for k, c in units.items()
            ],
            # only when there are any: a version 1 server refuses fields it does not know
            **(
                {
                    "version": VERSION,
                    "latencies": [
                        {"flag": f, "variant": v, "day": d, "unit": u, "metric": m, "octaves": octaves}
                        for (f, v, d, u, m), octaves in latency_groups(latencies).items()
                    ],
                }
                if latencies
                else {}
            ),
        }
    )

"""The tracker's summaries: a flush interval's events folded on the client exactly as the server folds them.

Each event is turned into the Observation the server would decode from it (`native.observations_of`) and folded
with the server's own fold (`core.rollups.fold_seconds`), attributed with the flag states the client evaluates
with, so `POST /api/v1/summaries` stores what `POST /api/v1/events` would have stored for those events.

The middleware's requests, most of what is folded, arrive as tuples (`Request`) and become Observations
directly: the server's decoding judges each distinct flag map once (`Attribution.storable`), and a request it
would refuse goes through the decoding as an event, to be refused exactly as the server would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rampup.adapters.codecs.native import observations_of, to_ms
from rampup.adapters.codecs.summaries import encode_summary
from rampup.core.attribution import FlagTimeline
from rampup.core.flags import CompiledFlag
from rampup.core.rollups import Aggregate, LatencyKey, Second, UnitKey, fold_seconds, latency_groups
from rampup.core.telemetry import Kind, Observation
from rampup.errors import InvalidInput

__all__ = ["FOLDED", "Chunk", "Attribution", "Request"]

# What is folded. Custom events stay events (the custom metrics they feed are defined on the server), and so
# does feedback (its comment is kept as a row of its own).
FOLDED = frozenset({"request", "error", "exposure"})
_CELL_INDEX = re.compile(r"^(seconds|units|latencies)\[(\d+)\]")
MAX_FLAG_MAPS = 10_000  # flag maps judged and remembered; beyond it they are judged again, never unbounded

# A request as the middleware records it: (unix ms, user, flags, duration_ms, ok, tags).
Request = tuple[int, str | None, dict[str, Any], float, bool, dict[str, str]]
Item = tuple[float, Mapping[str, Any]] | Request


class Attribution:
    """The flag states the client evaluates with, as the one-state timelines the fold attributes by (built
    again only when the client's configuration changes)."""

    def __init__(self) -> None:
        self._flags: Mapping[str, CompiledFlag] | None = None
        self._timelines: dict[str, FlagTimeline] = {}
        self._storable: dict[tuple[Any, ...], bool] = {}

    def timelines(self, flags: Mapping[str, CompiledFlag]) -> dict[str, FlagTimeline]:
        if flags is not self._flags:
            self._timelines = {k: FlagTimeline(f.definition, (0,), (f.state,)) for k, f in flags.items()}
            self._flags = flags
        return self._timelines

    def storable(self, request: Request) -> bool:
        """Whether the server would take this request as it is: its flag map judged by the server's decoding
        once, its user and tags (the middleware's strings) checked for what no database stores."""
        _, user, flags, _, _, tags = request
        if user is not None and "\x00" in user:
            return False
        for value in tags.values():
            if "\x00" in value:
                return False
        values = tuple(flags.values())
        key = (*flags, *values, *map(type, values))  # types too: True == 1 == 1.0 as keys
        known = self._storable.get(key)
        if known is None:
            if len(self._storable) >= MAX_FLAG_MAPS:
                self._storable.clear()
            known = self._storable[key] = not observations_of([(0, {"type": "request", "flags": flags})])[1]
        return known


class Chunk:
    """One interval's summary: per-second aggregates and unit days, and how many events they stand for."""

    __slots__ = ("seconds", "units", "latencies", "events", "id")

    def __init__(self, summary_id: str) -> None:
        self.id = summary_id  # the server stores a summary with an id once, however often it is sent
        self.seconds: dict[Second, Aggregate] = {}
        self.units: dict[UnitKey, list[int]] = {}
        self.latencies: dict[LatencyKey, int] = {}
        self.events = 0

    @property
    def cells(self) -> int:
        return len(self.seconds) + len(self.units) + len(self.latencies)

    def fold(
        self, items: Sequence[Item], attribution: Attribution, flags: Mapping[str, CompiledFlag]
    ) -> list[tuple[Mapping[str, Any], InvalidInput]]:
        """Adds these events and requests; returns those the server would refuse, with why (they are left out)."""
        observations: list[Observation | None] = []
        timed: list[tuple[int, Mapping[str, Any]]] = []
        for item in items:
            if len(item) == 2:
                timed.append((to_ms(datetime.fromtimestamp(item[0], UTC)), item[1]))
            elif attribution.storable(item):
                observations.append(_observation(item))
                continue
            else:
                timed.append(_event_of(item))
            observations.append(None)  # decoded below, in its place: order decides the last value
        decoded, refused = observations_of(timed) if timed else ([], [])
        if decoded:
            _fill(observations, decoded, {i for i, _ in refused})
        folded = [o for o in observations if o is not None]
        self._add(*fold_seconds(folded, attribution.timelines(flags)))
        self.events += len(folded)
        return [(timed[i][1], exc) for i, exc in refused]

    def _add(
        self,
        seconds: Mapping[Second, Aggregate],
        units: Mapping[UnitKey, list[int]],
        latencies: Mapping[LatencyKey, int],
    ) -> None:
        for key, aggregate in seconds.items():
            mine = self.seconds.get(key)
            if mine is None:
                self.seconds[key] = aggregate
            else:
                mine.merge(aggregate)
        for unit, counts in units.items():
            held = self.units.get(unit)
            if held is None:
                self.units[unit] = counts
            else:
                for i, n in enumerate(counts):
                    held[i] += n
        for octave, n in latencies.items():
            self.latencies[octave] = self.latencies.get(octave, 0) + n

    def body(self) -> bytes:
        return encode_summary(self.seconds, self.units, self.latencies, self.id)

    def drop_cell(self, where: str | None) -> bool:
        """Leaves out the cell a refusal names (`seconds[3].flag`: a flag deleted meanwhile); False if none."""
        found = _CELL_INDEX.match(where or "")
        if found is None:
            return False
        index = int(found.group(2))
        if found.group(1) == "latencies":  # an entry on the wire is a user's octaves of one metric
            groups = list(latency_groups(self.latencies))
            if index >= len(groups):
                return False
            self.latencies = {k: n for k, n in self.latencies.items() if k[:5] != groups[index]}
            return True
        cells: dict[Any, Any] = self.seconds if found.group(1) == "seconds" else self.units
        if index >= len(cells):
            return False
        del cells[next(k for i, k in enumerate(cells) if i == index)]
        return True


def _observation(request: Request) -> Observation:
    """What the server decodes from the request's event (`native._observation`), made without the event."""
    at_ms, user, flags, duration_ms, ok, tags = request
    return Observation(
        Kind.REQUEST, at_ms, user, flags or None, duration_ms, not ok, None, None, False, tags or None
    )


def _event_of(request: Request) -> tuple[int, dict[str, Any]]:
    at_ms, user, flags, duration_ms, ok, tags = request
    event: dict[str, Any] = {"type": "request", "duration_ms": duration_ms, "ok": ok, "tags": tags}
    if user is not None:
        event["targeting_key"] = user
    if flags:
        event["flags"] = flags
    return at_ms, event


def _fill(observations: list[Observation | None], decoded: Sequence[Observation], refused: set[int]) -> None:
    """The decoded events into the places kept for them, in order; a refused event's place stays empty."""
    places = (i for i, o in enumerate(observations) if o is None)
    taken = iter(decoded)
    for n, place in enumerate(places):
        if n not in refused:
            observations[place] = next(taken)

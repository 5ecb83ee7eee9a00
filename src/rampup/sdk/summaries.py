"""The tracker's summaries: a flush interval's events folded on the client exactly as the server folds them.

Each event is turned into the Observation the server would decode from it (`native.observations_of`) and folded
with the server's own fold (`core.rollups.fold_seconds`), attributed with the flag states the client evaluates
with, so `POST /api/v1/summaries` stores what `POST /api/v1/events` would have stored for those events.
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
from rampup.core.rollups import Aggregate, Second, UnitKey, fold_seconds
from rampup.errors import InvalidInput

__all__ = ["FOLDED", "Chunk", "Attribution"]

# What is folded. Custom events stay events (the custom metrics they feed are defined on the server), and so
# does feedback (its comment is kept as a row of its own).
FOLDED = frozenset({"request", "error", "exposure"})
_CELL_INDEX = re.compile(r"^(seconds|units)\[(\d+)\]")


class Attribution:
    """The flag states the client evaluates with, as the one-state timelines the fold attributes by (built
    again only when the client's configuration changes)."""

    def __init__(self) -> None:
        self._flags: Mapping[str, CompiledFlag] | None = None
        self._timelines: dict[str, FlagTimeline] = {}

    def timelines(self, flags: Mapping[str, CompiledFlag]) -> dict[str, FlagTimeline]:
        if flags is not self._flags:
            self._timelines = {k: FlagTimeline(f.definition, (0,), (f.state,)) for k, f in flags.items()}
            self._flags = flags
        return self._timelines


class Chunk:
    """One interval's summary: per-second aggregates and unit days, and how many events they stand for."""

    __slots__ = ("seconds", "units", "events")

    def __init__(self) -> None:
        self.seconds: dict[Second, Aggregate] = {}
        self.units: dict[UnitKey, list[int]] = {}
        self.events = 0

    @property
    def cells(self) -> int:
        return len(self.seconds) + len(self.units)

    def fold(
        self, items: Sequence[tuple[float, Mapping[str, Any]]], timelines: Mapping[str, FlagTimeline]
    ) -> list[tuple[Mapping[str, Any], InvalidInput]]:
        """Adds these events; returns those the server would refuse, with why (they are left out)."""
        timed = [(to_ms(datetime.fromtimestamp(at, UTC)), event) for at, event in items]
        observations, refused = observations_of(timed)
        seconds, units = fold_seconds(observations, timelines)
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
        self.events += len(observations)
        return [(timed[i][1], exc) for i, exc in refused]

    def body(self) -> bytes:
        return encode_summary(self.seconds, self.units)

    def drop_cell(self, where: str | None) -> bool:
        """Leaves out the cell a refusal names (`seconds[3].flag`: a flag deleted meanwhile); False if none."""
        found = _CELL_INDEX.match(where or "")
        if found is None:
            return False
        cells: dict[Any, Any] = self.seconds if found.group(1) == "seconds" else self.units
        index = int(found.group(2))
        if index >= len(cells):
            return False
        del cells[next(k for i, k in enumerate(cells) if i == index)]
        return True

"""Folding observations into minute and hour aggregates, and reading windows back from them."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rampup.core import sketch
from rampup.core.attribution import FlagTimeline, attribute
from rampup.core.telemetry import ALL_USERS, CustomMetric, Observation, contributions

__all__ = ["MINUTE", "HOUR", "RollupKey", "Aggregate", "UnitKey", "Folded", "fold", "cover", "combine", "UnitTotals",
           "ALL_VARIANT"]

MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS = (MINUTE, HOUR)
ALL_VARIANT = "all"  # the variant slot of environment-wide rollups


class RollupKey(NamedTuple):
    flag: str
    variant: str
    metric: str
    resolution: int
    period: int  # unix seconds


@dataclass(slots=True)
class Aggregate:
    count: int = 0
    failures: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    last_value: float | None = None
    last_at_ms: int | None = None
    sketch: dict[int, int] | None = None

    def add(self, failed: bool, value: float | None, sketched: bool, at_ms: int) -> None:
        self.count += 1
        self.failures += failed
        if value is None:
            return
        self.total += value
        self.total_sq += value * value
        if self.last_at_ms is None or at_ms >= self.last_at_ms:
            self.last_value, self.last_at_ms = value, at_ms
        if sketched:
            if self.sketch is None:
                self.sketch = {}
            b = sketch.bucket_of(value)
            self.sketch[b] = self.sketch.get(b, 0) + 1

    def merge(self, other: "Aggregate") -> None:
        self.count += other.count
        self.failures += other.failures
        self.total += other.total
        self.total_sq += other.total_sq
        if other.last_at_ms is not None and (self.last_at_ms is None or other.last_at_ms >= self.last_at_ms):
            self.last_value, self.last_at_ms = other.last_value, other.last_at_ms
        if other.sketch:
            self.sketch = sketch.merge([self.sketch or {}, other.sketch])


class UnitKey(NamedTuple):
    flag: str
    variant: str
    day: int
    targeting_key: str


@dataclass(frozen=True, slots=True)
class UnitTotals:
    users: int
    events: int
    engaged: int
    engaged_sq: int  # Σ over users of (engaged actions)², for the variance of actions per user


@dataclass(slots=True)
class Folded:
    rollups: dict[RollupKey, Aggregate] = field(default_factory=dict)
    units: dict[UnitKey, list[int]] = field(default_factory=dict)  # → [events, engaged]


def fold(observations: Sequence[Observation], timelines: Mapping[str, FlagTimeline],
         custom: Sequence[CustomMetric] = ()) -> Folded:
    """Everything a batch adds to the aggregates, in memory; one write applies it."""
    folded = Folded()
    if not observations:
        return folded
    first = min(o.at_ms for o in observations)
    last = max(o.at_ms for o in observations)
    splitting = [(k, t) for k, t in timelines.items() if t.may_split_between(first, last)]
    rollups, units = folded.rollups, folded.units
    for o in observations:
        slots = [(ALL_USERS, ALL_VARIANT), *attribute(o, timelines, splitting)]
        seconds = o.at_ms // 1000
        for c in contributions(o, custom):
            for resolution in RESOLUTIONS:
                period = seconds - seconds % resolution
                for flag, variant in slots:
                    key = RollupKey(flag, variant, c.metric, resolution, period)
                    aggregate = rollups.get(key)
                    if aggregate is None:
                        aggregate = rollups[key] = Aggregate()
                    aggregate.add(c.failed, c.value, c.sketched, o.at_ms)
        if o.targeting_key:
            day = seconds // DAY
            for flag, variant in slots:
                unit = units.setdefault(UnitKey(flag, variant, day, o.targeting_key), [0, 0])
                unit[0] += 1
                unit[1] += o.engagement
    return folded


def cover(start_s: int, end_s: int) -> Iterator[tuple[int, int, int]]:
    """[start, end) as (resolution, first period, last period) spans: whole hours inside, minutes at the edges.

    `start_s` and `end_s` are rounded down to whole minutes.
    """
    start, end = start_s - start_s % MINUTE, end_s - end_s % MINUTE
    if end <= start:
        return
    first_hour = start + (-start) % HOUR
    last_hour = end - end % HOUR
    if first_hour >= last_hour:
        yield MINUTE, start, end - MINUTE
        return
    if start < first_hour:
        yield MINUTE, start, first_hour - MINUTE
    yield HOUR, first_hour, last_hour - HOUR
    if last_hour < end:
        yield MINUTE, last_hour, end - MINUTE


def combine(aggregates: Iterable[Aggregate]) -> Aggregate:
    total = Aggregate()
    for a in aggregates:
        total.merge(a)
    return total

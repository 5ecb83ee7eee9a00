"""Folding observations into minute and hour aggregates, and reading windows back from them."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rampup.core import sketch
from rampup.core.attribution import BatchAttribution, FlagTimeline
from rampup.core.telemetry import ALL_USERS, CustomMetric, Kind, Observation, contributions

__all__ = [
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "FINE_RETENTION",
    "RollupKey",
    "Aggregate",
    "UnitKey",
    "Folded",
    "fold",
    "fold_seconds",
    "expand",
    "Second",
    "cover",
    "combine",
    "UnitTotals",
    "ALL_VARIANT",
    "LatencyKey",
    "Exceedance",
    "latency_groups",
    "exceedance_at",
    "suffix_sums",
]

SECOND, MINUTE, HOUR, DAY = 1, 60, 3600, 86400
FINE_RETENTION = 3 * HOUR  # per-second aggregates exist this long: enough to start a stage's window exactly
ALL_VARIANT = "all"  # the variant slot of environment-wide rollups
# An observation's contribution to one aggregate: (failed, value, sketched, at_ms, n alike observations).
_Item = tuple[bool, float | None, bool, int, int]


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

    @classmethod
    def of(cls, items: Iterable[_Item]) -> "Aggregate":
        """Contributions (failed, value, sketched, at_ms, n: `n` alike observations at once) added in order. The
        fold collects a batch's contributions per aggregate and adds them here in one loop over local variables,
        not by a method call each."""
        count = failures = 0
        total = total_sq = 0.0
        last_value: float | None = None
        last_at_ms: int | None = None
        buckets: dict[int, int] = {}
        bucket_of = sketch.bucket_of
        for failed, value, sketched, at_ms, n in items:
            count += n
            failures += failed * n
            if value is None:
                continue
            total += value * n
            total_sq += value * value * n
            if last_at_ms is None or at_ms >= last_at_ms:
                last_value, last_at_ms = value, at_ms
            if sketched:
                b = bucket_of(value)
                buckets[b] = buckets.get(b, 0) + n
        return cls(count, failures, total, total_sq, last_value, last_at_ms, buckets or None)

    def merge(self, other: "Aggregate") -> None:
        self.count += other.count
        self.failures += other.failures
        self.total += other.total
        self.total_sq += other.total_sq
        if other.last_at_ms is not None and (self.last_at_ms is None or other.last_at_ms >= self.last_at_ms):
            self.last_value, self.last_at_ms = other.last_value, other.last_at_ms
        if other.sketch:
            if self.sketch is None:
                self.sketch = dict(other.sketch)
            else:
                mine = self.sketch
                for bucket, count in other.sketch.items():
                    mine[bucket] = mine.get(bucket, 0) + count


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
    failures: int = 0  # failed requests (error_rate) of these users
    failures_sq: int = 0  # Σ over users of (their failed requests)²: how clustered failures are by user
    exposed: int = 0  # users with an exposure event of the flag over the days
    silent: int = 0  # of those, users whose every event over the days was an exposure: no telemetry


class LatencyKey(NamedTuple):
    """One user's latency values of one day in one octave (`sketch.level_of`); the store keeps their count."""

    flag: str
    variant: str
    day: int
    targeting_key: str
    metric: str  # a sketched metric: api_latency, lcp, a custom percentile metric
    level: int


@dataclass(frozen=True, slots=True)
class Exceedance:
    """A variant's values of a sketched metric summed per user over days, and those at or above a level:
    n_i a user's values, e_i those at or above. How clustered by user the values over a line are."""

    samples: int = 0  # Σ n_i
    samples_sq: int = 0  # Σ n_i²
    above: int = 0  # Σ e_i
    above_sq: int = 0  # Σ e_i²
    cross: int = 0  # Σ e_i n_i

    def design_effect(self) -> float:
        """The cluster-robust variance of the share above, Σ (e_i − p n_i)², over the binomial one,
        p (1 − p) Σ n_i: 1 when users' values are independent however many each sends, larger when some
        users are slow in all they do. Never below 1."""
        n, e = self.samples, self.above
        if n == 0 or e == 0 or e == n:
            return 1.0
        p = e / n
        robust = self.above_sq - 2 * p * self.cross + p * p * self.samples_sq
        return max(1.0, robust / (p * (1 - p) * n))


def exceedance_at(octaves: Mapping[int, Exceedance], level: int) -> Exceedance:
    """The sums at or above `level`, from those at each octave holding values: the lowest such octave at or
    above it (nobody has values in between), or none over it."""
    above = [at for at in octaves if at >= level]
    if not above:
        some = next(iter(octaves.values()), Exceedance())
        return Exceedance(some.samples, some.samples_sq)
    return octaves[min(above)]


def suffix_sums(rows: Mapping[int, tuple[int, int, int]]) -> dict[int, Exceedance]:
    """Per octave holding values, the sums at or above it, from each octave's own share of them: (Σ values
    there, Σ (eᵢ² − eᵢ'²), Σ (eᵢ − eᵢ') nᵢ), eᵢ a user's values at or above the octave and eᵢ' those above
    it. At the lowest octave eᵢ = nᵢ, so the shares' totals are Σnᵢ and Σnᵢ²."""
    samples = sum(e for e, _, _ in rows.values())
    samples_sq = sum(sq for _, sq, _ in rows.values())
    out: dict[int, Exceedance] = {}
    above = above_sq = cross = 0
    for level in sorted(rows, reverse=True):
        e, sq, en = rows[level]
        above, above_sq, cross = above + e, above_sq + sq, cross + en
        out[level] = Exceedance(samples, samples_sq, above, above_sq, cross)
    return out


@dataclass(slots=True)
class Folded:
    rollups: dict[RollupKey, Aggregate] = field(default_factory=dict)
    # → [events, engaged, failed requests, exposure events of the key's flag]
    units: dict[UnitKey, list[int]] = field(default_factory=dict)
    latencies: dict[LatencyKey, int] = field(default_factory=dict)  # → values in the octave


Second = tuple[str, str, str, int]  # (flag, variant, metric, unix second): the finest aggregate of a batch
_Group = tuple[
    tuple[tuple[str, str], ...], int
]  # (flag variants, unix second): observations attributed alike
_new = tuple.__new__


def fold(
    observations: Sequence[Observation],
    timelines: Mapping[str, FlagTimeline],
    custom: Sequence[CustomMetric] = (),
) -> Folded:
    """Everything a batch adds to the aggregates, in memory; one write applies it.

    Observations are folded per second first (a batch spans few seconds), then each second's aggregate is
    merged into its minute and hour: the per-event work is done once, not once per resolution."""
    return expand(*fold_seconds(observations, timelines, custom))


def expand(
    per_second: Mapping[Second, Aggregate],
    units: dict[UnitKey, list[int]],
    latencies: dict[LatencyKey, int],
) -> Folded:
    """Per-second aggregates (a batch's, or a client's summary of the events it would have sent) at every
    resolution: what the store adds."""
    return Folded(_by_resolution(per_second), units, latencies)


def fold_seconds(
    observations: Sequence[Observation],
    timelines: Mapping[str, FlagTimeline],
    custom: Sequence[CustomMetric] = (),
) -> tuple[dict[Second, Aggregate], dict[UnitKey, list[int]], dict[LatencyKey, int]]:
    """A batch's per-second aggregates, per-unit-day counts ([events, engaged, failed requests, exposures of the
    unit's flag]) and per-unit-day latency octaves.

    Observations attributed alike in the same second share one aggregate per metric, merged into each of their
    slots (the environment's and one per flag variant) at the end: the per-event work is done once, not once
    per slot."""
    units: dict[UnitKey, list[int]] = {}
    latencies: dict[LatencyKey, int] = {}
    if not observations:
        return {}, units, latencies
    stamps = [o.at_ms for o in observations]
    first, last = min(stamps), max(stamps)
    slots_of = BatchAttribution(timelines, first, last).slots
    # A flag's units are its observations' targeting keys, unless it buckets by an attribute: only those ask.
    by_attribute = {k: t for k, t in timelines.items() if t.bucketed_by_attribute}
    level_of = sketch.level_of
    exposure = Kind.EXPOSURE
    # Missing keys made in C: most events find their group and metric there already.
    groups: defaultdict[_Group, defaultdict[str, list[_Item]]] = defaultdict(lambda: defaultdict(list))
    for o in observations:  # the hottest loop of ingest: what can be done once per batch or group is not here
        slots = slots_of(o)
        at_ms, n = o.at_ms, o.count
        second = at_ms // 1000
        group = groups[(slots, second)]
        failures = 0
        timed: list[tuple[str, int]] = []
        for metric, failed, value, sketched in contributions(o, custom):
            if failed and metric == "error_rate":
                failures = n
            group[metric].append((failed, value, sketched, at_ms, n))
            if sketched and value is not None and slots:
                timed.append((metric, level_of(value)))
        day, engaged = second // DAY, o.engagement * n
        exposed = o.name if o.kind is exposure else None  # the flag an exposure is of: its unit counts it
        for flag, variant in slots:  # units per variant of a flag; the environment needs none
            timeline = by_attribute.get(flag)
            user = o.targeting_key if timeline is None else timeline.unit_of(o)
            if not user:
                continue
            # tuple.__new__ makes the key without the NamedTuple's own constructor, a Python call per key.
            key = _new(UnitKey, (flag, variant, day, user))
            exposures = n if flag == exposed else 0
            unit = units.get(key)
            if unit is None:
                units[key] = [n, engaged, failures, exposures]
            else:
                unit[0] += n
                unit[1] += engaged
                unit[2] += failures
                unit[3] += exposures
            for metric, level in timed:  # per user, so a percentile can be compared with control per user
                octave = _new(LatencyKey, (flag, variant, day, user, metric, level))
                latencies[octave] = latencies.get(octave, 0) + n
    return _spread(groups), units, latencies


def _spread(groups: Mapping[_Group, Mapping[str, Sequence[_Item]]]) -> dict[Second, Aggregate]:
    """Each group's aggregates merged into the environment's slot and each of the group's flag variants."""
    per_second: dict[Second, Aggregate] = {}
    for (slots, second), group in groups.items():
        for metric, items in group.items():
            aggregate = Aggregate.of(items)
            for flag, variant in ((ALL_USERS, ALL_VARIANT), *slots):
                total = per_second.get((flag, variant, metric, second))
                if total is None:
                    total = per_second[(flag, variant, metric, second)] = Aggregate()
                total.merge(aggregate)
    return per_second


def latency_groups(
    latencies: Mapping[LatencyKey, int],
) -> dict[tuple[str, str, int, str, str], dict[int, int]]:
    """Octaves by (flag, variant, day, unit, metric), in order of first appearance: a summary's
    `latencies` entries on the wire (`latencies[i]` is the i-th)."""
    groups: dict[tuple[str, str, int, str, str], dict[int, int]] = {}
    for k, count in latencies.items():
        groups.setdefault((k.flag, k.variant, k.day, k.targeting_key, k.metric), {})[k.level] = count
    return groups


def _by_resolution(per_second: Mapping[Second, Aggregate]) -> dict[RollupKey, Aggregate]:
    """Each second's aggregate, and merged into its minute and its hour."""
    rollups: dict[RollupKey, Aggregate] = {}
    for (flag, variant, metric, second), aggregate in per_second.items():
        rollups[RollupKey(flag, variant, metric, SECOND, second)] = aggregate
        for resolution in (MINUTE, HOUR):
            coarse = RollupKey(flag, variant, metric, resolution, second - second % resolution)
            total = rollups.get(coarse)
            if total is None:
                total = rollups[coarse] = Aggregate()
            total.merge(aggregate)
    return rollups


def cover(start_s: int, end_s: int, fine_from_s: int | None = None) -> list[tuple[int, int, int]]:
    """[start, end) as (resolution, first period, last period) spans: hours inside, minutes and seconds at the
    edges. Per-second aggregates are used only from `fine_from_s` on; before that an edge rounds down to its
    minute."""
    if fine_from_s is None or start_s < fine_from_s:
        start_s -= start_s % MINUTE
    if fine_from_s is None or end_s < fine_from_s:
        end_s -= end_s % MINUTE
    lo, hi = start_s, end_s
    left: list[tuple[int, int, int]] = []
    right: list[tuple[int, int, int]] = []
    for small, big in ((SECOND, MINUTE), (MINUTE, HOUR)):
        boundary = min(lo + (-lo) % big, hi - hi % small)
        if boundary > lo:
            left.append((small, lo, boundary - small))
            lo = boundary
    for small, big in ((SECOND, MINUTE), (MINUTE, HOUR)):
        boundary = max(hi - hi % big, lo)
        if boundary < hi:
            right.append((small, boundary, hi - small))
            hi = boundary
    middle = [(HOUR, lo, hi - HOUR)] if hi > lo else []
    return left + middle + right[::-1]


def combine(aggregates: Iterable[Aggregate]) -> Aggregate:
    total = Aggregate()
    for a in aggregates:
        total.merge(a)
    return total

"""Metric queries: a value per variant over a window, with the counts behind it, bounds, and a series."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rampup.core import stats
from rampup.core.durations import format_duration
from rampup.core.ports import Clock, Store
from rampup.core.rollups import ALL_VARIANT, DAY, HOUR, MINUTE, Aggregate, combine, cover
from rampup.core.telemetry import ALL_USERS, BUILTIN_METRICS, Aggregation, MetricSpec, parse_metric_name
from rampup.errors import InvalidInput, NotFound
from rampup.services.snapshot import SnapshotCache

__all__ = ["MetricsService", "MetricQuery"]

MINUTE_SERIES_LIMIT = 6 * HOUR  # up to this window the series has a point a minute, beyond it a point an hour


@dataclass(frozen=True, slots=True)
class MetricQuery:
    environment: str
    metric: str
    window_s: int
    flag: str | None = None
    end: datetime | None = None


class MetricsService:
    def __init__(self, store: Store, snapshots: SnapshotCache, clock: Clock) -> None:
        self._store = store
        self._snapshots = snapshots
        self._clock = clock

    def spec(self, metric: str) -> tuple[MetricSpec, float | None]:
        base, q = parse_metric_name(metric)
        spec = BUILTIN_METRICS.get(base)
        if spec is None and base.startswith("event:"):
            spec = MetricSpec(base, Aggregation.COUNT, "count", f"custom events named {base[6:]!r}")
        if spec is None:
            raise InvalidInput(f"unknown metric {metric!r}; built in: "
                               + ", ".join(sorted(BUILTIN_METRICS)), where="metric")
        if (spec.aggregation is Aggregation.PERCENTILE) != (q is not None):
            raise InvalidInput(f"{spec.name} is read as a percentile, e.g. {spec.name}_p95" if q is None
                               else f"{spec.name} has no percentiles", where="metric")
        return spec, q

    def query(self, q: MetricQuery) -> dict[str, Any]:
        spec, quantile = self.spec(q.metric)
        env = self._snapshots.current.environments.get(q.environment)
        if env is None:
            raise NotFound(f"environment {q.environment!r} not found")
        if q.flag is not None and q.flag not in self._snapshots.current.flags.get(q.environment, {}):
            raise NotFound(f"flag {q.flag!r} not found")
        if not MINUTE <= q.window_s <= 400 * DAY:
            raise InvalidInput("window must be from 1m to 400d", where="window")
        end = q.end or self._clock()
        end_s = int(end.timestamp()) // MINUTE * MINUTE + MINUTE  # include the minute in progress
        start_s = end_s - q.window_s // MINUTE * MINUTE
        slot = q.flag if q.flag is not None else ALL_USERS
        step = MINUTE if q.window_s <= MINUTE_SERIES_LIMIT else HOUR
        spans = [(MINUTE, start_s, end_s - MINUTE)] if step == MINUTE else list(cover(start_s, end_s))
        with self._store.read() as tx:
            rows = tx.telemetry.rollup_rows(env.id, slot, spec.name, spans)
            units = (tx.telemetry.unit_totals(env.id, slot, start_s // DAY, (end_s - 1) // DAY)
                     if spec.aggregation is Aggregation.PER_USER else {})
        by_variant: dict[str, list[Aggregate]] = defaultdict(list)
        points: dict[int, dict[str, list[Aggregate]]] = defaultdict(lambda: defaultdict(list))
        for variant, _resolution, period, aggregate in rows:
            by_variant[variant].append(aggregate)
            points[period - period % step][variant].append(aggregate)
        variants = sorted(set(by_variant) | set(units)) or [ALL_VARIANT if q.flag is None else "on"]
        return {
            "metric": q.metric,
            "aggregation": spec.aggregation.value,
            "unit": spec.unit,
            "environment": q.environment,
            "flag": q.flag,
            "window": format_duration(timedelta(seconds=q.window_s)),
            "start": datetime.fromtimestamp(start_s, end.tzinfo),
            "end": datetime.fromtimestamp(end_s, end.tzinfo),
            "variants": {v: _estimate(spec, quantile, combine(by_variant.get(v, ())), units.get(v))
                         for v in variants},
            "series": [
                {"at": datetime.fromtimestamp(at, end.tzinfo),
                 "values": {v: _estimate(spec, quantile, combine(aggs), units.get(v))["value"]
                            for v, aggs in sorted(point.items())}}
                for at, point in sorted(points.items())
            ],
        }


def _estimate(spec: MetricSpec, quantile: float | None, a: Aggregate, units: Any) -> dict[str, Any]:
    counts: dict[str, Any] = {"count": a.count}
    match spec.aggregation:
        case Aggregation.RATE:
            e = stats.proportion(a.failures, a.count)
            counts["failures"] = a.failures
        case Aggregation.COUNT:
            e = stats.poisson_count(a.count)
        case Aggregation.PERCENTILE:
            e = stats.percentile(a.sketch or {}, quantile or 0.5)
        case Aggregation.MEAN:
            e = stats.mean(a.count, a.total, a.total_sq)
        case Aggregation.SUM:
            e = stats.poisson_count(round(a.total))
            e = stats.Estimate(a.total, e.lower, e.upper, a.count)
        case Aggregation.GAUGE:
            e = stats.Estimate(a.last_value, None, None, a.count)
            counts["mean"] = a.total / a.count if a.count else None
        case Aggregation.PER_USER:
            users = units.users if units else 0
            e = stats.mean(users, units.engaged if units else 0, units.engaged_sq if units else 0)
            counts["users"] = users
    return {"value": e.value, "lower": e.lower, "upper": e.upper, "samples": e.samples, **counts}




"""Metric queries (a value per variant over a window, with counts, bounds and a series) and custom metrics."""

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rampup.core import stats
from rampup.core.ports import Clock, Store, Transaction
from rampup.core.rollups import (
    ALL_VARIANT,
    DAY,
    FINE_RETENTION,
    HOUR,
    MINUTE,
    SECOND,
    Aggregate,
    UnitTotals,
    combine,
    cover,
)
from rampup.core.telemetry import (
    ALL_USERS,
    BUILTIN_METRICS,
    Aggregation,
    CustomMetric,
    MetricResult,
    MetricSpec,
    SeriesPoint,
    VariantValue,
    parse_metric_name,
)
from rampup.errors import Conflict, InvalidInput, NotFound
from rampup.services.snapshot import SnapshotCache

__all__ = ["MetricsService", "MetricQuery", "Resolved", "estimate"]

MINUTE_SERIES_LIMIT = 6 * HOUR  # up to this window the series has a point a minute, beyond it a point an hour


@dataclass(frozen=True, slots=True)
class MetricQuery:
    environment: str
    metric: str
    window_s: int
    flag: str | None = None
    end: datetime | None = None
    step_s: int | None = None  # seconds between series points; default a minute up to 6 hours, then an hour


@dataclass(frozen=True, slots=True)
class Resolved:
    spec: MetricSpec
    quantile: float | None
    denominator: str | None = None  # the rollup a ratio divides by


class MetricsService:
    def __init__(
        self,
        store: Store,
        snapshots: SnapshotCache,
        clock: Clock,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._clock = clock
        self._on_change = on_change

    # custom metric definitions

    def definitions(self) -> list[CustomMetric]:
        with self._store.read() as tx:
            return tx.custom_metrics.all()

    def define(self, body: Mapping[str, Any], actor: str) -> CustomMetric:
        metric = CustomMetric.parse(body)
        now = self._clock()
        with self._store.transaction() as tx:
            if any(m.name == metric.name for m in tx.custom_metrics.all()):
                raise Conflict(f"metric {metric.name!r} exists")
            tx.custom_metrics.add(metric, now)
            tx.audit.record(
                actor, "metric.create", f"metric:{metric.name}", None, None, metric.to_dict(), "", now
            )
        self._on_change()
        return metric

    def undefine(self, name: str, actor: str) -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            if not tx.custom_metrics.delete(name):
                raise NotFound(f"metric {name!r} not found")
            tx.audit.record(actor, "metric.delete", f"metric:{name}", None, None, None, "", now)
        self._on_change()

    # queries

    def resolve(self, metric: str) -> Resolved:
        base, quantile = parse_metric_name(metric)
        custom = self._snapshots.current.custom_metrics.get(base)
        resolved = None
        if base in BUILTIN_METRICS:
            resolved = Resolved(BUILTIN_METRICS[base], quantile)
        elif custom is not None:
            resolved = Resolved(
                custom.spec, quantile, f"event:{custom.denominator}" if custom.denominator else None
            )
        elif base.startswith("event:") and len(base) > 6:
            resolved = Resolved(
                MetricSpec(base, Aggregation.COUNT, "count", f"events named {base[6:]!r}"), quantile
            )
        if resolved is None:
            known = sorted(BUILTIN_METRICS) + sorted(self._snapshots.current.custom_metrics)
            raise InvalidInput(f"unknown metric {metric!r}; known: {', '.join(known)}", where="metric")
        is_percentile = resolved.spec.aggregation is Aggregation.PERCENTILE
        if is_percentile and quantile is None:
            raise InvalidInput(f"{base} is read as a percentile, e.g. {base}_p95", where="metric")
        if not is_percentile and quantile is not None:
            raise InvalidInput(f"{base} has no percentiles", where="metric")
        return resolved

    def query(self, q: MetricQuery) -> MetricResult:
        resolved = self.resolve(q.metric)
        spec = resolved.spec
        env = self._snapshots.current.environment(q.environment, q.flag)
        if not MINUTE <= q.window_s <= 400 * DAY:
            raise InvalidInput("window must be from 1m to 400d", where="window")
        end = q.end or self._clock()
        end_s = int(end.timestamp()) // MINUTE * MINUTE + MINUTE  # include the minute in progress
        start_s = end_s - q.window_s // MINUTE * MINUTE
        slot = q.flag if q.flag is not None else ALL_USERS
        step = q.step_s or (MINUTE if q.window_s <= MINUTE_SERIES_LIMIT else HOUR)
        fine = step < MINUTE and end_s - q.window_s > int(self._clock().timestamp()) - FINE_RETENTION
        if step < MINUTE and not fine:
            raise InvalidInput("points closer than a minute exist only for the last few hours", where="step")
        if fine:
            spans = [(SECOND, start_s, end_s - 1)]
        elif step == MINUTE:
            spans = [(MINUTE, start_s, end_s - MINUTE)]
        else:
            spans = cover(start_s, end_s)
        with self._store.read() as tx:
            main = _by_variant(tx, env.id, slot, spec.name, spans, step)
            other = (
                _by_variant(tx, env.id, slot, resolved.denominator, spans, step)
                if resolved.denominator
                else None
            )
            units = (
                tx.telemetry.unit_totals(env.id, slot, start_s // DAY, (end_s - 1) // DAY)
                if spec.aggregation is Aggregation.PER_USER
                else {}
            )
        totals, points = main
        variants = sorted(set(totals) | set(units)) or [ALL_VARIANT if q.flag is None else "on"]

        def of(v: str, aggregates: list[Aggregate], denominators: list[Aggregate]) -> VariantValue:
            return estimate(resolved, combine(aggregates), combine(denominators), units.get(v))

        return MetricResult(
            q.metric,
            spec,
            q.environment,
            q.flag,
            timedelta(seconds=q.window_s),
            datetime.fromtimestamp(start_s, end.tzinfo),
            datetime.fromtimestamp(end_s, end.tzinfo),
            {v: of(v, totals.get(v, []), other[0].get(v, []) if other else []) for v in variants},
            tuple(
                SeriesPoint(
                    datetime.fromtimestamp(at, end.tzinfo),
                    {
                        v: of(v, a, other[1].get(at, {}).get(v, []) if other else []).estimate
                        for v, a in point
                    },
                )
                for at, point in ((at, sorted(p.items())) for at, p in sorted(points.items()))
            ),
        )


def _by_variant(
    tx: Transaction, environment_id: int, slot: str, rollup: str, spans: list[tuple[int, int, int]], step: int
) -> tuple[dict[str, list[Aggregate]], dict[int, dict[str, list[Aggregate]]]]:
    """Rows grouped per variant for the whole window, and per series point."""
    totals: dict[str, list[Aggregate]] = defaultdict(list)
    points: dict[int, dict[str, list[Aggregate]]] = defaultdict(lambda: defaultdict(list))
    for row in tx.telemetry.rollup_rows(environment_id, slot, rollup, spans):
        totals[row.variant].append(row.aggregate)
        points[row.period - row.period % step][row.variant].append(row.aggregate)
    return totals, points


def estimate(
    resolved: "Resolved", a: Aggregate, denominator: Aggregate, units: UnitTotals | None
) -> VariantValue:
    counted: int | None = None
    mean: float | None = None
    per_user: int | None = None
    ratio_of: int | None = None
    users = units.users if units else 0
    match resolved.spec.aggregation:
        case Aggregation.RATE:
            e = stats.proportion(a.failures, a.count)
            counted = a.failures
        case Aggregation.COUNT:
            e = stats.poisson_count(a.count)
        case Aggregation.PERCENTILE:
            e = stats.percentile(a.sketch or {}, resolved.quantile or 0.5)
        case Aggregation.MEAN:
            e = stats.mean(a.count, a.total, a.total_sq)
        case Aggregation.SUM:
            e = stats.scaled(stats.poisson_count(round(a.total)), 1, a.count)
        case Aggregation.GAUGE:
            e = stats.Estimate(a.last_value, None, None, a.count)
            mean = a.total / a.count if a.count else None
        case Aggregation.PER_USER if resolved.spec.name in BUILTIN_METRICS:
            e = stats.mean(users, units.engaged if units else 0, units.engaged_sq if units else 0)
            per_user = users
        case Aggregation.PER_USER:
            e = stats.scaled(stats.poisson_count(a.count), users, users)
            per_user = users
        case Aggregation.RATIO:
            e = stats.ratio(a.count, denominator.count)
            ratio_of = denominator.count
    return VariantValue(e, a.count, counted, per_user, mean, ratio_of)

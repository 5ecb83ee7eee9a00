"""Raw events, rollups and per-user days: the telemetry half of a transaction."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql

from rampup.adapters.storage.gate_inputs import TelemetryGateInputs
from rampup.adapters.storage.tables import event_batches, rollups, unit_days
from rampup.core.rollups import Aggregate, RollupKey, UnitKey, UnitTotals
from rampup.core.telemetry import Kind, Observation

__all__ = ["SqlTelemetry"]

_encode_sketch = msgspec.msgpack.encode
_encode_events = msgspec.msgpack.encode


class _Stored(msgspec.Struct, array_like=True):
    """A raw event as stored: an array, so batches stay compact. `count` came later; older rows end before it."""

    at: int
    kind: str
    key: str | None
    flags: dict[str, Any] | None
    value: float | None
    failed: bool
    name: str | None
    variant: str | None
    engagement: bool
    tags: dict[str, str] | None
    message: str | None
    count: int = 1


_decode_events = msgspec.msgpack.Decoder(list[_Stored]).decode
_decode_sketch = msgspec.msgpack.Decoder(dict[int, int]).decode
_KEY_COLUMNS = ("flag", "variant", "metric", "resolution", "period")
_CHUNK = 400  # keys per IN (…) lookup; well under SQLite's bound-parameter limit


class SqlTelemetry:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _driver_sql(self, sql: str) -> str:
        """SQL for the driver's own executemany (the hot upsert skips SQLAlchemy's per-row work)."""
        return sql.replace("?", "%s") if self.conn.dialect.name == "postgresql" else sql

    def gate_inputs(self, environment_id: int, flag: str) -> TelemetryGateInputs:
        return TelemetryGateInputs(self, environment_id, flag)

    def insert_events(self, environment_id: int, observations: Sequence[Observation]) -> None:
        if not observations:
            return
        body = _encode_events(
            [
                (
                    o.at_ms,
                    str.__str__(o.kind),
                    o.targeting_key,
                    o.flags,
                    o.value,
                    o.failed,
                    o.name,
                    o.variant,
                    o.engagement,
                    o.tags,
                    o.message,
                    o.count,
                )
                for o in observations
            ]
        )
        times = [o.at_ms for o in observations]
        self.conn.execute(
            insert(event_batches).values(
                environment_id=environment_id,
                first_ms=min(times),
                last_ms=max(times),
                events=len(observations),
                body=body,
            )
        )

    def add_rollups(self, environment_id: int, batch: Mapping[RollupKey, Aggregate]) -> None:
        """Merge a batch's aggregates into the stored ones (read, merge, write; rows locked on PostgreSQL)."""
        keys = sorted(batch)  # one lock order for every writer, so two instances never deadlock
        existing: dict[RollupKey, Aggregate] = {}
        key_columns = tuple_(*(rollups.c[name] for name in _KEY_COLUMNS))
        if self.conn.dialect.name == "postgresql":
            # Create missing rows empty first, so concurrent writers meet on row locks, not on duplicate keys.
            self.conn.execute(
                postgresql.insert(rollups).on_conflict_do_nothing(),
                [
                    {"environment_id": environment_id, **key._asdict(), **_columns(Aggregate())}
                    for key in keys
                ],
            )
        for i in range(0, len(keys), _CHUNK):
            query = select(rollups).where(
                rollups.c.environment_id == environment_id, key_columns.in_(keys[i : i + _CHUNK])
            )
            if self.conn.dialect.name == "postgresql":
                query = query.with_for_update()
            for r in self.conn.execute(query):
                existing[RollupKey(r.flag, r.variant, r.metric, r.resolution, r.period)] = _aggregate(r)
        updates, inserts = [], []
        for key in keys:
            merged = existing.get(key)
            if merged is None:
                inserts.append({"environment_id": environment_id, **key._asdict(), **_columns(batch[key])})
            else:
                merged.merge(batch[key])
                updates.append({**{f"k_{name}": v for name, v in key._asdict().items()}, **_columns(merged)})
        if inserts:
            self.conn.execute(insert(rollups), inserts)
        if updates:
            self.conn.execute(
                update(rollups).where(
                    rollups.c.environment_id == environment_id,
                    *(rollups.c[name] == bindparam(f"k_{name}") for name in _KEY_COLUMNS),
                ),
                updates,
            )

    def add_units(self, environment_id: int, units: Mapping[UnitKey, list[int]]) -> None:
        if not units:
            return
        sql = self._driver_sql(
            "INSERT INTO unit_days (environment_id, flag, variant, day, targeting_key, events, engaged, failures) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (environment_id, flag, day, variant, targeting_key) "
            "DO UPDATE SET events = unit_days.events + excluded.events, "
            "engaged = unit_days.engaged + excluded.engaged, failures = unit_days.failures + excluded.failures"
        )
        # Sorted, so two writers lock rows in the same order on PostgreSQL.
        self.conn.exec_driver_sql(
            sql,
            [
                (environment_id, *key, counts[0], counts[1], counts[2] if len(counts) > 2 else 0)
                for key, counts in sorted(units.items())
            ],
        )

    def rollup_rows(
        self, environment_id: int, flag: str, metric: str, spans: Iterable[tuple[int, int, int]]
    ) -> list[tuple[str, int, int, Aggregate]]:
        """(variant, resolution, period, aggregate) for the given (resolution, first, last) spans."""
        rows: list[tuple[str, int, int, Aggregate]] = []
        for resolution, first, last in spans:
            query = select(rollups).where(
                rollups.c.environment_id == environment_id,
                rollups.c.flag == flag,
                rollups.c.metric == metric,
                rollups.c.resolution == resolution,
                rollups.c.period.between(first, last),
            )
            rows.extend((r.variant, r.resolution, r.period, _aggregate(r)) for r in self.conn.execute(query))
        return rows

    def unit_totals(
        self, environment_id: int, flag: str, first_day: int, last_day: int
    ) -> dict[str, UnitTotals]:
        """Per variant: distinct users over the days, and their engaged actions summed per user."""
        per_user = (
            select(
                unit_days.c.variant,
                unit_days.c.targeting_key,
                func.sum(unit_days.c.events).label("events"),
                func.sum(unit_days.c.engaged).label("engaged"),
                func.sum(unit_days.c.failures).label("failures"),
            )
            .where(
                unit_days.c.environment_id == environment_id,
                unit_days.c.flag == flag,
                unit_days.c.day.between(first_day, last_day),
            )
            .group_by(unit_days.c.variant, unit_days.c.targeting_key)
            .subquery()
        )
        query = select(
            per_user.c.variant,
            func.count(),
            func.sum(per_user.c.events),
            func.sum(per_user.c.engaged),
            func.sum(per_user.c.engaged * per_user.c.engaged),
            func.sum(per_user.c.failures),
            func.sum(per_user.c.failures * per_user.c.failures),
        ).group_by(per_user.c.variant)
        return {
            variant: UnitTotals(
                int(users),
                int(n or 0),
                int(engaged or 0),
                int(squares or 0),
                int(failed or 0),
                int(failed_sq or 0),
            )
            for variant, users, n, engaged, squares, failed, failed_sq in self.conn.execute(query)
        }

    def purge_rollups(self, resolution: int, before_period: int) -> int:
        return self.conn.execute(
            delete(rollups).where(rollups.c.resolution == resolution, rollups.c.period < before_period)
        ).rowcount

    def events(self, environment_id: int, since_ms: int, until_ms: int) -> list[Observation]:
        """Raw events with since_ms <= at_ms < until_ms, from the batches that overlap the span."""
        query = select(event_batches.c.body).where(
            event_batches.c.environment_id == environment_id,
            event_batches.c.last_ms >= since_ms,
            event_batches.c.first_ms < until_ms,
        )
        return [
            Observation(
                Kind(e.kind),
                e.at,
                e.key,
                e.flags,
                e.value,
                e.failed,
                e.name,
                e.variant,
                e.engagement,
                e.tags,
                e.message,
                count=e.count,
            )
            for (body,) in self.conn.execute(query)
            for e in _decode_events(body)
            if since_ms <= e.at < until_ms
        ]

    def purge_events(self, before_ms: int) -> int:
        """Drop the batches whose every event is older than `before_ms`; returns how many events went."""
        old = event_batches.c.last_ms < before_ms
        count = int(
            self.conn.execute(
                select(func.coalesce(func.sum(event_batches.c.events), 0)).where(old)
            ).scalar_one()
        )
        self.conn.execute(delete(event_batches).where(old))
        return count


def _aggregate(r: Any) -> Aggregate:
    return Aggregate(
        r.count,
        r.failures,
        r.total,
        r.total_sq,
        r.last_value,
        r.last_at_ms,
        _decode_sketch(r.sketch) if r.sketch is not None else None,
    )


def _columns(a: Aggregate) -> dict[str, Any]:
    return {
        "count": a.count,
        "failures": a.failures,
        "total": a.total,
        "total_sq": a.total_sq,
        "last_value": a.last_value,
        "last_at_ms": a.last_at_ms,
        "sketch": _encode_sketch(a.sketch) if a.sketch else None,
    }

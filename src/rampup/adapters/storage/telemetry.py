"""Raw events, rollups and per-user days: the telemetry half of a transaction."""

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Subquery,
    Table,
    case,
    cast,
    delete,
    func,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite

from rampup.adapters.storage.gate_inputs import TelemetryGateInputs
from rampup.adapters.storage.tables import (
    event_batches,
    rollups,
    summary_ids,
    unit_day_packs,
    unit_days,
    unit_latency_days,
    unit_latency_packs,
)
from rampup.core.ports import RollupRow
from rampup.core.rollups import (
    Aggregate,
    Exceedance,
    LatencyKey,
    RollupKey,
    UnitKey,
    UnitTotals,
    suffix_sums,
)
from rampup.core.telemetry import Kind, Observation

__all__ = ["SqlTelemetry"]

_encode_sketch = msgspec.msgpack.encode
_encode_events = msgspec.msgpack.encode
_encode_json = msgspec.json.encode


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
_decode_keys = msgspec.json.Decoder(list[str]).decode
_KEY_COLUMNS = ("flag", "variant", "metric", "resolution", "period")


class _Packs(NamedTuple):
    """Per-user counts that ingest appends to `packs` as the users of a batch with the same counts (no key to look up,
    a handful of rows per batch) and compaction sums into `merged` (one row per `key`); readers add the two."""

    packs: str
    merged: str
    shared: tuple[str, ...]  # what a pack's users share: the core key's fields but the user, and the counts
    key: tuple[str, ...]  # `merged`'s primary key
    counts: tuple[str, ...]

    def unpacked(self, postgres: bool, packs: str) -> str:
        """`packs`' users as rows of `merged`'s columns (`p` the packs, `k` the users)."""
        user, each = (
            ("k", "json_array_elements_text(p.keys::json)") if postgres else ("k.value", "json_each(p.keys)")
        )
        columns = ", ".join(f"p.{c}" for c in ("environment_id", *self.shared))
        return f"SELECT {columns}, {user} AS targeting_key FROM {packs} p, {each} k"

    def merge(self, unpacked: str, postgres: bool) -> str:
        """Sum `unpacked`'s rows into `merged`. PostgreSQL's upsert takes each key once, summed by a hash aggregate
        (sorting them into key order cost it as much again); SQLite upserts row by row, which adds repeats without
        a sort (its GROUP BY sorts, and costs more than the upserts it saves)."""
        columns = ("environment_id", *self.shared, "targeting_key")
        key = ", ".join(self.key)
        added = ", ".join(f"{c} = {self.merged}.{c} + excluded.{c}" for c in self.counts)
        if postgres:
            summed = ", ".join(f"sum({c})" if c in self.counts else c for c in columns)
            select_ = f"SELECT {summed} FROM ({unpacked}) u GROUP BY {key}"
        else:
            select_ = f"SELECT {', '.join(columns)} FROM ({unpacked}) u WHERE true"
        return f"INSERT INTO {self.merged} ({', '.join(columns)}) {select_} ON CONFLICT ({key}) DO UPDATE SET {added}"


_UNIT_PACKS = _Packs(
    "unit_day_packs",
    "unit_days",
    ("flag", "variant", "day", "events", "engaged", "failures", "exposures"),
    ("environment_id", "flag", "day", "variant", "targeting_key"),
    ("events", "engaged", "failures", "exposures"),
)
_LATENCY_PACKS = _Packs(
    "unit_latency_packs",
    "unit_latency_days",
    ("flag", "variant", "day", "metric", "level", "count"),
    ("environment_id", "flag", "metric", "day", "variant", "targeting_key", "level"),
    ("count",),
)
_ENSURE_ROLLUPS = (
    "INSERT INTO rollups (environment_id, flag, variant, metric, resolution, period, count, failures, total, "
    "total_sq) SELECT %s, r->>0, r->>1, r->>2, (r->>3)::smallint, (r->>4)::bigint, 0, 0, 0, 0 "
    "FROM json_array_elements(%s::json) r ON CONFLICT DO NOTHING"
)
_UPDATE_ROLLUPS = (
    "UPDATE rollups SET count = v.count, failures = v.failures, total = v.total, total_sq = v.total_sq, "
    "last_value = v.last_value, last_at_ms = v.last_at_ms, sketch = v.sketch FROM (SELECT r->>0 AS flag, "
    "r->>1 AS variant, r->>2 AS metric, (r->>3)::smallint AS resolution, (r->>4)::bigint AS period, "
    "(r->>5)::bigint AS count, (r->>6)::bigint AS failures, (r->>7)::float8 AS total, (r->>8)::float8 AS total_sq, "
    "(r->>9)::float8 AS last_value, (r->>10)::bigint AS last_at_ms, decode(r->>11, 'base64') AS sketch "
    "FROM json_array_elements(%s::json) r) v WHERE rollups.environment_id = %s AND rollups.flag = v.flag "
    "AND rollups.variant = v.variant AND rollups.metric = v.metric AND rollups.resolution = v.resolution "
    "AND rollups.period = v.period"
)
DAY_MS = 86_400_000
# SQLite: the pending packs' sums replace them only if they hold at most this share of the packs' users (some users
# in several): rewriting costs a little inside the write lock, each user fewer saves the merge an upsert (~1.2 µs).
# Summing, outside the lock, costs ~0.1 µs per user whether it is written or not.
REWRITE_AT_MOST = 0.6
PARTITION_LOCK = 0x52414D51  # advisory lock key: creators of day partitions take turns
_CHUNK = 400  # keys per IN (…) lookup; well under SQLite's bound-parameter limit


class SqlTelemetry:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def gate_inputs(self, environment_id: int, flag: str) -> TelemetryGateInputs:
        return TelemetryGateInputs(self, environment_id, flag)

    def insert_events(self, environment_id: int, observations: Sequence[Observation]) -> None:
        """One row per day the batch's events fall on: PostgreSQL keeps each day in a partition of its own."""
        if not observations:
            return
        times = [o.at_ms for o in observations]
        first_day = min(times) // DAY_MS
        by_day: dict[int, list[Observation]] = {}
        if first_day == max(times) // DAY_MS:  # nearly every batch: no need to sort it by day
            by_day[first_day] = list(observations)
        else:
            for o in observations:
                by_day.setdefault(o.at_ms // DAY_MS, []).append(o)
        self.make_room(by_day)
        mark = "%s" if self.conn.dialect.name == "postgresql" else "?"
        self.conn.exec_driver_sql(
            "INSERT INTO event_batches (environment_id, day, first_ms, last_ms, events, body) "
            f"VALUES ({', '.join([mark] * 6)})",
            [
                (
                    environment_id,
                    day,
                    min(o.at_ms for o in events),
                    max(o.at_ms for o in events),
                    len(events),
                    _encode_events([_stored(o) for o in events]),
                )
                for day, events in by_day.items()
            ],
        )

    def make_room(self, days: Iterable[int]) -> None:
        """Create the day partitions (PostgreSQL) these days' raw events go to, where missing; SQLite has one table.

        In the caller's transaction, before it writes anything else, so waiting for the parent table's lock never
        deadlocks with another writer; the advisory lock makes concurrent creators take turns."""
        if self.conn.dialect.name != "postgresql":
            return
        wanted = {_partition(day): day for day in days}
        missing = self.conn.exec_driver_sql(
            "SELECT name FROM unnest(%s::text[]) name WHERE to_regclass(name) IS NULL", (list(wanted),)
        ).scalars()
        for name in sorted(missing):
            self.conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            self.conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF event_batches "
                f"FOR VALUES FROM ({wanted[name]}) TO ({wanted[name] + 1})"
            )

    def add_rollups(self, environment_id: int, batch: Mapping[RollupKey, Aggregate]) -> None:
        """Merge a batch's aggregates into the stored ones (read, merge, write; rows locked on PostgreSQL). Plain
        statements over positional rows: SQLAlchemy's work per statement and row cost more than these few rows."""
        keys = sorted(batch)  # one lock order for every writer, so two instances never deadlock
        postgres = self.conn.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        if postgres:
            # Create missing rows empty first, so concurrent writers meet on row locks, not on duplicate keys.
            self.conn.exec_driver_sql(_ENSURE_ROLLUPS, (environment_id, _encode_json(keys).decode()))
        existing: dict[RollupKey, Aggregate] = {}
        # One primary-key lookup per key: SQLite reads `(…) IN (VALUES …)` by scanning the environment's rows.
        term = f"({' AND '.join(f'{c} = {mark}' for c in _KEY_COLUMNS)})"
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            found = self.conn.exec_driver_sql(
                f"SELECT {', '.join(_KEY_COLUMNS + _AGGREGATE_COLUMNS)} FROM rollups WHERE environment_id = {mark} "
                f"AND ({' OR '.join([term] * len(chunk))})"
                # Locked in key order: in the order it finds them (where their latest versions lie in the table),
                # two writers could lock the same rows in opposite orders and deadlock.
                + (f" ORDER BY {', '.join(_KEY_COLUMNS)} FOR UPDATE" if postgres else ""),
                (environment_id, *(part for key in chunk for part in key)),
            )
            for flag, variant, metric, resolution, period, *aggregate in found:
                existing[RollupKey(flag, variant, metric, resolution, period)] = _aggregate(*aggregate)
        updates, inserts = [], []
        for key in keys:
            merged = existing.get(key)
            if merged is None:
                inserts.append((environment_id, *key, *_values(batch[key])))
            else:
                merged.merge(batch[key])
                updates.append((key, merged))
        if inserts:
            columns = ("environment_id", *_KEY_COLUMNS, *_AGGREGATE_COLUMNS)
            self.conn.exec_driver_sql(
                f"INSERT INTO rollups ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
                inserts,
            )
        if not updates:
            return
        if postgres:  # one statement for all rows, as for the per-user days
            self.conn.exec_driver_sql(
                _UPDATE_ROLLUPS,
                (_encode_json([(*k, *_values(a)) for k, a in updates]).decode(), environment_id),
            )
            return
        self.conn.exec_driver_sql(
            f"UPDATE rollups SET {', '.join(f'{c} = ?' for c in _AGGREGATE_COLUMNS)} WHERE environment_id = ? AND "
            + " AND ".join(f"{c} = ?" for c in _KEY_COLUMNS),
            [(*_values(a), environment_id, *k) for k, a in updates],
        )

    def add_units(self, environment_id: int, units: Mapping[UnitKey, list[int]]) -> None:
        users = (((environment_id, f, v, day, *counts), user) for (f, v, day, user), counts in units.items())
        self._append(_UNIT_PACKS, _packed(users))

    def add_latencies(self, environment_id: int, latencies: Mapping[LatencyKey, int]) -> None:
        users = (
            ((environment_id, f, v, day, m, level, n), user)
            for (f, v, day, user, m, level), n in latencies.items()
        )
        self._append(_LATENCY_PACKS, _packed(users))

    def _append(self, packs: _Packs, rows: Mapping[tuple[Any, ...], list[str]]) -> None:
        """Appended, never looked up: an upsert per user and day was most of a batch's writes (a B-tree search per
        row, at random). Packed: a row appended per user cost 2.3 µs of the worker's CPU (SQLite, in process), a
        pack 0.4 per user. `compact_units` merges them. `rows`: (environment, what they share) → the users."""
        if not rows:
            return
        columns = ("environment_id", *packs.shared, "users", "keys")
        mark = "%s" if self.conn.dialect.name == "postgresql" else "?"
        self.conn.exec_driver_sql(
            f"INSERT INTO {packs.packs} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
            [(*shared, len(users), _encode_json(users).decode()) for shared, users in rows.items()],
        )

    def pending_units(self, limit: int) -> "tuple[_Summed, ...] | None":
        """SQLite: the oldest packs of each kind, until `limit` users, their users' counts summed (each user once per
        flag, variant, day and octave), read without the write lock; `collapse_units` puts the sums in their place,
        so that the merge, which holds the one write lock, upserts a user once however many batches they came in.
        None on PostgreSQL, whose merge sums them itself, beside ingest."""
        if self.conn.dialect.name == "postgresql":
            return None
        return tuple(self._summed(packs, limit) for packs in (_UNIT_PACKS, _LATENCY_PACKS))

    def _summed(self, packs: _Packs, limit: int) -> "_Summed":
        rows = [
            tuple(row)
            for row in self.conn.exec_driver_sql(
                f"{_packs_up_to(packs)} (SELECT coalesce(max(rowid), 0) FROM (SELECT rowid, sum(users) OVER "
                f"(ORDER BY rowid) - users AS before FROM {packs.packs}) WHERE before < ?) ORDER BY rowid",
                (limit,),
            )
        ]
        counted = len(packs.counts)
        # By what the pack's users share but the counts, a Counter per count: Counter.update adds a pack's keys in C.
        sums: dict[tuple[Any, ...], list[Counter[str]]] = {}
        for _, *fields, _, keys in rows:
            what, counts = tuple(fields[:-counted]), fields[-counted:]
            summed = sums.get(what)
            if summed is None:
                summed = sums[what] = [Counter() for _ in counts]
            users = _decode_keys(keys)
            for i, (counter, count) in enumerate(zip(summed, counts, strict=True)):
                if count == 1:
                    counter.update(users)
                elif count or i == 0:  # every user in the first, even with a count of 0: they count as a user
                    counter.update(dict.fromkeys(users, count))
        return _Summed(packs, rows, sums)

    def collapse_units(self, pending: object) -> None:
        """Replace the packs `pending_units` read with their sums (in a write transaction) if they are still there
        as they were read: a compactor that lost the lease may have merged them meanwhile (rowids are reused once
        the table is empty, so the rows themselves are compared). Packs appended since come after the sums."""
        assert isinstance(pending, tuple)  # what this store's `pending_units` returned
        summed: _Summed
        for summed in pending:
            users = sum(len(counters[0]) for counters in summed.sums.values())
            if not summed.rows or users > sum(row[-2] for row in summed.rows) * REWRITE_AT_MOST:
                continue  # few users more than once: rewriting would save the merge less than it costs
            last = summed.rows[-1][0]
            now = self.conn.exec_driver_sql(f"{_packs_up_to(summed.packs)} ? ORDER BY rowid", (last,))
            if [tuple(row) for row in now] != summed.rows:
                continue  # the merge takes what is there as it is
            self.conn.exec_driver_sql(f"DELETE FROM {summed.packs.packs} WHERE rowid <= ?", (last,))
            self._append(
                summed.packs,
                _packed(
                    ((*what, *(counter[user] for counter in counters)), user)
                    for what, counters in summed.sums.items()
                    for user in counters[0]
                ),
            )

    def compact_units(self, limit: int) -> int:
        """Merge whole packs of each kind (per-user days, latency octaves), in order, until `limit` users, and delete
        them, in the caller's transaction; returns how many users' rows were merged (`limit` or more when some may
        be left). A reader sees the packs or their sums, never both nor neither."""
        return sum(self._compact(packs, limit) for packs in (_UNIT_PACKS, _LATENCY_PACKS))

    def _compact(self, packs: _Packs, limit: int) -> int:
        if self.conn.dialect.name == "postgresql":
            # One statement: the packs deleted are exactly the packs summed. A concurrent compactor (one that lost
            # the lease) chooses from the table's start too, so it waits for the packs this one deletes, skips them
            # and upserts after this one's commit. Should two ever upsert the same users at once in other orders,
            # PostgreSQL ends one with a deadlock error: rolled back whole, its packs wait for the next compaction.
            chosen = (
                f"SELECT ctid FROM (SELECT ctid, sum(users) OVER (ROWS UNBOUNDED PRECEDING) - users AS before "
                f"FROM {packs.packs}) s WHERE before < %s"
            )
            moved = f"DELETE FROM {packs.packs} WHERE ctid = ANY(ARRAY({chosen})) RETURNING *"
            return int(
                self.conn.exec_driver_sql(
                    f"WITH moved AS ({moved}), merged AS ({packs.merge(packs.unpacked(True, 'moved'), True)}) "
                    "SELECT coalesce(sum(users), 0) FROM moved",
                    (limit,),
                ).scalar_one()
            )
        # SQLite has one writer: nothing is appended between the merge and the delete.
        last, users = self.conn.exec_driver_sql(
            f"SELECT max(rowid), sum(users) FROM (SELECT rowid, users, sum(users) OVER (ORDER BY rowid) - users "
            f"AS before FROM {packs.packs}) WHERE before < ?",
            (limit,),
        ).one()
        if last is None:
            return 0
        self.conn.exec_driver_sql(
            packs.merge(packs.unpacked(False, packs.packs) + f" WHERE p.rowid <= {int(last)}", False)
        )
        self.conn.exec_driver_sql(f"DELETE FROM {packs.packs} WHERE rowid <= ?", (last,))
        return int(users)

    def exceedance(
        self, environment_id: int, flag: str, metric: str, first_day: int, last_day: int
    ) -> dict[str, dict[int, Exceedance]]:
        """Per variant and octave holding values, each user's values over the days (nᵢ) and those at or
        above the octave (eᵢ), summed: one pass, each user's octaves adding their share (`suffix_sums`)."""
        t = _with_packs(
            unit_latency_days,
            unit_latency_packs,
            ("variant", "targeting_key", "level", "count"),
            lambda t: (
                t.c.environment_id == environment_id,
                t.c.flag == flag,
                t.c.metric == metric,
                t.c.day.between(first_day, last_day),
            ),
            self.conn.dialect.name == "postgresql",
        ).c
        octaves = (
            select(t.variant, t.targeting_key, t.level, func.sum(t.count).label("c"))
            .group_by(t.variant, t.targeting_key, t.level)
            .subquery()
        )
        user = (octaves.c.variant, octaves.c.targeting_key)
        running = (
            select(
                octaves.c.variant,
                octaves.c.level,
                octaves.c.c,
                func.sum(octaves.c.c).over(partition_by=user, order_by=octaves.c.level.desc()).label("e"),
                func.sum(octaves.c.c).over(partition_by=user).label("n"),
            )
        ).subquery()
        c, e, n = running.c.c, running.c.e, running.c.n
        query = select(
            running.c.variant,
            running.c.level,
            func.sum(c),
            func.sum(e * e - (e - c) * (e - c)),
            func.sum(c * n),
        ).group_by(running.c.variant, running.c.level)
        shares: dict[str, dict[int, tuple[int, int, int]]] = {}
        for variant, level, *sums in self.conn.execute(query):
            shares.setdefault(variant, {})[level] = tuple(int(x) for x in sums)  # type: ignore[assignment]
        return {variant: suffix_sums(rows) for variant, rows in shares.items()}

    def rollup_rows(
        self, environment_id: int, flag: str, metric: str, spans: Iterable[tuple[int, int, int]]
    ) -> list[RollupRow]:
        """The rows of the given (resolution, first, last) spans."""
        rows: list[RollupRow] = []
        for resolution, first, last in spans:
            columns = (rollups.c.variant, rollups.c.period, *(rollups.c[c] for c in _AGGREGATE_COLUMNS))
            query = select(*columns).where(
                rollups.c.environment_id == environment_id,
                rollups.c.flag == flag,
                rollups.c.metric == metric,
                rollups.c.resolution == resolution,
                rollups.c.period.between(first, last),
            )
            rows.extend(
                RollupRow(variant, resolution, period, _aggregate(*aggregate))
                for variant, period, *aggregate in self.conn.execute(query)
            )
        return rows

    def unit_totals(
        self, environment_id: int, flag: str, first_day: int, last_day: int
    ) -> dict[str, UnitTotals]:
        """Per variant: distinct users over the days, and their engaged actions summed per user; the users with an
        exposure of the flag, and those of them whose every event was one."""
        both = _with_packs(
            unit_days,
            unit_day_packs,
            ("variant", "targeting_key", "events", "engaged", "failures", "exposures"),
            lambda t: (
                t.c.environment_id == environment_id,
                t.c.flag == flag,
                t.c.day.between(first_day, last_day),
            ),
            self.conn.dialect.name == "postgresql",
        )
        per_user = (
            select(
                both.c.variant,
                both.c.targeting_key,
                func.sum(both.c.events).label("events"),
                func.sum(both.c.engaged).label("engaged"),
                func.sum(both.c.failures).label("failures"),
                func.sum(both.c.exposures).label("exposures"),
            )
            .group_by(both.c.variant, both.c.targeting_key)
            .subquery()
        )
        exposed = per_user.c.exposures > 0
        query = select(
            per_user.c.variant,
            func.count(),
            func.sum(per_user.c.events),
            func.sum(per_user.c.engaged),
            func.sum(per_user.c.engaged * per_user.c.engaged),
            func.sum(per_user.c.failures),
            func.sum(per_user.c.failures * per_user.c.failures),
            func.sum(case((exposed, 1), else_=0)),
            func.sum(case((exposed & (per_user.c.exposures == per_user.c.events), 1), else_=0)),
        ).group_by(per_user.c.variant)
        return {
            variant: UnitTotals(*(int(x or 0) for x in totals))
            for variant, *totals in self.conn.execute(query)
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

    def claim_summary(self, environment_id: int, summary_id: str, at_ms: int) -> bool:
        """One insert that does nothing on a conflict: on PostgreSQL a concurrent claim of the same id waits for
        the first to commit or roll back, so exactly one of them stores the summary."""
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        row = {"environment_id": environment_id, "summary_id": summary_id, "at_ms": at_ms}
        claim = (
            dialect.insert(summary_ids).values(row).on_conflict_do_nothing().returning(summary_ids.c.at_ms)
        )
        return self.conn.execute(claim).first() is not None

    def purge_summary_ids(self, before_ms: int) -> int:
        return int(self.conn.execute(delete(summary_ids).where(summary_ids.c.at_ms < before_ms)).rowcount)

    def purge_events(self, before_ms: int) -> int:
        """Drop the batches whose every event is older than `before_ms`; returns how many events went. On PostgreSQL
        the days wholly before it go as whole partitions (no row is deleted one by one, nothing left to vacuum)."""
        count = 0
        if self.conn.dialect.name == "postgresql":
            old_days = [name for name, day in self._partitions() if (day + 1) * DAY_MS <= before_ms]
            if old_days:
                count += int(
                    self.conn.execute(
                        select(func.coalesce(func.sum(event_batches.c.events), 0)).where(
                            event_batches.c.day < before_ms // DAY_MS
                        )
                    ).scalar_one()
                )
                self.conn.exec_driver_sql(f"DROP TABLE {', '.join(old_days)}")
        old = event_batches.c.last_ms < before_ms
        count += int(
            self.conn.execute(
                select(func.coalesce(func.sum(event_batches.c.events), 0)).where(old)
            ).scalar_one()
        )
        self.conn.execute(delete(event_batches).where(old))
        return count

    def _partitions(self) -> list[tuple[str, int]]:
        """(name, day) of event_batches' day partitions."""
        rows = self.conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'event_batches'::regclass"
        ).scalars()
        return [(name, day) for name in rows if (day := _day_of(name)) is not None]


class _Summed(NamedTuple):
    """Packs of one kind as `pending_units` read them (rowid, columns, users, keys; in rowid order), and their
    users' counts summed: by (environment, what the pack's users share but the counts), a Counter per count."""

    packs: _Packs
    rows: list[tuple[Any, ...]]
    sums: dict[tuple[Any, ...], list[Counter[str]]]


def _packs_up_to(packs: _Packs) -> str:
    """Packs of a kind as `pending_units` reads them, up to a rowid to be appended."""
    return f"SELECT rowid, environment_id, {', '.join(packs.shared)}, users, keys FROM {packs.packs} WHERE rowid <="


def _packed(users: Iterable[tuple[tuple[Any, ...], str]]) -> dict[tuple[Any, ...], list[str]]:
    """(what they share, user) → the users who share it."""
    packs: dict[tuple[Any, ...], list[str]] = {}
    for shared, user in users:
        same = packs.get(shared)
        if same is None:
            packs[shared] = [user]
        else:
            same.append(user)
    return packs


def _with_packs(
    merged: Table,
    packs: Table,
    names: Sequence[str],
    where: Callable[[Table], Iterable[ColumnElement[bool]]],
    postgres: bool,
) -> Subquery:
    """The rows of a merged table and of the packs appended since its last compaction, a row per user, as one."""
    if postgres:
        each = func.json_array_elements_text(cast(packs.c["keys"], JSON)).table_valued("value")
    else:
        each = func.json_each(packs.c["keys"]).table_valued("value")
    unpacked = (
        select(*(each.c.value.label(name) if name == "targeting_key" else packs.c[name] for name in names))
        .select_from(packs.join(each, true()))
        .where(*where(packs))
    )
    return union_all(select(*(merged.c[name] for name in names)).where(*where(merged)), unpacked).subquery()


def _stored(o: Observation) -> tuple[Any, ...]:
    return (
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


def _partition(day: int) -> str:
    """The name of a day's partition: event_batches_d20422 (days since 1970-01-01; m for days before it)."""
    return f"event_batches_d{day}" if day >= 0 else f"event_batches_m{-day}"


def _day_of(name: str) -> int | None:
    prefix, _, number = name.rpartition("_")
    if prefix != "event_batches" or not number[1:].isdigit():
        return None
    return int(number[1:]) if number[0] == "d" else -int(number[1:]) if number[0] == "m" else None


def _aggregate(
    count: int,
    failures: int,
    total: float,
    total_sq: float,
    last_value: float | None,
    last_at_ms: int | None,
    sketch: bytes | None,
) -> Aggregate:
    """An aggregate from its columns (`_AGGREGATE_COLUMNS`, in order)."""
    return Aggregate(
        count,
        failures,
        total,
        total_sq,
        last_value,
        last_at_ms,
        _decode_sketch(sketch) if sketch is not None else None,
    )


_AGGREGATE_COLUMNS = ("count", "failures", "total", "total_sq", "last_value", "last_at_ms", "sketch")


def _values(a: Aggregate) -> tuple[Any, ...]:
    return (
        a.count,
        a.failures,
        a.total,
        a.total_sq,
        a.last_value,
        a.last_at_ms,
        _encode_sketch(a.sketch) if a.sketch else None,
    )


def _columns(a: Aggregate) -> dict[str, Any]:
    return dict(zip(_AGGREGATE_COLUMNS, _values(a), strict=True))

"""Telemetry in: attribute, fold into aggregates, and store raw events and aggregates in one transaction.

A batch is stored whole or not at all, and the caller is answered only after the commit.
"""

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from rampup.core.attribution import FlagTimeline, variants_of
from rampup.core.feedback import Entry, EventRef
from rampup.core.flags import CompiledFlag
from rampup.core.ports import Clock, Store, Transaction
from rampup.core.rollups import (
    ALL_VARIANT,
    DAY,
    FINE_RETENTION,
    SECOND,
    Aggregate,
    Folded,
    LatencyKey,
    RollupKey,
    Second,
    UnitKey,
    combine,
    expand,
    fold,
    latency_groups,
)
from rampup.core.telemetry import ALL_USERS, BUILTIN_METRICS, Kind, Observation
from rampup.errors import Conflict, InvalidInput, NotFound
from rampup.services.snapshot import SnapshotCache
from rampup.services.usage import EvaluationCounter

__all__ = ["IngestService"]

ROOM_AHEAD_DAYS = 3  # today's and the next days' raw events never wait for their partition to be created
SUMMARY_ID_RETENTION = timedelta(days=1)  # a summary retried later than this after a lost answer counts twice
RETRIES = 3  # concurrent first writes of the same new aggregate row (several instances) conflict; retry
# Per-user-day parts merged per transaction. Not fewer: on SQLite each commit writes every page its chunk touched (a
# chunk's users are spread over the whole table), so chunks of 5,000 cost the merge twice the CPU of chunks of 50,000.
COMPACT_CHUNK = 50_000
# PostgreSQL merges beside ingest (nothing waits for it), so a chunk there holds a compaction interval's parts even
# at 100,000 events/s: a user's parts in it are summed into one upsert, where chunks of 50,000 upserted a user
# returning within the interval once per chunk. Still a bound, for a backlog (a worker down for an hour).
COMPACT_CHUNK_BESIDE = 500_000
# Users of each kind whose parts a compaction sums before merging (SQLite): a compaction interval's at 100,000
# events/s, held in the worker's memory meanwhile (a few hundred bytes each).
COLLAPSE_USERS = 200_000
# Between chunks: a writer waiting for SQLite's lock takes it then, not after the last chunk.
COMPACT_PAUSE_S = 0.005


class IngestService:
    def __init__(
        self,
        store: Store,
        snapshots: SnapshotCache,
        clock: Clock,
        usage: EvaluationCounter | None = None,
        stored: Callable[[str, str, int], None] = lambda environment, source, count: None,
        retention: timedelta | None = None,
        compact_chunk: int = COMPACT_CHUNK,
    ) -> None:
        self._store = store
        self._compact_chunk = compact_chunk
        self._retention = retention
        self._snapshots = snapshots
        self._clock = clock
        self._usage = usage  # exposures count as evaluations of their flag
        self._stored = stored  # told (environment, source, count) after each commit: the server's metrics
        self._group = GroupCommit(lambda batches: self._commit(lambda tx: _write(tx, batches)))

    def now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def ingest(self, environment: str, observations: Sequence[Observation], source: str = "native") -> int:
        """`source`: native or sentry, kept with feedback so people know where it came from."""
        snapshot = self._snapshots.current
        env = snapshot.environments.get(environment)
        if env is None:
            raise NotFound(f"environment {environment!r} not found")
        if not observations:
            return 0
        timelines = snapshot.timelines.get(environment, {})
        self._follow_references(env.id, observations)
        folded = fold(observations, timelines, tuple(snapshot.custom_metrics.values()))
        feedback = _feedback_entries(observations, timelines, source)
        refs = [
            EventRef(o.event_id, o.at_ms, o.targeting_key, o.flags)
            for o in observations
            if o.event_id and (o.targeting_key or o.flags)
        ]
        # Events older than the retention count in the aggregates but are not kept raw: the next purge would drop
        # them, and on PostgreSQL each of their days would cost a partition (years of backfill: thousands).
        oldest_ms = self.now_ms() - self._retention // timedelta(milliseconds=1) if self._retention else None
        raw = [
            dataclasses.replace(o, message=None) if o.kind is Kind.FEEDBACK else o
            for o in observations
            if oldest_ms is None or o.at_ms >= oldest_ms
        ]

        self._group.commit(_Batch(env.id, folded, raw, feedback, refs))
        if self._usage is not None:
            self._usage.exposures(environment, observations, snapshot.flags.get(environment, {}))
        self._stored(environment, source, len(observations))
        return len(observations)

    def ingest_summary(
        self,
        environment: str,
        seconds: Mapping[Second, Aggregate],
        units: dict[UnitKey, list[int]],
        latencies: dict[LatencyKey, int],
        summary_id: str | None = None,
    ) -> int:
        """A client's per-second aggregates and unit days (`adapters/codecs/summaries.py`), stored as the events
        they fold would be, all or nothing; returns how many events they stand for (their error_rate counts,
        which every request and error event feeds once). A summary whose id was stored already (a retry after
        a lost answer) is answered alike and stores nothing."""
        snapshot = self._snapshots.current
        env = snapshot.environments.get(environment)
        if env is None:
            raise NotFound(f"environment {environment!r} not found")
        flags = snapshot.flags.get(environment, {})
        custom = snapshot.custom_metrics
        cells = [
            (f"seconds[{i}]", flag, variant, metric) for i, (flag, variant, metric, _) in enumerate(seconds)
        ]
        groups = latency_groups(latencies)  # as on the wire
        cells += [(f"latencies[{i}]", f, v, m) for i, (f, v, _, _, m) in enumerate(groups)]
        for where, flag, variant, metric in cells:
            _check_slot(flags, flag, variant, where)
            if metric not in BUILTIN_METRICS and metric not in custom and not metric.startswith("event:"):
                raise InvalidInput(f"unknown metric {metric!r}", where=f"{where}.metric")
        for i, key in enumerate(units):
            _check_slot(flags, key.flag, key.variant, f"units[{i}]")
        folded = expand(seconds, units, latencies)
        events = sum(
            a.count
            for (flag, _, metric, _), a in seconds.items()
            if flag == ALL_USERS and metric == "error_rate"
        )
        fresh = True

        def write(tx: Transaction) -> None:
            nonlocal fresh
            fresh = summary_id is None or tx.telemetry.claim_summary(env.id, summary_id, self.now_ms())
            if fresh:
                tx.telemetry.add_rollups(env.id, folded.rollups)
                tx.telemetry.add_units(env.id, folded.units)
                tx.telemetry.add_latencies(env.id, folded.latencies)

        self._commit(write)
        if fresh:
            if self._usage is not None:
                self._usage.summarized(environment, seconds)
            self._stored(environment, "summary", events)
        return events

    def _commit(self, write: Callable[[Transaction], None]) -> None:
        for attempt in range(RETRIES):
            try:
                with self._store.transaction() as tx:
                    write(tx)
                return
            except Conflict:
                if attempt == RETRIES - 1:
                    raise

    def _follow_references(self, environment_id: int, observations: Sequence[Observation]) -> None:
        """Feedback that names only the event it is about takes that event's user and flags: from the same
        batch, or from an event stored earlier."""
        pending = [o for o in observations if o.refers_to and not o.targeting_key and not o.flags]
        if not pending:
            return
        known: dict[str, tuple[str | None, Mapping[str, object] | None]] = {
            o.event_id: (o.targeting_key, o.flags) for o in observations if o.event_id
        }
        missing = sorted({o.refers_to for o in pending if o.refers_to and o.refers_to not in known})
        if missing:
            with self._store.read() as tx:
                stored = tx.feedback.event_refs(environment_id, missing)
            known.update({i: (ref.targeting_key, ref.flags) for i, ref in stored.items()})
        for o in pending:
            o.targeting_key, o.flags = known.get(o.refers_to or "", (None, None))

    def compact(self) -> int:
        """Merge the per-user days ingest appended into one row per user and day, a chunk per transaction, until
        none is left; returns how many parts were merged. Readers add parts and merged rows, so their answers
        do not change: this only keeps what they read small. First each user's parts are summed outside the write
        transaction (SQLite), so that the merge, holding the one write lock, upserts a returning user once."""
        with self._store.read() as tx:
            pending = tx.telemetry.pending_units(COLLAPSE_USERS)
        if pending is not None:
            with self._store.transaction() as tx:
                tx.telemetry.collapse_units(pending)
        merged = 0
        while True:
            with self._store.transaction() as tx:
                n = tx.telemetry.compact_units(self._compact_chunk)
            merged += n
            if n < self._compact_chunk:
                return merged
            time.sleep(COMPACT_PAUSE_S)

    def purge(self, retention: timedelta) -> int:
        """Drop raw events (and feedback with its comments) older than the retention, and per-second
        aggregates after a few hours; the minute and hour aggregates stay."""
        now = self._clock()
        before_ms = int((now - retention).timestamp() * 1000)
        with self._store.transaction() as tx:
            tx.telemetry.purge_rollups(SECOND, int(now.timestamp()) - FINE_RETENTION)
            tx.feedback.purge_before(before_ms)
            tx.telemetry.purge_summary_ids(int((now - SUMMARY_ID_RETENTION).timestamp() * 1000))
        # Raw events apart: on PostgreSQL dropping a day and creating the next ones lock the whole table briefly.
        today = int(now.timestamp()) // DAY
        with self._store.transaction() as tx:
            tx.telemetry.make_room(range(today, today + ROOM_AHEAD_DAYS))
            return int(tx.telemetry.purge_events(before_ms))


def _feedback_entries(
    observations: Sequence[Observation], timelines: Mapping[str, FlagTimeline], source: str
) -> list[Entry]:
    return [
        Entry(
            o.at_ms,
            o.targeting_key,
            o.value,
            o.name,
            o.message,
            o.tags,
            variants_of(o, timelines),
            source,
        )
        for o in observations
        if o.kind is Kind.FEEDBACK
    ]


def _check_slot(flags: Mapping[str, CompiledFlag], flag: str, variant: str, where: str) -> None:
    if flag == ALL_USERS:
        if variant != ALL_VARIANT:
            raise InvalidInput(
                f"the environment-wide slot has variant {ALL_VARIANT!r}", where=f"{where}.variant"
            )
        return
    compiled = flags.get(flag)
    if compiled is None:
        raise InvalidInput(f"no flag {flag!r} in this environment", where=f"{where}.flag")
    if variant not in compiled.definition.variant_names:
        raise InvalidInput(f"flag {flag!r} has no variant {variant!r}", where=f"{where}.variant")


@dataclasses.dataclass(slots=True, eq=False)
class _Batch:
    """What one ingested batch writes (each one itself: compared and hashed by identity)."""

    environment_id: int
    folded: Folded
    raw: list[Observation]
    feedback: list[Entry]
    refs: list[EventRef]


def _write(tx: Transaction, batches: Sequence[_Batch]) -> None:
    """Batches in one transaction, their rollups merged first: each row is read, merged and written once."""
    rollups: dict[int, dict[RollupKey, Aggregate]] = {}
    for b in batches:
        tx.telemetry.insert_events(b.environment_id, b.raw)
        tx.telemetry.add_units(b.environment_id, b.folded.units)
        tx.telemetry.add_latencies(b.environment_id, b.folded.latencies)
        tx.feedback.add(b.environment_id, b.feedback)
        tx.feedback.add_event_refs(b.environment_id, b.refs)
        merged = rollups.setdefault(b.environment_id, {})
        for key, aggregate in b.folded.rollups.items():
            total = merged.get(key)
            if (
                total is None
            ):  # a copy: a group written again batch by batch must find each batch's own unchanged
                merged[key] = combine((aggregate,))
            else:
                total.merge(aggregate)
    for environment_id, merged in rollups.items():
        tx.telemetry.add_rollups(environment_id, merged)


class GroupCommit:
    """Batches that come while another group commits wait for it, then go together in one transaction: one commit
    (one fsync) and one read-merge-write of the rollups for all of them, instead of one each.

    Each caller returns only once the transaction holding its batch committed, or raises what writing its batch
    raised: a group that fails is written again batch by batch, so a batch fails only for what it holds itself.
    The first caller in line writes the group; the others wait (threads of the server's threadpool)."""

    def __init__(self, write: Callable[[Sequence[_Batch]], None], most: int = 64) -> None:
        self._write = write
        self._most = most  # batches per transaction at most
        self._turn = threading.Condition()
        self._line: list[_Batch] = []  # waiting or being written, in order of arrival
        self._written: dict[_Batch, BaseException | None] = {}  # written by another caller → what it raised

    def commit(self, batch: _Batch) -> None:
        with self._turn:
            self._line.append(batch)
            while batch not in self._written and self._line[0] is not batch:
                self._turn.wait()
            if batch in self._written:
                failed = self._written.pop(batch)
                if failed is not None:
                    raise failed
                return
            group = self._line[: self._most]
        failures: dict[_Batch, BaseException] = {}
        try:
            failures = self._write_all(group)
        except BaseException as escaped:  # nobody in the group may take it for committed
            failures = dict.fromkeys(group, escaped)
            raise
        finally:
            with self._turn:
                del self._line[: len(group)]
                self._written.update((b, failures.get(b)) for b in group[1:])
                self._turn.notify_all()
        if batch in failures:
            raise failures[batch]

    def _write_all(self, group: list[_Batch]) -> dict[_Batch, BaseException]:
        try:
            self._write(group)
            return {}
        except Exception as failed:
            if len(group) == 1:
                return {group[0]: failed}
        failures: dict[_Batch, BaseException] = {}
        for b in group:
            try:
                self._write([b])
            except Exception as failed:
                failures[b] = failed
        return failures

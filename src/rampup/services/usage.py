"""Evaluation counts: counted in memory where evaluations happen, added to the store now and then.

OFREP is the hottest path, so counting there is a dictionary lookup and one `next()` on a counter, no lock; the
store sees one row per flag, environment and day, written when `flush` runs (every few seconds, before each
controller pass on a manual clock, and at shutdown). "Last evaluated at" is therefore the time of the flush
that carried the count: exact to the flush interval, which is plenty for "not evaluated for 30 days".
"""

import itertools
import threading
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import datetime

from rampup.core.ports import Clock, Store
from rampup.core.rollups import Aggregate, Second
from rampup.core.telemetry import ALL_USERS, Kind, Observation
from rampup.errors import Conflict

__all__ = ["EvaluationCounter", "epoch_day"]


def epoch_day(at: datetime) -> int:
    return int(at.timestamp()) // 86_400


class EvaluationCounter:
    """One `itertools.count` per (environment, flag): `next()` on it is a single C call the GIL keeps whole, so
    counting takes no lock on the hot path. The flush reads each counter by drawing from it too, and keeps
    track of its own draws and of what it already wrote."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._counters: dict[tuple[str, str], Iterator[int]] = {}  # (environment key, flag key) → draws
        self._flush_lock = threading.Lock()
        self._reads: dict[tuple[str, str], int] = {}  # draws the flush made
        self._written: dict[tuple[str, str], int] = {}  # evaluations already in the store

    def hit(self, environment: str, flag: str) -> None:
        counter = self._counters.get((environment, flag))
        if counter is None:
            counter = self._counters.setdefault((environment, flag), itertools.count(1))
        next(counter)

    def exposures(self, environment: str, observations: Iterable[Observation], flags: Container[str]) -> None:
        """The exposure events of an ingested batch for the environment's `flags`: each is an evaluation an SDK
        or a client reported. (Other names are not counted: they would only grow the counters.)"""
        for o in observations:
            if o.kind is Kind.EXPOSURE and o.name is not None and o.name in flags:
                self.hit(environment, o.name)

    def summarized(self, environment: str, seconds: Mapping[Second, Aggregate]) -> None:
        """The exposure events a stored summary stands for (its flags' `exposures` cells), counted alike."""
        for (flag, _, metric, _), aggregate in seconds.items():
            if metric == "exposures" and flag != ALL_USERS:
                for _ in range(aggregate.count):
                    self.hit(environment, flag)

    def flush(self) -> int:
        """Add what was counted since the last flush to the store; returns the evaluations written. What a
        failed write did not store is written by the next flush."""
        with self._flush_lock:
            counts = {}
            for key, counter in list(self._counters.items()):
                self._reads[key] = self._reads.get(key, 0) + 1
                total = next(counter) - self._reads[key]  # the k-th draw returns k: hits = draws - reads
                if total > self._written.get(key, 0):
                    counts[key] = total - self._written.get(key, 0)
            if not counts:
                return 0
            now = self._clock()
            try:
                with self._store.transaction() as tx:
                    flag_ids = {r.definition.key: r.id for r in tx.flags.all()}
                    env_ids = {e.key: e.id for e in tx.environments.all()}
                    rows = {
                        (flag_ids[flag], env_ids[env]): n
                        for (env, flag), n in counts.items()
                        if flag in flag_ids and env in env_ids  # deleted meanwhile: nothing to count against
                    }
                    tx.lifecycle.add_evaluations(rows, epoch_day(now), now)
            except Conflict:  # another instance added the same new day row at the same moment: next time
                return 0
            for key, n in counts.items():
                self._written[key] = self._written.get(key, 0) + n
            return sum(rows.values())

"""Evaluation counts: counted in memory where evaluations happen, added to the store now and then.

OFREP is the hottest path, so counting there is one dictionary increment under an uncontended lock; the
store sees one row per flag, environment and day, written when `flush` runs (every few seconds, before each
controller pass on a manual clock, and at shutdown). "Last evaluated at" is therefore the time of the flush
that carried the count: exact to the flush interval, which is plenty for "not evaluated for 30 days".
"""

import threading
from collections.abc import Iterable
from datetime import datetime

from rampup.core.ports import Clock, Store
from rampup.core.telemetry import Kind, Observation
from rampup.errors import Conflict

__all__ = ["EvaluationCounter", "epoch_day"]


def epoch_day(at: datetime) -> int:
    return int(at.timestamp()) // 86_400


class EvaluationCounter:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}  # (environment key, flag key) → evaluations

    def hit(self, environment: str, flag: str) -> None:
        with self._lock:
            self._counts[environment, flag] = self._counts.get((environment, flag), 0) + 1

    def exposures(self, environment: str, observations: Iterable[Observation]) -> None:
        """The exposure events of an ingested batch: each is an evaluation an SDK or a client reported."""
        for o in observations:
            if o.kind is Kind.EXPOSURE and o.name:
                self.hit(environment, o.name)

    def flush(self) -> int:
        """Add what was counted since the last flush to the store; returns the evaluations written. A failed
        write keeps the counts for the next flush."""
        with self._lock:
            counts, self._counts = self._counts, {}
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
            self._restore(counts)
            return 0
        except Exception:
            self._restore(counts)
            raise
        return sum(rows.values())

    def _restore(self, counts: dict[tuple[str, str], int]) -> None:
        with self._lock:
            for key, n in counts.items():
                self._counts[key] = self._counts.get(key, 0) + n

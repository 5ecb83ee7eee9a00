"""Telemetry in: attribute, fold into aggregates, and store raw events and aggregates in one transaction.

A batch is stored whole or not at all, and the caller is answered only after the commit.
"""

from collections.abc import Sequence
from datetime import timedelta

from rampup.core.ports import Clock, Store
from rampup.core.rollups import FINE_RETENTION, SECOND, fold
from rampup.core.telemetry import Observation
from rampup.errors import Conflict, NotFound
from rampup.services.snapshot import SnapshotCache

__all__ = ["IngestService"]

RETRIES = 3  # concurrent first writes of the same new aggregate row (several instances) conflict; retry


class IngestService:
    def __init__(self, store: Store, snapshots: SnapshotCache, clock: Clock) -> None:
        self._store = store
        self._snapshots = snapshots
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def ingest(self, environment: str, observations: Sequence[Observation]) -> int:
        snapshot = self._snapshots.current
        env = snapshot.environments.get(environment)
        if env is None:
            raise NotFound(f"environment {environment!r} not found")
        if not observations:
            return 0
        folded = fold(
            observations, snapshot.timelines.get(environment, {}), tuple(snapshot.custom_metrics.values())
        )
        for attempt in range(RETRIES):
            try:
                with self._store.transaction() as tx:
                    tx.telemetry.insert_events(env.id, observations)
                    tx.telemetry.add_rollups(env.id, folded.rollups)
                    tx.telemetry.add_units(env.id, folded.units)
                return len(observations)
            except Conflict:
                if attempt == RETRIES - 1:
                    raise
        return 0

    def purge(self, retention: timedelta) -> int:
        """Drop raw events older than the retention, and per-second aggregates after a few hours; the
        minute and hour aggregates stay."""
        now = self._clock()
        with self._store.transaction() as tx:
            tx.telemetry.purge_rollups(SECOND, int(now.timestamp()) - FINE_RETENTION)
            return int(tx.telemetry.purge_events(int((now - retention).timestamp() * 1000)))

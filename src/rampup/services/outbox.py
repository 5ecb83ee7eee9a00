"""Delivering the outbox: after commit, at least once, retried with backoff, the same id every time."""

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rampup.core.ports import Clock, OutboxItem, Store
from rampup.errors import ConfigError, RampupError

__all__ = ["LEASE", "Sender", "OutboxService", "Waiting", "backoff", "outbox_id"]

MAX_BACKOFF = timedelta(minutes=10)
LEASE = "controller"  # the one lease the leader's work runs under


@dataclass(frozen=True, slots=True)
class Waiting:
    count: int  # items waiting for delivery
    oldest_s: float | None  # how long the oldest of them has waited; None when none waits


class Sender(Protocol):
    def send(self, item_id: str, payload: Mapping[str, Any]) -> None: ...  # raises RampupError on failure


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_sequence = itertools.count()


def outbox_id(at: datetime) -> str:
    """Unique and ordered by creation time (the injected clock's), so the queue keeps the order decisions were
    made in. A stopped clock (the manual one) gives equal times: the process's sequence number keeps their
    order; the random tail keeps two processes' ids apart."""
    nanoseconds = (at - _EPOCH) // timedelta(microseconds=1) * 1000
    # 36 characters: the width of the outbox's id column.
    return f"{nanoseconds:020d}-{next(_sequence) % 10**9:09d}-{uuid.uuid4().hex[:5]}"


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s, … up to 10 minutes between tries."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


class OutboxService:
    def __init__(self, store: Store, clock: Clock, senders: Mapping[str, Sender]) -> None:
        self._store = store
        self._clock = clock
        self._senders = senders

    def deliver_due(self) -> int:
        """Try the oldest undelivered item of each destination whose retry time has come."""
        with self._store.read() as tx:
            heads = tx.outbox.heads(self._clock())
        return sum(self._deliver(item) for item in heads)

    def _deliver(self, item: OutboxItem) -> bool:
        sender = self._senders.get(item.kind)
        try:
            if sender is None:
                raise ConfigError(f"nothing delivers {item.kind!r} items")
            sender.send(item.id, item.payload)
        except RampupError as exc:
            now = self._clock()
            with self._store.transaction() as tx:
                tx.outbox.failed(item.id, exc.message, now + backoff(item.attempts))
            return False
        with self._store.transaction() as tx:
            tx.outbox.delivered(item.id, self._clock())
        return True

    def backlog(self) -> Waiting:
        with self._store.read() as tx:
            backlog = tx.outbox.backlog()
        oldest = backlog.oldest
        return Waiting(backlog.count, None if oldest is None else (self._clock() - oldest).total_seconds())

    def step_down(self, holder: str) -> None:
        with self._store.transaction() as tx:
            tx.leases.release(LEASE, holder)

    def lead(self, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        with self._store.transaction() as tx:
            return tx.leases.acquire(LEASE, holder, now, now + ttl)

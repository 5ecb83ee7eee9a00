"""The outbox (side effects delivered after commit, at least once) and the leader lease."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import leases, outbox
from rampup.core.ports import Backlog, OutboxItem

__all__ = ["SqlOutbox", "SqlLeases"]


class SqlOutbox:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def enqueue(
        self, item_id: str, kind: str, destination: str, payload: dict[str, Any], at: datetime
    ) -> None:
        self.conn.execute(
            insert(outbox).values(
                id=item_id,
                kind=kind,
                destination=destination[:500],
                payload=payload,
                created_at=at,
                attempts=0,
                next_attempt_at=at,
            )
        )

    def heads(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """The oldest undelivered item of each destination, where its retry time has come: a destination
        that keeps failing holds only its own queue."""
        inner = outbox.alias("earlier")
        oldest = (
            select(func.min(inner.c.id))
            .where(inner.c.destination == outbox.c.destination, inner.c.delivered_at.is_(None))
            .scalar_subquery()
        )
        query = (
            select(outbox)
            .where(outbox.c.delivered_at.is_(None), outbox.c.id == oldest, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [
            OutboxItem(r.id, r.kind, r.payload, r.attempts, utc(r.created_at))
            for r in self.conn.execute(query)
        ]

    def delivered(self, item_id: str, at: datetime) -> None:
        self.conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id)
            .values(delivered_at=at, attempts=outbox.c.attempts + 1, last_error=None)
        )

    def failed(self, item_id: str, error: str, retry_at: datetime) -> None:
        self.conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id)
            .values(attempts=outbox.c.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at)
        )

    def backlog(self) -> Backlog:
        query = select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.delivered_at.is_(None))
        count, oldest = self.conn.execute(query).one()
        return Backlog(int(count), utc(oldest))

    def items(self, limit: int = 100) -> list[OutboxItem]:
        query = select(outbox).order_by(outbox.c.created_at.desc()).limit(limit)
        return [
            OutboxItem(
                r.id, r.kind, r.payload, r.attempts, utc(r.created_at), utc(r.delivered_at), r.last_error
            )
            for r in self.conn.execute(query)
        ]


class SqlLeases:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the lease `name` for `holder`; False while another holder's lease runs."""
        taken = self.conn.execute(
            update(leases)
            .where(
                leases.c.name == name,
                (leases.c.holder == holder) | (leases.c.expires_at < now),
            )
            .values(holder=holder, expires_at=until)
        ).rowcount
        if taken:
            return True
        if self.conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
            return False
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
        except IntegrityError:
            return False
        return True

    def release(self, name: str, holder: str) -> None:
        self.conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

"""Scheduled changes: stored, found, and moved out of pending once (a compare-and-swap on the status)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import scheduled_changes as table
from rampup.core.scheduled_changes import ChangeStatus, ScheduledChange

__all__ = ["SqlScheduledChanges"]


class SqlScheduledChanges:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, change: ScheduledChange) -> int:
        values = {
            "flag": change.flag,
            "environment": change.environment,
            "change": dict(change.change),
            "at": change.at,
            "timezone": change.timezone,
            "notify": list(change.notify),
            "reason": change.reason,
            "status": change.status.value,
            "created_by": change.created_by,
            "created_at": change.created_at,
            "outcome": change.outcome,
        }
        return int(self.conn.execute(insert(table).values(values).returning(table.c.id)).scalar_one())

    def get(self, change_id: int) -> ScheduledChange | None:
        row = self.conn.execute(select(table).where(table.c.id == change_id)).first()
        return None if row is None else _change(row)

    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        status: ChangeStatus | None = None,
        limit: int = 100,
    ) -> list[ScheduledChange]:
        query = select(table).order_by(table.c.at, table.c.id).limit(limit)
        if flag is not None:
            query = query.where(table.c.flag == flag)
        if environment is not None:
            query = query.where(table.c.environment == environment)
        if status is not None:
            query = query.where(table.c.status == status.value)
        return [_change(r) for r in self.conn.execute(query)]

    def due(self, now: datetime, limit: int = 100) -> list[ScheduledChange]:
        query = (
            select(table)
            .where(table.c.status == ChangeStatus.PENDING.value, table.c.at <= now)
            .order_by(table.c.at, table.c.id)
            .limit(limit)
        )
        return [_change(r) for r in self.conn.execute(query)]

    def pending(self, flag: str | None = None, environment: str | None = None) -> int:
        query = select(func.count()).where(table.c.status == ChangeStatus.PENDING.value)
        if flag is not None:
            query = query.where(table.c.flag == flag)
        if environment is not None:
            query = query.where(table.c.environment == environment)
        return int(self.conn.execute(query).scalar_one())

    def finish(self, change_id: int, status: ChangeStatus, at: datetime, by: str, outcome: str = "") -> bool:
        """Only from pending: of two workers (or a worker and a cancel) on the same row, the second finds it
        finished — on PostgreSQL it waits for the first's row lock and then reads the committed status."""
        result = self.conn.execute(
            update(table)
            .where(table.c.id == change_id, table.c.status == ChangeStatus.PENDING.value)
            .values(status=status.value, finished_at=at, finished_by=by[:200], outcome=outcome[:2000])
        )
        return result.rowcount == 1

    def rename_environment(self, old: str, new: str) -> None:
        self.conn.execute(
            update(table)
            .where(table.c.environment == old, table.c.status == ChangeStatus.PENDING.value)
            .values(environment=new)
        )


def _change(r: Any) -> ScheduledChange:
    return ScheduledChange(
        r.flag,
        r.environment,
        r.change,
        utc(r.at),
        r.timezone,
        r.created_by,
        utc(r.created_at),
        tuple(r.notify),
        r.reason,
        r.id,
        ChangeStatus(r.status),
        utc(r.finished_at),
        r.finished_by,
        r.outcome,
    )

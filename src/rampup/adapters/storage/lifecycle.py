"""A flag's life in rows: its stewardship (kind, channels, announced status, code references, archive) and
its evaluation counts per environment and day."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import flag_evaluations, flag_lifecycle
from rampup.core.coderefs import RefKind
from rampup.core.lifecycle import CodeReference, FlagKind, Status, Stewardship
from rampup.core.ports import EvaluationCount

__all__ = ["SqlLifecycle"]


class SqlLifecycle:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @staticmethod
    def _stewardship(r: Any) -> Stewardship:
        return Stewardship(
            FlagKind(r.kind),
            tuple(r.notify),
            Status(r.status),
            utc(r.status_since),
            tuple(
                CodeReference(x["file"], x["line"], RefKind(x["kind"]), x["detail"], x["scope"], x["code"])
                for x in r.references
            ),
            utc(r.scanned_at),
            utc(r.archived_at),
        )

    def get(self, flag_id: int) -> Stewardship:
        r = self._conn.execute(select(flag_lifecycle).where(flag_lifecycle.c.flag_id == flag_id)).first()
        return Stewardship() if r is None else self._stewardship(r)

    def all(self) -> dict[int, Stewardship]:
        """Flags with a row; every other flag has the default stewardship."""
        return {r.flag_id: self._stewardship(r) for r in self._conn.execute(select(flag_lifecycle))}

    def put(self, flag_id: int, s: Stewardship) -> None:
        values = {
            "kind": s.kind.value,
            "notify": list(s.notify),
            "status": s.status.value,
            "status_since": s.status_since,
            "references": [r.to_dict() for r in s.references],
            "scanned_at": s.scanned_at,
            "archived_at": s.archived_at,
        }
        where = flag_lifecycle.c.flag_id == flag_id
        if self._conn.execute(update(flag_lifecycle).where(where).values(**values)).rowcount == 0:
            self._conn.execute(insert(flag_lifecycle).values(flag_id=flag_id, **values))

    def add_evaluations(self, counts: Mapping[tuple[int, int], int], day: int, at: datetime) -> None:
        """Add (flag id, environment id) → count to the day's rows, each last evaluated at `at`."""
        for (flag_id, environment_id), count in counts.items():
            where = (
                (flag_evaluations.c.flag_id == flag_id)
                & (flag_evaluations.c.environment_id == environment_id)
                & (flag_evaluations.c.day == day)
            )
            last = flag_evaluations.c.last_at
            added = (
                update(flag_evaluations)
                .where(where)
                .values(count=flag_evaluations.c.count + count, last_at=case((last < at, at), else_=last))
            )
            if self._conn.execute(added).rowcount == 0:
                self._conn.execute(
                    insert(flag_evaluations).values(
                        flag_id=flag_id, environment_id=environment_id, day=day, count=count, last_at=at
                    )
                )

    def last_evaluated(self) -> dict[int, datetime]:
        """Each counted flag's last evaluation in any environment."""
        query = select(flag_evaluations.c.flag_id, func.max(flag_evaluations.c.last_at)).group_by(
            flag_evaluations.c.flag_id
        )
        return {flag_id: utc(at) for flag_id, at in self._conn.execute(query)}

    def evaluations(self, flag_id: int, since_day: int) -> list[EvaluationCount]:
        """From `since_day` on, per environment, oldest day first."""
        query = (
            select(flag_evaluations)
            .where(flag_evaluations.c.flag_id == flag_id, flag_evaluations.c.day >= since_day)
            .order_by(flag_evaluations.c.environment_id, flag_evaluations.c.day)
        )
        return [
            EvaluationCount(r.environment_id, r.day, r._mapping["count"], utc(r.last_at))
            for r in self._conn.execute(query)
        ]

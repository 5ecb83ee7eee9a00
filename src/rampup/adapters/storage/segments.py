"""Segments and the targeting keys they list."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import segment_keys, segments
from rampup.core.ports import SegmentRecord
from rampup.core.segments import Segment
from rampup.core.targeting import Condition

__all__ = ["SqlSegments"]


class SqlSegments:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _record(self, r: Any, keys: frozenset[str], count: int) -> SegmentRecord:
        segment = Segment(
            r.key,
            r.description,
            tuple(Condition.parse(c, f"conditions[{i}]") for i, c in enumerate(r.conditions)),
            keys,
            r.version,
        )
        return SegmentRecord(r.id, r.environment_id, segment, count, utc(r.created_at), utc(r.updated_at))

    def _keys(self, segment_ids: list[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {i: set() for i in segment_ids}
        if segment_ids:
            query = select(segment_keys).where(segment_keys.c.segment_id.in_(segment_ids))
            for segment_id, key in self.conn.execute(query):
                found[segment_id].add(key)
        return found

    def _counts(self, segment_ids: list[int]) -> dict[int, int]:
        query = (
            select(segment_keys.c.segment_id, func.count())
            .where(segment_keys.c.segment_id.in_(segment_ids))
            .group_by(segment_keys.c.segment_id)
        )
        return {segment_id: count for segment_id, count in self.conn.execute(query)} if segment_ids else {}

    def _records(self, rows: list[Any], with_keys: bool) -> list[SegmentRecord]:
        ids = [r.id for r in rows]
        if with_keys:
            keys = self._keys(ids)
            return [self._record(r, frozenset(keys[r.id]), len(keys[r.id])) for r in rows]
        counts = self._counts(ids)
        return [self._record(r, frozenset(), counts.get(r.id, 0)) for r in rows]

    def all(self, environment_id: int | None = None, *, keys: bool = True) -> list[SegmentRecord]:
        query = select(segments).order_by(segments.c.environment_id, segments.c.key)
        if environment_id is not None:
            query = query.where(segments.c.environment_id == environment_id)
        return self._records(list(self.conn.execute(query)), keys)

    def get(self, environment_id: int, key: str, *, for_update: bool = False) -> SegmentRecord | None:
        query = select(segments).where(segments.c.environment_id == environment_id, segments.c.key == key)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else self._records([row], True)[0]

    def _values(self, segment: Segment) -> dict[str, Any]:
        return {
            "description": segment.description,
            "conditions": [c.to_dict() for c in segment.conditions],
            "version": segment.version,
        }

    def add(self, environment_id: int, segment: Segment, at: datetime) -> SegmentRecord:
        new_id = self.conn.execute(
            insert(segments)
            .values(
                environment_id=environment_id,
                key=segment.key,
                created_at=at,
                updated_at=at,
                **self._values(segment),
            )
            .returning(segments.c.id)
        ).scalar_one()
        self._insert_keys(new_id, segment.keys)
        return SegmentRecord(new_id, environment_id, segment, len(segment.keys), at, at)

    def update(self, before: SegmentRecord, segment: Segment, at: datetime) -> None:
        self.conn.execute(
            update(segments).where(segments.c.id == before.id).values(updated_at=at, **self._values(segment))
        )
        removed = sorted(before.segment.keys - segment.keys)
        for start in range(0, len(removed), 10_000):  # bounded IN lists
            self.conn.execute(
                delete(segment_keys).where(
                    segment_keys.c.segment_id == before.id,
                    segment_keys.c.key.in_(removed[start : start + 10_000]),
                )
            )
        self._insert_keys(before.id, segment.keys - before.segment.keys)

    def _insert_keys(self, segment_id: int, keys: Iterable[str]) -> None:
        rows = [{"segment_id": segment_id, "key": key} for key in sorted(keys)]
        if rows:
            self.conn.execute(insert(segment_keys), rows)

    def delete(self, segment_id: int) -> None:
        self.conn.execute(delete(segment_keys).where(segment_keys.c.segment_id == segment_id))
        self.conn.execute(delete(segments).where(segments.c.id == segment_id))

"""User feedback and the Sentry event references that attribute it: the feedback half of a transaction."""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from rampup.adapters.storage.tables import event_refs, feedback, feedback_variants
from rampup.core.feedback import Entry, EventRef

__all__ = ["SqlFeedback"]

_CHUNK = 400  # ids per IN (…) lookup; well under SQLite's bound-parameter limit


class SqlFeedback:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, environment_id: int, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        rows = [
            {
                "environment_id": environment_id,
                "at_ms": e.at_ms,
                "targeting_key": e.targeting_key,
                "score": e.score,
                "scale": e.scale,
                "comment": e.comment,
                "tags": dict(e.tags) if e.tags else None,
                "variants": dict(e.variants),
                "source": e.source,
            }
            for e in entries
        ]
        ids = self.conn.execute(
            insert(feedback).returning(feedback.c.id, sort_by_parameter_order=True), rows
        ).scalars()
        self.conn.execute(
            insert(feedback_variants),
            [
                {"feedback_id": feedback_id, "environment_id": environment_id, "flag": f, "variant": v}
                for feedback_id, e in zip(ids, entries, strict=True)
                for f, v in [("", ""), *e.variants.items()]
            ],
        )

    def page(
        self,
        environment_id: int,
        *,
        flag: str = "",
        variant: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        commented: bool = False,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Entry]:
        """Newest first; `flag` "" is every piece of feedback in the environment."""
        query = (
            select(feedback)
            .join(feedback_variants, feedback_variants.c.feedback_id == feedback.c.id)
            .where(feedback_variants.c.environment_id == environment_id, feedback_variants.c.flag == flag)
            .order_by(feedback.c.id.desc())
            .limit(limit)
        )
        if variant is not None:
            query = query.where(feedback_variants.c.variant == variant)
        if since_ms is not None:
            query = query.where(feedback.c.at_ms >= since_ms)
        if until_ms is not None:
            query = query.where(feedback.c.at_ms < until_ms)
        if commented:
            query = query.where(feedback.c.comment.is_not(None))
        if before_id is not None:
            query = query.where(feedback.c.id < before_id)
        return [_entry(r) for r in self.conn.execute(query)]

    def purge_user(self, targeting_key: str, environment_id: int | None) -> int:
        """Every piece of feedback one user gave (in one environment, or everywhere); how many went."""
        query = select(feedback.c.id).where(feedback.c.targeting_key == targeting_key)
        if environment_id is not None:
            query = query.where(feedback.c.environment_id == environment_id)
        return self._delete([r.id for r in self.conn.execute(query)])

    def purge_before(self, before_ms: int) -> int:
        """Feedback and event references older than the raw-event retention."""
        old = [r.id for r in self.conn.execute(select(feedback.c.id).where(feedback.c.at_ms < before_ms))]
        self.conn.execute(delete(event_refs).where(event_refs.c.at_ms < before_ms))
        return self._delete(old)

    def _delete(self, ids: list[int]) -> int:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            self.conn.execute(delete(feedback_variants).where(feedback_variants.c.feedback_id.in_(chunk)))
            self.conn.execute(delete(feedback).where(feedback.c.id.in_(chunk)))
        return len(ids)

    def add_event_refs(self, environment_id: int, refs: Iterable[EventRef]) -> None:
        """Events feedback may name later; a repeat is ignored."""
        rows = [
            {
                "environment_id": environment_id,
                "event_id": ref.event_id,
                "at_ms": ref.at_ms,
                "targeting_key": ref.targeting_key,
                "flags": dict(ref.flags) if ref.flags else None,
            }
            for ref in refs
        ]
        if not rows:
            return
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        self.conn.execute(dialect.insert(event_refs).on_conflict_do_nothing(), rows)

    def event_refs(self, environment_id: int, event_ids: Sequence[str]) -> dict[str, EventRef]:
        """The known ones of the ids, by id."""
        found: dict[str, EventRef] = {}
        for i in range(0, len(event_ids), _CHUNK):
            query = select(event_refs).where(
                event_refs.c.environment_id == environment_id,
                event_refs.c.event_id.in_(event_ids[i : i + _CHUNK]),
            )
            for r in self.conn.execute(query):
                found[r.event_id] = EventRef(r.event_id, r.at_ms, r.targeting_key, r.flags)
        return found


def _entry(r: Any) -> Entry:
    return Entry(r.at_ms, r.targeting_key, r.score, r.scale, r.comment, r.tags, r.variants, r.source, r.id)

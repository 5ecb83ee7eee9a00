"""Segments: create, change, delete — each change audited in the same transaction, on the segment and on
every flag whose rules refer to it (their answers change with it)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rampup.core.model import Environment
from rampup.core.ports import Clock, SegmentRecord, Store, Transaction
from rampup.core.segments import (
    MAX_ENVIRONMENT_KEYS,
    MAX_SEGMENT_KEYS,
    Segment,
    parse_keys,
    parse_segment_conditions,
    parse_segment_key,
    segments_in,
)
from rampup.errors import Conflict, InvalidInput, NotFound

__all__ = ["SegmentView", "SegmentService", "MAX_SEGMENTS"]

MAX_SEGMENTS = 1_000  # per environment
AUDITED_KEYS = 100  # keys an audit entry names of those added or removed (with the count of all)
CREATE_FIELDS = frozenset({"key", "description", "conditions", "keys"})
UPDATE_FIELDS = frozenset(
    {"description", "conditions", "keys", "add_keys", "remove_keys", "version", "reason"}
)


@dataclass(frozen=True, slots=True)
class SegmentView:
    record: SegmentRecord
    environment: str
    used_by: tuple[str, ...]  # flags whose rules in this environment refer to it


class SegmentService:
    def __init__(self, store: Store, clock: Clock, on_change: Callable[[], object] = lambda: None) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change

    def segments(self, environment: str) -> list[SegmentView]:
        with self._store.read() as tx:
            env = _environment(tx, environment)
            users = _users(tx, env.id)
            return [
                SegmentView(r, env.key, users.get(r.segment.key, ()))
                for r in tx.segments.all(env.id, keys=False)
            ]

    def segment(self, environment: str, key: str) -> SegmentView:
        with self._store.read() as tx:
            env = _environment(tx, environment)
            return SegmentView(_record(tx, env, key), env.key, _users(tx, env.id).get(key, ()))

    def create(self, environment: str, body: Mapping[str, Any], actor: str) -> SegmentView:
        _only(body, CREATE_FIELDS)
        segment = Segment(
            parse_segment_key(body.get("key")),
            _description(body.get("description", "")),
            parse_segment_conditions(body.get("conditions", [])),
            parse_keys(body.get("keys", []), "keys"),
        )
        now = self._clock()
        with self._store.transaction() as tx:
            env = _environment(tx, environment)
            if tx.segments.get(env.id, segment.key) is not None:
                raise Conflict(f"segment {segment.key!r} exists in {env.key!r}")
            existing = tx.segments.all(env.id, keys=False)
            if len(existing) >= MAX_SEGMENTS:
                raise InvalidInput(f"an environment has at most {MAX_SEGMENTS} segments", where="key")
            _room(existing, len(segment.keys), "keys")
            record = tx.segments.add(env.id, segment, now)
            tx.audit.record(
                actor, "segment.create", f"segment:{segment.key}", env.key, None, segment.summary(), "", now
            )
        self._on_change()
        return SegmentView(record, env.key, ())

    def update(self, environment: str, key: str, body: Mapping[str, Any], actor: str) -> SegmentView:
        _only(body, UPDATE_FIELDS)
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise InvalidInput("reason must be a string", where="reason")
        now = self._clock()
        with self._store.transaction() as tx:
            env = _environment(tx, environment)
            before = _record(tx, env, key, for_update=True)
            after = _changed(before.segment, body)
            used_by = _users(tx, env.id).get(key, ())
            if after == replace(before.segment, version=after.version):
                return SegmentView(before, env.key, used_by)  # nothing moved: no version, audit entry or push
            others = [r for r in tx.segments.all(env.id, keys=False) if r.id != before.id]
            _room(others, len(after.keys), "add_keys" if "add_keys" in body else "keys")
            tx.segments.update(before, after, now)
            self._audit_change(tx, env, before.segment, after, used_by, actor, reason, now)
            record = replace(before, segment=after, key_count=len(after.keys), updated_at=now)
        self._on_change()
        return SegmentView(record, env.key, used_by)

    def _audit_change(
        self,
        tx: Transaction,
        env: Environment,
        before: Segment,
        after: Segment,
        used_by: tuple[str, ...],
        actor: str,
        reason: str,
        now: datetime,
    ) -> None:
        changes = {
            "keys_added": _named(after.keys - before.keys),
            "keys_removed": _named(before.keys - after.keys),
            "used_by": list(used_by),
        }
        target = f"segment:{after.key}"
        tx.audit.record(
            actor,
            "segment.update",
            target,
            env.key,
            before.summary(),
            {**after.summary(), **changes},
            reason,
            now,
        )
        for flag in used_by:  # each flag's own trail shows that its answers moved with the segment
            tx.audit.record(
                actor,
                "flag.segment",
                f"flag:{flag}",
                env.key,
                {"segment": after.key, "version": before.version},
                {"segment": after.key, "version": after.version},
                reason,
                now,
            )

    def delete(self, environment: str, key: str, actor: str, reason: str = "") -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            env = _environment(tx, environment)
            record = _record(tx, env, key, for_update=True)
            used_by = _users(tx, env.id).get(key, ())
            if used_by:
                raise Conflict(
                    f"segment {key!r} is used by the rules of {', '.join(used_by)} in {env.key!r}: "
                    "remove those rules first"
                )
            tx.segments.delete(record.id)
            tx.audit.record(
                actor,
                "segment.delete",
                f"segment:{key}",
                env.key,
                record.segment.summary(),
                None,
                reason,
                now,
            )
        self._on_change()


def _environment(tx: Transaction, key: str) -> Environment:
    env = tx.environments.get(key)
    if env is None:
        raise NotFound(f"environment {key!r} not found")
    return env


def _record(tx: Transaction, env: Environment, key: str, *, for_update: bool = False) -> SegmentRecord:
    record = tx.segments.get(env.id, key, for_update=for_update)
    if record is None:
        raise NotFound(f"segment {key!r} not found in {env.key!r}")
    return record


def _users(tx: Transaction, environment_id: int) -> dict[str, tuple[str, ...]]:
    """Segment key → the flags whose rules in this environment refer to it."""
    flags = {r.id: r.definition.key for r in tx.flags.all()}
    users: dict[str, list[str]] = {}
    for s in tx.flags.states():
        if s.environment_id == environment_id:
            for segment in segments_in(s.state.rules):
                users.setdefault(segment, []).append(flags[s.flag_id])
    return {segment: tuple(sorted(names)) for segment, names in users.items()}


def _only(body: Mapping[str, Any], fields: frozenset[str]) -> None:
    unknown = sorted(set(body) - fields)
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; a segment takes {', '.join(sorted(fields))}", where=unknown[0]
        )


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 10_000:
        raise InvalidInput("description is a string of at most 10,000 characters", where="description")
    return value


def _changed(segment: Segment, body: Mapping[str, Any]) -> Segment:
    expected = body.get("version")
    if expected is not None and expected != segment.version:
        raise Conflict(f"the segment changed meanwhile: version is {segment.version}, not {expected}")
    if "keys" in body and ("add_keys" in body or "remove_keys" in body):
        raise InvalidInput("send either keys (the whole list) or add_keys/remove_keys", where="keys")
    keys = parse_keys(body["keys"], "keys") if "keys" in body else segment.keys
    keys = (keys | parse_keys(body.get("add_keys", []), "add_keys")) - parse_keys(
        body.get("remove_keys", []), "remove_keys"
    )
    if len(keys) > MAX_SEGMENT_KEYS:
        raise InvalidInput(
            f"a segment lists at most {MAX_SEGMENT_KEYS} keys; this would make {len(keys)}", where="add_keys"
        )
    return Segment(
        segment.key,
        _description(body.get("description", segment.description)),
        parse_segment_conditions(body["conditions"]) if "conditions" in body else segment.conditions,
        frozenset(keys),
        segment.version + 1,
    )


def _room(others: list[SegmentRecord], keys: int, where: str) -> None:
    """Refuses listed keys past what one environment may hold in all (every process keeps them in memory)."""
    total = sum(r.key_count for r in others) + keys
    if total > MAX_ENVIRONMENT_KEYS:
        raise InvalidInput(
            f"an environment's segments list at most {MAX_ENVIRONMENT_KEYS} keys in all; this would make {total}",
            where=where,
        )


def _named(keys: frozenset[str]) -> dict[str, Any]:
    return {"count": len(keys), "first": sorted(keys)[:AUDITED_KEYS]}

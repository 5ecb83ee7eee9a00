"""Environments, flag definitions and their states (with their history), custom metric definitions."""

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import (
    environments,
    flag_history,
    flag_states,
    flags,
    metric_definitions,
    segment_keys,
    segments,
    tokens,
)
from rampup.core.flags import FlagDefinition, FlagState, FlagType, Prerequisite, Variant
from rampup.core.model import Environment
from rampup.core.ports import FlagRecord, PastState, StateRecord
from rampup.core.switch_off import OffHow, SwitchOff
from rampup.core.targeting import Rule
from rampup.core.telemetry import CustomMetric

__all__ = ["SqlEnvironments", "SqlFlags", "SqlCustomMetrics"]


class SqlEnvironments:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[Environment]:
        rows = self.conn.execute(select(environments).order_by(environments.c.id))
        return [Environment(r.id, r.key, r.name) for r in rows]

    def get(self, key: str) -> Environment | None:
        r = self.conn.execute(select(environments).where(environments.c.key == key)).first()
        return None if r is None else Environment(r.id, r.key, r.name)

    def add(self, key: str, name: str, at: datetime) -> Environment:
        new_id = self.conn.execute(
            insert(environments).values(key=key, name=name, created_at=at).returning(environments.c.id)
        ).scalar_one()
        return Environment(new_id, key, name)

    def update(self, environment_id: int, key: str, name: str) -> None:
        self.conn.execute(
            update(environments).where(environments.c.id == environment_id).values(key=key, name=name)
        )

    def delete(self, environment_id: int) -> None:
        in_environment = select(segments.c.id).where(segments.c.environment_id == environment_id)
        self.conn.execute(delete(segment_keys).where(segment_keys.c.segment_id.in_(in_environment)))
        for table in (flag_history, flag_states, tokens, segments):
            self.conn.execute(delete(table).where(table.c.environment_id == environment_id))
        self.conn.execute(delete(environments).where(environments.c.id == environment_id))


class SqlFlags:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _flag_record(self, r: Any) -> FlagRecord:
        definition = FlagDefinition(
            key=r.key,
            type=FlagType(r.type),
            description=r.description,
            variants=tuple(Variant(v["name"], v["value"]) for v in r.variants),
            off_variant=r.off_variant,
            tags=tuple(r.tags),
            owner=r.owner,
        )
        return FlagRecord(r.id, definition, utc(r.created_at), utc(r.updated_at))

    def all(self) -> list[FlagRecord]:
        return [self._flag_record(r) for r in self.conn.execute(select(flags).order_by(flags.c.key))]

    def get(self, key: str, *, for_update: bool = False) -> FlagRecord | None:
        query = select(flags).where(flags.c.key == key)
        if for_update:
            query = query.with_for_update()
        r = self.conn.execute(query).first()
        return None if r is None else self._flag_record(r)

    def _flag_values(self, definition: FlagDefinition) -> dict[str, Any]:
        return {
            "type": definition.type.value,
            "description": definition.description,
            "variants": [{"name": v.name, "value": v.value} for v in definition.variants],
            "off_variant": definition.off_variant,
            "tags": list(definition.tags),
            "owner": definition.owner,
        }

    def add(self, definition: FlagDefinition, at: datetime) -> FlagRecord:
        new_id = self.conn.execute(
            insert(flags)
            .values(key=definition.key, created_at=at, updated_at=at, **self._flag_values(definition))
            .returning(flags.c.id)
        ).scalar_one()
        return FlagRecord(new_id, definition, at, at)

    def update(self, flag_id: int, definition: FlagDefinition, at: datetime) -> None:
        self.conn.execute(
            update(flags).where(flags.c.id == flag_id).values(updated_at=at, **self._flag_values(definition))
        )

    def delete(self, flag_id: int) -> None:
        self.conn.execute(delete(flag_states).where(flag_states.c.flag_id == flag_id))
        self.conn.execute(delete(flags).where(flags.c.id == flag_id))

    def _state(self, r: Any, variant_names: frozenset[str]) -> FlagState:
        return FlagState(
            enabled=r.enabled,
            rollout_bp=r.rollout_bp,
            rules=tuple(Rule.parse(rule, f"rules[{i}]", variant_names) for i, rule in enumerate(r.rules)),
            salt=r.salt,
            weights=tuple((name, bp) for name, bp in r.weights),
            version=r.version,
            bucket_by=r.bucket_by,
            prerequisites=tuple(Prerequisite(p["flag"], p["variant"]) for p in r.prerequisites),
        )

    def states(self, flag_id: int | None = None) -> Iterator[StateRecord]:
        query = select(flag_states, flags.c.variants).join(flags, flags.c.id == flag_states.c.flag_id)
        if flag_id is not None:
            query = query.where(flag_states.c.flag_id == flag_id)
        for r in self.conn.execute(query):
            names = frozenset(v["name"] for v in r.variants)
            yield StateRecord(r.flag_id, r.environment_id, self._state(r, names), _switch_off(r))

    def state(self, flag_id: int, environment_id: int) -> FlagState | None:
        return next((s.state for s in self.states(flag_id) if s.environment_id == environment_id), None)

    def put_state(self, flag_id: int, environment_id: int, state: FlagState, at: datetime) -> None:
        values = {
            "enabled": state.enabled,
            "rollout_bp": state.rollout_bp,
            "rules": [r.to_dict() for r in state.rules],
            "salt": state.salt,
            "weights": [list(w) for w in state.weights],
            "version": state.version,
            "bucket_by": state.bucket_by,
            "prerequisites": [p.to_dict() for p in state.prerequisites],
            "updated_at": at,
        }
        where = (flag_states.c.flag_id == flag_id) & (flag_states.c.environment_id == environment_id)
        if self.conn.execute(update(flag_states).where(where).values(**values)).rowcount == 0:
            self.conn.execute(
                insert(flag_states).values(flag_id=flag_id, environment_id=environment_id, **values)
            )
        history = {k: v for k, v in values.items() if k not in ("rules", "prerequisites", "updated_at")}
        self.conn.execute(
            insert(flag_history).values(flag_id=flag_id, environment_id=environment_id, at=at, **history)
        )

    def put_switch_off(self, flag_id: int, environment_id: int, switch_off: SwitchOff | None) -> None:
        off = switch_off
        fields = (
            (off.at, off.actor, off.on_behalf_of, off.reason, off.how.value, off.source_id) if off else ()
        )
        values = dict(itertools.zip_longest(_SWITCH_OFF_COLUMNS, fields))  # all None: put back
        where = (flag_states.c.flag_id == flag_id) & (flag_states.c.environment_id == environment_id)
        self.conn.execute(update(flag_states).where(where).values(**values))

    def history(self) -> Iterator[PastState]:
        """Every state each flag had in each environment, oldest first."""
        query = select(flag_history).order_by(
            flag_history.c.flag_id, flag_history.c.environment_id, flag_history.c.at, flag_history.c.id
        )
        for r in self.conn.execute(query):
            state = FlagState(
                r.enabled,
                r.rollout_bp,
                (),
                r.salt,
                tuple((n, bp) for n, bp in r.weights),
                r.version,
                r.bucket_by,
            )
            yield PastState(r.flag_id, r.environment_id, utc(r.at), state)


_SWITCH_OFF_COLUMNS = ("off_at", "off_actor", "off_on_behalf_of", "off_reason", "off_how", "off_source_id")


def _switch_off(r: Any) -> SwitchOff | None:
    if r.off_at is None:
        return None
    return SwitchOff(
        utc(r.off_at), r.off_actor, r.off_on_behalf_of, r.off_reason, OffHow(r.off_how), r.off_source_id
    )


class SqlCustomMetrics:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[CustomMetric]:
        query = select(metric_definitions).order_by(metric_definitions.c.name)
        return [CustomMetric.parse(r.definition) for r in self.conn.execute(query)]

    def add(self, metric: CustomMetric, at: datetime) -> None:
        self.conn.execute(
            insert(metric_definitions).values(name=metric.name, definition=metric.to_dict(), created_at=at)
        )

    def delete(self, name: str) -> bool:
        return bool(
            self.conn.execute(delete(metric_definitions).where(metric_definitions.c.name == name)).rowcount
        )

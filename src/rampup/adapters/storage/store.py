"""The SQL store: rows ↔ core values, one transaction per use case."""

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from rampup.adapters.storage._values import jsonable, utc
from rampup.adapters.storage.feedback import SqlFeedback
from rampup.adapters.storage.lifecycle import SqlLifecycle
from rampup.adapters.storage.listen import CONFIG_CHANNEL
from rampup.adapters.storage.notifications import SqlNotifications
from rampup.adapters.storage.outbox import SqlOutbox
from rampup.adapters.storage.rollouts import SqlRollouts
from rampup.adapters.storage.sessions import SqlSessions
from rampup.adapters.storage.tables import (
    audit,
    config_revision,
    environments,
    flag_history,
    flag_states,
    flags,
    metric_definitions,
    tokens,
)
from rampup.adapters.storage.telemetry import SqlTelemetry
from rampup.core.flags import FlagDefinition, FlagState, FlagType, Variant
from rampup.core.model import AuditEntry, Environment
from rampup.core.ports import FlagRecord
from rampup.core.targeting import Rule
from rampup.core.telemetry import CustomMetric
from rampup.core.tokens import Scope, Token
from rampup.errors import Conflict

__all__ = ["SqlStore", "SqlTransaction"]


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time. Threads that queue on this lock wake as soon as it is free; threads
        # left to SQLite's busy handler poll with sleeps of up to 100 ms, which starves concurrent ingest.
        self._writer = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @contextmanager
    def transaction(self) -> Iterator["SqlTransaction"]:
        try:
            with self._writer, self.engine.begin() as conn:
                tx = SqlTransaction(conn)
                yield tx
                if tx.audited:
                    # Last statement before commit: the row lock is held only while committing, and the
                    # next transaction's bump waits for it, so revisions follow commit order.
                    revision = conn.execute(
                        update(config_revision)
                        .values(revision=config_revision.c.revision + 1)
                        .returning(config_revision.c.revision)
                    ).scalar_one()
                    if conn.dialect.name == "postgresql":  # delivered at commit, and only if it commits
                        conn.execute(select(func.pg_notify(CONFIG_CHANNEL, str(revision))))
        except IntegrityError as exc:
            raise Conflict(f"conflicting change: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator["SqlTransaction"]:
        with self.engine.connect() as conn:
            yield SqlTransaction(conn.execution_options(read_only=True))


class SqlTransaction:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.audited = False  # every configuration change is audited, so this says the revision must move
        self.telemetry = SqlTelemetry(conn)
        self.rollouts = SqlRollouts(conn)
        self.outbox = SqlOutbox(conn)
        self.notifications = SqlNotifications(conn)
        self.sessions = SqlSessions(conn)
        self.feedback = SqlFeedback(conn)
        self.lifecycle = SqlLifecycle(conn)

    # environments

    def environments(self) -> list[Environment]:
        rows = self.conn.execute(select(environments).order_by(environments.c.id))
        return [Environment(r.id, r.key, r.name) for r in rows]

    def environment(self, key: str) -> Environment | None:
        r = self.conn.execute(select(environments).where(environments.c.key == key)).first()
        return None if r is None else Environment(r.id, r.key, r.name)

    def add_environment(self, key: str, name: str, at: datetime) -> Environment:
        new_id = self.conn.execute(
            insert(environments).values(key=key, name=name, created_at=at).returning(environments.c.id)
        ).scalar_one()
        return Environment(new_id, key, name)

    # flags

    def _flag_record(self, r: Any) -> FlagRecord:
        definition = FlagDefinition(
            key=r.key,
            type=FlagType(r.type),
            description=r.description,
            variants=tuple(Variant(v["name"], v["value"]) for v in r.variants),
            off_variant=r.off_variant,
        )
        return FlagRecord(r.id, definition, utc(r.created_at), utc(r.updated_at))

    def flags(self) -> list[FlagRecord]:
        return [self._flag_record(r) for r in self.conn.execute(select(flags).order_by(flags.c.key))]

    def flag(self, key: str, *, for_update: bool = False) -> FlagRecord | None:
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
        }

    def add_flag(self, definition: FlagDefinition, at: datetime) -> FlagRecord:
        new_id = self.conn.execute(
            insert(flags)
            .values(key=definition.key, created_at=at, updated_at=at, **self._flag_values(definition))
            .returning(flags.c.id)
        ).scalar_one()
        return FlagRecord(new_id, definition, at, at)

    def update_flag(self, flag_id: int, definition: FlagDefinition, at: datetime) -> None:
        self.conn.execute(
            update(flags).where(flags.c.id == flag_id).values(updated_at=at, **self._flag_values(definition))
        )

    def delete_flag(self, flag_id: int) -> None:
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
        )

    def states(self, flag_id: int | None = None) -> Iterator[tuple[int, int, FlagState]]:
        query = select(flag_states, flags.c.variants).join(flags, flags.c.id == flag_states.c.flag_id)
        if flag_id is not None:
            query = query.where(flag_states.c.flag_id == flag_id)
        for r in self.conn.execute(query):
            names = frozenset(v["name"] for v in r.variants)
            yield r.flag_id, r.environment_id, self._state(r, names)

    def state(self, flag_id: int, environment_id: int) -> FlagState | None:
        return next((s for _, env, s in self.states(flag_id) if env == environment_id), None)

    def put_state(self, flag_id: int, environment_id: int, state: FlagState, at: datetime) -> None:
        values = {
            "enabled": state.enabled,
            "rollout_bp": state.rollout_bp,
            "rules": [r.to_dict() for r in state.rules],
            "salt": state.salt,
            "weights": [list(w) for w in state.weights],
            "version": state.version,
            "bucket_by": state.bucket_by,
            "updated_at": at,
        }
        where = (flag_states.c.flag_id == flag_id) & (flag_states.c.environment_id == environment_id)
        if self.conn.execute(update(flag_states).where(where).values(**values)).rowcount == 0:
            self.conn.execute(
                insert(flag_states).values(flag_id=flag_id, environment_id=environment_id, **values)
            )
        history = {k: v for k, v in values.items() if k not in ("rules", "updated_at")}
        self.conn.execute(
            insert(flag_history).values(flag_id=flag_id, environment_id=environment_id, at=at, **history)
        )

    def history(self) -> Iterator[tuple[int, int, datetime, FlagState]]:
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
            yield r.flag_id, r.environment_id, utc(r.at), state

    # tokens

    def _token(self, r: Any) -> Token:
        return Token(
            r.id, r.name, Scope(r.scope), r.env_key, r.secret_hash, utc(r.created_at), utc(r.revoked_at)
        )

    def _token_query(self) -> Select[Any]:
        return select(tokens, environments.c.key.label("env_key")).outerjoin(
            environments, environments.c.id == tokens.c.environment_id
        )

    def tokens(self) -> list[Token]:
        return [self._token(r) for r in self.conn.execute(self._token_query().order_by(tokens.c.created_at))]

    def token(self, token_id: str) -> Token | None:
        r = self.conn.execute(self._token_query().where(tokens.c.id == token_id)).first()
        return None if r is None else self._token(r)

    def add_token(self, token: Token, environment_id: int | None) -> None:
        self.conn.execute(
            insert(tokens).values(
                id=token.id,
                name=token.name,
                scope=token.scope.value,
                environment_id=environment_id,
                secret_hash=token.secret_hash,
                created_at=token.created_at,
            )
        )

    def set_token_secret(self, token_id: str, secret_hash: str) -> None:
        self.conn.execute(
            update(tokens).where(tokens.c.id == token_id).values(secret_hash=secret_hash, revoked_at=None)
        )

    def revoke_token(self, token_id: str, at: datetime) -> None:
        self.conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=at))

    # custom metrics

    def custom_metrics(self) -> list[CustomMetric]:
        query = select(metric_definitions).order_by(metric_definitions.c.name)
        return [CustomMetric.parse(r.definition) for r in self.conn.execute(query)]

    def add_custom_metric(self, metric: CustomMetric, at: datetime) -> None:
        self.conn.execute(
            insert(metric_definitions).values(name=metric.name, definition=metric.to_dict(), created_at=at)
        )

    def delete_custom_metric(self, name: str) -> bool:
        return bool(
            self.conn.execute(delete(metric_definitions).where(metric_definitions.c.name == name)).rowcount
        )

    # audit

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        environment: str | None,
        before: Any,
        after: Any,
        reason: str,
        at: datetime,
        on_behalf_of: str | None = None,
    ) -> None:
        self.audited = True
        self.conn.execute(
            insert(audit).values(
                on_behalf_of=on_behalf_of,
                at=at,
                actor=actor,
                action=action,
                target=target,
                environment=environment,
                before=jsonable(before),
                after=jsonable(after),
                reason=reason,
            )
        )

    def audit_entries(
        self,
        *,
        target: str | None = None,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> Sequence[AuditEntry]:
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(audit.c.target == target)
        if environment is not None:
            query = query.where(audit.c.environment == environment)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if action is not None:  # "rollout." or "flag.kill": a prefix, so a family can be asked for
            query = query.where(audit.c.action.startswith(action, autoescape=True))
        if before_id is not None:
            query = query.where(audit.c.id < before_id)
        return [
            AuditEntry(
                r.id,
                utc(r.at),
                r.actor,
                r.action,
                r.target,
                r.environment,
                r.before,
                r.after,
                r.reason,
                r.on_behalf_of,
            )
            for r in self.conn.execute(query)
        ]

    def revision(self) -> int:
        return int(self.conn.execute(select(config_revision.c.revision)).scalar_one())

"""API tokens (their secrets as hashes) and the audit log every change appends to."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select, update

from rampup.adapters.storage._values import jsonable, utc
from rampup.adapters.storage.tables import audit, config_revision, environments, tokens
from rampup.core.model import AuditEntry, AuditRecord
from rampup.core.tokens import Scope, Token

__all__ = ["SqlTokens", "SqlAuditLog"]


class SqlTokens:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _token(self, r: Any) -> Token:
        return Token(
            r.id, r.name, Scope(r.scope), r.env_key, r.secret_hash, utc(r.created_at), utc(r.revoked_at)
        )

    def _token_query(self) -> Select[Any]:
        return select(tokens, environments.c.key.label("env_key")).outerjoin(
            environments, environments.c.id == tokens.c.environment_id
        )

    def all(self) -> list[Token]:
        return [self._token(r) for r in self.conn.execute(self._token_query().order_by(tokens.c.created_at))]

    def get(self, token_id: str) -> Token | None:
        r = self.conn.execute(self._token_query().where(tokens.c.id == token_id)).first()
        return None if r is None else self._token(r)

    def add(self, token: Token, environment_id: int | None) -> None:
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

    def set_secret(self, token_id: str, secret_hash: str) -> None:
        self.conn.execute(
            update(tokens).where(tokens.c.id == token_id).values(secret_hash=secret_hash, revoked_at=None)
        )

    def revoke(self, token_id: str, at: datetime) -> None:
        self.conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=at))


class SqlAuditLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.audited = False  # every configuration change is audited, so this says the revision must move

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        environment: str | None,
        before: AuditRecord,
        after: AuditRecord,
        reason: str,
        at: datetime,
        on_behalf_of: str | None = None,
    ) -> None:
        self.audited = True
        self.conn.execute(
            insert(audit).values(
                at=at,
                actor=actor,
                action=action,
                target=target,
                environment=environment,
                before=jsonable(before),
                after=jsonable(after),
                reason=reason,
                on_behalf_of=on_behalf_of,
            )
        )

    def entries(
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

"""Dashboard sessions: rows in the database, so every instance behind a load balancer honours them."""

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import environments, sessions, tokens
from rampup.core.ports import SessionRecord
from rampup.core.sessions import Session
from rampup.core.tokens import Scope, Token

__all__ = ["SqlSessions"]


class SqlSessions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, session: Session, at: datetime) -> None:
        self._conn.execute(
            insert(sessions).values(
                id=session.id,
                token_id=session.token.id,
                token_hash=session.token.secret_hash,
                csrf=session.csrf,
                created_at=session.created_at,
                expires_at=session.expires_at,
                touched_at=at,
            )
        )

    def get(self, session_id: str, now: datetime) -> SessionRecord | None:
        """The session and when it was last touched; None when unknown, expired, or its token is revoked or
        has a new secret."""
        r = self._conn.execute(
            select(
                sessions,
                tokens.c.name,
                tokens.c.scope,
                tokens.c.secret_hash,
                tokens.c.created_at.label("token_created_at"),
                environments.c.key.label("env_key"),
            )
            .join(tokens, tokens.c.id == sessions.c.token_id)
            .outerjoin(environments, environments.c.id == tokens.c.environment_id)
            .where(
                sessions.c.id == session_id,
                sessions.c.expires_at > now,
                tokens.c.revoked_at.is_(None),
                tokens.c.secret_hash == sessions.c.token_hash,
            )
        ).first()
        if r is None:
            return None
        token = Token(r.token_id, r.name, Scope(r.scope), r.env_key, r.secret_hash, utc(r.token_created_at))
        session = Session(r.id, token, r.csrf, utc(r.created_at), utc(r.expires_at))
        return SessionRecord(session, utc(r.touched_at))

    def touch(self, session_id: str, expires_at: datetime, at: datetime) -> None:
        self._conn.execute(
            update(sessions).where(sessions.c.id == session_id).values(expires_at=expires_at, touched_at=at)
        )

    def delete(self, session_id: str) -> bool:
        return bool(self._conn.execute(delete(sessions).where(sessions.c.id == session_id)).rowcount)

    def purge(self, before: datetime) -> int:
        return int(self._conn.execute(delete(sessions).where(sessions.c.expires_at <= before)).rowcount)

"""Dashboard sign-in: a token in, a server-side session out; looked up in the database on every request."""

import hashlib
import secrets

from rampup.core.ports import Clock, Store
from rampup.core.sessions import DASHBOARD_SCOPES, Session, SessionTimes
from rampup.errors import Forbidden, Unauthorized
from rampup.services.snapshot import SnapshotCache

__all__ = ["SessionService"]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionService:
    def __init__(
        self, store: Store, clock: Clock, snapshots: SnapshotCache, times: SessionTimes = SessionTimes()
    ) -> None:
        self._store = store
        self._clock = clock
        self._snapshots = snapshots
        self.times = times

    def sign_in(self, token_secret: str) -> tuple[str, Session]:
        """The cookie's secret (shown to nobody else, stored nowhere) and the new session."""
        token = self._snapshots.current.authenticate(token_secret.strip())
        if token is None:
            raise Unauthorized("unknown or revoked token")
        if token.scope not in DASHBOARD_SCOPES:
            raise Forbidden(
                f"a {token.scope.value} token is for programs; sign in with a read, write or admin token"
            )
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(_digest(secret), token, secrets.token_urlsafe(32), now, self.times.expiry(now, now))
        with self._store.transaction() as tx:
            tx.sessions.purge(now)
            tx.sessions.add(session, now)
        return secret, session

    def session(self, secret: str) -> Session | None:
        """The live session for a cookie, its expiry slid forward while it is used."""
        now = self._clock()
        with self._store.read() as tx:
            found = tx.sessions.get(_digest(secret), now)
        if found is None:
            return None
        session = found.session
        if now - found.touched_at >= self.times.touch_every:
            expires_at = self.times.expiry(session.created_at, now)
            with self._store.transaction() as tx:
                tx.sessions.touch(session.id, expires_at, now)
        return session

    def sign_out(self, secret: str) -> None:
        with self._store.transaction() as tx:
            tx.sessions.delete(_digest(secret))

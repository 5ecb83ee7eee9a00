"""Dashboard sessions: a browser signs in with a token and gets a session that acts as that token.

The cookie holds a random secret; only its SHA-256 is stored, beside a CSRF token and the expiry. A session
lives while it is used (idle timeout) and never longer than a maximum age, and it ends at once when its token
is revoked or its secret changes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from rampup.core.tokens import Scope, Token

__all__ = ["Session", "SessionTimes", "DASHBOARD_SCOPES"]

# Tokens that may sign in: the ones that can read everything. sdk and ingest tokens belong to programs.
DASHBOARD_SCOPES = (Scope.ADMIN, Scope.WRITE, Scope.READ)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    idle: timedelta = timedelta(hours=8)
    max_age: timedelta = timedelta(hours=24)
    # Sliding the expiry is a write; do it at most this often rather than on every page.
    touch_every: timedelta = timedelta(minutes=1)

    def expiry(self, created_at: datetime, now: datetime) -> datetime:
        return min(now + self.idle, created_at + self.max_age)


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # SHA-256 of the cookie's secret
    token: Token
    csrf: str
    created_at: datetime
    expires_at: datetime

    def can(self, scope: Scope) -> bool:
        return self.token.allows(scope)

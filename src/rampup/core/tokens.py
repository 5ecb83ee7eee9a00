"""API tokens: scopes and what each may do. Secrets are never stored, only their SHA-256."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Scope", "Token", "hash_secret", "TOKEN_PREFIX"]

TOKEN_PREFIX = "rp_"


class Scope(StrEnum):
    ADMIN = "admin"  # everything, including tokens
    WRITE = "write"  # change flags, rollouts, channels
    READ = "read"  # read everything but secrets
    SDK = "sdk"  # flag configs and OFREP evaluation, one environment
    INGEST = "ingest"  # telemetry, one environment

    @property
    def is_environment_bound(self) -> bool:
        return self in (Scope.SDK, Scope.INGEST)

    def grants(self, needed: "Scope") -> bool:
        return needed in _GRANTS[self]


_GRANTS = {
    Scope.ADMIN: frozenset(Scope),
    Scope.WRITE: frozenset({Scope.WRITE, Scope.READ, Scope.SDK, Scope.INGEST}),
    Scope.READ: frozenset({Scope.READ}),
    Scope.SDK: frozenset({Scope.SDK}),
    Scope.INGEST: frozenset({Scope.INGEST}),
}


def hash_secret(secret: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is safe here; a password hash would only add latency.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    scope: Scope
    environment: str | None  # environment key, for sdk and ingest tokens
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, needed: Scope, environment: str | None = None) -> bool:
        if self.revoked_at is not None or not self.scope.grants(needed):
            return False
        return self.environment is None or environment is None or environment == self.environment

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope.value,
            "environment": self.environment,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

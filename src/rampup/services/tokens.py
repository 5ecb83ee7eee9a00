"""API tokens: created with a secret shown once, stored hashed, revocable, audited."""

import secrets
from collections.abc import Callable
from typing import Any

from rampup.core.ports import Clock, Store
from rampup.core.tokens import TOKEN_PREFIX, Scope, Token, hash_secret
from rampup.errors import InvalidInput, NotFound

__all__ = ["TokenService", "ENV_ADMIN_TOKEN_ID", "new_secret"]

ENV_ADMIN_TOKEN_ID = "env-admin"  # the token whose value comes from RAMPUP_ADMIN_TOKEN


def new_secret() -> str:
    """256 random bits in hex: a secret is also a Sentry DSN's key, and the JavaScript SDK's DSN parser takes
    only word characters there (a '-' from URL-safe base64 made about half of all DSNs invalid)."""
    return TOKEN_PREFIX + secrets.token_hex(32)


class TokenService:
    def __init__(self, store: Store, clock: Clock, on_change: Callable[[], object] = lambda: None) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change

    def create(self, scope: Any, environment: Any, name: Any, actor: str) -> tuple[Token, str]:
        """Returns the token and its secret; the secret is not kept anywhere."""
        try:
            parsed_scope = Scope(scope)
        except ValueError:
            raise InvalidInput(
                f"unknown scope {scope!r}; use one of: " + ", ".join(s.value for s in Scope), where="scope"
            ) from None
        if name is None:
            name = parsed_scope.value
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("name must be a non-empty string of at most 200 characters", where="name")
        if parsed_scope.is_environment_bound and not environment:
            raise InvalidInput(
                f"a {parsed_scope.value} token belongs to one environment: give 'environment'",
                where="environment",
            )
        if not parsed_scope.is_environment_bound and environment is not None:
            raise InvalidInput(
                f"a {parsed_scope.value} token is not bound to an environment", where="environment"
            )
        if environment is not None and not isinstance(environment, str):
            raise InvalidInput("environment must be an environment key", where="environment")
        secret = new_secret()
        now = self._clock()
        with self._store.transaction() as tx:
            env = tx.environments.get(environment) if environment is not None else None
            if environment is not None and env is None:
                raise NotFound(f"environment {environment!r} not found")
            token = Token(secrets.token_hex(8), name, parsed_scope, environment, hash_secret(secret), now)
            tx.tokens.add(token, env.id if env else None)
            tx.audit.record(
                actor, "token.create", f"token:{token.id}", environment, None, token.to_dict(), "", now
            )
        self._on_change()
        return token, secret

    def ensure(self, token_id: str, name: str, scope: Scope, secret: str) -> bool:
        """Make a token with this exact secret exist (RAMPUP_ADMIN_TOKEN); a no-op when it already does. A token
        revoked with this secret stays revoked, however often the server restarts with it: only a new secret
        makes the token again. Returns whether the token can be used."""
        now = self._clock()
        with self._store.transaction() as tx:
            existing = tx.tokens.get(token_id)
            if existing is not None and existing.secret_hash == hash_secret(secret):
                return existing.revoked_at is None
            token = Token(token_id, name, scope, None, hash_secret(secret), now)
            if existing is None:
                tx.tokens.add(token, None)
            else:
                tx.tokens.set_secret(token_id, token.secret_hash)
            tx.audit.record(
                "system",
                "token.create",
                f"token:{token_id}",
                None,
                None,
                token.to_dict(),
                "set from the server's environment",
                now,
            )
        self._on_change()
        return True

    def tokens(self) -> list[Token]:
        with self._store.read() as tx:
            return tx.tokens.all()

    def revoke(self, token_id: str, actor: str) -> Token:
        now = self._clock()
        with self._store.transaction() as tx:
            token = tx.tokens.get(token_id)
            if token is None:
                raise NotFound(f"token {token_id!r} not found")
            tx.tokens.revoke(token_id, now)
            tx.audit.record(
                actor, "token.revoke", f"token:{token_id}", token.environment, token.to_dict(), None, "", now
            )
        self._on_change()
        return token

"""Who is calling: the one place the admin API and the OFREP hot path read a token from a request and check
it against the snapshot's token table (no database read, no FastAPI)."""

from rampup.core.tokens import Scope, Token
from rampup.errors import Forbidden, Unauthorized
from rampup.services.snapshot import Snapshot

__all__ = ["authenticate", "secret_of"]


def secret_of(authorization: str | None, api_key: str | None) -> str | None:
    """The token a request carries: `Authorization: Bearer <token>`, else `X-API-Key`."""
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key.strip() if api_key and api_key.strip() else None


def authenticate(snapshot: Snapshot, secret: str | None, needed: Scope) -> Token:
    if not secret:
        raise Unauthorized("missing token: send Authorization: Bearer <token> or X-API-Key")
    token = snapshot.authenticate(secret)
    if token is None:
        raise Unauthorized("unknown or revoked token")
    if not token.scope.grants(needed):
        raise Forbidden(f"a {token.scope.value} token cannot do this; it needs the {needed.value} scope")
    return token

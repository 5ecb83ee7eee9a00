"""Per-request access: the container, and who is calling with which scope."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rampup.bootstrap import Container
from rampup.core.tokens import Scope, Token
from rampup.errors import Forbidden, InvalidInput, TooLarge
from rampup.http.credentials import authenticate, secret_of

__all__ = ["container", "require", "ContainerDep", "environment_for", "read_body"]

_bearer = HTTPBearer(auto_error=False, description="A Rampup API token (rampup token create)")


def container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(container)]


def require(scope: Scope) -> Callable[..., Awaitable[Token]]:
    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Token:
        # `credentials` puts the scheme into the OpenAPI document; the headers are read by the shared code. Async:
        # a hash and a lookup in the snapshot, no I/O, so FastAPI runs it in the event loop instead of handing it to
        # its threadpool and back, which costs more than the check.
        secret = secret_of(request.headers.get("authorization"), request.headers.get("x-api-key"))
        return authenticate(container(request).snapshots.current, secret, scope)

    return check


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it is known to be over `limit`: by its declared length before a
    byte is read, else while reading."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes; send at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def environment_for(token: Token, requested: str | None, scope: Scope) -> str:
    """The environment a request acts on: the one asked for, else the token's own; refused if not the token's."""
    env = requested or token.environment
    if env is None:
        raise InvalidInput(
            "this token is not bound to an environment: add ?environment=<key>", where="environment"
        )
    if not token.allows(scope, env):
        raise Forbidden(f"this {token.scope.value} token may not act on {env}")
    return env


Reader = Annotated[Token, Depends(require(Scope.READ))]
Writer = Annotated[Token, Depends(require(Scope.WRITE))]
Admin = Annotated[Token, Depends(require(Scope.ADMIN))]

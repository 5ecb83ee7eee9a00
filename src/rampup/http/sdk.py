"""SDK endpoints, served from the snapshot like OFREP: the flag configuration (ETag) and a server-sent event
stream that pushes a new configuration the moment the snapshot moves (a kill switch included)."""

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from rampup.adapters.codecs.sdk_config import encode_config
from rampup.core.tokens import Scope, Token
from rampup.errors import NotFound
from rampup.http.deps import container, environment_for, require
from rampup.services.snapshot import Snapshot

__all__ = ["router", "STREAM_CHECK_S", "KEEPALIVE_S"]

STREAM_CHECK_S = 0.05  # how often a stream looks for a new snapshot: well inside the one-second promise
KEEPALIVE_S = 15.0

router = APIRouter(prefix="/api/v1/sdk", tags=["sdk"])
SdkToken = Annotated[Token, Depends(require(Scope.SDK))]


@functools.lru_cache(maxsize=8)
def _document(environment: str, revision: int, snapshot: Snapshot) -> bytes:
    """Encoded once per environment and revision, however many SDKs ask."""
    return encode_config(environment, revision, snapshot.flags[environment])


def _config(request: Request, environment: str) -> tuple[int, bytes]:
    snapshot = container(request).snapshots.current
    if environment not in snapshot.flags:
        raise NotFound(f"environment {environment!r} not found")
    return snapshot.revision, _document(environment, snapshot.revision, snapshot)


@router.get("/flags", responses={200: {"content": {"application/json": {}}}, 304: {"description": "unchanged"}})
async def flags(request: Request, token: SdkToken,
                environment: Annotated[str | None, Query(max_length=128)] = None,
                if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Every flag of the token's environment, to evaluate locally; send the ETag back to get 304."""
    revision, body = _config(request, environment_for(token, environment, Scope.SDK))
    etag = f'"{revision}"'
    if if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.get("/stream", responses={200: {"content": {"text/event-stream": {}}}})
async def stream(request: Request, token: SdkToken,
                 environment: Annotated[str | None, Query(max_length=128)] = None) -> StreamingResponse:
    """Server-sent events: `event: config` with the whole configuration now and after every change."""
    env = environment_for(token, environment, Scope.SDK)
    _config(request, env)  # fail before streaming if the environment is unknown

    async def events() -> AsyncIterator[bytes]:
        sent = -1
        idle = 0.0
        snapshots = container(request).snapshots
        while not await request.is_disconnected():
            if snapshots.current.revision != sent:
                revision, body = _config(request, env)
                yield b"event: config\nid: %d\ndata: %s\n\n" % (revision, body)
                sent, idle = revision, 0.0
            elif idle >= KEEPALIVE_S:
                yield b": keepalive\n\n"
                idle = 0.0
            await asyncio.sleep(STREAM_CHECK_S)
            idle += STREAM_CHECK_S

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

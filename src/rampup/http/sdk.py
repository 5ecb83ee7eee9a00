"""SDK endpoints, served from the snapshot like OFREP: the flag configuration (ETag) and a server-sent event
stream that pushes a new configuration the moment the snapshot moves (a kill switch included)."""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import mmh3
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from rampup.adapters.codecs.sdk_config import encode_config
from rampup.core.tokens import Scope, Token
from rampup.errors import NotFound
from rampup.http.deps import container, environment_for, require
from rampup.services.snapshot import Snapshot

__all__ = ["router", "ofrep_events", "STREAM_CHECK_S", "KEEPALIVE_S"]

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


@router.get(
    "/flags", responses={200: {"content": {"application/json": {}}}, 304: {"description": "unchanged"}}
)
async def flags(
    request: Request,
    token: SdkToken,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Every flag of the token's environment, to evaluate locally; send the ETag back to get 304."""
    revision, body = _config(request, environment_for(token, environment, Scope.SDK))
    etag = f'"{revision}"'
    if if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


def _follow(
    request: Request, environment: str, message: Callable[[int, bytes], bytes | None]
) -> StreamingResponse:
    """A server-sent event stream that writes `message(revision, document)` whenever the snapshot moves (when it
    returns something), and a keepalive comment when nothing happened for a while."""
    _config(request, environment)  # fail before streaming if the environment is unknown

    async def events() -> AsyncIterator[bytes]:
        seen, idle = -1, 0.0
        snapshots = container(request).snapshots
        while not await request.is_disconnected():
            event = None
            if snapshots.current.revision != seen:
                seen, body = _config(request, environment)
                event = message(seen, body)
            if event is not None:
                yield event
                idle = 0.0
            elif idle >= KEEPALIVE_S:
                yield b": keepalive\n\n"
                idle = 0.0
            await asyncio.sleep(STREAM_CHECK_S)
            idle += STREAM_CHECK_S

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/stream", responses={200: {"content": {"text/event-stream": {}}}})
async def stream(
    request: Request, token: SdkToken, environment: Annotated[str | None, Query(max_length=128)] = None
) -> StreamingResponse:
    """Server-sent events: `event: config` with the whole configuration now and after every change."""
    return _follow(
        request,
        environment_for(token, environment, Scope.SDK),
        lambda revision, body: b"event: config\nid: %d\ndata: %s\n\n" % (revision, body),
    )


ofrep_events = APIRouter(prefix="/ofrep/v1/events", tags=["OFREP"])


@ofrep_events.get("/{environment_id}", responses={200: {"content": {"text/event-stream": {}}}})
async def ofrep_change_stream(
    request: Request, environment_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> StreamingResponse:
    """OFREP's change stream, announced in the bulk answer's `eventStreams`: `refetchEvaluation` whenever the
    environment's flags change. It carries no flag data, so browsers' EventSource can open it without a token."""
    env = container(request).snapshots.current.environments_by_id.get(environment_id)
    if env is None:
        raise NotFound(f"no environment with id {environment_id}")
    last: str | None = None

    def changed(_revision: int, body: bytes) -> bytes | None:
        nonlocal last
        etag = f"{mmh3.hash128(body, signed=False):x}"
        previous, last = last, etag
        return (
            None
            if previous in (None, etag)
            else b'data: {"type":"refetchEvaluation","etag":"%s"}\n\n' % etag.encode()
        )

    return _follow(request, env.key, changed)

"""SDK endpoints, served from the snapshot like OFREP: the flag configuration (ETag) and a server-sent event
stream that pushes a new configuration the moment the snapshot moves (a kill switch included): every open stream
waits on `Changes`, which the rebuild wakes, whichever thread rebuilt it (a request, the poll, the listener)."""

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import mmh3
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from rampup.adapters.codecs.sdk_config import encode_config
from rampup.core.tokens import Scope, Token
from rampup.errors import NotFound, Unauthorized
from rampup.http.deps import container, environment_for, require
from rampup.http.streams import limited_stream, ticket_holder
from rampup.services.snapshot import Snapshot

__all__ = ["router", "ofrep_events", "Changes", "DISCONNECT_CHECK_S", "KEEPALIVE_S"]

DISCONNECT_CHECK_S = 1.0  # how long a quiet stream waits before looking whether its client went away
KEEPALIVE_S = 15.0


class Changes:
    """Wakes every waiting stream when the snapshot moves. `notify` may be called from any thread; waiters live
    on the event loop. A stream takes `moved()` before it reads the revision and then waits on that: a change
    in between has set it already, so none is slept through."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._moved = asyncio.Event()

    def notify(self, _snapshot: Snapshot) -> None:
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def moved(self) -> asyncio.Event:
        return self._moved

    @staticmethod
    async def wait(moved: asyncio.Event, timeout_s: float) -> None:
        """Until the change after `moved()` was taken (at once if it came already), or `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(moved.wait(), timeout_s)


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
    request: Request, kind: str, token: Token, environment: str, message: Callable[[int, bytes], bytes | None]
) -> Response:
    """A server-sent event stream that writes `message(revision, document)` whenever the snapshot moves (when it
    returns something), and a keepalive comment when nothing happened for a while. `kind` names it in the
    server's metrics; it counts against `token`'s streams (http/streams.py)."""
    _config(request, environment)  # fail before streaming if the environment is unknown
    open_streams = container(request).meters.streams.labels(kind)

    async def counted() -> AsyncIterator[bytes]:
        open_streams.inc()
        try:
            async for event in _events(request, environment, message):
                yield event
        finally:
            open_streams.dec()

    return limited_stream(request, token.id, counted(), "no-cache")


async def _events(
    request: Request, environment: str, message: Callable[[int, bytes], bytes | None]
) -> AsyncIterator[bytes]:
    seen, last_sent = -1, time.monotonic()
    snapshots = container(request).snapshots
    changes: Changes = request.app.state.changes
    while not await request.is_disconnected():
        moved, event = changes.moved(), None
        if snapshots.current.revision != seen:
            seen, body = _config(request, environment)
            event = message(seen, body)
        if event is None and time.monotonic() - last_sent >= KEEPALIVE_S:
            event = b": keepalive\n\n"
        if event is not None:
            yield event
            last_sent = time.monotonic()
        await changes.wait(moved, DISCONNECT_CHECK_S)


@router.get("/stream", responses={200: {"content": {"text/event-stream": {}}}})
async def stream(
    request: Request, token: SdkToken, environment: Annotated[str | None, Query(max_length=128)] = None
) -> Response:
    """Server-sent events: `event: config` with the whole configuration now and after every change."""
    return _follow(
        request,
        "sdk",
        token,
        environment_for(token, environment, Scope.SDK),
        lambda revision, body: b"event: config\nid: %d\ndata: %s\n\n" % (revision, body),
    )


ofrep_events = APIRouter(prefix="/ofrep/v1/events", tags=["OFREP"])


@ofrep_events.get("/{environment_id}", responses={200: {"content": {"text/event-stream": {}}}})
async def ofrep_change_stream(
    request: Request,
    environment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    ticket: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """OFREP's change stream, announced in the bulk answer's `eventStreams`: `refetchEvaluation` whenever the
    environment's flags change. Browsers' EventSource sends no headers, so the announced URL carries a ticket
    naming the sdk token that asked (never its secret); a stream with neither ticket nor token is refused."""
    snapshot = container(request).snapshots.current
    env = snapshot.environments_by_id.get(environment_id)
    if env is None:
        raise NotFound(f"no environment with id {environment_id}")
    token = ticket_holder(snapshot, ticket, environment_id)
    if token is None or not token.allows(Scope.SDK, env.key):
        raise Unauthorized("open the stream at the URL eventStreams gave (its ticket names your sdk token)")
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

    return _follow(request, "ofrep", token, env.key, changed)

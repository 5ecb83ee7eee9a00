"""Live updates: a server-sent event stream per open page, on the page's own session.

It says `change` whenever what the pages show may have moved (one fingerprint per process, computed at most
once per check interval however many pages are open), checks the session every few seconds and says
`signed-out` when it ended; pages then fetch themselves again and swap their live parts.
"""

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rampup.bootstrap import Container
from rampup.http.deps import container
from rampup.http.streams import limited_stream
from rampup.web import data

__all__ = ["live_stream", "SESSION_CHECK_S", "KEEPALIVE_S"]

SESSION_CHECK_S = 5.0
KEEPALIVE_S = 15.0


class Fingerprint:
    """The latest fingerprint, shared by every stream of this process; a cache of the database, not state."""

    def __init__(self, c: Container) -> None:
        self._c = c
        self._lock = asyncio.Lock()
        self._value = ""
        self._at = float("-inf")

    async def current(self) -> str:
        async with self._lock:
            if time.monotonic() - self._at >= self._c.settings.live_check_s:
                self._value = await run_in_threadpool(data.live_fingerprint, self._c)
                self._at = time.monotonic()
            return self._value


def _fingerprint(request: Request) -> Fingerprint:
    state = request.app.state
    if getattr(state, "live_fingerprint", None) is None:
        state.live_fingerprint = Fingerprint(container(request))
    return state.live_fingerprint  # type: ignore[no-any-return]


def live_stream(request: Request, session_secret: str, token_id: str) -> Response:
    """The page's stream, counted against its session's token (http/streams.py)."""
    c = container(request)
    fingerprint = _fingerprint(request)
    interval = c.settings.live_check_s

    async def events() -> AsyncIterator[bytes]:
        seen = await fingerprint.current()
        yield b"retry: 2000\nevent: hello\ndata: live\n\n"
        checked = idle = 0.0
        while not await request.is_disconnected():
            await asyncio.sleep(interval)
            checked += interval
            idle += interval
            if checked >= SESSION_CHECK_S:
                checked = 0.0
                if await run_in_threadpool(c.sessions.session, session_secret) is None:
                    yield b"event: signed-out\ndata: sign in again\n\n"
                    return
            now = await fingerprint.current()
            if now != seen:
                seen = now
                idle = 0.0
                yield b"event: change\ndata: 1\n\n"
            elif idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keepalive\n\n"

    return limited_stream(request, token_id, events(), "no-store")

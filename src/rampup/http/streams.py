"""How many server-sent event streams are open, per token and in all, in this process. A stream holds a socket and
a task for as long as the client likes, so each token gets at most RAMPUP_STREAMS_PER_TOKEN and the process at most
RAMPUP_MAX_STREAMS; one over is 429 with Retry-After, and no stream is anonymous."""

import hashlib
import hmac
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from rampup.core.tokens import Token
from rampup.http.deps import container
from rampup.http.errors import error_body
from rampup.services.snapshot import Snapshot

__all__ = ["StreamSlots", "limited_stream", "stream_ticket", "ticket_holder"]


class StreamSlots:
    def __init__(self, total: int, per_token: int) -> None:
        self._total, self._per_token = total, per_token
        self._open: dict[str, int] = {}

    def take(self, token_id: str) -> str | None:
        """None when a stream may open (and it is counted), else why not."""
        if sum(self._open.values()) >= self._total:
            return f"this server has {self._total} event streams open; retry shortly"
        if self._open.get(token_id, 0) >= self._per_token:
            return f"this token has {self._per_token} event streams open already"
        self._open[token_id] = self._open.get(token_id, 0) + 1
        return None

    def give_back(self, token_id: str) -> None:
        left = self._open.get(token_id, 0) - 1
        if left > 0:
            self._open[token_id] = left
        else:
            self._open.pop(token_id, None)


def _slots(request: Request) -> StreamSlots:
    state = request.app.state
    if getattr(state, "stream_slots", None) is None:
        settings = container(request).settings
        state.stream_slots = StreamSlots(settings.max_streams, settings.streams_per_token)
    return state.stream_slots  # type: ignore[no-any-return]


def limited_stream(
    request: Request, token_id: str, events: AsyncIterator[bytes], cache: str
) -> StreamingResponse | JSONResponse:
    """`events` as a server-sent event stream counted against `token_id`, or 429 when over a limit."""
    slots = _slots(request)
    refused = slots.take(token_id)
    if refused is not None:
        return JSONResponse(error_body("slow_down", refused), status_code=429, headers={"Retry-After": "5"})
    given_back = False

    def give_back() -> None:
        nonlocal given_back
        if not given_back:
            given_back = True
            slots.give_back(token_id)

    async def counted() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield event
        finally:
            give_back()

    return StreamingResponse(
        counted(),
        media_type="text/event-stream",
        headers={"Cache-Control": cache, "X-Accel-Buffering": "no"},
        background=BackgroundTask(give_back),  # also when the stream never started
    )


def stream_ticket(token: Token, environment_id: int) -> str:
    """What OFREP's eventStreams URL carries instead of the token (browsers' EventSource sends no headers): the
    token's id and a MAC of the environment under the token's stored hash. It names the token without revealing
    its secret, and stops working when the token is revoked."""
    mac = hmac.new(token.secret_hash.encode(), str(environment_id).encode(), hashlib.sha256).hexdigest()[:32]
    return f"{token.id}.{mac}"


def ticket_holder(snapshot: Snapshot, ticket: str | None, environment_id: int) -> Token | None:
    token_id, _, _mac = (ticket or "").partition(".")
    token = next((t for t in snapshot.tokens.values() if t.id == token_id), None)
    if token is None or not hmac.compare_digest(stream_ticket(token, environment_id), ticket or ""):
        return None
    return token

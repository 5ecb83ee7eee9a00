"""Limits applied before any work: the request head (size, field count, time) in the HTTP protocol, the body
(size, time) in an ASGI middleware around everything, so no route, no authentication and no parser ever sees
more than the limit, and an anonymous client can make the server hold no more than that."""

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rampup.config import Settings
from rampup.http.errors import error_body

__all__ = [
    "ASGIApp",
    "BodyLimit",
    "ClientGone",
    "INGEST_BODY",
    "REFERENCES_BODY",
    "SEGMENT_BODY",
    "bounded_http",
    "read_body",
]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

INGEST_BODY = 5 * 1024 * 1024  # telemetry batches and Sentry envelopes, on the wire
REFERENCES_BODY = 2 * 1024 * 1024  # a code scan's references of one flag
SEGMENT_BODY = 4 * 1024 * 1024  # a segment's listed keys: 100,000 ids of about 36 characters
# The routes allowed more than RAMPUP_MAX_BODY_BYTES.
_LARGER = (
    (re.compile(r"/api/(v1/events|v1/summaries|\d+/envelope/|\d+/store/)\Z"), INGEST_BODY),
    (re.compile(r"/api/v1/flags/[^/]+/references\Z"), REFERENCES_BODY),
    (re.compile(r"/api/v1/environments/[^/]+/segments(/[^/]+)?\Z"), SEGMENT_BODY),
)
_REASONS = {408: b"Request Timeout", 413: b"Content Too Large", 431: b"Request Header Fields Too Large"}


def _refusal(status: int, code: str, message: str) -> bytes:
    body = msgspec.json.encode(error_body(code, message))
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        ]
    )


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing; the refusal itself is in `_refusal`."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head. llhttp keeps no limit of its own: without this a
    client could send header bytes for ever, and the server would buffer them all."""

    max_bytes = 32 * 1024
    max_fields = 100
    timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head: int | None = 0  # bytes received of an unfinished head; None while a body is
        self._fields = 0  # bytes of the request line and header fields parsed so far
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused: bytes | None = None
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.timeout_s, self._head_too_slow)
            self._head += len(data)
        super().data_received(data)
        if self._head is not None and self._head > self.max_bytes:  # a head still coming: stop it now
            self._refuse(self._too_large())

    def on_url(self, url: bytes) -> None:
        self._fields += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += len(name) + len(value) + 4
        if self._fields > self.max_bytes:  # a whole head that came in one read
            self._refused = self._too_large()
            raise _HeadRefused
        if len(self.headers) >= self.max_fields:
            self._refused = _refusal(431, "header_too_large", f"more than {self.max_fields} header fields")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head = None
        self._cancel_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0
        self._fields = 0

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error here, including the one a refusing callback raised.
        if self._refused is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refused)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _too_large(self) -> bytes:
        return _refusal(431, "header_too_large", f"request head over {self.max_bytes} bytes")

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head:  # a head has begun and not ended: an idle connection is keep-alive's to close
            self._refuse(_refusal(408, "timeout", f"request head not received within {self.timeout_s:g} s"))

    def _cancel_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def bounded_http(settings: Settings) -> type[BoundedHttpTools]:
    """The protocol class for uvicorn, with the limits from the settings."""
    return type(
        "BoundedHttpTools",
        (BoundedHttpTools,),
        {
            "max_bytes": settings.max_header_bytes,
            "max_fields": settings.max_headers,
            "timeout_s": settings.header_timeout_s,
        },
    )


class BodyLimit:
    """Reads each request's body, within its limit and its time, before the app is called; the app then gets
    the body whole. A declared length over the limit is refused before a byte of the body is read."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._app = app
        self._max = settings.max_body_bytes
        self._timeout_s = settings.body_timeout_s

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        limit = next((size for route, size in _LARGER if route.match(path)), self._max)
        too_large = (413, "too_large", f"request body over {limit} bytes")
        if _declared_length(scope) > limit:
            await _answer(send, *too_large)
            return
        try:
            # a timeout, not wait_for: wait_for makes a task, and every request pays for it
            async with asyncio.timeout(self._timeout_s):
                body = await read_body(receive, limit)
        except TimeoutError:
            await _answer(send, 408, "timeout", f"request body not received within {self._timeout_s:g} s")
            return
        except ClientGone:
            return  # half a body is not a request: nothing is parsed, stored or answered
        if body is None:
            await _answer(send, *too_large)
            return
        await self._app(scope, _replay(body, receive), send)


class ClientGone(Exception):
    """The client hung up before its body ended."""


def _declared_length(scope: MutableMapping[str, Any]) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The whole body; None once it passes `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A receive that gives the body read already, then what the client does next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


async def _answer(send: Any, status: int, code: str, message: str) -> None:
    # The rest of the body is not read: the connection closes after the answer.
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": msgspec.json.encode(error_body(code, message))})

"""CORS for OFREP, so web pages on the origins the operator lists (RAMPUP_CORS_ORIGINS; none by default) can
evaluate flags and follow their change stream from the browser. Every other route stays same-origin."""

from collections.abc import MutableMapping
from typing import Any

import msgspec

from rampup.http.errors import error_body
from rampup.http.limits import ASGIApp

__all__ = ["OfrepCors", "OFREP_PATHS"]

OFREP_PATHS = "/ofrep/v1/"
_ALLOW = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, if-none-match, x-api-key"),
    (b"access-control-max-age", b"600"),
]


class OfrepCors:
    def __init__(self, app: ASGIApp, origins: str) -> None:
        self._app = app
        self._origins = {
            o.strip().rstrip("/").encode() for o in origins.replace(",", " ").split() if o.strip()
        }

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(OFREP_PATHS):
            await self._app(scope, receive, send)
            return
        origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
        allowed = origin is not None and origin in self._origins
        if scope["method"] == "OPTIONS":
            await self._preflight(send, origin if allowed else None)
            return
        if not allowed:
            await self._app(scope, receive, send)
            return

        async def with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_granted(origin)]}
            await send(message)

        await self._app(scope, receive, with_cors)

    @staticmethod
    async def _preflight(send: Any, origin: bytes | None) -> None:
        if origin is None:
            body = msgspec.json.encode(
                error_body("forbidden", "this origin may not call OFREP (RAMPUP_CORS_ORIGINS)")
            )
            start = {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        else:
            body = b""
            start = {"type": "http.response.start", "status": 204, "headers": [*_granted(origin), *_ALLOW]}
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _granted(origin: bytes | None) -> list[tuple[bytes, bytes]]:
    assert origin is not None
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", b"etag"),
        (b"vary", b"origin"),
    ]

"""OFREP evaluation as a plain ASGI handler in front of FastAPI.

This is the hottest path in the server, so it skips FastAPI's routing and validation layers (about
80 µs a request here) and answers from the in-memory snapshot: no database read per request.
"""

from collections.abc import Callable, MutableMapping
from typing import Any

import mmh3
import msgspec

from rampup.adapters.codecs.ofrep import OfrepError, encode_bulk, encode_error, encode_single, parse_context
from rampup.core.flags import CompiledFlag, ErrorCode, flag_not_found
from rampup.core.targeting import EvaluationContext
from rampup.core.tokens import Scope, Token
from rampup.errors import Forbidden, Unauthorized
from rampup.http.credentials import authenticate, secret_of
from rampup.http.errors import error_body
from rampup.http.limits import ASGIApp, read_body
from rampup.http.streams import stream_ticket
from rampup.services.snapshot import Snapshot, SnapshotCache
from rampup.services.usage import EvaluationCounter

__all__ = ["OfrepApp", "OFREP_PREFIX", "MAX_BODY"]

OFREP_PREFIX = "/ofrep/v1/evaluate/flags"
MAX_BODY = 256 * 1024
JSON = [(b"content-type", b"application/json")]


def _problem(
    status: int, code: str, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return status, [*JSON, *extra], msgspec.json.encode(error_body(code, message))


class OfrepApp:
    def __init__(
        self,
        cache: SnapshotCache,
        usage: EvaluationCounter,
        app: ASGIApp,
        evaluated: Callable[[str, int], None] = lambda environment, count: None,
        public_url: str | None = None,
    ) -> None:
        self._public_url = public_url.rstrip("/") if public_url else None
        self._cache = cache
        self._usage = usage
        self._app = app
        self._evaluated = evaluated  # (environment, flags evaluated): the server's metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(OFREP_PREFIX):
            await self._app(scope, receive, send)
            return
        status, headers, body = await self._handle(scope, receive, path[len(OFREP_PREFIX) :])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(
        self, scope: MutableMapping[str, Any], receive: Any, rest: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if rest not in ("", "/") and (not rest.startswith("/") or "/" in rest[1:]):
            status, payload = encode_error(
                rest.strip("/"), OfrepError(ErrorCode.FLAG_NOT_FOUND, "no such flag: keys contain no '/'")
            )
            return status, JSON, payload
        if scope["method"] != "POST":
            return _problem(405, "method_not_allowed", "OFREP evaluation takes POST", ((b"allow", b"POST"),))
        headers = dict(scope["headers"])
        snapshot = self._cache.current
        token = _caller(snapshot, headers)
        if not isinstance(token, Token):
            return token  # refused
        environment = token.environment or _query_environment(scope)
        if environment is None or environment not in snapshot.flags:
            status, payload = encode_error(
                None,
                OfrepError(
                    ErrorCode.GENERAL,
                    "this token is not bound to an existing environment: add ?environment=<key>",
                ),
            )
            return status, JSON, payload
        if not token.allows(Scope.SDK, environment):
            return _problem(403, "forbidden", f"token may not evaluate flags in {environment}")
        body = await read_body(receive, MAX_BODY)
        if body is None:
            return _problem(413, "too_large", f"request body over {MAX_BODY} bytes")
        flags = snapshot.flags[environment]
        key = rest.strip("/")
        try:
            ctx = parse_context(body)
        except OfrepError as exc:
            status, payload = encode_error(key or None, exc)
            return status, JSON, payload
        if key:
            status, payload = self._single(environment, flags.get(key), key, ctx)
            self._evaluated(environment, 1)
            return status, JSON, payload
        self._evaluated(environment, len(flags))
        env_id = snapshot.environments[environment].id
        payload = encode_bulk(
            (flag.evaluate(ctx) for flag in flags.values()),
            f"{self._public_url}/ofrep/v1/events/{env_id}?ticket={stream_ticket(token, env_id)}"
            if self._public_url
            else None,
        )
        etag = b'"%x"' % mmh3.hash128(payload, signed=False)
        if headers.get(b"if-none-match") == etag:
            return 304, [(b"etag", etag)], b""
        return 200, [*JSON, (b"etag", etag)], payload

    def _single(
        self, environment: str, flag: CompiledFlag | None, key: str, ctx: EvaluationContext
    ) -> tuple[int, bytes]:
        if flag is None:
            return encode_single(flag_not_found(key))
        # Counted per flag only here: a bulk request fetches every flag and says nothing about which one the
        # caller reads (its client's exposure events do).
        self._usage.hit(environment, key)
        return encode_single(flag.evaluate(ctx))


def _caller(
    snapshot: Snapshot, headers: dict[bytes, bytes]
) -> Token | tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The calling sdk token, or the problem to answer with; the same checks as the admin API's."""
    secret = secret_of(_header(headers, b"authorization"), _header(headers, b"x-api-key"))
    try:
        return authenticate(snapshot, secret, Scope.SDK)
    except Unauthorized as exc:
        return _problem(401, "unauthorized", exc.message)
    except Forbidden as exc:
        return _problem(403, "forbidden", exc.message)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def _query_environment(scope: MutableMapping[str, Any]) -> str | None:
    query: bytes = scope.get("query_string", b"")
    for part in query.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "environment" and value:
            return value
    return None

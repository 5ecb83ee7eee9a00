"""Request telemetry for ASGI and WSGI apps: one `request` event per request, with the flags it evaluated
(folded by the tracker into its summary of the flush interval unless the client sends raw events).

Each request gets a `RequestScope` in a context variable; the client (and `RampupHook` for any OpenFeature
provider) writes every flag evaluated while it runs into it. At the end the middleware records a `request`
event — duration, status, ok = status < 500 and no exception, the flags and the user — which feeds the
`error_rate` and `api_latency_pNN` gates per variant. An unhandled exception also records an `error` event
with `unhandled: true` (the `unhandled_exceptions` gate), then propagates unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from rampup.sdk.client import Client
from rampup.sdk.tracking import RequestScope, current_request

__all__ = ["RampupASGIMiddleware", "RampupWSGIMiddleware", "instrument_flask"]

log = logging.getLogger("rampup.sdk")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _record(
    client: Client,
    request: RequestScope,
    targeting_key: str | None,
    started: float,
    status: int | None,
    error: BaseException | None,
    tags: dict[str, str],
) -> None:
    duration_ms = (client._clock.monotonic() - started) * 1000
    error = error or request.error
    key = targeting_key or request.targeting_key
    flags = dict(request.flags)
    if error is None and client._summarizes_requests():  # the common case, made cheap: no event built
        client._request(key, flags, duration_ms, status is not None and status < 500, tags)
        return
    if error is not None:
        client._add(
            {
                "type": "error",
                "unhandled": True,
                "message": f"{type(error).__name__}: {error}"[:10_000],
                **({"flags": flags} if flags else {}),
            },
            key,
            tags,
        )
        status = 500 if status is None else status  # nothing sent yet: the server will answer 500
    event: dict[str, Any] = {
        "type": "request",
        "duration_ms": duration_ms,
        "ok": error is None and status is not None and status < 500,
    }
    if status is not None:
        event["status"] = status
    if flags:
        event["flags"] = flags
    client._add(event, key, tags)


def _user(find: Callable[[Any], str | None] | None, source: Any) -> str | None:
    if find is None:
        return None
    try:
        return find(source)
    except Exception:  # the application's callback: a bug there must not fail the request
        log.exception("rampup: the targeting_key callback failed")
        return None


class RampupASGIMiddleware:
    """`app.add_middleware(RampupASGIMiddleware, client=client)` (Starlette, FastAPI) or wrap any ASGI app.

    `targeting_key(scope)`, called after the app, names the user when the flags evaluated did not
    (e.g. `lambda scope: scope["state"].get("user_id")`).
    """

    def __init__(
        self, app: ASGIApp, client: Client, *, targeting_key: Callable[[Scope], str | None] | None = None
    ) -> None:
        self.app = app
        self._client = client
        self._targeting_key = targeting_key
        client._record_requests()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = RequestScope()
        token = current_request.set(request)
        status: int | None = None

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = self._client._clock.monotonic()
        try:
            await self.app(scope, receive, send_and_see)
        except Exception as exc:
            self._finish(scope, request, started, status, exc)
            raise
        finally:
            current_request.reset(token)
        self._finish(scope, request, started, status, None)

    def _finish(
        self,
        scope: Scope,
        request: RequestScope,
        started: float,
        status: int | None,
        error: BaseException | None,
    ) -> None:
        try:
            tags = {"method": str(scope.get("method", ""))}
            route = getattr(
                scope.get("route"), "path", None
            )  # Starlette's matched route: /items/{id}, not the URL
            if isinstance(route, str):
                tags["route"] = route
            _record(self._client, request, _user(self._targeting_key, scope), started, status, error, tags)
        except Exception:
            log.exception("rampup: recording the request failed")


class RampupWSGIMiddleware:
    """`app.wsgi_app = RampupWSGIMiddleware(app.wsgi_app, client)`, or wrap any WSGI app (Flask: prefer
    `instrument_flask`, which also sees the exceptions Flask turns into 500 responses itself).

    The request ends when the server closes the response, so streamed bodies count in full.
    """

    def __init__(
        self, app: WSGIApp, client: Client, *, targeting_key: Callable[[Environ], str | None] | None = None
    ) -> None:
        self.app = app
        self._client = client
        self._targeting_key = targeting_key
        client._record_requests()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = RequestScope()
        token = current_request.set(request)
        status: list[int] = []

        def start_and_see(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [int(status_line.split(" ", 1)[0])]
            return start_response(status_line, headers, exc_info)

        started = self._client._clock.monotonic()

        def finish(error: BaseException | None) -> None:
            try:
                tags = {"method": str(environ.get("REQUEST_METHOD", ""))}
                _record(
                    self._client,
                    request,
                    _user(self._targeting_key, environ),
                    started,
                    status[0] if status else None,
                    error,
                    tags,
                )
            except Exception:
                log.exception("rampup: recording the request failed")

        try:
            body = self.app(environ, start_and_see)
        except Exception as exc:
            finish(exc)
            raise
        finally:
            current_request.reset(token)
        return _Body(body, finish)


class _Body:
    """The app's response, passed through; finishes the request when the server closes it (PEP 3333)."""

    def __init__(self, body: Iterable[bytes], finish: Callable[[BaseException | None], None]) -> None:
        self._body = body
        self._finish = finish
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception as exc:
            self._error = exc
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(self._error)


def instrument_flask(
    app: Any, client: Client, *, targeting_key: Callable[[Environ], str | None] | None = None
) -> None:
    """One line for Flask: wraps `app.wsgi_app` and counts the exceptions Flask answers with a 500 itself
    (its `got_request_exception` signal) as unhandled."""
    from flask import got_request_exception

    def on_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
        request = current_request.get()
        if request is not None:
            request.error = exception

    got_request_exception.connect(on_exception, app, weak=False)
    app.wsgi_app = RampupWSGIMiddleware(app.wsgi_app, client, targeting_key=targeting_key)

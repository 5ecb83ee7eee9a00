"""Telemetry in: POST /api/v1/events (native) and the Sentry envelope and store endpoints.

Bodies are read within their limit (http/limits.py) before anything else. Then, in this order, the token's rate
(a token bucket per token), the writes in flight, and only then inflating, parsing and validating in the event
loop: a request that will be refused costs no parsing. The one blocking write runs in the threadpool, and the
answer (2xx) comes only after it committed.
"""

import math
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rampup.adapters.codecs.compression import inflate
from rampup.adapters.codecs.native import batch_schema, decode_batch
from rampup.adapters.codecs.sentry import parse_envelope, parse_store, sentry_key
from rampup.adapters.codecs.summaries import decode_summary
from rampup.bootstrap import Container
from rampup.core.ratelimit import RateLimiter
from rampup.core.telemetry import Observation
from rampup.core.tokens import Scope, Token
from rampup.errors import Forbidden, NotFound, Unauthorized
from rampup.http.deps import container, environment_for, require
from rampup.http.errors import error_body
from rampup.http.schemas import ErrorOut

__all__ = ["router", "MAX_INFLATED"]

MAX_INFLATED = 20 * 1024 * 1024  # after decompression
MAX_WRITES_IN_FLIGHT = 16  # beyond this the server sheds load with 429 rather than queue without bound

router = APIRouter(tags=["ingest"])
_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 413, 422, 429)
}
IngestToken = Annotated[Token, Depends(require(Scope.INGEST))]
EnvironmentParam = Annotated[str | None, Query(description="for tokens not bound to an environment")]
_schema = batch_schema()
_in_flight = 0


async def _read(request: Request) -> bytes:
    # The body arrives whole and within INGEST_BODY (http/limits.py); its inflated size is bounded here.
    return inflate(await request.body(), request.headers.get("content-encoding"), MAX_INFLATED)


def _slow_down(message: str, wait_s: float) -> JSONResponse:
    return JSONResponse(
        error_body("slow_down", message),
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


def _over_rate(request: Request, token: Token) -> JSONResponse | None:
    settings = container(request).settings
    state = request.app.state
    if getattr(state, "ingest_rate", None) is None:
        state.ingest_rate = RateLimiter(settings.ingest_rate, settings.ingest_burst)
    wait_s = state.ingest_rate.take(token.id, time.monotonic())
    if not wait_s:
        return None
    rate = f"{settings.ingest_burst} requests at once, then {settings.ingest_rate:g} a second"
    return _slow_down(f"this token sends more than {rate}; retry after the time Retry-After says", wait_s)


async def _ingest(
    request: Request,
    token: Token,
    environment: str,
    parse: Callable[[bytes, int], tuple[Any, Any]],
    answer: Callable[[Any, int], Any],
    store: Callable[[Container, str, Any], int],
) -> Any:
    """Rate, then room, then parse and store: `answer(what parse said besides what it parsed, stored)`."""
    global _in_flight
    refused = _over_rate(request, token)
    if refused is not None:
        return refused
    if _in_flight >= MAX_WRITES_IN_FLIGHT:
        return _slow_down("too many ingest requests in flight; retry shortly", 1)
    _in_flight += 1
    try:
        c = container(request)
        said, parsed = parse(await _read(request), c.ingest.now_ms())
        stored = await run_in_threadpool(store, c, environment, parsed)
    finally:
        _in_flight -= 1
    return answer(said, stored)


def _native(body: bytes, now_ms: int) -> tuple[None, list[Observation]]:
    return None, decode_batch(body, now_ms)


def _events(source: str) -> Callable[[Container, str, list[Observation]], int]:
    return lambda c, environment, observations: c.ingest.ingest(environment, observations, source)


def _summary(body: bytes, now_ms: int) -> tuple[None, tuple[Any, Any, Any, str | None]]:
    return None, decode_summary(body, now_ms)


@router.post(
    "/api/v1/events",
    status_code=202,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _schema["schema"]}}}
    },
    responses={
        202: {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"accepted": {"type": "integer"}},
                        "required": ["accepted"],
                    }
                }
            }
        },
        **_REFUSALS,
    },
)
async def ingest_events(request: Request, token: IngestToken, environment: EnvironmentParam = None) -> Any:
    """Store a batch of telemetry events, all or none (at most 10,000 events or 5 MiB)."""
    env = environment_for(token, environment, Scope.INGEST)
    return await _ingest(request, token, env, _native, _accepted, _events("native"))


def _sentry_environment(
    request: Request, environment_id: int, auth: str | None, query_key: str | None
) -> tuple[Token, str]:
    c = container(request)
    snapshot = c.snapshots.current
    env = snapshot.environments_by_id.get(environment_id)
    if env is None:
        raise NotFound(
            f"no environment with id {environment_id}; `rampup dsn --env KEY` prints the right DSN"
        )
    key = sentry_key(auth, query_key)
    token = snapshot.authenticate(key) if key else None
    if token is None:
        raise Unauthorized("missing or unknown sentry_key: use the DSN `rampup dsn` prints")
    if not token.allows(Scope.INGEST, env.key):
        raise Forbidden(f"this key may not send telemetry to {env.key}")
    return token, env.key


SentryAuth = Annotated[str | None, Header(alias="X-Sentry-Auth", include_in_schema=False)]
SentryKey = Annotated[str | None, Query(alias="sentry_key", include_in_schema=False)]
_sentry_responses: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}}}}
        }
    },
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
}


@router.post("/api/{environment_id}/envelope/", responses=_sentry_responses, tags=["sentry"])
async def sentry_envelope(
    request: Request, environment_id: int, auth: SentryAuth = None, key: SentryKey = None
) -> Any:
    """Sentry envelopes from any Sentry SDK pointed at `rampup dsn`."""
    token, env = _sentry_environment(request, environment_id, auth, key)
    return await _ingest(request, token, env, parse_envelope, _event_id, _events("sentry"))


@router.post("/api/{environment_id}/store/", responses=_sentry_responses, tags=["sentry"])
async def sentry_store(
    request: Request, environment_id: int, auth: SentryAuth = None, key: SentryKey = None
) -> Any:
    """The legacy Sentry store endpoint: one event per request."""
    token, env = _sentry_environment(request, environment_id, auth, key)
    return await _ingest(request, token, env, parse_store, _event_id, _events("sentry"))


def _accepted(_: None, stored: int) -> JSONResponse:
    return JSONResponse({"accepted": stored}, status_code=202)


@router.post(
    "/api/v1/summaries",
    status_code=202,
    responses={
        202: {"description": "stored; `accepted` is how many events the summary stands for"},
        **_REFUSALS,
    },
)
async def ingest_summary(request: Request, token: IngestToken, environment: EnvironmentParam = None) -> Any:
    """Store a client's summary of the events it would have sent (per-second aggregates and unit days, see
    docs/metrics.md): the same rollups, metric answers and gate verdicts as those events, all or none."""
    env = environment_for(token, environment, Scope.INGEST)
    return await _ingest(
        request, token, env, _summary, _accepted, lambda c, e, s: c.ingest.ingest_summary(e, *s)
    )


def _event_id(event_id: str | None, _stored: int) -> dict[str, str | None]:
    return {"id": event_id}

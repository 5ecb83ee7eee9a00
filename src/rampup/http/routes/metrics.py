"""GET /api/v1/metrics (values per variant over a window) and POST /api/v1/metrics (counters, gauges)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from rampup.adapters.codecs.native import to_ms
from rampup.core.durations import parse_duration
from rampup.core.telemetry import BUILTIN_METRICS, Aggregation, Kind, Observation
from rampup.core.tokens import Scope, Token
from rampup.errors import InvalidInput
from rampup.http.deps import ContainerDep, Reader, Writer, container, environment_for, require
from rampup.http.schemas import CustomMetricIn, CustomMetricOut, ErrorOut, MetricOut, MetricPointIn
from rampup.http.views import metric_out
from rampup.services.metrics import MetricQuery

__all__ = ["router", "definitions"]

router = APIRouter(
    prefix="/api/v1/metrics",
    tags=["metrics"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

POSTABLE = {
    name for name, spec in BUILTIN_METRICS.items() if spec.aggregation in (Aggregation.SUM, Aggregation.GAUGE)
}


@router.get("", response_model=MetricOut)
def query_metric(
    c: ContainerDep,
    _: Reader,
    metric: Annotated[str, Query(max_length=200, examples=["error_rate", "api_latency_p95"])],
    environment: Annotated[str, Query(max_length=128)],
    flag: Annotated[str | None, Query(max_length=128, description="omit for the whole environment")] = None,
    window: Annotated[str, Query(max_length=16, description="e.g. 5m, 1h, 48h")] = "1h",
    end: Annotated[datetime | None, Query(description="default: now")] = None,
) -> dict[str, Any]:
    """A metric per variant over a window: value, 95% bounds, samples and counts, plus a time series."""
    window_s = int(parse_duration(window, "window").total_seconds())
    return metric_out(c.metrics.query(MetricQuery(environment, metric, window_s, flag, end)))


@router.post(
    "",
    status_code=202,
    responses={
        202: {
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"accepted": {"type": "integer"}}}
                }
            }
        }
    },
)
async def post_metric(
    request: Request, body: MetricPointIn, token: Annotated[Token, Depends(require(Scope.INGEST))]
) -> dict[str, int]:
    """Post a counter increment (support_tickets) or a gauge reading (lighthouse) from outside."""
    if body.metric not in POSTABLE:
        raise InvalidInput(
            f"{body.metric!r} is not posted from outside; these are: {', '.join(sorted(POSTABLE))}",
            where="metric",
        )
    environment_for(token, body.environment, Scope.INGEST)
    c = container(request)
    kind = Kind.GAUGE if BUILTIN_METRICS[body.metric].aggregation is Aggregation.GAUGE else Kind.COUNTER
    at_ms = to_ms(body.at) if body.at else c.ingest.now_ms()
    observation = Observation(kind, at_ms, name=body.metric, value=body.value)
    accepted = await run_in_threadpool(c.ingest.ingest, body.environment, [observation])
    return {"accepted": accepted}


definitions = APIRouter(
    prefix="/api/v1/metric-definitions",
    tags=["metrics"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@definitions.get("", response_model=list[CustomMetricOut])
def list_definitions(c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    return [m.to_dict() for m in c.metrics.definitions()]


@definitions.post("", status_code=201, response_model=CustomMetricOut, responses={409: {"model": ErrorOut}})
def define(body: CustomMetricIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Define a metric over `custom` events: which events and tags, and how to aggregate them."""
    return c.metrics.define(body.model_dump(exclude_none=True), token.name).to_dict()


@definitions.delete("/{name}", status_code=204)
def undefine(name: str, c: ContainerDep, token: Writer) -> None:
    c.metrics.undefine(name, token.name)

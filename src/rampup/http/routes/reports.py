"""/api/v1/reports: the rollout reports (daily, support, weekly, completion) as Markdown or HTML, and the
schedules that send them."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response

from rampup.core.schedules import ReportKind
from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import ErrorOut, ScheduleIn
from rampup.http.views import schedule_out

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}
SCHEDULE_EXAMPLES = {
    "support e-mail, daily at 8": {
        "value": {
            "kind": "support",
            "flag": "workstation",
            "environment": "production",
            "channels": ["support-email"],
            "hour": 8,
            "timezone": "Europe/Berlin",
            "contact": "team@example.com",
        }
    },
    "weekly summary, Fridays": {
        "value": {
            "kind": "weekly",
            "rollout_id": 1,
            "channels": ["rollout-channel"],
            "hour": 16,
            "weekday": "friday",
            "timezone": "Europe/Berlin",
        }
    },
    "completion report": {"value": {"kind": "completion", "rollout_id": 1, "channels": ["rollout-channel"]}},
}


# Declared before /{kind}, which would otherwise take "schedules" for a report kind.
@router.get("/schedules")
def list_schedules(c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    """Report schedules, each with the period it last sent and when it sends next."""
    return [schedule_out(s) for s in c.reports.schedules()]


@router.post("/schedules", status_code=201)
def create_schedule(
    c: ContainerDep, token: Writer, body: Annotated[ScheduleIn, Body(openapi_examples=SCHEDULE_EXAMPLES)]
) -> dict[str, Any]:
    """Send a report to channels: `daily` or `support` every day at `hour`:`minute` in `timezone`, `weekly` on
    `weekday` (0 = Monday, or a name), `completion` when the rollout ends. Name the rollout by `rollout_id`, or by
    `flag` and `environment` for the rollout live at sending time."""
    return schedule_out(c.reports.add_schedule(body.model_dump(exclude_unset=True), token.name))


@router.delete("/schedules/{schedule_id}", status_code=204)
def delete_schedule(
    schedule_id: Annotated[int, Path(ge=1, le=2**31 - 1)], c: ContainerDep, token: Writer
) -> None:
    c.reports.delete_schedule(schedule_id, token.name)


@router.get(
    "/{kind}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            }
        }
    },
)
def report(
    kind: ReportKind,
    c: ContainerDep,
    _: Reader,
    rollout: Annotated[int, Query(ge=1, le=2**31 - 1, description="the rollout's id")],
    fmt: Annotated[
        Literal["md", "html"], Query(alias="format", description="Markdown, or self-contained HTML")
    ] = "md",
    tz: Annotated[str, Query(max_length=64, description="IANA time zone the dates are shown in")] = "UTC",
) -> Response:
    """The daily report, the support team's daily status, the weekly summary or the completion report of a
    rollout, filled from its state, transitions and telemetry, with charts of error rate and latency per variant."""
    document = c.reports.render(c.reports.build(kind, rollout, tz=tz), fmt)
    return Response(document, media_type=MEDIA[fmt])

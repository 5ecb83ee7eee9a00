"""/api/v1/clock: read the server's time; move it when the server runs on a manual clock (RAMPUP_MANUAL_CLOCK).

Mounted only on such a server, and admin only: moving time makes soak times pass and alerts fire."""

import logging
from typing import Any

from fastapi import APIRouter, Request

from rampup.core.durations import parse_duration
from rampup.http.deps import Admin, ContainerDep
from rampup.http.schemas import ClockIn, ClockOut, ErrorOut

__all__ = ["router"]

log = logging.getLogger("rampup")

router = APIRouter(
    prefix="/api/v1",
    tags=["clock"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


@router.get("/clock", response_model=ClockOut)
def read_clock(c: ContainerDep, _: Admin) -> dict[str, Any]:
    return {"now": c.clock(), "manual": c.manual_clock is not None}


@router.post("/clock", response_model=ClockOut)
def move_clock(body: ClockIn, request: Request, c: ContainerDep, token: Admin) -> dict[str, Any]:
    """Move the clock forward, then run one controller pass at the new time (if this process runs a worker and
    holds the lease)."""
    clock = c.manual_clock
    assert clock is not None  # the router is mounted only with a manual clock
    if body.to is not None:
        now = clock.set_to(body.to)
    else:
        now = clock.advance(parse_duration(body.advance or "0s", "advance"))
    log.warning("manual clock moved to %s by %s", now.isoformat(), token.name)
    c.usage.flush()  # evaluations made before the move count at the new time, before the controller looks
    leader = c.leader.control() if request.app.state.leads else False
    return {"now": now, "manual": True, "leader": leader}

"""/api/v1/scheduled-changes: flag state changes made once at a given time (report schedules are under
/api/v1/reports/schedules)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from rampup.core.scheduled_changes import ChangeStatus
from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import ErrorOut, KillIn, ScheduledChangeIn, ScheduledChangeOut

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/scheduled-changes",
    tags=["scheduled changes"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

ChangeId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=201, response_model=ScheduledChangeOut, responses={409: {"model": ErrorOut}})
def create(body: ScheduledChangeIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Change a flag's state in one environment at `at` (local time in `timezone`): made once, by the leading
    worker, audited with this token as the actor, and told to the flag's channels and `notify`."""
    fields = body.model_dump(exclude_unset=True)
    fields["change"] = body.change.model_dump(exclude_unset=True, exclude_none=True)
    return c.scheduled.create(fields, token.name).to_dict()


@router.get("", response_model=list[ScheduledChangeOut])
def list_changes(
    c: ContainerDep,
    _: Reader,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    status: ChangeStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Scheduled changes, soonest first."""
    found = c.scheduled.changes(flag=flag, environment=environment, status=status, limit=limit)
    return [s.to_dict() for s in found]


@router.get("/{change_id}", response_model=ScheduledChangeOut)
def show(change_id: ChangeId, c: ContainerDep, _: Reader) -> dict[str, Any]:
    return c.scheduled.change(change_id).to_dict()


@router.post("/{change_id}/cancel", response_model=ScheduledChangeOut, responses={409: {"model": ErrorOut}})
def cancel(change_id: ChangeId, c: ContainerDep, token: Writer, body: KillIn | None = None) -> dict[str, Any]:
    """Cancel a pending change (409 once it was made, failed or cancelled)."""
    return c.scheduled.cancel(change_id, token.name, body.reason if body else "").to_dict()

"""/api/v1/lifecycle and a flag's evaluations, code references and archive."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from rampup.core.lifecycle import Status
from rampup.errors import InvalidInput
from rampup.http.deps import ContainerDep, Reader
from rampup.http.schemas import ErrorOut, EvaluationsOut, FlagLifeOut

__all__ = ["router", "parse_status", "StatusQuery"]

router = APIRouter(
    prefix="/api/v1",
    tags=["lifecycle"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

StatusQuery = Annotated[
    str | None, Query(description="active, ready_for_cleanup, stale or archived; default: every flag")
]


def parse_status(value: str | None) -> Status | None:
    if value is None:
        return None
    try:
        return Status(value)
    except ValueError:
        raise InvalidInput(
            f"unknown status {value!r}; use one of: " + ", ".join(s.value for s in Status), where="status"
        ) from None


@router.get("/lifecycle", response_model=list[FlagLifeOut])
def lifecycle(c: ContainerDep, _: Reader, status: StatusQuery = None) -> list[dict[str, Any]]:
    """Every flag's lifecycle status with the reason (how it is decided: docs/cleanup.md)."""
    return [life.to_dict() for life in c.lifecycle.lives(parse_status(status))]


@router.get("/flags/{key}/evaluations", response_model=EvaluationsOut)
def evaluations(
    key: str, c: ContainerDep, _: Reader, days: Annotated[int, Query(ge=1, le=400)] = 30
) -> dict[str, Any]:
    """Evaluations counted per environment and day (OFREP single evaluations and exposure events)."""
    return c.lifecycle.evaluations(key, days)

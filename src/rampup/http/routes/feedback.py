"""GET /api/v1/feedback (pages of user feedback per flag and variant) and DELETE (one user's, on request)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import ErrorOut, FeedbackPageOut, FeedbackPurgeOut
from rampup.services.feedback import MAX_PAGE, FeedbackQuery

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/feedback",
    tags=["feedback"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get("", response_model=FeedbackPageOut)
def list_feedback(
    c: ContainerDep,
    _: Reader,
    environment: Annotated[str, Query(max_length=128)],
    flag: Annotated[str | None, Query(max_length=128, description="omit for the whole environment")] = None,
    variant: Annotated[
        str | None, Query(max_length=128, description="with flag: only this variant's")
    ] = None,
    commented: Annotated[bool, Query(description="only feedback with a comment")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="older than this id (paging)")] = None,
) -> dict[str, Any]:
    """User feedback, newest first: rating, score, comment (plain text) and the variants it belongs to."""
    entries = c.feedback.page(
        FeedbackQuery(environment, flag, variant, commented=commented, before_id=before, limit=limit)
    )
    return {
        "feedback": [e.to_dict() for e in entries],
        "next_before": entries[-1].id if len(entries) == limit else None,
    }


@router.delete("", response_model=FeedbackPurgeOut)
def purge_feedback(
    c: ContainerDep,
    token: Writer,
    user: Annotated[str, Query(min_length=1, max_length=256, description="the user's targeting key")],
    environment: Annotated[str | None, Query(max_length=128, description="omit: every environment")] = None,
) -> dict[str, Any]:
    """Delete every piece of feedback one user gave, comments included; the deletion is audited."""
    return {"deleted": c.feedback.purge(user, environment, token.name)}

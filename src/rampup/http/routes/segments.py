"""/api/v1/environments/{environment}/segments: segments, which rules refer to by key."""

from typing import Any

from fastapi import APIRouter

from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import ErrorOut, SegmentDetailOut, SegmentIn, SegmentOut, SegmentPatch
from rampup.http.views import segment_out

router = APIRouter(
    prefix="/api/v1/environments/{environment}/segments",
    tags=["segments"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get("", response_model=list[SegmentOut])
def list_segments(environment: str, c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    return [segment_out(view) for view in c.segments.segments(environment)]


@router.post("", status_code=201, response_model=SegmentOut, responses={409: {"model": ErrorOut}})
def create_segment(environment: str, body: SegmentIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    return segment_out(c.segments.create(environment, body.model_dump(exclude_unset=True), token.name))


@router.get("/{key}", response_model=SegmentDetailOut)
def get_segment(environment: str, key: str, c: ContainerDep, _: Reader) -> dict[str, Any]:
    return segment_out(c.segments.segment(environment, key), keys=True)


@router.patch("/{key}", response_model=SegmentOut, responses={409: {"model": ErrorOut}})
def update_segment(
    environment: str, key: str, body: SegmentPatch, c: ContainerDep, token: Writer
) -> dict[str, Any]:
    """Change a segment: every flag whose rules refer to it answers by the new one at once."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return segment_out(c.segments.update(environment, key, changes, token.name))


@router.delete("/{key}", status_code=204, responses={409: {"model": ErrorOut}})
def delete_segment(environment: str, key: str, c: ContainerDep, token: Writer) -> None:
    """Delete a segment; refused (409, naming them) while flags' rules refer to it."""
    c.segments.delete(environment, key, token.name)

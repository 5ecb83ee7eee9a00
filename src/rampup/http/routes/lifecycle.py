"""/api/v1/lifecycle and a flag's evaluations, code references and archive."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from rampup.core.lifecycle import MAX_REFERENCES, Status
from rampup.errors import BadRequest, InvalidInput
from rampup.http.deps import ContainerDep, Reader, Writer, read_body
from rampup.http.limits import REFERENCES_BODY
from rampup.http.schemas import ArchiveIn, ErrorOut, EvaluationsOut, FlagLifeOut, FlagOut, ReferencesOut
from rampup.http.views import evaluations_out, flag_life_out, flag_out, references_out

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

MAX_REFERENCES_BODY = REFERENCES_BODY  # also what http/limits.py lets through

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
    return [flag_life_out(life) for life in c.lifecycle.lives(parse_status(status))]


@router.put(
    "/flags/{key}/references",
    response_model=ReferencesOut,
    responses={400: {"model": ErrorOut}, 413: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "references": {
                                "type": "array",
                                "maxItems": MAX_REFERENCES,
                                "items": {"type": "object"},
                            },
                            "root": {"type": "string"},
                        },
                        "required": ["references"],
                    }
                }
            },
        }
    },
)
async def put_references(key: str, request: Request, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Replace where the code uses the flag, as `rampup refs PATH --push` found it; `{"references": [{"file",
    "line", "kind", "detail", "scope", "code"}, …], "root"}`. At most MAX_REFERENCES_BODY bytes."""
    raw = await read_body(request, MAX_REFERENCES_BODY)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    return references_out(await run_in_threadpool(c.lifecycle.push_references, key, body, token.name))


@router.post("/flags/{key}/archive", response_model=FlagOut, responses={409: {"model": ErrorOut}})
def archive(key: str, c: ContainerDep, token: Writer, body: ArchiveIn | None = None) -> dict[str, Any]:
    """Archive the flag: every evaluation answers its final value with reason ARCHIVED, and is counted. Refused
    (409) while the last `rampup refs --push` found it in code, unless `force`."""
    given = body or ArchiveIn()
    c.lifecycle.archive(key, token.name, force=given.force, reason=given.reason)
    return flag_out(c.flags.flag(key))


@router.delete("/flags/{key}/archive", response_model=FlagOut, responses={409: {"model": ErrorOut}})
def restore(key: str, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Take the flag out of the archive: it evaluates by its state again."""
    c.lifecycle.restore(key, token.name)
    return flag_out(c.flags.flag(key))


@router.get("/flags/{key}/evaluations", response_model=EvaluationsOut)
def evaluations(
    key: str, c: ContainerDep, _: Reader, days: Annotated[int, Query(ge=1, le=400)] = 30
) -> dict[str, Any]:
    """Evaluations counted per environment and day (OFREP single evaluations and exposure events)."""
    return evaluations_out(c.lifecycle.evaluations(key, days))

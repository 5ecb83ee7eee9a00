"""Liveness and readiness."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rampup.http.deps import ContainerDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database does not answer"}})
def readyz(c: ContainerDep) -> Any:
    try:
        revision = c.revision()
    except Exception as exc:  # any database failure means not ready; say which
        return JSONResponse(
            {"status": "unavailable", "reason": f"database: {type(exc).__name__}"}, status_code=503
        )
    return {"status": "ready", "revision": revision}

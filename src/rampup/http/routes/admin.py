"""/api/v1/environments, /api/v1/tokens and /api/v1/audit."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from rampup.http.deps import Admin, ContainerDep, Reader
from rampup.http.schemas import (
    AuditOut,
    EnvironmentIn,
    EnvironmentOut,
    EnvironmentPatch,
    ErrorOut,
    TokenCreated,
    TokenIn,
    TokenOut,
)

router = APIRouter(
    prefix="/api/v1",
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get("/environments", response_model=list[EnvironmentOut], tags=["environments"])
def list_environments(c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    return [e.to_dict() for e in c.flags.environments()]


@router.post(
    "/environments",
    status_code=201,
    response_model=EnvironmentOut,
    tags=["environments"],
    responses={409: {"model": ErrorOut}},
)
def create_environment(body: EnvironmentIn, c: ContainerDep, token: Admin) -> dict[str, Any]:
    return c.flags.create_environment(body.key, body.name, token.name).to_dict()


@router.patch(
    "/environments/{key}",
    response_model=EnvironmentOut,
    tags=["environments"],
    responses={409: {"model": ErrorOut}},
)
def update_environment(key: str, body: EnvironmentPatch, c: ContainerDep, token: Admin) -> dict[str, Any]:
    """Rename an environment: its key, its name, or both (refused while a rollout runs there)."""
    return c.flags.update_environment(key, body.model_dump(exclude_none=True), token.name).to_dict()


@router.delete(
    "/environments/{key}", status_code=204, tags=["environments"], responses={409: {"model": ErrorOut}}
)
def delete_environment(key: str, c: ContainerDep, token: Admin) -> None:
    """Delete an environment, its flag states and the tokens bound to it (refused while a rollout runs there)."""
    c.flags.delete_environment(key, token.name)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(c: ContainerDep, _: Admin) -> list[dict[str, Any]]:
    return [t.to_dict() for t in c.tokens.tokens()]


@router.post("/tokens", status_code=201, response_model=TokenCreated, tags=["tokens"])
def create_token(body: TokenIn, c: ContainerDep, token: Admin) -> dict[str, Any]:
    created, secret = c.tokens.create(body.scope, body.environment, body.name, token.name)
    return {**created.to_dict(), "token": secret}


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"])
def revoke_token(token_id: str, c: ContainerDep, token: Admin) -> dict[str, Any]:
    return c.tokens.revoke(token_id, token.name).to_dict()


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
def audit(
    c: ContainerDep,
    _: Reader,
    target: Annotated[str | None, Query(description="e.g. flag:workstation", max_length=300)] = None,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(description="the token's name", max_length=200)] = None,
    action: Annotated[
        str | None, Query(description="an action or its start, e.g. flag.kill or rollout.", max_length=64)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="only entries older than this id (paging)")
    ] = None,
) -> list[dict[str, Any]]:
    return [
        e.to_dict()
        for e in c.flags.audit(
            target=target,
            environment=environment,
            actor=actor,
            action=action,
            limit=limit,
            before_id=before,
        )
    ]

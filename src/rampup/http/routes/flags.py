"""/api/v1/flags: flags, their state per environment, and the kill switch."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from rampup.bootstrap import Container
from rampup.core.flags import FlagState
from rampup.errors import NotFound
from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.routes.lifecycle import StatusQuery, parse_status
from rampup.http.schemas import EnvironmentStateOut, ErrorOut, FlagIn, FlagOut, FlagPatch, FlagStateIn, KillIn
from rampup.http.views import flag_out, state_out

router = APIRouter(
    prefix="/api/v1/flags",
    tags=["flags"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get("", response_model=list[FlagOut])
def list_flags(
    c: ContainerDep,
    _: Reader,
    status: StatusQuery = None,
    tag: Annotated[str | None, Query(max_length=64, description="only flags with this tag")] = None,
    owner: Annotated[str | None, Query(max_length=200, description="only flags of this owner")] = None,
) -> list[dict[str, Any]]:
    wanted = parse_status(status)
    views = c.flags.flags(tag=tag, owner=owner)
    if wanted is not None:
        keys = {life.key for life in c.lifecycle.lives(wanted)}
        views = [view for view in views if view.record.definition.key in keys]
    return [flag_out(view) for view in views]


@router.post("", status_code=201, response_model=FlagOut, responses={409: {"model": ErrorOut}})
def create_flag(body: FlagIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    return flag_out(c.flags.create_flag(body.model_dump(exclude_unset=True), token.name))


@router.get("/{key}", response_model=FlagOut)
def get_flag(key: str, c: ContainerDep, _: Reader) -> dict[str, Any]:
    return flag_out(c.flags.flag(key))


@router.patch("/{key}", response_model=FlagOut)
@router.put("/{key}", response_model=FlagOut)
def update_flag(key: str, body: FlagPatch, c: ContainerDep, token: Writer) -> dict[str, Any]:
    return flag_out(c.flags.update_flag(key, body.model_dump(exclude_unset=True), token.name))


@router.delete("/{key}", status_code=204)
def delete_flag(key: str, c: ContainerDep, token: Writer) -> None:
    c.flags.delete_flag(key, token.name)


@router.get("/{key}/environments/{environment}", response_model=EnvironmentStateOut)
def get_state(key: str, environment: str, c: ContainerDep, _: Reader) -> dict[str, Any]:
    view = c.flags.flag(key)
    if environment not in view.states:
        raise NotFound(f"environment {environment!r} not found")
    return state_out(key, environment, view.states[environment], view.switched_off.get(environment))


@router.put(
    "/{key}/environments/{environment}",
    response_model=EnvironmentStateOut,
    responses={409: {"model": ErrorOut}},
)
def set_state(
    key: str, environment: str, body: FlagStateIn, c: ContainerDep, token: Writer
) -> dict[str, Any]:
    state = c.flags.set_state(
        key, environment, body.model_dump(exclude_unset=True, exclude_none=True), token.name
    )
    return _changed(c, key, environment, state)


@router.post("/{key}/environments/{environment}/kill", response_model=EnvironmentStateOut)
def kill(
    key: str, environment: str, c: ContainerDep, token: Writer, body: KillIn | None = None
) -> dict[str, Any]:
    state = c.flags.kill(key, environment, token.name, body.reason if body else "")
    return _changed(c, key, environment, state)


def _changed(c: Container, key: str, environment: str, state: FlagState) -> dict[str, Any]:
    """The state a change made, with the kill switch as it stands after it (pulled by a kill, put back by an
    enable)."""
    return state_out(key, environment, state, c.flags.flag(key).switched_off.get(environment))

"""/api/v1/rollouts: start a plan, read its status, and command it."""

from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core.durations import parse_duration
from rampup.core.flags import FLAG_KEY
from rampup.core.plans import Action, Plan
from rampup.errors import InvalidInput
from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import (
    ActionIn,
    Among,
    BacktestIn,
    BacktestOut,
    ErrorOut,
    RolloutCreated,
    RolloutIn,
    RolloutOut,
    SignoffIn,
)
from rampup.http.views import backtest_out, rollout_out

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/rollouts",
    tags=["rollouts"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# signoff has its own route (it names a prerequisite)
Command = Annotated[Action, Among(tuple(a for a in Action if a is not Action.SIGNOFF))]


@router.post("", status_code=201, response_model=RolloutCreated)
def create_rollout(body: RolloutIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Start a plan: `{"plan": {…}}` or `{"plan": {"yaml": "…"}}`. A wrong plan starts nothing."""
    source, plan = _plan(body.plan, body.filename)
    rollout_id = c.rollouts.create(source, plan, token.name, start=body.start)
    return {"id": rollout_id, "state": c.rollouts.rollout(rollout_id).record.state.phase.value}


def _plan(raw: dict[str, Any], filename: str | None) -> tuple[dict[str, Any], Plan]:
    if set(raw) == {"yaml"}:
        if not isinstance(raw["yaml"], str):
            raise InvalidInput("plan.yaml is the plan's YAML text", where="plan.yaml")
        return load_plan(raw["yaml"], filename or "plan.yaml")
    try:
        return raw, Plan.parse(raw)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, where=f"plan.{exc.where}" if exc.where else "plan") from None


@router.post("/backtest", response_model=BacktestOut, response_model_by_alias=True)
def backtest(body: BacktestIn, c: ContainerDep, token: Reader) -> dict[str, Any]:
    """What a plan would have decided, and when, over the telemetry recorded from `from` to `to` (read
    only: nothing is started or changed)."""
    plan = _plan(body.plan, body.filename)[1]
    if body.flag is not None and not FLAG_KEY.match(body.flag):
        raise InvalidInput(f"flag must be a flag key, got {body.flag!r}", where="flag")
    plan = replace(plan, environment=body.environment or plan.environment, flag=body.flag or plan.flag)
    if body.from_.tzinfo is None or body.to.tzinfo is None:
        raise InvalidInput("'from' and 'to' carry a time zone, e.g. 2026-03-02T09:00:00Z", where="from")
    tick = parse_duration(body.tick, "tick")
    if tick < timedelta(seconds=1):
        raise InvalidInput("tick is at least 1s", where="tick")
    return backtest_out(c.rollouts.backtest(plan, body.from_, body.to, tick))


@router.get("", response_model=list[RolloutOut])
def list_rollouts(
    c: ContainerDep,
    _: Reader,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    live: Annotated[bool | None, Query(description="only rollouts still in progress")] = None,
) -> list[dict[str, Any]]:
    return [rollout_out(r) for r in c.rollouts.rollouts(flag, environment, live)]


@router.get("/{rollout_id}", response_model=RolloutOut)
def get_rollout(rollout_id: RolloutId, c: ContainerDep, _: Reader) -> dict[str, Any]:
    """Stage, soak time left, every gate's verdict with value, bounds, samples and threshold, and the timeline."""
    return rollout_out(c.rollouts.rollout(rollout_id))


@router.post("/{rollout_id}/signoff", response_model=RolloutOut)
def signoff(rollout_id: RolloutId, body: SignoffIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """A named person (`by`, else the token's name) signs off one prerequisite of a stage ahead; the audit log
    and the timeline name the token, and `by` beside it as "on behalf of"."""
    c.rollouts.act(rollout_id, "signoff", token.name, "", body.prerequisite, body.by or None)
    return rollout_out(c.rollouts.rollout(rollout_id))


@router.post("/{rollout_id}/{action}", response_model=RolloutOut)
def command(
    rollout_id: RolloutId, action: Command, c: ContainerDep, token: Writer, body: ActionIn | None = None
) -> dict[str, Any]:
    """advance, pause, resume, rollback, disable, approve, abort (and start, for one created with start: false).
    Audited as the token; a `by` is recorded beside it as "on behalf of", never instead of it."""
    by = (body.by if body else None) or None
    c.rollouts.act(rollout_id, action, token.name, body.reason if body else "", None, by)
    return rollout_out(c.rollouts.rollout(rollout_id))

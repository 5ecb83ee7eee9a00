"""/api/v1/rollouts: start a plan, read its status, and command it."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core.plans import Plan
from rampup.errors import InvalidInput
from rampup.http.deps import ContainerDep, Reader, Writer
from rampup.http.schemas import ActionIn, ErrorOut, RolloutCreated, RolloutIn, RolloutOut, SignoffIn

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
Action = Literal["advance", "pause", "resume", "rollback", "disable", "approve", "abort", "start"]


@router.post("", status_code=201, response_model=RolloutCreated)
def create_rollout(body: RolloutIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """Start a plan: `{"plan": {…}}` or `{"plan": {"yaml": "…"}}`. A wrong plan starts nothing."""
    raw = body.plan
    if set(raw) == {"yaml"}:
        if not isinstance(raw["yaml"], str):
            raise InvalidInput("plan.yaml is the plan's YAML text", where="plan.yaml")
        source, plan = load_plan(raw["yaml"], body.filename or "plan.yaml")
    else:
        try:
            source, plan = raw, Plan.parse(raw)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, where=f"plan.{exc.where}" if exc.where else "plan") from None
    rollout_id = c.rollouts.create(source, plan, token.name, start=body.start)
    return {"id": rollout_id, "state": c.rollouts.rollout(rollout_id)["state"]}


@router.get("", response_model=list[RolloutOut])
def list_rollouts(
    c: ContainerDep,
    _: Reader,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    live: Annotated[bool | None, Query(description="only rollouts still in progress")] = None,
) -> list[dict[str, Any]]:
    return c.rollouts.rollouts(flag, environment, live)


@router.get("/{rollout_id}", response_model=RolloutOut)
def get_rollout(rollout_id: RolloutId, c: ContainerDep, _: Reader) -> dict[str, Any]:
    """Stage, soak time left, every gate's verdict with value, bounds, samples and threshold, and the timeline."""
    return c.rollouts.rollout(rollout_id)


@router.post("/{rollout_id}/signoff", response_model=RolloutOut)
def signoff(rollout_id: RolloutId, body: SignoffIn, c: ContainerDep, token: Writer) -> dict[str, Any]:
    """A named person (`by`, else the token's name) signs off one prerequisite of a stage ahead; the audit log
    and the timeline name the token, and `by` beside it as "on behalf of"."""
    c.rollouts.act(rollout_id, "signoff", token.name, "", body.prerequisite, body.by or None)
    return c.rollouts.rollout(rollout_id)


@router.post("/{rollout_id}/{action}", response_model=RolloutOut)
def command(
    rollout_id: RolloutId, action: Action, c: ContainerDep, token: Writer, body: ActionIn | None = None
) -> dict[str, Any]:
    """advance, pause, resume, rollback, disable, approve, abort (and start, for one created with start: false).
    Audited as the token; a `by` is recorded beside it as "on behalf of", never instead of it."""
    by = (body.by if body else None) or None
    c.rollouts.act(rollout_id, action, token.name, body.reason if body else "", None, by)
    return c.rollouts.rollout(rollout_id)

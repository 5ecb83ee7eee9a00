"""A kill switch stays pulled until a person puts it back: no plan, rollout stage, approval or scheduled change
made before it turns the flag on again. Over the in-memory store, on a manual clock."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from rampup.adapters.clock import ManualClock
from rampup.bootstrap import Container
from rampup.core.flags import FlagState
from rampup.core.plans import Phase, Plan, TransitionKind
from rampup.core.ports import RolloutRecord
from rampup.core.scheduled_changes import ChangeStatus
from rampup.core.switch_off import OffHow, SwitchOff
from rampup.errors import Conflict

FLAG, ENV = "workstation", "production"  # the example flag a fresh store has
STAFF = {
    "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}],
    "variant": "on",
}
PLAN = {
    "name": "ramp",
    "flag": FLAG,
    "environment": ENV,
    "stages": [
        {"name": "Early", "percentage": 10, "min_duration": "1h", "prerequisites": ["Support briefed"]},
        {"name": "All", "percentage": 100, "min_duration": "1h"},
    ],
    "gates": [],
}
KILLED = "flag 'workstation' was switched off in 'production' at 2026-03-02 10:00:00 UTC by oncall (error rate 0.8%)"
PUT_BACK = "Turn it on yourself first if you mean to: rampup flag set workstation --env production --enable --rollout 0"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def c(container: Container) -> Container:
    container.flags.set_state(FLAG, ENV, {"enabled": True, "rollout": 5, "rules": [STAFF]}, "dana")
    return container


def apply(c: Container, start: bool = True) -> int:
    return c.rollouts.create(PLAN, Plan.parse(PLAN), "deploy-bot", start)


def state(c: Container, env: str = ENV) -> FlagState:
    return c.flags.flag(FLAG).states[env]


def records(c: Container) -> list[RolloutRecord]:
    return [r.record for r in c.rollouts.rollouts()]


def kill(c: Container, clock: ManualClock) -> None:
    clock.set_to(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    c.flags.kill(FLAG, ENV, "oncall", "error rate 0.8%")


def by_rollout_disable(c: Container, clock: ManualClock) -> None:
    c.flags.set_state(FLAG, ENV, {"rules": []}, "dana")  # the plan's first stage needs no sign-off then
    rollout = apply(c)
    c.rollouts.act(rollout, "signoff", "deploy-bot", prerequisite="Support briefed")
    clock.set_to(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    c.rollouts.act(rollout, "disable", "oncall", "error rate 0.8%")


def by_disable(c: Container, clock: ManualClock) -> None:
    clock.set_to(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    c.flags.set_state(FLAG, ENV, {"enabled": False}, "oncall", "error rate 0.8%")


@pytest.mark.parametrize("switch_off", [kill, by_disable, by_rollout_disable])
def test_a_plan_for_a_flag_switched_off_is_refused_with_who_when_and_the_way_back_and_changes_nothing(
    c: Container, clock: ManualClock, switch_off: Callable[[Container, ManualClock], None]
) -> None:
    switch_off(c, clock)
    rollouts, before, audit = records(c), state(c), c.flags.audit(limit=1000)
    clock.advance(timedelta(minutes=5))

    with pytest.raises(Conflict) as refused:
        apply(c)
    assert refused.value.message == f"{KILLED}: a rollout does not turn it back on. {PUT_BACK}"
    assert (records(c), state(c), c.flags.audit(limit=1000)) == (rollouts, before, audit)


@pytest.mark.parametrize(
    ("switch_off", "how"),
    [(kill, OffHow.KILL), (by_disable, OffHow.DISABLE), (by_rollout_disable, OffHow.ROLLOUT)],
)
def test_the_flag_shows_who_switched_it_off_and_how_until_a_person_turns_it_on(
    c: Container, clock: ManualClock, switch_off: Callable[[Container, ManualClock], None], how: OffHow
) -> None:
    switch_off(c, clock)
    off = c.flags.flag(FLAG).switched_off[ENV]
    rollout = records(c)[0].id if records(c) else None
    assert off == SwitchOff(clock(), "oncall", None, "error rate 0.8%", how, rollout)

    c.flags.set_state(FLAG, ENV, {"rules": []}, "dana", "no staff rule for now")  # still off: still pulled
    assert c.flags.flag(FLAG).switched_off == {ENV: off}
    c.flags.set_state(FLAG, ENV, {"enabled": True, "rollout": 0}, "dana", "fixed in 1.4.2")
    assert c.flags.flag(FLAG).switched_off == {}
    assert c.rollouts.rollout(apply(c)).record.state.phase is Phase.AWAITING_APPROVAL


def test_a_scheduled_change_that_switches_the_flag_off_pulls_it_too(c: Container, clock: ManualClock) -> None:
    body = {"flag": FLAG, "environment": ENV, "at": "2026-03-02 10:00", "change": {"enabled": False}}
    scheduled = c.scheduled.create({**body, "reason": "maintenance"}, "oncall").id
    clock.set_to(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert c.scheduled.run_due(c.leader.holder, timedelta(seconds=5)) == 1

    off = c.flags.flag(FLAG).switched_off[ENV]
    assert (off.at, off.actor, off.how, off.source_id) == (clock(), "oncall", OffHow.SCHEDULED, scheduled)
    with pytest.raises(Conflict, match="a rollout does not turn it back on"):
        apply(c)


def test_an_environment_renamed_after_the_kill_keeps_it_pulled(c: Container, clock: ManualClock) -> None:
    kill(c, clock)
    c.flags.update_environment(ENV, {"key": "prod-eu"}, "admin")
    plan = {**PLAN, "environment": "prod-eu"}

    with pytest.raises(Conflict) as refused:
        c.rollouts.create(plan, Plan.parse(plan), "deploy-bot", True)
    assert refused.value.message == (
        "flag 'workstation' was switched off in 'prod-eu' at 2026-03-02 10:00:00 UTC by oncall (error rate 0.8%): "
        "a rollout does not turn it back on. Turn it on yourself first if you mean to: "
        "rampup flag set workstation --env prod-eu --enable --rollout 0"
    )
    assert records(c) == [] and state(c, "prod-eu").enabled is False


def test_a_pending_rollout_starts_only_once_a_person_turns_the_flag_back_on(
    c: Container, clock: ManualClock
) -> None:
    kill(c, clock)
    rollout = apply(c, start=False)  # created pending: nothing changes on the flag yet
    before = state(c)
    with pytest.raises(Conflict, match="a rollout does not turn it back on"):
        c.rollouts.act(rollout, "start", "deploy-bot")
    assert state(c) == before and c.rollouts.rollout(rollout).record.state.phase is Phase.PENDING

    c.flags.set_state(FLAG, ENV, {"enabled": True, "rollout": 0}, "dana", "fixed in 1.4.2")
    c.rollouts.act(rollout, "start", "deploy-bot")
    assert c.rollouts.rollout(rollout).record.state.phase is Phase.AWAITING_APPROVAL
    assert (state(c).enabled, state(c).rollout_bp) == (True, 0)


def test_a_flag_never_switched_on_is_not_a_kill_switch_pulled(container: Container) -> None:
    assert state(container).enabled is False  # where every flag starts
    rollout = apply(container)
    assert container.rollouts.rollout(rollout).record.state.phase is Phase.AWAITING_APPROVAL
    assert (state(container).enabled, state(container).rollout_bp) == (True, 0)


def environment_deleted(c: Container) -> None:
    c.flags.delete_environment(ENV, "admin")
    c.flags.create_environment(ENV, None, "admin")


def environment_renamed(c: Container) -> None:
    c.flags.update_environment(ENV, {"key": "production-eu"}, "admin")
    c.flags.create_environment(ENV, None, "admin")


def flag_deleted(c: Container) -> None:
    c.flags.delete_flag(FLAG, "admin")
    c.flags.create_flag({"key": FLAG}, "admin")


@pytest.mark.parametrize("made_anew", [environment_deleted, environment_renamed, flag_deleted])
def test_a_flag_or_environment_made_anew_with_a_killed_key_is_not_a_kill_switch_pulled(
    c: Container, made_anew: Callable[[Container], None]
) -> None:
    c.flags.kill(FLAG, ENV, "oncall", "error rate 0.8%")
    made_anew(c)

    rollout = apply(c)
    assert c.rollouts.rollout(rollout).record.state.phase is Phase.AWAITING_APPROVAL
    assert (state(c).enabled, state(c).rollout_bp) == (True, 0)


def test_a_kill_under_a_rollout_awaiting_sign_offs_ends_it_at_the_next_tick_and_signing_off_turns_nothing_on(
    c: Container, clock: ManualClock
) -> None:
    rollout = apply(c)  # at 0%: only the staff rule serves the new variant, while sign-offs are pending
    assert c.rollouts.rollout(rollout).record.state.phase is Phase.AWAITING_APPROVAL
    kill(c, clock)

    c.rollouts.tick_all()
    status = c.rollouts.rollout(rollout)
    assert status.record.state.phase is Phase.DISABLED
    last = status.timeline[-1]
    assert (last.kind, last.actor, last.reason) == (TransitionKind.DISABLED, "controller", KILLED)
    with pytest.raises(Conflict, match="the rollout is disabled"):
        c.rollouts.act(rollout, "signoff", "deploy-bot", prerequisite="Support briefed")
    assert state(c).enabled is False


@pytest.mark.parametrize("action", ["advance", "abort", "rollback"])
def test_a_command_given_before_the_tick_ends_the_rollout_and_says_why(
    c: Container, clock: ManualClock, action: str
) -> None:
    rollout = apply(c)
    c.rollouts.act(rollout, "signoff", "deploy-bot", prerequisite="Support briefed")
    assert (state(c).enabled, state(c).rollout_bp) == (True, 1000)
    kill(c, clock)
    before = state(c)

    with pytest.raises(Conflict) as refused:
        c.rollouts.act(rollout, action, "dana", "go on")
    assert refused.value.message == (
        f"{KILLED}: rollout {rollout} is disabled by it, and {action!r} does not turn it back on. {PUT_BACK}"
    )
    assert c.rollouts.rollout(rollout).record.state.phase is Phase.DISABLED
    assert state(c) == before
    clock.advance(timedelta(hours=2))  # the soak is long over: the controller does nothing more either
    c.rollouts.tick_all()
    assert state(c) == before


def test_a_scheduled_enable_made_before_the_kill_fails_and_one_made_after_it_is_made(
    c: Container, clock: ManualClock
) -> None:
    def schedule(at: str) -> int:
        body = {"flag": FLAG, "environment": ENV, "at": at, "change": {"enabled": True, "rollout": 25}}
        return c.scheduled.create(body, "deploy-bot").id

    earlier = schedule("2026-03-02 12:00")
    kill(c, clock)
    later = schedule("2026-03-02 13:00")

    clock.set_to(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert c.scheduled.run_due(c.leader.holder, timedelta(seconds=5)) == 0
    failed = c.scheduled.change(earlier)
    assert failed.status is ChangeStatus.FAILED
    assert failed.outcome == (
        f"{KILLED}: scheduled change {earlier}, made before that, does not turn it back on. {PUT_BACK}"
    )
    assert state(c).enabled is False

    clock.set_to(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    assert c.scheduled.run_due(c.leader.holder, timedelta(seconds=5)) == 1
    assert c.scheduled.change(later).status is ChangeStatus.DONE
    assert (state(c).enabled, state(c).rollout_bp) == (True, 2500)

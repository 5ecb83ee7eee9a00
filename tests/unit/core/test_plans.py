"""The rollout state machine with injected time: days of rollout in milliseconds."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rampup.core.gates import Gate, GateResult, Measurement, Verdict
from rampup.core.plans import (
    Kill,
    Phase,
    Plan,
    RolloutState,
    SetRollout,
    Srm,
    SrmCheck,
    Transition,
    TransitionKind,
    act,
    decide,
)
from rampup.core.reports import StageChange, incidents_since, stage_visits
from rampup.errors import Conflict, InvalidInput

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLAN = Plan.parse(
    {
        "name": "example",
        "flag": "workstation",
        "environment": "production",
        "stages": [
            {
                "name": "Early Access",
                "percentage": 10,
                "min_duration": "48h",
                "prerequisites": ["Support team briefed"],
            },
            {"name": "Expanded", "percentage": 25, "min_duration": "48h"},
            {
                "name": "General",
                "percentage": 50,
                "min_duration": "48h",
                "max_duration": "96h",
                "on_timeout": "advance",
            },
            {"name": "Full Rollout", "percentage": 100, "min_duration": "7d", "approval": "required"},
        ],
        "gates": [
            {
                "metric": "error_rate",
                "target": "< 0.1%",
                "rollback": "> 0.5%",
                "disable": "> 1%",
                "for": "5m",
            },
            {"metric": "data_loss", "rollback_to": 0},
            {"metric": "support_tickets", "compare": "baseline", "warn": "> +10%"},
        ],
    }
)
ERROR, DATA_LOSS, TICKETS = PLAN.gates


def result(gate: Gate, verdict: Verdict) -> GateResult:
    return GateResult(gate, verdict, Measurement(0.001, 0.0005, 0.002, 5000))


def healthy() -> list[GateResult]:
    return [
        result(ERROR, Verdict.PASS),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.INCONCLUSIVE),
    ]


def started() -> RolloutState:
    state = act(PLAN, RolloutState(), "start", "dana", "", T0).state
    return act(PLAN, state, "signoff", "dana", "", T0, "Support team briefed").state


def test_start_waits_at_stage_0_for_the_sign_off_then_goes_to_10_percent() -> None:
    start = act(PLAN, RolloutState(), "start", "dana", "go", T0)
    assert (start.state.phase, start.state.stage) == (Phase.AWAITING_APPROVAL, 0)
    assert start.effects == (SetRollout(0),)
    assert start.state.missing(PLAN, 1) == ["sign-off: Support team briefed"]
    signed = act(PLAN, start.state, "signoff", "lee", "", T0 + timedelta(hours=1), "Support team briefed")
    assert (signed.state.phase, signed.state.stage) == (Phase.RUNNING, 1)
    assert signed.effects == (SetRollout(1000),)
    assert signed.state.signoffs[0].by == "lee"
    assert [t.to_phase for t in signed.transitions] == [Phase.AWAITING_APPROVAL, Phase.RUNNING]


def test_a_whole_rollout_of_the_example_plan_in_virtual_time() -> None:
    state, now, percentages = started(), T0, []
    for _ in range(2000):
        now += timedelta(minutes=10)
        decision = decide(PLAN, state, healthy(), now)
        percentages += [e.percentage_bp for e in decision.effects if isinstance(e, SetRollout)]
        state = decision.state
        if state.phase is Phase.AWAITING_APPROVAL:
            state = act(PLAN, state, "approve", "dana", "ready", now).state
            percentages.append(PLAN.percentage_bp(state.stage))
        if state.phase is Phase.COMPLETED:
            break
    assert state.phase is Phase.COMPLETED
    assert percentages == [2500, 5000, 10_000]
    assert now - T0 >= timedelta(days=13)


def test_no_advance_before_the_soak_or_while_a_gate_is_undecided() -> None:
    state = started()
    early = decide(PLAN, state, healthy(), T0 + timedelta(hours=47))
    assert not early.effects and early.state.stage == 1
    undecided = [result(ERROR, Verdict.INCONCLUSIVE), result(DATA_LOSS, Verdict.PASS)]
    late = decide(PLAN, state, undecided + [result(TICKETS, Verdict.PASS)], T0 + timedelta(hours=49))
    assert not late.effects and late.state.stage == 1
    above_target = [
        result(ERROR, Verdict.WARN),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    assert decide(PLAN, state, above_target, T0 + timedelta(hours=49)).state.stage == 1


def test_a_rollback_breach_must_last_for_its_for_duration() -> None:
    state = decide(PLAN, started(), healthy(), T0 + timedelta(hours=49)).state  # at 25%
    failing = [result(ERROR, Verdict.FAIL), result(DATA_LOSS, Verdict.PASS), result(TICKETS, Verdict.PASS)]
    first = T0 + timedelta(hours=50)
    seen = decide(PLAN, state, failing, first)
    assert seen.state.stage == 2 and not seen.effects and seen.state.breaches
    recovered = decide(PLAN, seen.state, healthy(), first + timedelta(minutes=3))
    assert recovered.state.breaches == ()
    again = decide(PLAN, recovered.state, failing, first + timedelta(minutes=4))
    held = decide(PLAN, again.state, failing, first + timedelta(minutes=9))
    assert (held.state.phase, held.state.stage, held.effects) == (Phase.ROLLED_BACK, 1, (SetRollout(1000),))
    assert "error_rate" in held.transitions[-1].reason and held.transitions[-1].actor == "controller"
    assert held.transitions[-1].evidence[0]["samples"] == 5000


def test_after_an_automatic_step_back_it_holds_until_a_person_resumes() -> None:
    state = decide(PLAN, started(), healthy(), T0 + timedelta(hours=49)).state
    failing = [result(ERROR, Verdict.FAIL), result(DATA_LOSS, Verdict.PASS), result(TICKETS, Verdict.PASS)]
    state = decide(PLAN, state, failing, T0 + timedelta(hours=50)).state
    state = decide(PLAN, state, failing, T0 + timedelta(hours=50, minutes=6)).state
    assert state.phase is Phase.ROLLED_BACK
    later = decide(PLAN, state, healthy(), T0 + timedelta(days=9))
    assert later.state.phase is Phase.ROLLED_BACK and later.state.stage == 1 and not later.effects
    resumed = act(PLAN, later.state, "resume", "dana", "fixed", T0 + timedelta(days=9))
    assert resumed.state.phase is Phase.RUNNING and resumed.state.entered_at == T0 + timedelta(days=9)


def test_a_disable_breach_pulls_the_kill_switch_even_when_paused() -> None:
    paused = act(PLAN, started(), "pause", "dana", "", T0 + timedelta(hours=1)).state
    critical = [
        result(ERROR, Verdict.CRITICAL),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    first = decide(PLAN, paused, critical, T0 + timedelta(hours=2))
    decision = decide(PLAN, first.state, critical, T0 + timedelta(hours=2, minutes=5))
    assert decision.state.phase is Phase.DISABLED and Kill() in decision.effects


def test_data_loss_goes_straight_to_zero() -> None:
    state = decide(PLAN, started(), healthy(), T0 + timedelta(hours=49)).state
    lost = [result(ERROR, Verdict.PASS), result(DATA_LOSS, Verdict.FAIL), result(TICKETS, Verdict.PASS)]
    decision = decide(PLAN, state, lost, T0 + timedelta(hours=50))
    assert (decision.state.phase, decision.state.stage, decision.effects) == (
        Phase.ROLLED_BACK,
        0,
        (SetRollout(0),),
    )


def test_sample_ratio_mismatch_pauses() -> None:
    alpha = PLAN.srm_alpha
    srm = Srm(treatment_users=900, control_users=9100, expected_share=0.25, p_value=1e-40, alpha=alpha)
    decision = decide(PLAN, started(), healthy(), T0 + timedelta(hours=1), srm)
    assert decision.state.phase is Phase.PAUSED and "sample-ratio mismatch" in decision.transitions[-1].reason
    assert not decide(
        PLAN, started(), healthy(), T0 + timedelta(hours=1), Srm(2490, 7510, 0.25, 0.6, alpha)
    ).transitions


def test_missing_telemetry_pauses_and_says_so() -> None:
    silent = Srm(130, 780, 0.1, 1e-9, PLAN.srm_alpha / 2, SrmCheck.SILENT)
    decision = decide(PLAN, started(), healthy(), T0 + timedelta(hours=1), silent)
    paused = decision.transitions[-1]
    assert decision.state.phase is Phase.PAUSED and paused.reason.startswith(
        "telemetry missing: 130 treatment vs 780 control users sent nothing but the flag's exposure"
    )
    assert paused.evidence[-1]["metric"] == "missing_telemetry"


def test_max_duration_with_on_timeout_advance() -> None:
    state = started()
    for hours in (49, 98):
        state = decide(PLAN, state, healthy(), T0 + timedelta(hours=hours)).state
    assert state.stage == 3
    undecided = [
        result(ERROR, Verdict.INCONCLUSIVE),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    assert decide(PLAN, state, undecided, T0 + timedelta(hours=98 + 50)).state.stage == 3
    timed_out = decide(PLAN, state, undecided, T0 + timedelta(hours=98 + 97))
    assert timed_out.state.phase is Phase.AWAITING_APPROVAL  # stage 4 still needs its approval
    assert "max_duration" in timed_out.transitions[-1].reason


@pytest.mark.parametrize(
    ("action", "phase"),
    [
        ("pause", Phase.COMPLETED),
        ("resume", Phase.RUNNING),
        ("rollback", Phase.PENDING),
        ("approve", Phase.PENDING),
    ],
)
def test_commands_that_do_not_fit_the_phase_are_conflicts(action: str, phase: Phase) -> None:
    with pytest.raises(Conflict):
        act(PLAN, RolloutState(phase=phase, stage=0 if phase is Phase.PENDING else 2), action, "dana", "", T0)


def test_advance_by_hand_needs_the_next_stages_sign_offs() -> None:
    state = act(PLAN, RolloutState(), "start", "dana", "", T0).state
    with pytest.raises(Conflict, match="Support team briefed"):
        act(PLAN, state, "advance", "dana", "", T0)
    with pytest.raises(InvalidInput, match="no stage ahead lists"):
        act(PLAN, state, "signoff", "dana", "", T0, "Coffee made")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"stages": []}, "stages"),
        (
            {"stages": [{"name": "a", "percentage": 50}, {"name": "b", "percentage": 20}]},
            "stages[1].percentage",
        ),
        ({"stages": [{"name": "a", "percentage": 10, "min_duration": "2 days"}]}, "stages[0].min_duration"),
        ({"gates": [{"metric": "latency"}]}, "gates[0].metric"),
        ({"gates": [{"metric": "api_latency_p95", "rollback": "> 1000"}]}, None),
        ({"gates": [{"metric": "error_rate", "rollback": "> 5"}]}, "gates[0].rollback"),
        (
            {"gates": [{"metric": "engagement", "compare": "control", "rollback": "< -10ms"}]},
            "gates[0].rollback",
        ),
        ({"flag": "Bad Key"}, "flag"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_plans_say_where(change: dict[str, Any], where: str | None) -> None:
    raw = {
        "name": "p",
        "flag": "ws",
        "environment": "production",
        "stages": [{"name": "a", "percentage": 10}],
        **change,
    }
    if where is None:
        Plan.parse(raw)  # a bare number on a latency is milliseconds: fine
        return
    with pytest.raises(InvalidInput) as err:
        Plan.parse(raw)
    assert err.value.where == where


def test_a_command_for_someone_names_the_token_and_keeps_the_person_beside_it() -> None:
    start = act(PLAN, RolloutState(), "start", "ci-bot", "", T0)
    signed = act(PLAN, start.state, "signoff", "ci-bot", "", T0, "Support team briefed", on_behalf_of="lee")
    assert signed.state.signoffs[0].by == "lee"  # the person who signed off
    assert [(t.actor, t.on_behalf_of) for t in signed.transitions] == [("ci-bot", "lee")] * len(
        signed.transitions
    )
    paused = act(PLAN, signed.state, "pause", "ci-bot", "", T0, on_behalf_of="sam")
    assert paused.transitions[-1].to_dict()["actor"] == "ci-bot"
    assert paused.transitions[-1].to_dict()["on_behalf_of"] == "sam"


def test_both_variants_breaching_pauses_for_the_environment_and_runs_on_when_it_recovers() -> None:
    shared = [
        GateResult(ERROR, Verdict.ENVIRONMENT, Measurement(0.02, 0.015, 0.03, 5000), "rollback"),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    state = started()
    seen = decide(PLAN, state, shared, T0 + timedelta(hours=20))
    assert seen.state.phase is Phase.RUNNING and not seen.transitions  # `for: 5m` holds for this too
    paused = decide(PLAN, seen.state, shared, T0 + timedelta(hours=20, minutes=6))
    assert (paused.state.phase, paused.state.stage, paused.effects) == (Phase.PAUSED, 1, ())
    (t,) = paused.transitions
    assert t.kind is TransitionKind.ENVIRONMENT_UNHEALTHY and "environment unhealthy" in t.reason
    still = decide(PLAN, paused.state, shared, T0 + timedelta(hours=21))
    assert still.state.phase is Phase.PAUSED and not still.transitions
    back = decide(PLAN, still.state, healthy(), T0 + timedelta(hours=22))
    assert (
        back.state.phase is Phase.RUNNING and back.transitions[0].kind is TransitionKind.ENVIRONMENT_HEALTHY
    )
    assert back.state.entered_at == state.entered_at  # the soak goes on
    # a person's pause is not the environment's: it waits for a person
    held = act(PLAN, back.state, "pause", "dana", "", T0 + timedelta(hours=23)).state
    assert decide(PLAN, held, healthy(), T0 + timedelta(hours=24)).state.phase is Phase.PAUSED


@pytest.mark.parametrize(
    ("action", "reason", "kind"),
    [
        ("approve", "ready for launch", TransitionKind.APPROVED),
        ("approve", "", TransitionKind.APPROVED),
        ("pause", "lunch", TransitionKind.PAUSED),
        ("abort", "", TransitionKind.ABORTED),
    ],
)
def test_transitions_say_what_they_did_whatever_the_reason(
    action: str, reason: str, kind: TransitionKind
) -> None:
    state = decide(PLAN, started(), healthy(), T0 + timedelta(hours=49)).state
    state = decide(PLAN, state, healthy(), T0 + timedelta(hours=98)).state
    state = decide(PLAN, state, healthy(), T0 + timedelta(hours=147)).state
    assert state.phase is Phase.AWAITING_APPROVAL
    decision = act(PLAN, state, action, "dana", reason, T0 + timedelta(hours=148))
    assert decision.transitions[0].kind is kind
    assert decision.transitions[0].to_dict()["kind"] == kind.value


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown action 'launch'"):
        act(PLAN, started(), "launch", "dana", "", T0)


UNDECIDED = [
    GateResult(
        ERROR,
        Verdict.INCONCLUSIVE,
        Measurement(0.0, 0.0, 0.004, 900, wait=lambda: {"samples": 5500, "seconds": 7200}),
    ),
    result(DATA_LOSS, Verdict.PASS),
    result(TICKETS, Verdict.INCONCLUSIVE),
]


def test_a_soak_that_ends_undecided_waits_for_data_says_what_is_missing_once_and_goes_on() -> None:
    state = started()
    assert decide(PLAN, state, UNDECIDED, T0 + timedelta(hours=47)).state.phase is Phase.RUNNING
    waiting = decide(PLAN, state, UNDECIDED, T0 + timedelta(hours=48))
    (t,) = waiting.transitions
    assert waiting.state.phase is Phase.WAITING_FOR_DATA and t.kind is TransitionKind.WAITING_FOR_DATA
    assert "without enough evidence" in t.reason and "error_rate needs about 5,500 more samples" in t.reason
    assert "2h at the current traffic" in t.reason
    again = decide(PLAN, waiting.state, UNDECIDED, T0 + timedelta(hours=49))
    assert not again.transitions and again.state.phase is Phase.WAITING_FOR_DATA  # told once
    failing = [
        result(ERROR, Verdict.CRITICAL),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    assert decide(PLAN, again.state, failing, T0 + timedelta(hours=50)).state.phase is Phase.WAITING_FOR_DATA
    advanced = decide(PLAN, again.state, healthy(), T0 + timedelta(hours=51))
    assert (advanced.state.phase, advanced.state.stage) == (Phase.RUNNING, 2)
    assert advanced.transitions[-1].kind is TransitionKind.ADVANCED


@pytest.mark.parametrize(
    ("policy", "phase", "stage"),
    [("wait", Phase.WAITING_FOR_DATA, 1), ("advance", Phase.RUNNING, 2), ("pause", Phase.PAUSED, 1)],
)
def test_on_inconclusive(policy: str, phase: Phase, stage: int) -> None:
    raw = {
        "name": "quiet",
        "flag": "workstation",
        "environment": "production",
        "stages": [{"name": "a", "percentage": 10, "min_duration": "1h"}, {"name": "b", "percentage": 50}],
        "gates": [{"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%"}],
        "on_inconclusive": policy,
    }
    plan = Plan.parse(raw)
    state = act(plan, RolloutState(), "start", "dana", "", T0).state
    undecided = [GateResult(plan.gates[0], Verdict.INCONCLUSIVE, Measurement(0.0, 0.0, 0.01, 50))]
    decision = decide(plan, state, undecided, T0 + timedelta(hours=1))
    assert (decision.state.phase, decision.state.stage) == (phase, stage)
    assert f"on_inconclusive: {policy}" in decision.transitions[-1].reason or policy == "wait"
    with pytest.raises(InvalidInput) as caught:
        Plan.parse({**raw, "on_inconclusive": "shrug"})
    assert caught.value.where == "on_inconclusive"


def test_a_plan_may_bucket_its_flag_by_an_attribute() -> None:
    raw = {
        "name": "accounts",
        "flag": "workstation",
        "environment": "production",
        "stages": [{"name": "s", "percentage": 10, "min_duration": "1h"}],
    }
    assert Plan.parse(raw).bucket_by is None  # the flag keeps its own
    assert Plan.parse({**raw, "bucket_by": "account_id"}).bucket_by == "account_id"
    assert Plan.parse({**raw, "bucket_by": "targetingKey"}).bucket_by == ""  # back to the targeting key
    with pytest.raises(InvalidInput) as bad:
        Plan.parse({**raw, "bucket_by": 7})
    assert bad.value.where == "bucket_by"


def test_a_soak_that_ends_with_a_target_missed_holds_and_says_so_once() -> None:
    missed = [
        GateResult(ERROR, Verdict.WARN, Measurement(0.0042, 0.003, 0.005, 9_000)),
        result(DATA_LOSS, Verdict.PASS),
        result(TICKETS, Verdict.PASS),
    ]
    state = started()
    assert not decide(PLAN, state, missed, T0 + timedelta(hours=47)).transitions  # still soaking
    held = decide(PLAN, state, missed, T0 + timedelta(hours=48))
    (t,) = held.transitions
    assert (held.state.phase, held.state.stage, t.kind) == (Phase.RUNNING, 1, TransitionKind.HELD)
    assert (
        "error_rate = 0.0042 misses < 0.1% (n = 9000)" in t.reason and "holding until it is met" in t.reason
    )
    assert not decide(PLAN, held.state, missed, T0 + timedelta(hours=49)).transitions  # told once
    advanced = decide(PLAN, held.state, healthy(), T0 + timedelta(hours=50))
    assert (advanced.state.stage, advanced.state.noted_hold) == (2, False)  # the next stage may tell again


def to_full() -> tuple[RolloutState, list[Transition]]:
    """The example plan's 100% stage, approved and entered at 147 h, and the transitions on the way."""
    state, transitions = started(), list[Transition]()
    for hours in (49, 98, 147):
        decision = decide(PLAN, state, healthy(), T0 + timedelta(hours=hours))
        state, transitions = decision.state, [*transitions, *decision.transitions]
    decision = act(PLAN, state, "approve", "dana", "go", T0 + timedelta(hours=147))
    assert (decision.state.phase, PLAN.percentage_bp(decision.state.stage)) == (Phase.RUNNING, 10_000)
    return decision.state, [*transitions, *decision.transitions]


def at_full() -> RolloutState:
    return to_full()[0]


def breaching(verdict: Verdict, gate: Gate = ERROR) -> list[GateResult]:
    line = "disable" if verdict is Verdict.CRITICAL else "rollback"
    breach = GateResult(gate, verdict, Measurement(0.02, 0.015, 0.03, 5000), line)
    return [breach if r.gate is gate else r for r in healthy()]


def sustained(state: RolloutState, results: list[GateResult], at: datetime) -> Any:
    return decide(PLAN, decide(PLAN, state, results, at).state, results, at + timedelta(minutes=6))


@pytest.mark.parametrize("verdict", [Verdict.FAIL, Verdict.CRITICAL])
def test_a_breach_at_100_percent_steps_back_to_compare_with_control_instead_of_acting(
    verdict: Verdict,
) -> None:
    """At 100% nobody is without the flag: an incident that lifts everyone's error rate looks like the flag's
    fault. The rollout goes back to the last stage with a control to tell which, neither rolling back nor
    pulling the kill switch on a breach nothing can attribute yet."""
    stepped = sustained(at_full(), breaching(verdict), T0 + timedelta(hours=150))
    assert (stepped.state.phase, stepped.state.stage) == (Phase.RUNNING, 3)
    assert stepped.effects == (SetRollout(5000),)  # half the users keep the feature, half are control
    (t,) = stepped.transitions
    assert t.kind is TransitionKind.STEPPED_BACK
    assert "where no control tells the flag from the environment" in t.reason
    assert "stepping back to stage 3 (General, 50%) to compare with control" in t.reason


def test_after_stepping_back_the_environment_pauses_and_the_rollout_returns_to_100_percent() -> None:
    stepped = sustained(at_full(), breaching(Verdict.FAIL), T0 + timedelta(hours=150)).state
    incident = breaching(Verdict.ENVIRONMENT)  # at 50% control shows the same: the environment's
    paused = sustained(stepped, incident, T0 + timedelta(hours=151))
    assert (
        paused.state.phase is Phase.PAUSED
        and paused.transitions[0].kind is TransitionKind.ENVIRONMENT_UNHEALTHY
    )
    state = decide(PLAN, paused.state, healthy(), T0 + timedelta(hours=153)).state
    assert state.phase is Phase.RUNNING
    back = decide(PLAN, state, healthy(), T0 + timedelta(hours=150 + 49))  # the stage runs its soak again
    assert (back.state.phase, back.state.stage, back.effects) == (Phase.RUNNING, 4, (SetRollout(10_000),))
    done = decide(PLAN, back.state, healthy(), T0 + timedelta(hours=150 + 49 + 7 * 24))
    assert done.state.phase is Phase.COMPLETED
    # the comparison blamed the environment: another incident at 100% steps back again
    again = sustained(back.state, breaching(Verdict.FAIL), T0 + timedelta(hours=230))
    assert (again.state.phase, again.state.stage) == (Phase.RUNNING, 3)
    assert again.transitions[0].kind is TransitionKind.STEPPED_BACK


def test_a_breach_against_control_after_stepping_back_rolls_back() -> None:
    stepped = sustained(at_full(), breaching(Verdict.FAIL), T0 + timedelta(hours=150)).state
    rolled = sustained(stepped, breaching(Verdict.FAIL), T0 + timedelta(hours=151))
    assert (rolled.state.phase, rolled.state.stage) == (Phase.ROLLED_BACK, 2)


def test_a_breach_back_at_100_percent_after_a_comparison_that_found_nothing_acts() -> None:
    """A breach that comes back only with everyone on the flag (a capacity limit, say) must not cycle
    between 50% and 100% for ever: when the comparison at 50% found nothing, the next breach acts."""
    stepped = sustained(at_full(), breaching(Verdict.FAIL), T0 + timedelta(hours=150)).state
    state = decide(PLAN, stepped, healthy(), T0 + timedelta(hours=150 + 49)).state
    assert PLAN.percentage_bp(state.stage) == 10_000
    again = sustained(state, breaching(Verdict.FAIL), T0 + timedelta(hours=220))
    assert (again.state.phase, again.state.stage) == (Phase.ROLLED_BACK, 3)
    assert again.transitions[0].reason.endswith(
        "breached again after stepping back to compare, where nothing was the environment's"
    )


def test_a_breach_control_cannot_explain_still_acts_at_100_percent() -> None:
    """Data loss goes straight back to 0% ("Immediate Rollback"), whoever else has it."""
    lost = sustained(at_full(), breaching(Verdict.FAIL, DATA_LOSS), T0 + timedelta(hours=150))
    assert (lost.state.phase, lost.state.stage) == (Phase.ROLLED_BACK, 0)


def test_a_person_s_pause_at_100_percent_is_kept_a_breach_then_rolls_back() -> None:
    paused = act(PLAN, at_full(), "pause", "dana", "looking", T0 + timedelta(hours=149)).state
    rolled = sustained(paused, breaching(Verdict.FAIL), T0 + timedelta(hours=150))
    assert (rolled.state.phase, rolled.state.stage) == (Phase.ROLLED_BACK, 3)


def test_reports_tell_a_step_back_to_compare_from_a_rollback() -> None:
    full, before = to_full()
    stepped = sustained(full, breaching(Verdict.FAIL), T0 + timedelta(hours=150))
    back = decide(PLAN, stepped.state, healthy(), T0 + timedelta(hours=150 + 49))
    transitions = [*before, *stepped.transitions, *back.transitions]
    visits = [(v.number, v.outcome) for v in stage_visits(PLAN, transitions)]
    assert visits[-3:] == [(4, "stepped back to compare"), (3, "advanced"), (4, "")]
    (incident,) = incidents_since(PLAN, transitions, T0)
    assert (incident.kind, incident.change) == ("stepped back to compare", StageChange(100.0, 50.0))

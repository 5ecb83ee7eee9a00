"""Rollout plans and the rollout state machine. Pure: `decide` and `act` take the time as an argument.

Stages run in order; stage 0 is "not started" (0%). A stage advances when its soak time is over and every
blocking gate passes; the next stage may wait for named sign-offs and a manual approval. Safety acts in
every phase: a sustained `rollback` breach steps back one stage (or to `rollback_to`), a `disable` breach
pulls the kill switch. After an automatic step back the rollout holds until a person resumes it.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rampup.core import sequential
from rampup.core.alerts import AlertRule
from rampup.core.bucketing import BUCKETS
from rampup.core.durations import format_duration, parse_duration
from rampup.core.flags import FLAG_KEY, parse_bucket_by, parse_rollout
from rampup.core.gates import Compare, Gate, GateResult, Verdict, environment_could_share
from rampup.errors import Conflict, InvalidInput

__all__ = [
    "Phase",
    "Action",
    "TransitionKind",
    "OnTimeout",
    "OnInconclusive",
    "Stage",
    "Hooks",
    "HOOK_COMMAND_NAME",
    "Plan",
    "Signoff",
    "Transition",
    "RolloutState",
    "SetRollout",
    "Kill",
    "Decision",
    "Srm",
    "SrmCheck",
    "SRM_ALPHA",
    "SRM_CHECKS",
    "sample_checks",
    "sample_ratio",
    "missing_telemetry",
    "decide",
    "act",
    "ACTIONS",
    "COMMANDS",
    "available_actions",
    "start_signed",
    "approve_all",
    "switched_off",
]


class Phase(StrEnum):
    PENDING = "pending"  # created, not started
    RUNNING = "running"  # the controller advances and rolls back by itself
    AWAITING_APPROVAL = "awaiting_approval"  # the next stage waits for sign-offs or an approval
    WAITING_FOR_DATA = "waiting_for_data"  # the soak is over, the gates are undecided: too little traffic yet
    PAUSED = "paused"  # held by a person or by a sample-ratio mismatch; safety still acts
    ROLLED_BACK = "rolled_back"  # stepped back by itself; holds until a person resumes
    DISABLED = "disabled"  # kill switch pulled
    COMPLETED = "completed"
    ABORTED = "aborted"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.DISABLED, Phase.COMPLETED, Phase.ABORTED)


class Action(StrEnum):
    """A person's command."""

    START = "start"
    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    DISABLE = "disable"
    APPROVE = "approve"
    SIGNOFF = "signoff"
    ABORT = "abort"


class TransitionKind(StrEnum):
    """What a transition did: announced as `rollout.<kind>`."""

    STARTED = "started"
    ADVANCED = "advanced"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    RESUMED = "resumed"
    DISABLED = "disabled"
    COMPLETED = "completed"
    ABORTED = "aborted"
    APPROVED = "approved"
    SIGNED_OFF = "signed_off"
    AWAITING_APPROVAL = "awaiting_approval"
    TIMED_OUT = "timed_out"  # max_duration reached; the plan says hold
    HELD = "held"  # the soak is over and a target is missed: holding until it is met or max_duration
    ENVIRONMENT_UNHEALTHY = "environment_unhealthy"  # both variants degraded: paused, not rolled back
    ENVIRONMENT_HEALTHY = "environment_healthy"  # and recovered: running again
    STEPPED_BACK = "stepped_back"  # a breach at 100%: back to the last stage with a control, to compare
    WAITING_FOR_DATA = "waiting_for_data"  # the soak is over without enough evidence
    NOTED = "noted"

    @classmethod
    def of(cls, from_phase: "Phase", to_phase: "Phase", from_stage: int, to_stage: int) -> "TransitionKind":
        """The kind a move between phases and stages is, when nothing more specific is known."""
        if from_phase is Phase.PENDING:
            return cls.STARTED
        if to_stage > from_stage:
            return cls.ADVANCED
        if to_phase is Phase.RUNNING and from_phase in (Phase.PAUSED, Phase.ROLLED_BACK):
            return cls.RESUMED
        by_phase = {
            Phase.ROLLED_BACK: cls.ROLLED_BACK,
            Phase.PAUSED: cls.PAUSED,
            Phase.DISABLED: cls.DISABLED,
            Phase.COMPLETED: cls.COMPLETED,
            Phase.ABORTED: cls.ABORTED,
            Phase.AWAITING_APPROVAL: cls.AWAITING_APPROVAL,
        }
        return (
            by_phase.get(to_phase, cls.NOTED)
            if to_phase is not from_phase or to_stage < from_stage
            else cls.NOTED
        )


class OnInconclusive(StrEnum):
    """What a stage does when its soak is over and its gates are still undecided."""

    WAIT = "wait"  # wait for data in `waiting_for_data`, saying how much is missing
    ADVANCE = "advance"  # advance anyway (the lines that guard still roll back)
    PAUSE = "pause"  # pause for a person


class OnTimeout(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    percentage_bp: int
    min_duration: timedelta
    max_duration: timedelta | None = None
    on_timeout: OnTimeout = OnTimeout.HOLD
    prerequisites: tuple[str, ...] = ()
    approval: bool = False

    @property
    def horizon_h(self) -> int:
        """How long, in hours, the stage's evidence is planned for (restarted windows spend α over it)."""
        return max(1, int((2 * self.min_duration + timedelta(hours=24)).total_seconds() // 3600))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "percentage": self.percentage_bp / 100,
            "min_duration_s": self.min_duration.total_seconds(),
            "max_duration_s": self.max_duration.total_seconds() if self.max_duration else None,
            "on_timeout": self.on_timeout.value,
            "prerequisites": list(self.prerequisites),
            "approval": self.approval,
        }


# A plan names a hook command; only the server's settings say what the name runs (no command line in a plan).
HOOK_COMMAND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Hooks:
    webhook: str | None = None  # POSTed the new percentage on every stage change
    command: str | None = None  # the name of a server-defined command, run with RAMPUP_ROLLOUT etc.


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    flag: str
    environment: str
    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...]
    notify: tuple[str, ...] = ()
    hooks: Hooks = Hooks()
    srm: bool = True  # pause on a sample-ratio mismatch
    alerts: tuple[AlertRule, ...] = ()  # watched while the rollout runs; by default on the treatment
    bucket_by: str | None = None  # set on the flag as the rollout starts (None: the flag's own)
    on_inconclusive: OnInconclusive = OnInconclusive.WAIT  # a stage whose soak ends undecided

    @classmethod
    def parse(cls, raw: Any) -> "Plan":
        if not isinstance(raw, Mapping):
            raise InvalidInput(
                "a plan is a mapping with name, flag, environment, stages and gates", where="plan"
            )
        known = {
            "name",
            "flag",
            "environment",
            "stages",
            "gates",
            "notify",
            "hooks",
            "srm",
            "alerts",
            "bucket_by",
            "on_inconclusive",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInput(
                f"unknown field {unknown[0]!r}; a plan has " + ", ".join(sorted(known)), where=unknown[0]
            )
        name = _text(raw.get("name"), "name")
        flag = raw.get("flag")
        if not isinstance(flag, str) or not FLAG_KEY.match(flag):
            raise InvalidInput(f"flag must be a flag key, got {flag!r}", where="flag")
        environment = _text(raw.get("environment"), "environment")
        stages = _stages(raw.get("stages"))
        gates = _gates(raw.get("gates", []), len(stages))
        notify = raw.get("notify", [])
        if not isinstance(notify, list) or not all(isinstance(n, str) and n for n in notify):
            raise InvalidInput("notify is a list of channel names", where="notify")
        hooks = _hooks(raw.get("hooks") or {})
        srm = raw.get("srm", True)
        if not isinstance(srm, bool):
            raise InvalidInput("srm is true or false", where="srm")
        alerts_raw = raw.get("alerts", [])
        if not isinstance(alerts_raw, list) or not all(isinstance(a, Mapping) for a in alerts_raw):
            raise InvalidInput("alerts is a list of alert rules", where="alerts")
        defaults = {"environment": environment, "flag": flag, "channels": notify}
        alerts = tuple(AlertRule.parse(a, defaults, f"alerts[{i}]") for i, a in enumerate(alerts_raw))
        return cls(
            name,
            flag,
            environment,
            stages,
            gates,
            tuple(notify),
            hooks,
            srm,
            alerts,
            parse_bucket_by(raw["bucket_by"]) if "bucket_by" in raw else None,
            _on_inconclusive(raw.get("on_inconclusive", "wait")),
        )

    def percentage_bp(self, stage: int) -> int:
        return 0 if stage == 0 else self.stages[stage - 1].percentage_bp

    @property
    def srm_alpha(self) -> float:
        """Each stage's level for the sample-ratio check: SRM_ALPHA shared by the stages it can judge (those
        with a control), so false pauses stay under SRM_ALPHA over the plan (a union bound; one running test
        over the stages would not be valid, as a user's variant in one stage decides it in the next)."""
        checked = sum(0 < s.percentage_bp < BUCKETS for s in self.stages)
        return SRM_ALPHA / max(checked, 1)


def _stages(stages_raw: Any) -> tuple[Stage, ...]:
    if not isinstance(stages_raw, list) or not stages_raw:
        raise InvalidInput("a plan needs at least one stage", where="stages")
    stages = tuple(_stage(s, f"stages[{i}]") for i, s in enumerate(stages_raw))
    for i in range(1, len(stages)):
        if stages[i].percentage_bp <= stages[i - 1].percentage_bp:
            raise InvalidInput(
                f"stage percentages must rise: {stages[i].percentage_bp / 100:g}% follows "
                f"{stages[i - 1].percentage_bp / 100:g}%",
                where=f"stages[{i}].percentage",
            )
    return stages


def _gates(gates_raw: Any, stage_count: int) -> tuple[Gate, ...]:
    """The plan's gates, one Gate per scale each is judged on (its own lines, lines against control)."""
    if not isinstance(gates_raw, list):
        raise InvalidInput("gates is a list", where="gates")
    gates: tuple[Gate, ...] = ()
    for i, g in enumerate(gates_raw):
        lines = Gate.lines(g, f"gates[{i}]")
        if any(line.rollback_to is not None and line.rollback_to > stage_count for line in lines):
            raise InvalidInput(
                f"rollback_to {g['rollback_to']}: the plan has {stage_count} stages",
                where=f"gates[{i}].rollback_to",
            )
        gates += lines
    return gates


def _hooks(hooks: Any) -> Hooks:
    if not isinstance(hooks, Mapping) or set(hooks) - {"webhook", "command"}:
        raise InvalidInput("hooks has 'webhook' (a URL) and/or 'command'", where="hooks")
    for key in hooks:
        if not isinstance(hooks[key], str) or not hooks[key]:
            raise InvalidInput(f"hooks.{key} is a string", where=f"hooks.{key}")
    webhook = hooks.get("webhook")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise InvalidInput("hooks.webhook is an http(s) URL", where="hooks.webhook")
    command = hooks.get("command")
    if command is not None and not HOOK_COMMAND_NAME.fullmatch(command):
        raise InvalidInput(
            "hooks.command is the name of a command defined on the server (RAMPUP_HOOK_COMMANDS), "
            "such as deploy-env: letters, digits, '.', '_' and '-'",
            where="hooks.command",
        )
    return Hooks(webhook, command)


def _on_inconclusive(raw: Any) -> OnInconclusive:
    try:
        return OnInconclusive(raw)
    except ValueError:
        raise InvalidInput("on_inconclusive is wait, advance or pause", where="on_inconclusive") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInput(f"{where} must be a non-empty string", where=where)
    return value


def _stage(raw: Any, where: str) -> Stage:
    if not isinstance(raw, Mapping):
        raise InvalidInput("a stage is a mapping with name, percentage, min_duration", where=where)
    known = {"name", "percentage", "min_duration", "max_duration", "on_timeout", "prerequisites", "approval"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(
            f"unknown stage field {unknown[0]!r}; a stage has " + ", ".join(sorted(known)),
            where=f"{where}.{unknown[0]}",
        )
    name = _text(raw.get("name"), f"{where}.name")
    if "percentage" not in raw:
        raise InvalidInput("a stage needs 'percentage'", where=f"{where}.percentage")
    percentage = parse_rollout(raw["percentage"], f"{where}.percentage")
    if percentage == 0:
        raise InvalidInput(
            "a stage's percentage is above 0 (stage 0, 'not started', is implicit)",
            where=f"{where}.percentage",
        )
    soak = (
        parse_duration(raw["min_duration"], f"{where}.min_duration")
        if "min_duration" in raw
        else timedelta(0)
    )
    limit = parse_duration(raw["max_duration"], f"{where}.max_duration") if "max_duration" in raw else None
    if limit is not None and limit < soak:
        raise InvalidInput("max_duration is shorter than min_duration", where=f"{where}.max_duration")
    try:
        on_timeout = OnTimeout(raw.get("on_timeout", "hold"))
    except ValueError:
        raise InvalidInput("on_timeout is hold, advance or rollback", where=f"{where}.on_timeout") from None
    prerequisites = raw.get("prerequisites", [])
    if not isinstance(prerequisites, list) or not all(
        isinstance(p, str) and p.strip() for p in prerequisites
    ):
        raise InvalidInput(
            "prerequisites is a list of sentences a person signs off", where=f"{where}.prerequisites"
        )
    approval = raw.get("approval", False)
    if approval not in (True, False, "required", "none"):
        raise InvalidInput("approval is 'required' (or true/false)", where=f"{where}.approval")
    return Stage(
        name, percentage, soak, limit, on_timeout, tuple(prerequisites), approval in (True, "required")
    )


@dataclass(frozen=True, slots=True)
class Signoff:
    stage: int
    prerequisite: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Transition:
    at: datetime
    from_phase: Phase
    to_phase: Phase
    from_stage: int
    to_stage: int
    actor: str  # the token's name, or "controller"
    reason: str
    evidence: tuple[dict[str, Any], ...] = ()
    on_behalf_of: str | None = None  # whom the token says it acted for (a body's "by"), never instead of it
    kind: TransitionKind = TransitionKind.NOTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": self.at,
            "from": self.from_phase.value,
            "to": self.to_phase.value,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "actor": self.actor,
            "on_behalf_of": self.on_behalf_of,
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class RolloutState:
    phase: Phase = Phase.PENDING
    stage: int = 0
    entered_at: datetime | None = None  # when the current stage's percentage took effect
    started_at: datetime | None = None
    breaches: tuple[tuple[int, datetime], ...] = ()  # gate index → since when it has been breached
    signoffs: tuple[Signoff, ...] = ()
    approvals: tuple[int, ...] = ()  # stage numbers approved
    noted_timeout: bool = False
    noted_hold: bool = False  # the missed target of this stage has been told
    environment_hold: bool = False  # paused by the controller because both variants degraded
    # stepped back from 100% to compare, and the comparison has not blamed the environment (yet): a breach at
    # 100% then acts, where after an environment hold it would step back again
    stepped_back: bool = False

    def signed(self, stage: int) -> set[str]:
        return {s.prerequisite for s in self.signoffs if s.stage == stage}

    def missing(self, plan: Plan, stage: int) -> list[str]:
        """What stage `stage` still waits for before it may start."""
        if stage > len(plan.stages):
            return []
        spec = plan.stages[stage - 1]
        missing = [f"sign-off: {p}" for p in spec.prerequisites if p not in self.signed(stage)]
        if spec.approval and stage not in self.approvals:
            missing.append("approval")
        return missing


@dataclass(frozen=True, slots=True)
class SetRollout:
    percentage_bp: int


@dataclass(frozen=True, slots=True)
class Kill:
    """Pull the flag's kill switch."""


@dataclass(frozen=True, slots=True)
class Decision:
    state: RolloutState
    effects: tuple[SetRollout | Kill, ...] = ()
    transitions: tuple[Transition, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.effects or self.transitions)


SRM_ALPHA = 0.003  # false pauses over a whole plan, shared by its stages with a control (Plan.srm_alpha)
# The mixture over the share of silent users in the treatment: wide, as a treatment that loses its telemetry makes
# most silent users its own where few users are silent at all (sd ≈ √(s(1−s)/100): 3 points at a 10% share).
SILENT_PRIOR_WEIGHT = 100.0
SRM_CHECKS = 2  # the ratio of users and the missing telemetry share each stage's level (`Plan.srm_alpha`)


class SrmCheck(StrEnum):
    """What a sample-ratio check counts."""

    RATIO = "sample_ratio"  # the users seen per variant, against the share the percentage promises
    # the users the flag served (exposure events) who sent nothing else, per variant, against each variant's share
    # of the served: the treatment's telemetry lost on the way while its exposures arrive
    SILENT = "missing_telemetry"


@dataclass(frozen=True, slots=True)
class Srm:
    """A sample-ratio check: users per variant against the share they should have. The p-value is anytime-valid
    (from a mixture martingale), so checking it every tick keeps its level, `alpha`."""

    treatment_users: int
    control_users: int
    expected_share: float
    p_value: float
    alpha: float
    check: SrmCheck = SrmCheck.RATIO

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.alpha

    @property
    def reason(self) -> str:
        verdict = f"(anytime-valid p = {self.p_value:.2g} < {self.alpha:.2g}); the numbers cannot be trusted"
        if self.check is SrmCheck.SILENT:
            return (
                f"telemetry missing: {self.treatment_users} treatment vs {self.control_users} control users sent "
                f"nothing but the flag's exposure, expected a {self.expected_share:.2%} share {verdict}"
            )
        return (
            f"sample-ratio mismatch: {self.treatment_users} treatment vs {self.control_users} control users, "
            f"expected a {self.expected_share:.2%} share {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": str(self.check),
            "treatment_users": self.treatment_users,
            "control_users": self.control_users,
            "expected_share": self.expected_share,
            "p_value": self.p_value,
            "alpha": self.alpha,
        }


def sample_ratio(treatment: int, control: int, share: float, alpha: float) -> Srm | None:
    """Users per variant against the rollout's share, at level `alpha`. Users, not requests: assignment is per
    user, and a few heavy users make request counts swing far more than chance among users would."""
    if not 0 < share < 1 or treatment + control == 0:
        return None
    evidence = sequential.share_evidence(treatment + control, treatment, share)
    return Srm(treatment, control, share, min(1.0, math.exp(-evidence)), alpha)


def missing_telemetry(silent: tuple[int, int], exposed: tuple[int, int], alpha: float) -> Srm | None:
    """Silent users (served the flag, nothing else arrived) per variant, (treatment, control), against the
    treatment's share of the users served (`exposed`), at level `alpha`. Far more sensitive to a treatment
    whose telemetry is lost than the ratio of users: chance enters only through who is silent, not through who
    was assigned. None while no user is silent (a zero count proves nothing) or a variant served nobody."""
    if not all(exposed) or not sum(silent):
        return None
    share = exposed[0] / sum(exposed)
    evidence = sequential.share_evidence(sum(silent), silent[0], share, SILENT_PRIOR_WEIGHT)
    return Srm(*silent, share, min(1.0, math.exp(-evidence)), alpha, SrmCheck.SILENT)


def sample_checks(
    users: tuple[int, int], silent: tuple[int, int], exposed: tuple[int, int], share: float, alpha: float
) -> Srm | None:
    """Both checks, each at its share of the stage's level (so together they keep it): the first that finds a
    mismatch, else the ratio's (what a status shows)."""
    ratio = sample_ratio(*users, share, alpha / SRM_CHECKS)
    if ratio is None or ratio.mismatch:
        return ratio
    lost = missing_telemetry(silent, exposed, alpha / SRM_CHECKS)
    return lost if lost is not None and lost.mismatch else ratio


@dataclass
class _Builder:
    plan: Plan
    state: RolloutState
    now: datetime
    actor: str
    on_behalf_of: str | None = None
    effects: list[SetRollout | Kill] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def move(
        self,
        phase: Phase,
        stage: int,
        reason: str,
        evidence: Sequence[dict[str, Any]] = (),
        kind: TransitionKind | None = None,
    ) -> None:
        before = self.state
        changes: dict[str, Any] = {"phase": phase, "stage": stage, "environment_hold": False}
        if stage != before.stage:
            self.effects.append(SetRollout(self.plan.percentage_bp(stage)))
            changes.update(entered_at=self.now, breaches=(), noted_timeout=False, noted_hold=False)
        self.state = replace(before, **changes)
        self.note(
            reason, evidence, kind or TransitionKind.of(before.phase, phase, before.stage, stage), before
        )

    def note(
        self,
        reason: str,
        evidence: Sequence[dict[str, Any]],
        kind: TransitionKind,
        before: RolloutState | None = None,
    ) -> None:
        """Record a transition from `before` (by default: the state as it was) to the state now."""
        was = before or self.state
        self.transitions.append(
            Transition(
                self.now,
                was.phase,
                self.state.phase,
                was.stage,
                self.state.stage,
                self.actor,
                reason,
                tuple(evidence),
                self.on_behalf_of,
                kind,
            )
        )

    def advance_or_wait(self, reason: str, evidence: Sequence[dict[str, Any]] = ()) -> None:
        """Go to the next stage, or wait for what it needs, or complete after the last."""
        nxt = self.state.stage + 1
        if nxt > len(self.plan.stages):
            self.move(Phase.COMPLETED, self.state.stage, reason, evidence)
            return
        missing = self.state.missing(self.plan, nxt)
        if missing:
            if self.state.phase is not Phase.AWAITING_APPROVAL:
                waits = f"stage {nxt} ({self.plan.stages[nxt - 1].name}) waits for " + ", ".join(missing)
                self.move(
                    Phase.AWAITING_APPROVAL,
                    self.state.stage,
                    f"{reason}; {waits}" if reason else waits,
                    evidence,
                )
            return
        self.move(Phase.RUNNING, nxt, reason, evidence)

    def decision(self) -> Decision:
        return Decision(self.state, tuple(self.effects), tuple(self.transitions))


def decide(
    plan: Plan, state: RolloutState, results: Sequence[GateResult], now: datetime, srm: Srm | None = None
) -> Decision:
    """One controller tick: safety first, in every live phase; then, when running, advance or time out."""
    b = _Builder(plan, state, now, "controller")
    if state.phase.is_terminal or state.phase is Phase.PENDING or state.stage == 0:
        return b.decision()
    evidence = _Evidence(results)
    breaches = _breach_clocks(state, results, now)
    b.state = replace(state, breaches=breaches)
    since = dict(breaches)
    sustained = [r for i, r in enumerate(results) if i in since and now - since[i] >= r.gate.sustain]
    if _safety(b, [r for r in sustained if r.verdict in (Verdict.FAIL, Verdict.CRITICAL)], evidence):
        return b.decision()
    if _environment(b, [r for r in sustained if r.verdict is Verdict.ENVIRONMENT], results, evidence):
        return b.decision()
    if srm is not None and srm.mismatch and plan.srm and state.phase in _WATCHED:
        b.move(Phase.PAUSED, state.stage, srm.reason, [*evidence, srm.to_dict()])
        return b.decision()
    if state.phase in _WATCHED:
        _progress(b, results, evidence)
    return b.decision()


_WATCHED = (Phase.RUNNING, Phase.WAITING_FOR_DATA)  # the controller advances, and pauses for SRM or incidents


def _safety(b: _Builder, breached: Sequence[GateResult], evidence: Sequence[dict[str, Any]]) -> bool:
    """Sustained breaches: disable on a `disable` line, else step back (one stage, or to `rollback_to`). With
    no control to tell the flag from the environment, step back to compare first (`_compare_stage`)."""
    stage = b.state.stage
    compare_at = _compare_stage(b.plan, b.state, breached)
    if compare_at:
        r = breached[0]
        spec = b.plan.stages[compare_at - 1]
        b.state = replace(b.state, stepped_back=True)
        b.move(
            Phase.RUNNING,
            compare_at,
            f"{_breach_reason(r, r.breached or 'rollback')} at {b.plan.percentage_bp(stage) / 100:g}%, where "
            "no control tells the flag from the environment: stepping back to stage "
            f"{compare_at} ({spec.name}, {spec.percentage_bp / 100:g}%) to compare with control",
            evidence,
            TransitionKind.STEPPED_BACK,
        )
        return True
    again = (
        "; breached again after stepping back to compare, where nothing was the environment's"
        if _uncontrolled(b.plan, b.state)
        else ""
    )
    critical = [r for r in breached if r.verdict is Verdict.CRITICAL]
    if critical:
        b.effects.append(Kill())
        b.move(Phase.DISABLED, stage, _breach_reason(critical[0], "disable") + again, evidence)
        return True
    if breached:
        to_stages = [r.gate.rollback_to if r.gate.rollback_to is not None else stage - 1 for r in breached]
        worst = breached[to_stages.index(min(to_stages))]
        b.move(Phase.ROLLED_BACK, max(0, min(to_stages)), _breach_reason(worst, "rollback") + again, evidence)
        return True
    return False


def _uncontrolled(plan: Plan, state: RolloutState) -> bool:
    """The stage has no control group (100%), and stepping back to compare found nothing to blame on the
    environment."""
    return state.stepped_back and plan.percentage_bp(state.stage) >= BUCKETS


def _compare_stage(plan: Plan, state: RolloutState, breached: Sequence[GateResult]) -> int | None:
    """Where to step back to when a breach at 100% may be the environment's: an incident lifts everyone's
    error rate, and with everyone on the flag nothing shows it is not the flag. The last stage with a control
    can tell (a shared breach is `environment` there, a real one still rolls back), so the rollout goes back
    to it; a breach there runs the rollback matrix, and passing it returns to 100% as the plan goes. Again
    only if that comparison blamed the environment: a flag that fails only with everyone on it (a capacity
    limit) looks fine at 50%, and must not go back and forth."""
    if (
        not breached
        or state.stepped_back
        or state.phase not in _WATCHED
        or plan.percentage_bp(state.stage) < BUCKETS
        or not all(environment_could_share(r.gate, r.breached) for r in breached)
    ):
        return None
    with_control = [n for n in range(1, state.stage) if 0 < plan.percentage_bp(n) < BUCKETS]
    return with_control[-1] if with_control else None


def _environment(
    b: _Builder,
    shared: Sequence[GateResult],
    results: Sequence[GateResult],
    evidence: Sequence[dict[str, Any]],
) -> bool:
    """Both variants breach a line together: the environment is unhealthy, not the flag. Pause and say so;
    run on by itself once no line is breached in both."""
    state = b.state
    if shared and state.phase in _WATCHED:
        r = shared[0]
        b.move(
            Phase.PAUSED,
            state.stage,
            f"environment unhealthy: {_breach_reason(r, r.breached or 'rollback')} in both variants, "
            "the treatment no worse than control; pausing, not rolling back",
            evidence,
            TransitionKind.ENVIRONMENT_UNHEALTHY,
        )
        b.state = replace(b.state, environment_hold=True, stepped_back=False)
        return True
    if (
        state.phase is Phase.PAUSED
        and state.environment_hold
        and not any(r.verdict is Verdict.ENVIRONMENT for r in results)
    ):
        b.move(
            Phase.RUNNING,
            state.stage,
            "environment healthy again: no line is breached in both variants; running on",
            evidence,
            TransitionKind.ENVIRONMENT_HEALTHY,
        )
        return True
    return False


def _progress(b: _Builder, results: Sequence[GateResult], evidence: Sequence[dict[str, Any]]) -> None:
    """Running: advance when the soak is over and every blocking gate passes; else mind max_duration."""
    plan, state, now = b.plan, b.state, b.now
    spec = plan.stages[state.stage - 1]
    elapsed = now - (state.entered_at or now)
    ready = elapsed >= spec.min_duration and all(
        r.verdict is Verdict.PASS for r in results if _blocks(r.gate, spec.percentage_bp)
    )
    if ready:
        label = "all gates pass" if results else "no gates"
        b.advance_or_wait(
            f"stage {state.stage} ({spec.name}) soaked {format_duration(elapsed, 'compact')}, {label}",
            evidence,
        )
    elif spec.max_duration is not None and elapsed >= spec.max_duration:
        pending = [
            r.gate.metric
            for r in results
            if _blocks(r.gate, spec.percentage_bp) and r.verdict is not Verdict.PASS
        ]
        reason = (
            f"stage {state.stage} ({spec.name}) reached max_duration {format_duration(spec.max_duration, 'compact')} "
            f"with {', '.join(pending) or 'gates'} undecided"
        )
        match spec.on_timeout:
            case OnTimeout.ADVANCE:
                b.advance_or_wait(reason + "; advancing as the plan says", evidence)
            case OnTimeout.ROLLBACK:
                b.move(
                    Phase.ROLLED_BACK, state.stage - 1, reason + "; rolling back as the plan says", evidence
                )
            case OnTimeout.HOLD if not state.noted_timeout:
                b.state = replace(b.state, noted_timeout=True)
                b.note(reason + "; holding", evidence, TransitionKind.TIMED_OUT)
    elif elapsed >= spec.min_duration and state.phase is Phase.RUNNING:
        _soaked(b, results, evidence, elapsed)


class _Evidence(Sequence[dict[str, Any]]):
    """The gate results as recorded with a transition; rendered only when a transition happens."""

    def __init__(self, results: Sequence[GateResult]) -> None:
        self._results = results
        self._rendered: list[dict[str, Any]] | None = None

    def _items(self) -> list[dict[str, Any]]:
        if self._rendered is None:
            self._rendered = [r.to_dict() for r in self._results]
        return self._rendered

    def __getitem__(self, i: Any) -> Any:
        return self._items()[i]

    def __len__(self) -> int:
        return len(self._results)


def _soaked(
    b: _Builder, results: Sequence[GateResult], evidence: Sequence[dict[str, Any]], elapsed: timedelta
) -> None:
    """The soak is over and the stage cannot advance yet: say why, once — short of data, or a target missed."""
    state = b.state
    spec = b.plan.stages[state.stage - 1]
    if _undecided(results, spec):
        _inconclusive(b, results, evidence, elapsed)
        return
    missed = [r for r in results if _blocks(r.gate, spec.percentage_bp) and r.verdict is Verdict.WARN]
    if missed and not state.noted_hold:
        b.state = replace(state, noted_hold=True)
        until = (
            f"max_duration {format_duration(spec.max_duration, 'compact')}"
            if spec.max_duration
            else "a change"
        )
        b.note(
            f"stage {state.stage} ({spec.name}) soaked {format_duration(elapsed, 'compact')}, "
            + "; ".join(_missed_reason(r) for r in missed)
            + f"; holding until it is met or {until}",
            evidence,
            TransitionKind.HELD,
        )


def _missed_reason(r: GateResult) -> str:
    m = r.measurement
    shown = f"{m.value:.4g}" if m.value is not None else "?"
    target = r.gate.target.text if r.gate.target else "its target"
    return f"{r.gate.metric} = {shown} misses {target} (n = {m.samples})"


def _undecided(results: Sequence[GateResult], spec: Stage) -> bool:
    """Whether what keeps the stage is only too little data: every blocking gate passes or is undecided."""
    blocking = [r.verdict for r in results if _blocks(r.gate, spec.percentage_bp)]
    return Verdict.INCONCLUSIVE in blocking and set(blocking) <= {Verdict.PASS, Verdict.INCONCLUSIVE}


def _inconclusive(
    b: _Builder, results: Sequence[GateResult], evidence: Sequence[dict[str, Any]], elapsed: timedelta
) -> None:
    """The soak is over without enough evidence: say what is missing and how long it should take, once,
    then do what the plan says."""
    state, plan = b.state, b.plan
    spec = plan.stages[state.stage - 1]
    missing = [
        _missing(r)
        for r in results
        if _blocks(r.gate, spec.percentage_bp) and r.verdict is Verdict.INCONCLUSIVE
    ]
    reason = (
        f"stage {state.stage} ({spec.name}) soaked {format_duration(elapsed, 'compact')} without enough evidence: "
        + "; ".join(missing)
    )
    match plan.on_inconclusive:
        case OnInconclusive.WAIT:
            b.move(
                Phase.WAITING_FOR_DATA,
                state.stage,
                reason + "; waiting for data",
                evidence,
                TransitionKind.WAITING_FOR_DATA,
            )
        case OnInconclusive.ADVANCE:
            b.advance_or_wait(reason + "; advancing as the plan says (on_inconclusive: advance)", evidence)
        case OnInconclusive.PAUSE:
            b.move(
                Phase.PAUSED,
                state.stage,
                reason + "; paused as the plan says (on_inconclusive: pause)",
                evidence,
                TransitionKind.WAITING_FOR_DATA,
            )


def _missing(r: GateResult) -> str:
    needs = r.measurement.needs
    if not needs:
        return f"{r.gate.metric} undecided (n = {r.measurement.samples})"
    seconds = needs.get("seconds", math.inf)
    eta = (
        f", about {format_duration(timedelta(seconds=seconds), 'compact')} at the current traffic"
        if math.isfinite(seconds)
        else ""
    )
    return f"{r.gate.metric} needs about {needs['samples']:,.0f} more samples{eta}"


def _blocks(gate: Gate, percentage_bp: int) -> bool:
    """Whether a gate must pass before the stage advances. At 100% there is no control group to compare."""
    return gate.blocks_advance and not (gate.compare is Compare.CONTROL and percentage_bp >= BUCKETS)


def _breach_clocks(
    state: RolloutState, results: Sequence[GateResult], now: datetime
) -> tuple[tuple[int, datetime], ...]:
    since = dict(state.breaches)
    acting = (Verdict.FAIL, Verdict.CRITICAL, Verdict.ENVIRONMENT)
    return tuple((i, since.get(i, now)) for i, r in enumerate(results) if r.verdict in acting)


def _breach_reason(r: GateResult, kind: str) -> str:
    m = r.measurement
    threshold = r.gate.disable if kind == "disable" else r.gate.rollback
    shown = f"{m.value:.4g}" if m.value is not None else "?"
    lower, upper = m.bounds()
    bounds = f" [{lower:.4g}, {upper:.4g}]" if lower is not None and upper is not None else ""
    limit = threshold.text if threshold else "any"
    held = f" for {format_duration(r.gate.sustain, 'compact')}" if r.gate.sustain else ""
    return f"{r.gate.metric} = {shown}{bounds} breached {kind} {limit}{held} (n = {m.samples})"


ACTIONS = tuple(a.value for a in Action)


def act(
    plan: Plan,
    state: RolloutState,
    action: Action | str,
    actor: str,
    reason: str,
    now: datetime,
    prerequisite: str | None = None,
    on_behalf_of: str | None = None,
) -> Decision:
    """A person's command, given with a token (`actor`, its name) maybe for someone (`on_behalf_of`), who is
    then the one who signs off. Raises Conflict when the rollout's phase does not allow it."""
    try:
        action = Action(action)
    except ValueError:
        raise InvalidInput(
            f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}", where="action"
        ) from None
    b = _Builder(plan, state, now, actor, on_behalf_of)
    phase = state.phase
    if phase.is_terminal:
        raise Conflict(f"the rollout is {phase.value}; start a new one")
    live = (Phase.RUNNING, Phase.WAITING_FOR_DATA, Phase.AWAITING_APPROVAL, Phase.PAUSED, Phase.ROLLED_BACK)
    match action:
        case Action.START if phase is Phase.PENDING:
            b.state = replace(state, started_at=now, entered_at=now)
            b.effects.append(SetRollout(0))
            b.advance_or_wait(reason or "started")
        case Action.SIGNOFF:
            stage = _stage_of(plan, prerequisite, state)
            b.state = replace(
                state,
                signoffs=(*state.signoffs, Signoff(stage, prerequisite or "", on_behalf_of or actor, now)),
            )
            b.note(f"signed off '{prerequisite}' for stage {stage}", (), TransitionKind.SIGNED_OFF)
            if phase is Phase.AWAITING_APPROVAL and not b.state.missing(plan, state.stage + 1):
                b.advance_or_wait(f"stage {state.stage + 1} is signed off")
        case Action.APPROVE if phase in live:
            nxt = state.stage + 1
            if nxt > len(plan.stages) or not plan.stages[nxt - 1].approval:
                raise Conflict(f"stage {nxt} does not ask for an approval")
            b.state = replace(state, approvals=(*state.approvals, nxt))
            b.note(reason or f"approved stage {nxt}", (), TransitionKind.APPROVED)
            if phase is Phase.AWAITING_APPROVAL and not b.state.missing(plan, nxt):
                b.advance_or_wait(f"stage {nxt} approved")
        case Action.ADVANCE if phase in live:
            nxt = state.stage + 1
            if nxt > len(plan.stages):
                b.move(Phase.COMPLETED, state.stage, reason or "completed by hand")
            elif missing := state.missing(plan, nxt):
                raise Conflict(f"stage {nxt} still waits for " + ", ".join(missing))
            else:
                b.move(Phase.RUNNING, nxt, reason or "advanced by hand")
        case Action.PAUSE if phase in (Phase.RUNNING, Phase.WAITING_FOR_DATA, Phase.AWAITING_APPROVAL):
            b.move(Phase.PAUSED, state.stage, reason or "paused")
        case Action.RESUME if phase in (Phase.PAUSED, Phase.ROLLED_BACK):
            b.state = replace(state, entered_at=now, breaches=(), noted_timeout=False, noted_hold=False)
            b.move(Phase.RUNNING, state.stage, reason or "resumed")
        case Action.ROLLBACK if phase in live and state.stage > 0:
            b.move(Phase.ROLLED_BACK, state.stage - 1, reason or "rolled back by hand")
        case Action.DISABLE if phase in live:
            b.effects.append(Kill())
            b.move(Phase.DISABLED, state.stage, reason or "disabled by hand")
        case Action.ABORT if phase in (*live, Phase.PENDING):
            b.move(Phase.ABORTED, 0, reason or "aborted")
        case _:
            raise Conflict(f"cannot {action.value} a rollout that is {phase.value} at stage {state.stage}")
    return b.decision()


def switched_off(plan: Plan, state: RolloutState, now: datetime, reason: str) -> Decision:
    """The flag's kill switch was pulled under a live rollout (by someone, not by the rollout): the rollout ends
    as `disable` would end it, and no later stage, approval or abort turns the flag back on. The flag is off
    already, so there is no effect. A pending rollout is left as it is: its start is what gets refused."""
    b = _Builder(plan, state, now, "controller")
    if state.phase is not Phase.PENDING and not state.phase.is_terminal:
        b.move(Phase.DISABLED, state.stage, reason, kind=TransitionKind.DISABLED)
    return b.decision()


COMMANDS = tuple(
    a.value
    for a in (
        Action.APPROVE,
        Action.ADVANCE,
        Action.PAUSE,
        Action.RESUME,
        Action.ROLLBACK,
        Action.ABORT,
        Action.DISABLE,
    )
)


def available_actions(plan: Plan, state: RolloutState, now: datetime) -> tuple[str, ...]:
    """The commands `act` would accept now (sign-offs aside), asked of `act` itself."""
    allowed = []
    for action in COMMANDS:
        try:
            act(plan, state, action, "", "", now)
        except (Conflict, InvalidInput):
            continue
        allowed.append(action)
    return tuple(allowed)


def _stage_of(plan: Plan, prerequisite: str | None, state: RolloutState) -> int:
    """The first stage not yet reached that lists this prerequisite."""
    for number, stage in enumerate(plan.stages, start=1):
        if number > state.stage and prerequisite in stage.prerequisites:
            return number
    listed = [p for s in plan.stages for p in s.prerequisites]
    raise InvalidInput(
        f"no stage ahead lists the prerequisite {prerequisite!r}; the plan has: "
        + (", ".join(repr(p) for p in listed) or "none"),
        where="prerequisite",
    )


def start_signed(plan: Plan, now: datetime, actor: str) -> RolloutState:
    """Started, with every sign-off and approval given at once: what simulations and back-tests assume."""
    return approve_all(plan, act(plan, RolloutState(), Action.START, actor, "", now).state, now, actor)


def approve_all(plan: Plan, state: RolloutState, now: datetime, actor: str) -> RolloutState:
    """Every sign-off and approval the next stage waits for, given."""
    while state.phase is Phase.AWAITING_APPROVAL:
        nxt = state.stage + 1
        for prerequisite in plan.stages[nxt - 1].prerequisites:
            if prerequisite not in state.signed(nxt):
                state = act(plan, state, Action.SIGNOFF, actor, "", now, prerequisite).state
        if state.phase is Phase.AWAITING_APPROVAL:
            state = act(plan, state, Action.APPROVE, actor, "", now).state
    return state

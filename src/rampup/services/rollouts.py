"""Rollouts: start a plan, take people's commands, and let the controller tick.

Each decision is written with its evidence, in one transaction with the flag change it makes and the
hooks it queues, after a compare-and-swap on the rollout's version: it is applied once, even with two
controllers, and a restart resumes from exactly the stored state.
"""

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from rampup.core.egress import Destinations
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.forecast import StageForecast, forecast_plan
from rampup.core.gates import CONTROL, TREATMENT, GateResult, assess
from rampup.core.notifications import Notification, Severity
from rampup.core.plans import (
    SRM_CHECKS,
    Decision,
    Kill,
    Phase,
    Plan,
    RolloutState,
    SetRollout,
    Srm,
    Transition,
    TransitionKind,
    act,
    approve_all,
    available_actions,
    decide,
    sample_checks,
    start_signed,
    switched_off,
)
from rampup.core.ports import Clock, GateData, RolloutRecord, Store, Transaction
from rampup.core.srm import DAY_S, SrmPower, srm_power
from rampup.core.switch_off import OffHow
from rampup.errors import Conflict, InvalidInput, NotFound
from rampup.services.flags import FlagService
from rampup.services.notifications import NotificationService
from rampup.services.outbox import outbox_id

__all__ = ["Backtest", "RolloutService", "RolloutStatus", "srm_days"]

BASELINE = timedelta(days=7)  # `compare: baseline` looks at the week before the rollout started
DAY_MS = 86_400_000
FORECAST_SPAN = timedelta(days=1)  # the traffic a forecast assumes: the environment's last day
SRM_LOOKBACK_DAYS = 7  # the most days of users read for the sample-ratio check's power (longer spans scale)
BACKTEST_TICKS = 20_000  # the most ticks a back-test replays: each reads every gate's data


def srm_days(entered_ms: int, now_ms: int) -> tuple[int, int] | None:
    """The days whose users the sample-ratio check counts: users are kept per day, so only whole days
    inside the stage (and today) — a day the stage began in also holds users of the previous percentage."""
    first = -(-entered_ms // DAY_MS)
    return (first, now_ms // DAY_MS) if first * DAY_MS < now_ms else None


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """A rollout as of `at`: its record, what its gates say now (while it runs), its timeline, each stage's
    expected time to a decision and the smallest sample-ratio mismatch its check would catch."""

    record: RolloutRecord
    at: datetime
    gates: tuple[GateResult, ...] = ()
    timeline: tuple[Transition, ...] = ()
    forecast: tuple[StageForecast, ...] = ()
    srm_power: tuple[SrmPower, ...] = ()

    @property
    def soak_remaining(self) -> timedelta | None:
        """What is left of the current stage's minimum duration; None when no stage is running."""
        plan, state = self.record.plan, self.record.state
        if state.stage == 0 or state.entered_at is None or state.phase.is_terminal:
            return None
        return max(timedelta(0), plan.stages[state.stage - 1].min_duration - (self.at - state.entered_at))

    @property
    def waiting_for(self) -> list[str]:
        """What the next stage still needs before it may start, while the rollout awaits approval."""
        state = self.record.state
        return (
            state.missing(self.record.plan, state.stage + 1) if state.phase is Phase.AWAITING_APPROVAL else []
        )

    @property
    def actions(self) -> tuple[str, ...]:
        """The commands the rollout's state allows now."""
        return available_actions(self.record.plan, self.record.state, self.at)


@dataclass(frozen=True, slots=True)
class Backtest:
    """What a plan would have decided over recorded telemetry: each transition, and where it ended."""

    plan: Plan
    since: datetime
    until: datetime
    tick: timedelta
    decisions: tuple[Transition, ...]
    state: RolloutState


class RolloutService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        flags: FlagService,
        notifications: NotificationService,
        destinations: Destinations,
        on_change: Callable[[], object] = lambda: None,
        hook_commands: Collection[str] = frozenset(),
    ) -> None:
        self._store = store
        self._clock = clock
        self._flags = flags
        self._notifications = notifications
        self._on_change = on_change
        self._hook_commands = hook_commands
        self._destinations = destinations

    # commands

    def create(self, source: Mapping[str, Any], plan: Plan, actor: str, start: bool = True) -> int:
        now = self._clock()
        self._check_hooks(plan)
        with self._store.transaction() as tx:
            env = tx.environments.get(plan.environment)
            if env is None:
                raise InvalidInput(f"environment {plan.environment!r} does not exist", where="environment")
            if tx.flags.get(plan.flag) is None:
                raise InvalidInput(f"flag {plan.flag!r} does not exist; create it first", where="flag")
            running = tx.rollouts.live_for(plan.flag, plan.environment)
            if running is not None:
                raise Conflict(
                    f"rollout {running.id} of {plan.flag} in {plan.environment} is "
                    f"{running.state.phase.value}; finish or abort it first"
                )
            state = RolloutState()
            rollout_id = tx.rollouts.add(dict(source), plan, state, actor, now)
            for rule in plan.alerts:
                tx.alert_rules.add(rule, rollout_id, now)
            record = RolloutRecord(rollout_id, dict(source), plan, state, 1, actor, now)
            tx.audit.record(
                actor,
                "rollout.create",
                f"rollout:{rollout_id}",
                plan.environment,
                None,
                {"name": plan.name, "flag": plan.flag},
                "",
                now,
            )
            if start:
                self._command(tx, record, "start", actor, "", now)
        self._on_change()
        return rollout_id

    def act(
        self,
        rollout_id: int,
        action: str,
        actor: str,
        reason: str = "",
        prerequisite: str | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        """A command given with the token named `actor`, maybe for a person (`on_behalf_of`, kept beside it)."""
        now = self._clock()
        with self._store.transaction() as tx:
            record = self._get(tx, rollout_id)
            off = self._flags.switched_off(tx, record.plan.flag, record.plan.environment)
            ended = (
                switched_off(record.plan, record.state, now, off.said()) if off else Decision(record.state)
            )
            # The kill switch came first: the rollout ends now rather than at the controller's next tick.
            if ended.changed:
                self._apply(tx, record, ended, now)
            else:
                self._command(tx, record, action, actor, reason, now, prerequisite, on_behalf_of)
        self._on_change()
        if off is not None and ended.changed:
            raise off.refusal(f"rollout {rollout_id} is disabled by it, and {action!r}")

    # the controller

    def tick(self, rollout_id: int) -> Decision | None:
        now = self._clock()
        with self._store.read() as tx:
            record = self._get(tx, rollout_id)
            if record.state.phase.is_terminal or record.state.phase is Phase.PENDING:
                return None  # a pending rollout waits for its start, which is where a kill switch refuses it
            # A kill switch pulled from outside ends the rollout in every live phase, at stage 0 too.
            off = self._flags.switched_off(tx, record.plan.flag, record.plan.environment)
            if off is not None:
                decision = switched_off(record.plan, record.state, now, off.said())
            elif record.state.stage == 0:
                return None
            else:
                results, srm = self._evaluate(tx, record, now)
                decision = decide(record.plan, record.state, results, now, srm)
        if decision.state == record.state and not decision.changed:
            return decision
        with self._store.transaction() as tx:
            self._apply(tx, record, decision, now)
        if decision.effects:
            self._on_change()
        return decision

    def tick_all(self) -> int:
        with self._store.read() as tx:
            live = [r.id for r in tx.rollouts.find(live=True, limit=1000)]
        acted = 0
        for rollout_id in live:
            try:
                decision = self.tick(rollout_id)
            except Conflict:
                continue  # someone else wrote first; the next tick sees their state
            acted += bool(decision and decision.changed)
        return acted

    # reads

    def rollout(self, rollout_id: int) -> RolloutStatus:
        now = self._clock()
        with self._store.read() as tx:
            record = self._get(tx, rollout_id)
            live = not record.state.phase.is_terminal and record.state.stage > 0
            results = self._evaluate(tx, record, now)[0] if live else []
            transitions = tx.rollouts.transitions(rollout_id)
            ahead = not record.state.phase.is_terminal
            expected = self._forecast(tx, record.plan, now) if ahead else []
            power = self._srm_power(tx, record.plan, now) if ahead and record.plan.srm else []
        return RolloutStatus(record, now, tuple(results), tuple(transitions), tuple(expected), tuple(power))

    def backtest(self, plan: Plan, since: datetime, until: datetime, tick: timedelta) -> Backtest:
        """The plan's gates and controller replayed over the telemetry recorded between `since` and `until`:
        what it would have decided, and when. Sign-offs and approvals are taken as given at once; the
        sample-ratio check is left out (the recorded traffic was split by whatever percentage was live
        then, not by the plan's)."""
        ticks = (until - since) / tick
        if ticks <= 0:
            raise InvalidInput("the span is empty: 'to' must come after 'from'", where="to")
        if ticks > BACKTEST_TICKS:
            raise InvalidInput(
                f"{ticks:,.0f} ticks; at most {BACKTEST_TICKS:,}: a longer tick or a shorter span",
                where="tick",
            )
        with self._store.read() as tx:
            env = tx.environments.get(plan.environment)
            if env is None:
                raise NotFound(f"environment {plan.environment!r} not found")
            inputs = tx.telemetry.gate_inputs(env.id, plan.flag)
            state = start_signed(plan, since, "backtest")
            decisions: list[Transition] = []
            now = since
            while now + tick <= until and not state.phase.is_terminal:
                now += tick
                decision = self._replay(inputs, plan, state, now)
                decisions += decision.transitions
                state = approve_all(plan, decision.state, now, "backtest")
        return Backtest(plan, since, until, tick, tuple(decisions), state)

    @staticmethod
    def _replay(inputs: GateData, plan: Plan, state: RolloutState, now: datetime) -> Decision:
        since_ms = int((state.entered_at or now).timestamp() * 1000)
        now_ms = int(now.timestamp() * 1000)
        inputs.forget()
        horizon = plan.stages[state.stage - 1].horizon_h if state.stage else 1
        results = [assess(gate, inputs, since_ms, now_ms, None, horizon) for gate in plan.gates]
        return decide(plan, state, results, now)

    def _forecast(self, tx: Transaction, plan: Plan, now: datetime) -> list[StageForecast]:
        """Each stage's expected time to a decision at the environment's traffic of the last day."""
        env = tx.environments.get(plan.environment)
        if env is None:
            return []
        until = int(now.timestamp() * 1000)
        since = until - int(FORECAST_SPAN.total_seconds() * 1000)
        return forecast_plan(plan, tx.telemetry.gate_inputs(env.id, plan.flag), since, until)

    def _srm_power(self, tx: Transaction, plan: Plan, now: datetime) -> list[SrmPower]:
        """Per stage with a control, the smallest loss of the treatment's users the sample-ratio check would
        catch at the flag's users of the last whole days (as many days as the span: distinct users over
        them, so users who come back are counted once, as the check counts them)."""
        env = tx.environments.get(plan.environment)
        if env is None:
            return []
        inputs = tx.telemetry.gate_inputs(env.id, plan.flag)
        last = int(now.timestamp() * 1000) // DAY_MS - 1

        def users_in(seconds: float) -> float:
            days = min(max(1, math.ceil(seconds / DAY_S)), SRM_LOOKBACK_DAYS)
            first = (last - days + 1) * DAY_MS
            seen = sum(inputs.units(v, first, last * DAY_MS).users for v in (TREATMENT, CONTROL))
            return seen * seconds / (days * DAY_S)

        if not users_in(DAY_S):
            return []
        stages = [(s.name, s.percentage_bp, s.min_duration.total_seconds()) for s in plan.stages]
        return srm_power(stages, users_in, plan.srm_alpha / SRM_CHECKS)

    def rollouts(
        self, flag: str | None = None, environment: str | None = None, live: bool | None = None
    ) -> list[RolloutStatus]:
        """Rollouts without their gates, timeline or forecast (each costs reads): `rollout` has them."""
        now = self._clock()
        with self._store.read() as tx:
            return [
                RolloutStatus(r, now) for r in tx.rollouts.find(flag=flag, environment=environment, live=live)
            ]

    # internals

    def _command(
        self,
        tx: Transaction,
        record: RolloutRecord,
        action: str,
        actor: str,
        reason: str,
        now: datetime,
        prerequisite: str | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        decision = act(record.plan, record.state, action, actor, reason, now, prerequisite, on_behalf_of)
        self._apply(tx, record, decision, now)
        # People's commands are in the audit log beside flag changes; the controller's decisions are in the
        # rollout's timeline (and in the log when they change the flag).
        tx.audit.record(
            actor,
            f"rollout.{action}",
            f"rollout:{record.id}",
            record.plan.environment,
            _audited(record.state),
            _audited(decision.state),
            reason or (f"signed off '{prerequisite}'" if prerequisite else ""),
            now,
            on_behalf_of,
        )

    def _check_hooks(self, plan: Plan) -> None:
        if plan.hooks.webhook is not None:
            self._destinations.check_url(plan.hooks.webhook, "hooks.webhook")
        name = plan.hooks.command
        if name is not None and name not in self._hook_commands:
            defined = ", ".join(sorted(self._hook_commands)) or "none"
            raise InvalidInput(
                f"no hook command named {name!r} on this server (RAMPUP_HOOK_COMMANDS defines: {defined})",
                where="hooks.command",
            )

    def _get(self, tx: Transaction, rollout_id: int) -> RolloutRecord:
        record = tx.rollouts.get(rollout_id)
        if record is None:
            raise NotFound(f"rollout {rollout_id} not found")
        return record

    def _evaluate(
        self, tx: Transaction, record: RolloutRecord, now: datetime
    ) -> tuple[list[GateResult], Srm | None]:
        state, plan = record.state, record.plan
        env = tx.environments.get(plan.environment)
        if env is None:
            raise NotFound(f"environment {plan.environment!r} not found")
        inputs = tx.telemetry.gate_inputs(env.id, plan.flag)
        since_ms = int((state.entered_at or now).timestamp() * 1000)
        now_ms = int(now.timestamp() * 1000)
        started = state.started_at or now
        baseline = (int((started - BASELINE).timestamp() * 1000), int(started.timestamp() * 1000))
        horizon = plan.stages[state.stage - 1].horizon_h
        results = [assess(gate, inputs, since_ms, now_ms, baseline, horizon) for gate in plan.gates]
        days = srm_days(since_ms, now_ms)
        if days is None:
            return results, None
        first, last = days[0] * DAY_MS, days[1] * DAY_MS
        on, off = inputs.units(TREATMENT, first, last), inputs.units(CONTROL, first, last)
        share = plan.percentage_bp(state.stage) / 10_000
        srm = sample_checks(
            (on.users, off.users), (on.silent, off.silent), (on.exposed, off.exposed), share, plan.srm_alpha
        )
        return results, srm

    def _apply(self, tx: Transaction, record: RolloutRecord, decision: Decision, now: datetime) -> None:
        if not tx.rollouts.save(record.id, record.version, decision.state, now):
            raise Conflict(f"rollout {record.id} changed meanwhile; try again")
        plan = record.plan
        if any(isinstance(e, SetRollout) for e in decision.effects):  # every stage sets `enabled`
            off = self._flags.switched_off(tx, plan.flag, plan.environment)
            if off is not None:
                raise off.refusal("a rollout")
        tx.rollouts.add_transitions(record.id, decision.transitions)
        for transition in decision.transitions:
            self._notifications.enqueue(tx, plan.notify, transition_notification(record, transition))
        last = decision.transitions[-1] if decision.transitions else None
        reason, actor = (last.reason, last.actor) if last else ("", "controller")
        on_behalf_of = last.on_behalf_of if last else None
        for effect in decision.effects:
            if isinstance(effect, SetRollout):

                def change(_d: FlagDefinition, s: FlagState, bp: int = effect.percentage_bp) -> FlagState:
                    bucket_by = s.bucket_by if plan.bucket_by is None else plan.bucket_by
                    return replace(s, enabled=True, rollout_bp=bp, bucket_by=bucket_by)

                state = self._flags.change_state_in(
                    tx,
                    plan.flag,
                    plan.environment,
                    actor,
                    reason,
                    "flag.update",
                    change,
                    now,
                    on_behalf_of,
                    how=OffHow.ROLLOUT,
                    source_id=record.id,
                )
            else:
                assert isinstance(effect, Kill)
                state = self._flags.change_state_in(
                    tx,
                    plan.flag,
                    plan.environment,
                    actor,
                    reason,
                    "flag.kill",
                    lambda _d, s: replace(s, enabled=False),
                    now,
                    on_behalf_of,
                    how=OffHow.ROLLOUT,
                    source_id=record.id,
                )
            _queue_hooks(tx, record, decision.state, state, reason, now)


def _queue_hooks(
    tx: Transaction, record: RolloutRecord, rollout: RolloutState, flag: FlagState, reason: str, now: datetime
) -> None:
    """The plan's stage-change hooks, queued in the transaction that changed the flag."""
    plan = record.plan
    hook = {
        "rollout_id": record.id,
        "flag": plan.flag,
        "environment": plan.environment,
        "enabled": flag.enabled,
        "rollout": flag.rollout,
        "stage": rollout.stage,
        "phase": rollout.phase.value,
        "reason": reason,
        "at": now.isoformat(),
    }
    for kind, target, field in (
        ("webhook", plan.hooks.webhook, "url"),
        ("command", plan.hooks.command, "command"),
    ):
        if target:
            tx.outbox.enqueue(
                outbox_id(now), f"hook.{kind}", f"{kind}:{target}", {**hook, field: target}, now
            )


def _audited(state: RolloutState) -> dict[str, Any]:
    return {"state": state.phase.value, "stage": state.stage}


_SEVERITY = {
    Phase.ROLLED_BACK: Severity.WARNING,
    Phase.PAUSED: Severity.WARNING,
    Phase.WAITING_FOR_DATA: Severity.WARNING,
    Phase.DISABLED: Severity.CRITICAL,
    Phase.ABORTED: Severity.WARNING,
}
# told while still running: the phase says nothing
_KIND_SEVERITY = {TransitionKind.HELD: Severity.WARNING, TransitionKind.STEPPED_BACK: Severity.WARNING}


def transition_notification(record: RolloutRecord, t: Transition) -> Notification:
    """What people hear about a transition: which, why, and the gate evidence."""
    plan = record.plan
    kind = t.kind.value
    moved = (
        f"{plan.percentage_bp(t.from_stage) / 100:g}% → {plan.percentage_bp(t.to_stage) / 100:g}%"
        if t.to_stage != t.from_stage
        else f"{plan.percentage_bp(t.to_stage) / 100:g}%"
    )
    fields = [
        ("rollout", f"{record.id} {plan.name}"),
        ("state", f"{t.from_phase.value} → {t.to_phase.value}"),
        ("by", f"{t.actor} on behalf of {t.on_behalf_of}" if t.on_behalf_of else t.actor),
    ]
    fields += [
        (
            str(e.get("metric")),
            f"{e.get('verdict')}: {e.get('value')} (n={e.get('samples')}, {e.get('threshold')})",
        )
        for e in t.evidence
        if "verdict" in e
    ]
    return Notification(
        outbox_id(t.at),
        f"rollout.{kind}",
        t.at,
        f"{plan.flag} in {plan.environment}: {kind.replace('_', ' ')} ({moved})",
        t.reason,
        _KIND_SEVERITY.get(t.kind) or _SEVERITY.get(t.to_phase, Severity.INFO),
        tuple(fields),
        f"rollout-{record.id}",
        details={
            "rollout_id": record.id,
            "flag": plan.flag,
            "environment": plan.environment,
            **t.to_dict(),
            "at": t.at.isoformat(),
        },
    )

"""Reports in the four standard forms — the daily report, the support team's daily status e-mail, the
weekly summary and the completion report — filled from a rollout's state, its transitions and its telemetry; and
the schedules that send them through the outbox.

Building gathers data only. A `Renderer` (an adapter) turns a `Report` into Markdown and HTML.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rampup.core.alerts import Alert, AlertRule
from rampup.core.feedback import Entry
from rampup.core.gates import CONTROL, TREATMENT
from rampup.core.notifications import Notification
from rampup.core.plans import Plan, Transition
from rampup.core.ports import Clock, RolloutRecord, Store
from rampup.core.reports import (
    CHART_METRICS,
    MAX_WINDOW_S,
    STANDARD_METRICS,
    Chart,
    Incident,
    Judged,
    MetricRow,
    Reception,
    Report,
    Trend,
    Users,
    alert_incident,
    comment_of,
    estimates_of,
    gate_lines,
    gate_row,
    incidents_since,
    metric_chart,
    next_steps,
    plan_stage_rows,
    reception,
    report_status,
    stage_markers,
    stage_visits,
)
from rampup.core.rollups import DAY
from rampup.core.schedules import (
    KINDS,
    REPORT_WINDOW,
    Schedule,
    ScheduleRecord,
    due_period,
    next_send,
    parse_schedule,
    time_zone,
)
from rampup.core.telemetry import BUILTIN_METRICS, Aggregation, MetricResult, parse_metric_name
from rampup.errors import InvalidInput, NotFound
from rampup.services.metrics import MetricQuery, MetricsService
from rampup.services.notifications import NotificationService
from rampup.services.outbox import outbox_id
from rampup.services.rollouts import RolloutService

__all__ = ["Renderer", "ReportService", "ScheduleStatus"]

SHOWN_COMMENTS = 5  # the newest comments from users with the feature a report quotes
TREND_SPAN = timedelta(days=7)


class Renderer(Protocol):
    def title(self, report: Report) -> str: ...
    def markdown(self, report: Report) -> str: ...
    def html(self, report: Report) -> str: ...


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    record: ScheduleRecord
    next_at: datetime | None  # when its next report goes out; None: a completion report, sent at the end


class ReportService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        rollouts: RolloutService,
        metrics: MetricsService,
        notifications: NotificationService,
        renderer: Renderer,
    ) -> None:
        self._store = store
        self._clock = clock
        self._rollouts = rollouts
        self._metrics = metrics
        self._notifications = notifications
        self._renderer = renderer

    def render(self, report: Report, fmt: str) -> str:
        if fmt == "html":
            return self._renderer.html(report)
        if fmt == "md":
            return self._renderer.markdown(report)
        raise InvalidInput("format is md or html", where="format")

    def build(
        self,
        kind: str,
        rollout_id: int,
        now: datetime | None = None,
        tz: str = "UTC",
        contact: str | None = None,
    ) -> Report:
        """The report of one rollout as of `now` (default: the clock), dates shown in time zone `tz`."""
        if kind not in KINDS:
            raise InvalidInput("a report is one of " + ", ".join(KINDS), where="kind")
        zone = time_zone(tz)
        now = now or self._clock()
        facts = self._facts(kind, rollout_id, now)
        record, transitions, start, end = facts.record, facts.transitions, facts.start, facts.end
        plan, state = record.plan, record.state
        gates, gates_at = self._judged(record, transitions, now)

        queries: dict[str, MetricResult | None] = {}

        def window(metric: str) -> MetricResult | None:
            if metric not in queries:
                queries[metric] = self._window(plan, metric, start, end)
            return queries[metric]

        rows = _rows(plan, gates, window)
        every_visit = stage_visits(plan, transitions)
        visits = (
            every_visit
            if kind == "completion"
            else [v for v in every_visit if v.left is None or v.left >= start]
        )
        return Report(
            kind=kind,
            generated_at=now,
            timezone=zone.key,
            start=start,
            end=end,
            rollout_id=record.id,
            name=plan.name,
            flag=plan.flag,
            environment=plan.environment,
            state=state.phase.value,
            status=report_status(state.phase, [r.verdict for r in rows]),
            stage=state.stage,
            stage_name=plan.stages[state.stage - 1].name if state.stage else "not started",
            percentage=plan.percentage_bp(state.stage) / 100,
            stage_count=len(plan.stages),
            stage_entered_at=state.entered_at,
            started_at=state.started_at,
            ended_at=facts.ended,
            gates_at=gates_at,
            metrics=tuple(rows),
            users=facts.users,
            incidents=_incidents(kind, facts),
            reception=self._reception(plan, rows, window, start, end),
            actions=tuple(next_steps(record, rows, transitions, now, facts.flag_exists)),
            visits=tuple(visits),
            plan_stages=tuple(plan_stage_rows(plan, every_visit)),
            signoffs=state.signoffs,
            charts=_charts(plan, transitions, start, end, window),
            contact=contact,
            started_by=record.created_by,
            channels=plan.notify,
            flag_exists=facts.flag_exists,
            comments=tuple(comment_of(e) for e in facts.comments),
        )

    def _facts(self, kind: str, rollout_id: int, now: datetime) -> "_Facts":
        """What a report reads from the store, in one read: the rollout, its window, users, alerts, comments."""
        with self._store.read() as tx:
            record = tx.rollouts.get(rollout_id)
            if record is None:
                raise NotFound(f"rollout {rollout_id} not found")
            plan, state = record.plan, record.state
            transitions = tx.rollouts.transitions(rollout_id)
            ended = transitions[-1].at if state.phase.is_terminal and transitions else None
            if kind == "completion":
                start, end = state.started_at or record.created_at, ended or now
            else:
                start, end = now - REPORT_WINDOW[kind], now
            env = tx.environments.get(plan.environment)
            users = None
            if env is not None:
                totals = tx.telemetry.unit_totals(
                    env.id, plan.flag, int(start.timestamp()) // DAY, int(end.timestamp()) // DAY
                )
                if TREATMENT in totals or CONTROL in totals:
                    users = Users(
                        totals[TREATMENT].users if TREATMENT in totals else 0,
                        totals[CONTROL].users if CONTROL in totals else 0,
                    )
            # The plan's own alert rules, and standalone rules watching the same flag in the same environment.
            rules = {
                r.id: r.rule
                for r in tx.alert_rules.all()
                if r.rollout_id == rollout_id
                or (
                    r.rollout_id is None
                    and r.rule.flag == plan.flag
                    and r.rule.environment == plan.environment
                )
            }
            alerts = [a for a in tx.alerts.all(limit=1000) if a.rule_id in rules]
            comments = (
                tx.feedback.page(
                    env.id,
                    flag=plan.flag,
                    variant=TREATMENT,
                    since_ms=int(start.timestamp() * 1000),
                    until_ms=int(end.timestamp() * 1000),
                    commented=True,
                    limit=SHOWN_COMMENTS,
                )
                if env is not None
                else []
            )
            flag_exists = tx.flags.get(plan.flag) is not None
        return _Facts(record, transitions, start, end, ended, users, rules, alerts, comments, flag_exists)

    def _judged(
        self, record: RolloutRecord, transitions: Sequence[Transition], now: datetime
    ) -> tuple[list[Judged | None], datetime | None]:
        """Each gate's verdict (None where not judged) and when it was reached: now for a live rollout, else
        its last decision's."""
        gates_at: datetime | None
        if not record.state.phase.is_terminal and record.state.stage > 0:
            # Read as a decision's evidence records them, so live and finished rollouts read alike.
            evidence = [r.to_dict() for r in self._rollouts.rollout(record.id).gates]
            gates_at = now
        else:  # a finished (or not yet started) rollout: the verdicts of its last decision, if it had any
            last = next((t for t in reversed(transitions) if any("verdict" in e for e in t.evidence)), None)
            evidence = [e for e in last.evidence if "verdict" in e] if last else []
            gates_at = last.at if last else None
        gates: list[Judged | None] = [Judged.of_evidence(e) for e in evidence]
        if len(gates) != len(record.plan.gates):
            gates = [None for _ in record.plan.gates]
        return gates, gates_at

    def _reception(
        self,
        plan: Plan,
        rows: Sequence[MetricRow],
        window: Callable[[str], MetricResult | None],
        start: datetime,
        end: datetime,
    ) -> Reception:
        """Feedback per variant in the window, the treatment's mean rating against the span before (as long as
        the window, at most a week), engagement and support tickets."""
        results = [window(m) for m in ("satisfaction", "satisfaction_positive", "feedback")]
        if any(r is None for r in results):
            return reception(rows, {}, {}, {}, None)
        satisfaction, positive, received = (r for r in results if r is not None)
        span = min(end - start, TREND_SPAN)
        before = self._window(plan, "satisfaction", end - 2 * span, end - span)
        earlier = _treatment_value(before)
        now = self._window(plan, "satisfaction", end - span, end) if span != end - start else satisfaction
        later = _treatment_value(now)
        return reception(
            rows,
            estimates_of(satisfaction),
            estimates_of(positive),
            {v: e.count for v, e in received.variants.items()},
            Trend(later, earlier, span) if later is not None and earlier is not None else None,
        )

    def _window(self, plan: Plan, metric: str, start: datetime, end: datetime) -> MetricResult | None:
        seconds = min(max(int((end - start).total_seconds()), 60), MAX_WINDOW_S)
        base, _ = parse_metric_name(metric)
        spec = BUILTIN_METRICS[base]
        # Counters and gauges posted from outside (and data loss) belong to the environment, not to a variant.
        flag = (
            None
            if spec.environment_wide or spec.aggregation in (Aggregation.SUM, Aggregation.GAUGE)
            else plan.flag
        )
        try:
            return self._metrics.query(MetricQuery(plan.environment, metric, seconds, flag, end))
        except NotFound:  # the flag (or environment) is gone: its numbers can no longer be asked for by name
            return None

    # schedules

    def add_schedule(self, body: Mapping[str, Any], actor: str) -> ScheduleStatus:
        now = self._clock()
        # Only slots after this moment send: a daily 08:00 schedule created at 10:00 starts tomorrow.
        schedule = parse_schedule(body, actor, now)
        with self._store.transaction() as tx:
            for name in schedule.channels:
                if tx.channels.get(name) is None:
                    raise InvalidInput(f"channel {name!r} does not exist; create it first", where="channels")
            if schedule.rollout_id is not None:
                if tx.rollouts.get(schedule.rollout_id) is None:
                    raise InvalidInput(f"rollout {schedule.rollout_id} does not exist", where="rollout_id")
            elif tx.environments.get(schedule.environment or "") is None:
                raise InvalidInput(
                    f"environment {schedule.environment!r} does not exist", where="environment"
                )
            elif tx.flags.get(schedule.flag or "") is None:
                raise InvalidInput(f"flag {schedule.flag!r} does not exist", where="flag")
            schedule_id = tx.schedules.add(schedule)
            tx.audit.record(
                actor,
                "report_schedule.create",
                f"report_schedule:{schedule_id}",
                None,
                None,
                schedule.to_dict(),
                "",
                now,
            )
        return _status(ScheduleRecord(schedule_id, schedule, None), now)

    def schedules(self) -> list[ScheduleStatus]:
        now = self._clock()
        with self._store.read() as tx:
            return [_status(r, now) for r in tx.schedules.all()]

    def delete_schedule(self, schedule_id: int, actor: str) -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            before = next((r.schedule for r in tx.schedules.all() if r.id == schedule_id), None)
            if before is None or not tx.schedules.delete(schedule_id):
                raise NotFound(f"report schedule {schedule_id} not found")
            tx.audit.record(
                actor,
                "report_schedule.delete",
                f"report_schedule:{schedule_id}",
                None,
                before.to_dict(),
                None,
                "",
                now,
            )

    def send_due(self, now: datetime | None = None) -> int:
        """Queue every report whose time has come; each period's report is queued once, whoever runs this."""
        now = now or self._clock()
        with self._store.read() as tx:
            schedules = tx.schedules.all()
        return sum(self._send(r, now) for r in schedules)

    def _rollout_of(self, schedule: Schedule) -> tuple[RolloutRecord | None, datetime | None]:
        """The rollout a schedule speaks of now, and when it ended (None: it has not)."""
        with self._store.read() as tx:
            if schedule.rollout_id is not None:
                record = tx.rollouts.get(schedule.rollout_id)
            elif schedule.timed:
                record = tx.rollouts.live_for(schedule.flag or "", schedule.environment or "")
            else:
                found = tx.rollouts.find(flag=schedule.flag, environment=schedule.environment, limit=1)
                record = found[0] if found else None
            terminal = record is not None and record.state.phase.is_terminal
            transitions = tx.rollouts.transitions(record.id) if record is not None and terminal else []
        return record, transitions[-1].at if transitions else None

    def _send(self, scheduled: ScheduleRecord, now: datetime) -> int:
        schedule, last = scheduled.schedule, scheduled.last_period
        period = due_period(schedule, last, now) if schedule.timed else None
        if schedule.timed and period is None:
            return 0  # the common case, every tick: decided without reading anything
        record, ended = self._rollout_of(schedule)
        if period is None:
            # A completion report: once per rollout, when it ends; not for one that ended before the schedule.
            if record is None or ended is None or ended < schedule.created_at:
                return 0
            period = f"rollout-{record.id}"
            return 0 if period == last else self._queue(scheduled, period, record, now)
        if record is None or (ended is not None and ended < now - REPORT_WINDOW[schedule.kind]):
            # Nothing live, or it ended before this report's window: the period passes without a report.
            with self._store.transaction() as tx:
                tx.schedules.mark_sent(scheduled.id, period, last)
            return 0
        return self._queue(scheduled, period, record, now)

    def _queue(self, scheduled: ScheduleRecord, period: str, record: RolloutRecord, now: datetime) -> int:
        schedule, last = scheduled.schedule, scheduled.last_period
        try:
            report = self.build(schedule.kind, record.id, now, schedule.timezone, schedule.contact)
        except NotFound:  # its environment is gone: there is nothing to report, and the period passes
            with self._store.transaction() as tx:
                tx.schedules.mark_sent(scheduled.id, period, last)
            return 0
        n = Notification(
            outbox_id(now),
            f"report.{report.kind}",
            now,
            self._renderer.title(report),
            self._renderer.markdown(report),
            fields=(
                ("rollout", f"{report.rollout_id} {record.plan.name}"),
                ("stage", f"{report.stage} ({report.percentage:g}%)"),
                ("status", report.status),
            ),
            details={
                "rollout_id": report.rollout_id,
                "kind": report.kind,
                "period": period,
                "schedule_id": scheduled.id,
            },
            html=self._renderer.html(report),
        )
        with self._store.transaction() as tx:
            if not tx.schedules.mark_sent(scheduled.id, period, last):
                return 0  # another instance sent this period first
            self._notifications.enqueue(tx, schedule.channels, n)
        return 1


# ---------------------------------------------------------------- building blocks (pure)


@dataclass(frozen=True, slots=True)
class _Facts:
    record: RolloutRecord
    transitions: list[Transition]
    start: datetime  # the report's window
    end: datetime
    ended: datetime | None  # when the rollout ended; None: it has not
    users: Users | None
    rules: dict[int, AlertRule]  # id → rule: the plan's own and standalone ones on its flag and environment
    alerts: list[Alert]  # their firings
    comments: list[Entry]  # the newest commented feedback from users with the feature
    flag_exists: bool


def _rows(
    plan: Plan, gates: Sequence[Judged | None], window: Callable[[str], MetricResult | None]
) -> list[MetricRow]:
    """The plan's gates, then each standard metric that is not a gate and counted anything in the window."""
    rows = [gate_row(g, judged, window(g.metric)) for g, judged in zip(plan.gates, gates, strict=True)]
    gated = {g.metric for g in plan.gates}
    for metric in STANDARD_METRICS:
        result = window(metric) if metric not in gated else None
        # Counted events, not samples: engagement has a sample per user even when none of them engaged.
        if result is not None and any(v.count for v in result.variants.values()):
            rows.append(MetricRow(metric, result.spec.unit, estimates_of(result)))
    return rows


def _charts(
    plan: Plan,
    transitions: Sequence[Transition],
    start: datetime,
    end: datetime,
    window: Callable[[str], MetricResult | None],
) -> tuple[Chart, ...]:
    markers = stage_markers(plan, transitions, start, end)
    return tuple(
        metric_chart(metric, result, markers, start, end, gate_lines(plan, metric))
        for metric in CHART_METRICS
        if (result := window(metric)) is not None
    )


def _incidents(kind: str, facts: _Facts) -> tuple[Incident, ...]:
    """What went wrong in the window (since the start, for a completion report), and alerts still firing."""
    since = facts.start if kind != "completion" else datetime.min.replace(tzinfo=UTC)
    incidents = incidents_since(facts.record.plan, facts.transitions, since)
    incidents += [
        alert_incident(a, facts.rules[a.rule_id])
        for a in facts.alerts
        if a.started_at >= since or a.resolved_at is None
    ]
    return tuple(sorted(incidents, key=lambda i: i.at))


def _treatment_value(result: MetricResult | None) -> float | None:
    treatment = result.variants.get(TREATMENT) if result else None
    return treatment.estimate.value if treatment else None


def _status(r: ScheduleRecord, now: datetime) -> ScheduleStatus:
    return ScheduleStatus(r, next_send(r.schedule, r.last_period, now))

"""Reports, pure: what a report holds, and how a rollout's state, transitions and gate results become a
report's rows, incidents, stages, what users said and the next steps — as facts. The words people read (titles,
sentences, the commands to type) are the renderer's (adapters/reports/templates/)."""

__all__ = [
    "CHART_METRICS",
    "CLEANUP_AFTER",
    "MAX_WINDOW_S",
    "STANDARD_METRICS",
    "Aborted",
    "NextStep",
    "AlertBreach",
    "AwaitingSignoffs",
    "Breaching",
    "Chart",
    "ChartLine",
    "Comment",
    "Disabled",
    "Engagement",
    "Estimate",
    "FlagDeleted",
    "Incident",
    "Judged",
    "Marker",
    "MetricRow",
    "NeedsSamples",
    "NotStarted",
    "PartialEnd",
    "Paused",
    "PlanStage",
    "Reception",
    "RemoveFlag",
    "Report",
    "RolledBack",
    "SignoffAhead",
    "Soaking",
    "SoakOver",
    "StageChange",
    "StageRef",
    "StageVisit",
    "Tickets",
    "Trend",
    "Users",
    "WaitingForData",
    "Watch",
    "alert_incident",
    "comment_of",
    "estimates_of",
    "gate_lines",
    "gate_row",
    "incidents_since",
    "metric_chart",
    "next_steps",
    "plan_stage_rows",
    "reception",
    "report_status",
    "stage_markers",
    "stage_visits",
]


import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from rampup.core.alerts import Alert, AlertRule
from rampup.core.feedback import SHOWN_COMMENT, THUMBS, Entry, clip, mask_emails, parse_scale
from rampup.core.gates import CONTROL, TREATMENT, Compare, Gate
from rampup.core.plans import Phase, Plan, Signoff, Transition, TransitionKind
from rampup.core.ports import RolloutRecord
from rampup.core.rollups import DAY
from rampup.core.stats import Estimate
from rampup.core.telemetry import BUILTIN_METRICS, MetricResult, parse_metric_name

# Rows every report speaks of; shown beside the plan's gates when there are data for them.
STANDARD_METRICS = (
    "error_rate",
    "unhandled_exceptions",
    "api_latency_p95",
    "lcp_p75",
    "engagement",
    "support_tickets",
    "lighthouse",
    "satisfaction",
)
CHART_METRICS = ("error_rate", "api_latency_p95")
# A flag comes out of the code once everyone has had the feature for 3+ days with no issues.
CLEANUP_AFTER = timedelta(days=3)
MAX_WINDOW_S = 400 * DAY
_INCIDENT = {
    Phase.ROLLED_BACK: "rolled back",
    Phase.DISABLED: "disabled",
    Phase.PAUSED: "paused",
    Phase.ABORTED: "aborted",
}


# ---------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class Judged:
    """A gate's verdict on a stage's data, read from the evidence a decision records (`GateResult.to_dict`)."""

    verdict: str
    estimate: Estimate  # what the gate judged (a relative change for control / baseline gates)
    needs_samples: float | None = None  # an undecided rate gate: about this many more samples decide it
    needs_s: float | None = None  # … which take about this long at the current rate (None: never at it)

    @classmethod
    def of_evidence(cls, e: Mapping[str, Any]) -> "Judged":
        needs = e.get("needs") or {}
        seconds = needs.get("seconds")
        return cls(
            e["verdict"],
            Estimate(e["value"], e["lower"], e["upper"], e["samples"]),
            needs.get("samples"),
            seconds if seconds is not None and not math.isinf(seconds) else None,
        )


@dataclass(frozen=True, slots=True)
class MetricRow:
    metric: str  # as the plan names it: error_rate, api_latency_p95, …
    unit: str  # of the window values: fraction, ms, count, actions/user, score
    window: Mapping[str, Estimate]  # per variant over the report's window; "all" for environment-wide metrics
    target: str | None = None  # what passing means, as the plan words it: "< 0.1%"
    thresholds: str = ""  # every threshold of the gate: "target < 0.1%, rollback > 0.5%"; "" when not a gate
    compare: str = Compare.ABSOLUTE.value  # control / baseline: the gate judges a relative change
    sustain_s: float = 0.0  # how long a breach must last before the controller acts
    verdict: str | None = None  # the gate's verdict on the stage's data; None when not a gate or not judged
    gate: Estimate | None = None  # what the gate judged (a relative change for control / baseline gates)
    needs_samples: float | None = None  # an undecided rate gate: about this many more samples decide it
    needs_s: float | None = None  # … which take about this long at the current rate
    difference: bool = False  # a control gate judging treatment − control in the metric's unit, not a change


@dataclass(frozen=True, slots=True)
class Users:
    treatment: int  # distinct users seen with the feature in the window
    control: int

    @property
    def share(self) -> float | None:
        total = self.treatment + self.control
        return self.treatment / total if total else None


@dataclass(frozen=True, slots=True)
class StageChange:
    """What a rollback, pause, abort or kill switch did to the share of users with the feature (percentages)."""

    before: float
    after: float
    kill: bool = False


@dataclass(frozen=True, slots=True)
class AlertBreach:
    rule: str  # the rule's name
    metric: str
    condition: str  # as the rule words it: "> 0.5%"
    value: float | None  # at the last evaluation that changed the alert


@dataclass(frozen=True, slots=True)
class Incident:
    at: datetime
    kind: str  # rolled back, disabled, paused, aborted, alert
    change: StageChange | AlertBreach
    actor: str  # who acted ("" for an alert: its rule did)
    reason: str  # an alert's: firing or resolved
    resolved_at: datetime | None = None  # alerts


@dataclass(frozen=True, slots=True)
class StageVisit:
    number: int
    name: str
    percentage: float
    entered: datetime
    left: datetime | None  # None: still there
    outcome: str  # advanced, rolled back, disabled, completed, aborted; "" while there
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlanStage:
    number: int
    name: str
    percentage: float
    min_duration_s: float
    first_entered: datetime | None  # None: not reached


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime
    label: str  # the percentage a stage change went to ("25%"), or "off" for the kill switch


@dataclass(frozen=True, slots=True)
class ChartLine:
    value: float  # in the chart's unit
    label: str  # "rollback > 0.5%"


@dataclass(frozen=True, slots=True)
class Chart:
    metric: str
    unit: str
    start: datetime
    end: datetime
    times: tuple[datetime, ...]
    series: Mapping[str, tuple[float | None, ...]]  # variant → a value (or None) at each of `times`
    markers: tuple[Marker, ...]
    # variant → the 95% bounds (or None) at each of `times`
    bands: Mapping[str, tuple[tuple[float | None, float | None], ...]] = field(default_factory=dict)
    lines: tuple[ChartLine, ...] = ()  # thresholds drawn across the chart


@dataclass(frozen=True, slots=True)
class Comment:
    """A user's comment as a report quotes it: plain text, clipped, e-mail addresses masked. Templates escape it."""

    at: datetime
    rating: str  # "2 on 1-5", "thumbs down", "" when unrated
    text: str


@dataclass(frozen=True, slots=True)
class StageRef:
    number: int
    name: str
    percentage: float


# Next steps: one fact each, from the rollout's state and its gates; the renderer words them.


@dataclass(frozen=True, slots=True)
class NotStarted:
    kind: ClassVar[str] = "not_started"


@dataclass(frozen=True, slots=True)
class AwaitingSignoffs:
    missing: tuple[str, ...]  # what the next stage waits for: "approval", "sign-off: Support team briefed"
    stage: StageRef
    kind: ClassVar[str] = "awaiting_signoffs"


@dataclass(frozen=True, slots=True)
class Soaking:
    ends_at: datetime
    left: timedelta
    then: StageRef | None  # None: completion
    kind: ClassVar[str] = "soaking"


@dataclass(frozen=True, slots=True)
class SoakOver:
    then: StageRef | None  # None: completion
    pending: tuple[str, ...]  # metrics of the gates that must still pass
    kind: ClassVar[str] = "soak_over"


@dataclass(frozen=True, slots=True)
class NeedsSamples:
    metric: str
    samples: float  # about this many more decide it
    left: timedelta | None  # … which take about this long at the current rate
    kind: ClassVar[str] = "needs_samples"


@dataclass(frozen=True, slots=True)
class SignoffAhead:
    stage: StageRef
    missing: tuple[str, ...]
    kind: ClassVar[str] = "signoff_ahead"


@dataclass(frozen=True, slots=True)
class WaitingForData:
    reason: str
    kind: ClassVar[str] = "waiting_for_data"


@dataclass(frozen=True, slots=True)
class Paused:
    reason: str
    kind: ClassVar[str] = "paused"


@dataclass(frozen=True, slots=True)
class RolledBack:
    percentage: float
    reason: str
    kind: ClassVar[str] = "rolled_back"


@dataclass(frozen=True, slots=True)
class Disabled:
    reason: str
    kind: ClassVar[str] = "disabled"


@dataclass(frozen=True, slots=True)
class Aborted:
    kind: ClassVar[str] = "aborted"


@dataclass(frozen=True, slots=True)
class PartialEnd:
    """The plan ends below 100%: the flag keeps serving that share."""

    percentage: float
    kind: ClassVar[str] = "partial_end"


@dataclass(frozen=True, slots=True)
class FlagDeleted:
    flag: str
    kind: ClassVar[str] = "flag_deleted"


@dataclass(frozen=True, slots=True)
class RemoveFlag:
    """Clean-up: the flag comes out of the code once everyone has had the feature for CLEANUP_AFTER."""

    flag: str
    since: datetime  # everyone has had the feature since
    ready: datetime  # since + CLEANUP_AFTER
    due: bool  # ready has passed
    kind: ClassVar[str] = "remove_flag"


@dataclass(frozen=True, slots=True)
class Watch:
    metric: str
    thresholds: str
    kind: ClassVar[str] = "watch"


@dataclass(frozen=True, slots=True)
class Breaching:
    metric: str
    thresholds: str
    critical: bool  # the kill switch, not a step back
    sustain: timedelta  # if it lasts this long
    kind: ClassVar[str] = "breaching"


NextStep = (
    NotStarted
    | AwaitingSignoffs
    | Soaking
    | SoakOver
    | NeedsSamples
    | SignoffAhead
    | WaitingForData
    | Paused
    | RolledBack
    | Disabled
    | Aborted
    | PartialEnd
    | FlagDeleted
    | RemoveFlag
    | Watch
    | Breaching
)


# What users said and how they took it.


@dataclass(frozen=True, slots=True)
class Trend:
    """The treatment's mean rating now, and in the span before."""

    now: float
    before: float
    span: timedelta


@dataclass(frozen=True, slots=True)
class Engagement:
    treatment: float  # engaged actions per user with the feature
    control: float | None  # … without (None: none measured)


@dataclass(frozen=True, slots=True)
class Tickets:
    total: float  # in the window
    change: float | None  # against the week before the rollout, per hour (a baseline gate's)


@dataclass(frozen=True, slots=True)
class Reception:
    """Per variant, treatment first, only the variants with values: feedback received, the mean rating and
    the share of positive ratings; the trend of the treatment's rating; engagement and support tickets."""

    received: Mapping[str, int] = field(default_factory=dict)
    satisfaction: Mapping[str, Estimate] = field(default_factory=dict)
    positive: Mapping[str, Estimate] = field(default_factory=dict)
    trend: Trend | None = None
    engagement: Engagement | None = None
    tickets: Tickets | None = None


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # daily, support, weekly, completion
    generated_at: datetime
    timezone: str  # IANA name the report's dates are shown in
    start: datetime  # the window its numbers cover
    end: datetime
    rollout_id: int
    name: str  # the plan's: "workstation-rollout"
    flag: str
    environment: str
    state: str
    status: str  # normal, waiting, watch, breaching, paused, rolled_back, disabled, completed, aborted, not_started
    stage: int
    stage_name: str
    percentage: float
    stage_count: int
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None  # when it reached completed, disabled or aborted
    gates_at: datetime | None  # when the verdicts were judged: now, or at a finished rollout's last decision
    metrics: tuple[MetricRow, ...]
    users: Users | None
    incidents: tuple[Incident, ...]
    reception: Reception
    actions: tuple[NextStep, ...]
    visits: tuple[StageVisit, ...]
    plan_stages: tuple[PlanStage, ...]
    signoffs: tuple[Signoff, ...]
    charts: tuple[Chart, ...]
    contact: str | None  # who to ask, when the schedule or the request names someone
    started_by: str  # who started the rollout: who to ask otherwise
    channels: tuple[str, ...]
    flag_exists: bool
    comments: tuple[Comment, ...] = ()  # the newest comments from users with the feature, newest first


def estimates_of(result: MetricResult) -> dict[str, Estimate]:
    """Per variant, the treatment first and the control second."""
    return {v: result.variants[v].estimate for v in sorted(result.variants, key=_first)}


def gate_row(gate: Gate, judged: Judged | None, window: MetricResult | None) -> MetricRow:
    """A gate's row: its verdict on the stage's data (None when not judged) and the window's values."""
    unit = window.spec.unit if window else BUILTIN_METRICS[parse_metric_name(gate.metric)[0]].unit
    return MetricRow(
        gate.metric,
        unit,
        estimates_of(window) if window else {},
        gate.target.text if gate.target else None,
        gate.threshold_text(),
        gate.compare.value,
        gate.sustain.total_seconds(),
        judged.verdict if judged else None,
        judged.estimate if judged else None,
        judged.needs_samples if judged else None,
        judged.needs_s if judged else None,
        gate.difference,
    )


def metric_chart(
    metric: str,
    result: MetricResult,
    markers: tuple[Marker, ...],
    start: datetime,
    end: datetime,
    lines: tuple[ChartLine, ...] = (),
) -> Chart:
    points = result.series
    variants = list(estimates_of(result))
    missing = Estimate(None, None, None, 0)  # a point where the variant had no data
    at = {v: [p.estimates.get(v, missing) for p in points] for v in variants}
    return Chart(
        metric,
        result.spec.unit,
        start,
        end,
        tuple(p.at for p in points),
        {v: tuple(e.value for e in at[v]) for v in variants},
        markers,
        {v: tuple((e.lower, e.upper) for e in at[v]) for v in variants},
        lines,
    )


def gate_lines(plan: Plan, metric: str) -> tuple[ChartLine, ...]:
    """The thresholds of the plan's gates on this metric that are values of the metric itself (not changes
    relative to the control or a baseline), to draw across its chart."""
    return tuple(
        ChartLine(threshold.value, f"{name} {threshold.text}")
        for gate in plan.gates
        if gate.metric == metric and gate.compare is Compare.ABSOLUTE
        for name, threshold in (
            ("target", gate.target),
            ("warn", gate.warn),
            ("rollback", gate.rollback),
            ("disable", gate.disable),
        )
        if threshold is not None
    )


def stage_markers(
    plan: Plan, transitions: Sequence[Transition], start: datetime, end: datetime
) -> tuple[Marker, ...]:
    """Stage changes (labelled with the percentage they went to) and kill switches within the window."""
    out = []
    for t in transitions:
        if not start <= t.at <= end:
            continue
        if t.to_phase is Phase.DISABLED and t.from_phase is not Phase.DISABLED:
            out.append(Marker(t.at, "off"))
        elif t.to_stage != t.from_stage:
            out.append(Marker(t.at, f"{plan.percentage_bp(t.to_stage) / 100:g}%"))
    return tuple(out)


def incidents_since(plan: Plan, transitions: Sequence[Transition], since: datetime) -> list[Incident]:
    """Rollbacks, kill switches, pauses and aborts since `since`."""
    out = []
    for t in transitions:
        kind = _INCIDENT.get(t.to_phase) if t.to_phase is not t.from_phase else None
        if t.kind is TransitionKind.STEPPED_BACK:
            kind = STEPPED_BACK
        elif kind is None and t.to_stage < t.from_stage:
            kind = "rolled back"  # stepped back again while already rolled back
        if kind is None or t.at < since:
            continue
        change = StageChange(
            plan.percentage_bp(t.from_stage) / 100,
            plan.percentage_bp(t.to_stage) / 100,
            t.to_phase is Phase.DISABLED,
        )
        out.append(Incident(t.at, kind, change, t.actor, t.reason))
    return out


def alert_incident(alert: Alert, rule: AlertRule) -> Incident:
    return Incident(
        alert.started_at,
        "alert",
        AlertBreach(rule.name, rule.metric, rule.condition_text, alert.value),
        "",
        alert.state,
        alert.resolved_at,
    )


STEPPED_BACK = "stepped back to compare"  # at 100%, to the last stage with a control (plans.decide)


def _left(t: Transition) -> str:
    """How a move between stages left the stage it was at."""
    if t.to_stage > t.from_stage:
        return "advanced"
    if t.to_phase is Phase.ABORTED:
        return "aborted"
    return STEPPED_BACK if t.kind is TransitionKind.STEPPED_BACK else "rolled back"


def stage_visits(plan: Plan, transitions: Sequence[Transition]) -> list[StageVisit]:
    """Each stay at a stage: when it began and ended, and how (advanced, rolled back, …)."""
    visits: list[StageVisit] = []

    def close(t: Transition, outcome: str) -> None:
        if visits and visits[-1].left is None:
            visits[-1] = replace(visits[-1], left=t.at, outcome=outcome, actor=t.actor, reason=t.reason)

    for t in transitions:
        if t.to_stage != t.from_stage:
            close(t, _left(t))
            name = plan.stages[t.to_stage - 1].name if t.to_stage else "off"
            visits.append(
                StageVisit(
                    t.to_stage, name, plan.percentage_bp(t.to_stage) / 100, t.at, None, "", t.actor, t.reason
                )
            )
        elif t.to_phase in (Phase.COMPLETED, Phase.DISABLED) and t.from_phase is not t.to_phase:
            close(t, t.to_phase.value)
    return visits


def plan_stage_rows(plan: Plan, visits: Sequence[StageVisit]) -> list[PlanStage]:
    first: dict[int, datetime] = {}
    for v in visits:
        first.setdefault(v.number, v.entered)
    return [
        PlanStage(i, s.name, s.percentage_bp / 100, s.min_duration.total_seconds(), first.get(i))
        for i, s in enumerate(plan.stages, start=1)
    ]


def report_status(phase: Phase, verdicts: Sequence[str | None]) -> str:
    if phase is Phase.PENDING:
        return "not_started"
    if phase in (Phase.DISABLED, Phase.ABORTED, Phase.ROLLED_BACK, Phase.PAUSED, Phase.COMPLETED):
        return phase.value
    if "critical" in verdicts or "fail" in verdicts:
        return "breaching"
    if "warn" in verdicts:
        return "watch"
    return "waiting" if phase in (Phase.AWAITING_APPROVAL, Phase.WAITING_FOR_DATA) else "normal"


def _row(rows: Sequence[MetricRow], metric: str) -> MetricRow | None:
    return next((r for r in rows if r.metric == metric), None)


def comment_of(entry: Entry) -> Comment:
    rating = ""
    if entry.score is not None and entry.scale:
        given = parse_scale(entry.scale, "scale").rating(entry.score)
        rating = (
            ("thumbs up" if given else "thumbs down")
            if entry.scale == THUMBS
            else f"{given:g} on {entry.scale}"
        )
    text = mask_emails(clip(" ".join((entry.comment or "").split()), SHOWN_COMMENT))
    return Comment(datetime.fromtimestamp(entry.at_ms / 1000, UTC), rating, text)


def _first(variant: str) -> tuple[bool, bool, str]:
    """The treatment first, the control second."""
    return variant != TREATMENT, variant != CONTROL, variant


def _with_values(estimates: Mapping[str, Estimate]) -> dict[str, Estimate]:
    """The treatment and the control, in that order, where they have a value."""
    return {
        v: estimates[v] for v in (TREATMENT, CONTROL) if v in estimates and estimates[v].value is not None
    }


def reception(
    rows: Sequence[MetricRow],
    satisfaction: Mapping[str, Estimate],
    positive: Mapping[str, Estimate],
    received: Mapping[str, int],
    trend: Trend | None,
) -> Reception:
    """What users said per variant (their feedback: how many, their mean rating with its bounds, the share of
    positive ratings, the treatment's trend) and how they took the feature besides (engagement against
    control, support tickets against the baseline)."""
    counts = {v: received[v] for v in (TREATMENT, CONTROL) if v in received}
    return Reception(
        counts if any(counts.values()) else {},
        _with_values(satisfaction),
        _with_values(positive),
        trend,
        _engagement(_row(rows, "engagement")),
        _tickets(_row(rows, "support_tickets")),
    )


def _engagement(row: MetricRow | None) -> Engagement | None:
    on, off = (row.window.get(TREATMENT), row.window.get(CONTROL)) if row else (None, None)
    if on is None or on.value is None:
        return None
    return Engagement(on.value, off.value if off is not None and off.value else None)


def _tickets(row: MetricRow | None) -> Tickets | None:
    total = row.window.get("all") if row else None
    if row is None or total is None or total.value is None:
        return None
    baseline = row.compare == Compare.BASELINE.value and row.gate is not None and row.gate.value is not None
    return Tickets(total.value, row.gate.value if baseline and row.gate else None)


def next_steps(
    record: RolloutRecord,
    rows: Sequence[MetricRow],
    transitions: Sequence[Transition],
    now: datetime,
    flag_exists: bool,
) -> list[NextStep]:
    """Next steps, from the rollout's state and its gates (`rows` begins with the gates' rows, in plan order)."""
    plan, state = record.plan, record.state
    last = transitions[-1].reason if transitions else ""
    out: list[NextStep]
    match state.phase:
        case Phase.PENDING:
            out = [NotStarted()]
        case Phase.AWAITING_APPROVAL:
            out = [
                AwaitingSignoffs(tuple(state.missing(plan, state.stage + 1)), _stage(plan, state.stage + 1))
            ]
        case Phase.RUNNING:
            out = _running(record, rows, now)
        case Phase.WAITING_FOR_DATA:
            out = [WaitingForData(last)]
        case Phase.PAUSED:
            out = [Paused(last)]
        case Phase.ROLLED_BACK:
            out = [RolledBack(plan.percentage_bp(state.stage) / 100, last)]
        case Phase.DISABLED:
            out = [Disabled(last)]
        case Phase.ABORTED:
            out = [Aborted()]
        case Phase.COMPLETED:
            out = [_cleanup(record, now, flag_exists)]
    if state.phase is not Phase.COMPLETED and not state.phase.is_terminal:
        out += _breaches(rows)
    return out


def _stage(plan: Plan, number: int) -> StageRef:
    return StageRef(number, plan.stages[number - 1].name, plan.percentage_bp(number) / 100)


def _running(record: RolloutRecord, rows: Sequence[MetricRow], now: datetime) -> list[NextStep]:
    plan, state = record.plan, record.state
    n = state.stage
    then = _stage(plan, n + 1) if n < len(plan.stages) else None
    soak = plan.stages[n - 1].min_duration - (now - (state.entered_at or now))
    out: list[NextStep]
    if soak > timedelta(0):
        out = [Soaking(now + soak, soak, then)]
    else:
        pending = [
            r.metric
            for r, g in zip(rows, plan.gates, strict=False)
            if g.blocks_advance and r.verdict != "pass"
        ]
        out = [SoakOver(then, tuple(pending))]
    out += [
        NeedsSamples(r.metric, r.needs_samples, timedelta(seconds=r.needs_s) if r.needs_s else None)
        for r in rows
        if r.needs_samples
    ]
    if then is not None and (missing := state.missing(plan, n + 1)):
        out.append(SignoffAhead(then, tuple(missing)))
    return out


def _breaches(rows: Sequence[MetricRow]) -> list[NextStep]:
    out: list[NextStep] = []
    for r in rows:
        if r.verdict == "warn":
            out.append(Watch(r.metric, r.thresholds))
        elif r.verdict in ("fail", "critical"):
            out.append(
                Breaching(r.metric, r.thresholds, r.verdict == "critical", timedelta(seconds=r.sustain_s))
            )
    return out


def _cleanup(record: RolloutRecord, now: datetime, flag_exists: bool) -> NextStep:
    """Clean-up: remove the flag once everyone has had the feature for CLEANUP_AFTER with no issues."""
    plan = record.plan
    final = plan.percentage_bp(record.state.stage) / 100
    if final < 100:
        return PartialEnd(final)
    if not flag_exists:
        return FlagDeleted(plan.flag)
    since = record.state.entered_at or now
    return RemoveFlag(plan.flag, since, since + CLEANUP_AFTER, now >= since + CLEANUP_AFTER)

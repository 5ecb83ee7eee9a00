"""Reports, pure: what a report holds, the schedules that send them, and how a rollout's state, transitions
and gate results become a report's rows, incidents, stages and next actions."""

__all__ = [
    "CHART_METRICS",
    "ChartLine",
    "gate_lines",
    "CLEANUP_AFTER",
    "Chart",
    "Estimate",
    "Incident",
    "MAX_WINDOW_S",
    "Marker",
    "MetricRow",
    "PlanStage",
    "Report",
    "STANDARD_METRICS",
    "StageVisit",
    "Users",
    "alert_incident",
    "estimates_of",
    "feedback_lines",
    "satisfaction_lines",
    "comment_of",
    "Comment",
    "gate_row",
    "incidents_since",
    "metric_chart",
    "metric_label",
    "people_name",
    "plan_stage_rows",
    "report_actions",
    "report_status",
    "report_titles",
    "stage_markers",
    "stage_visits",
]


import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rampup.core.alerts import Alert, AlertRule
from rampup.core.durations import format_duration
from rampup.core.feedback import SHOWN_COMMENT, THUMBS, Entry, clip, mask_emails, parse_scale
from rampup.core.gates import CONTROL, TREATMENT, Compare, Gate
from rampup.core.plans import Phase, Plan, Signoff, Transition
from rampup.core.ports import RolloutRecord
from rampup.core.rollups import DAY
from rampup.core.stats import Estimate
from rampup.core.telemetry import BUILTIN_METRICS, parse_metric_name

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
_LABELS = {
    "error_rate": "Error Rate",
    "unhandled_exceptions": "Critical Errors (unhandled exceptions)",
    "errors": "Errors",
    "api_latency": "API Response",
    "lcp": "Page Load (LCP)",
    "engagement": "User Engagement",
    "support_tickets": "Support Tickets",
    "lighthouse": "Lighthouse",
    "data_loss": "Data Loss",
    "exposures": "Exposures",
}
_INCIDENT = {
    Phase.ROLLED_BACK: "rolled back",
    Phase.DISABLED: "disabled",
    Phase.PAUSED: "paused",
    Phase.ABORTED: "aborted",
}


# ---------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class MetricRow:
    metric: str  # as the plan names it: error_rate, api_latency_p95, …
    label: str
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
class Incident:
    at: datetime
    kind: str  # rolled back, disabled, paused, aborted, alert
    change: str  # "25% → 10%", "kill switch", or an alert's value
    actor: str
    reason: str
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
    label: str
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
class Report:
    kind: str
    title: str  # the e-mail subject
    heading: str
    generated_at: datetime
    timezone: str  # IANA name the report's dates are shown in
    start: datetime  # the window its numbers cover
    end: datetime
    rollout_id: int
    name: str  # the plan's name for people: "Workstation Rollout"
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
    gates_at: (
        datetime | None
    )  # when the verdicts were judged: now, or at the last decision of a finished rollout
    metrics: tuple[MetricRow, ...]
    users: Users | None
    incidents: tuple[Incident, ...]
    feedback: tuple[str, ...]
    actions: tuple[str, ...]
    visits: tuple[StageVisit, ...]
    plan_stages: tuple[PlanStage, ...]
    signoffs: tuple[Signoff, ...]
    charts: tuple[Chart, ...]
    contact: str
    channels: tuple[str, ...]
    flag_exists: bool
    comments: tuple[Comment, ...] = ()  # the newest comments from users with the feature, newest first


def people_name(plan_name: str) -> str:
    """workstation-rollout → Workstation Rollout, as people call it."""
    words = plan_name.replace("-", " ").replace("_", " ").split()
    name = " ".join(w[:1].upper() + w[1:] for w in words)
    return name if name.lower().endswith("rollout") else f"{name} Rollout"


def report_titles(kind: str, name: str, stage: int, percentage: float, local: datetime) -> tuple[str, str]:
    date = local.date().isoformat()
    match kind:
        case "daily":
            return f"{name} - Daily Report {date}", f"Stage {stage}: {percentage:g}% Rollout - Daily Report"
        case "support":
            title = f"{name} - Daily Status {date}"
            return title, title
        case "weekly":
            year, week, _ = local.isocalendar()
            title = f"{name} - Weekly Summary {year}-W{week:02d}"
            return title, title
    return f"{name} - Completion Report", f"{name} Completion Report"


def metric_label(metric: str) -> str:
    base, q = parse_metric_name(metric)
    label = _LABELS.get(base, base)
    if q is None:
        return label
    return f"{label[:-1]} p{q * 100:g})" if label.endswith(")") else f"{label} (p{q * 100:g})"


def estimates_of(result: Mapping[str, Any]) -> dict[str, Estimate]:
    """Per variant, the treatment first and the control second."""
    variants = result["variants"]
    return {
        v: Estimate(variants[v]["value"], variants[v]["lower"], variants[v]["upper"], variants[v]["samples"])
        for v in sorted(variants, key=_first)
    }


def gate_row(gate: Gate, result: Mapping[str, Any], window: Mapping[str, Any] | None) -> MetricRow:
    """A gate's row: its verdict on the stage's data (`result`, empty when not judged) and the window's values."""
    needs = result.get("needs") or {}
    seconds = needs.get("seconds")
    judged = (
        Estimate(result["value"], result["lower"], result["upper"], result["samples"]) if result else None
    )
    unit = window["unit"] if window else BUILTIN_METRICS[parse_metric_name(gate.metric)[0]].unit
    return MetricRow(
        gate.metric,
        metric_label(gate.metric),
        unit,
        estimates_of(window) if window else {},
        gate.target.text if gate.target else None,
        gate.threshold_text(),
        gate.compare.value,
        gate.sustain.total_seconds(),
        result.get("verdict"),
        judged,
        needs.get("samples"),
        seconds if seconds is not None and not math.isinf(seconds) else None,
        gate.difference,
    )


def metric_chart(
    metric: str,
    result: Mapping[str, Any],
    markers: tuple[Marker, ...],
    start: datetime,
    end: datetime,
    lines: tuple[ChartLine, ...] = (),
) -> Chart:
    points = result["series"]
    variants = list(estimates_of(result))
    return Chart(
        metric,
        metric_label(metric),
        result["unit"],
        start,
        end,
        tuple(p["at"] for p in points),
        {v: tuple(p["values"].get(v) for p in points) for v in variants},
        markers,
        {v: tuple((p.get("lower", {}).get(v), p.get("upper", {}).get(v)) for p in points) for v in variants},
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
        if kind is None and t.to_stage < t.from_stage:
            kind = "rolled back"  # stepped back again while already rolled back
        if kind is None or t.at < since:
            continue
        before, after = plan.percentage_bp(t.from_stage) / 100, plan.percentage_bp(t.to_stage) / 100
        change = (
            "kill switch"
            if t.to_phase is Phase.DISABLED
            else (f"{before:g}% → {after:g}%" if before != after else f"held at {after:g}%")
        )
        out.append(Incident(t.at, kind, change, t.actor, t.reason))
    return out


def alert_incident(alert: Alert, rule: AlertRule) -> Incident:
    value = f" at {alert.value:.4g}" if alert.value is not None else ""
    return Incident(
        alert.started_at,
        "alert",
        f"{rule.metric} {rule.condition_text}{value}",
        f"alert rule {rule.name!r}",
        alert.state,
        alert.resolved_at,
    )


def stage_visits(plan: Plan, transitions: Sequence[Transition]) -> list[StageVisit]:
    """Each stay at a stage: when it began and ended, and how (advanced, rolled back, …)."""
    visits: list[StageVisit] = []

    def close(t: Transition, outcome: str) -> None:
        if visits and visits[-1].left is None:
            visits[-1] = replace(visits[-1], left=t.at, outcome=outcome, actor=t.actor, reason=t.reason)

    for t in transitions:
        if t.to_stage != t.from_stage:
            outcome = (
                "advanced"
                if t.to_stage > t.from_stage
                else "aborted"
                if t.to_phase is Phase.ABORTED
                else "rolled back"
            )
            close(t, outcome)
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


def feedback_lines(rows: Sequence[MetricRow]) -> list[str]:
    """What the numbers say about users' reception besides their feedback: engagement against control, support
    tickets against the baseline."""
    out = []
    engagement = _row(rows, "engagement")
    if engagement is not None:
        on, off = engagement.window.get(TREATMENT), engagement.window.get(CONTROL)
        if on is not None and on.value is not None:
            line = f"Engagement: {on.value:.3g} engaged actions per user with the feature"
            if off is not None and off.value:
                line += f", {off.value:.3g} without ({(on.value / off.value - 1) * 100:+.1f}%)"
            out.append(line)
    tickets = _row(rows, "support_tickets")
    if tickets is not None:
        total = tickets.window.get("all")
        if total is not None and total.value is not None:
            line = f"Support tickets: {total.value:.0f} in the window"
            if tickets.compare == Compare.BASELINE.value and tickets.gate and tickets.gate.value is not None:
                line += f" ({tickets.gate.value * 100:+.0f}% against the week before the rollout, per hour)"
            out.append(line)
    return out


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


def _per_variant(estimates: Mapping[str, Estimate], text: Any, noun: str) -> str:
    """'X with the feature, Y without': the treatment first."""
    parts = [
        f"{text(e)} {'with the feature' if v == TREATMENT else 'without'}{noun.format(n=e.samples)}"
        for v, e in estimates.items()
        if v in (TREATMENT, CONTROL) and e.value is not None
    ]
    return ", ".join(parts)


def satisfaction_lines(
    satisfaction: Mapping[str, Estimate],
    positive: Mapping[str, Estimate],
    received: Mapping[str, int],
    trend: tuple[float | None, float | None, str],
) -> list[str]:
    """What users said, per variant: how many, their mean rating with its bounds, the share of positive ratings,
    and the treatment's mean rating against the period before (`trend`: now, before, what before means)."""
    out = []
    if any(received.get(v) for v in (TREATMENT, CONTROL)):
        counts = {
            v: Estimate(float(received[v]), None, None, received[v]) for v in sorted(received, key=_first)
        }
        out.append("Feedback received: " + _per_variant(counts, lambda e: f"{e.value:.0f}", ""))
    rated = _per_variant(
        satisfaction,
        lambda e: (
            f"{e.value:.2f} of 5"
            + (f" (95%: {e.lower:.2f}–{e.upper:.2f})" if e.lower is not None and e.upper is not None else "")
        ),
        " from {n} ratings",
    )
    if rated:
        out.append("Satisfaction: " + rated)
    share = _per_variant(positive, lambda e: f"{e.value * 100:.0f}% positive", "")
    if share:
        out.append("Positive ratings (4 or 5 of 5, a thumbs-up): " + share)
    now, before, when = trend
    if now is not None and before is not None:
        out.append(
            f"Trend with the feature: {now:.2f} of 5 against {before:.2f} {when} ({now - before:+.2f})"
        )
    return out


def report_actions(
    record: RolloutRecord,
    rows: Sequence[MetricRow],
    transitions: Sequence[Transition],
    now: datetime,
    zone: ZoneInfo,
    flag_exists: bool,
) -> list[str]:
    """Next steps, from the rollout's state and its gates (`rows` begins with the gates' rows, in plan order)."""
    plan, state, rid = record.plan, record.state, record.id
    n, last = state.stage, transitions[-1].reason if transitions else ""
    percentage = plan.percentage_bp(n) / 100

    def stage(number: int) -> str:
        return f"stage {number} ({plan.stages[number - 1].name}, {plan.percentage_bp(number) / 100:g}%)"

    out: list[str] = []
    match state.phase:
        case Phase.PENDING:
            out.append(f"Not started: `rampup rollout start {rid}` starts it.")
        case Phase.AWAITING_APPROVAL:
            missing = state.missing(plan, n + 1)
            out.append(
                f"Waiting for {', '.join(missing)} before {stage(n + 1)}: "
                f'`rampup rollout signoff {rid} "PREREQUISITE" --by NAME`'
                + (f", `rampup rollout approve {rid}`." if "approval" in missing else ".")
            )
        case Phase.RUNNING:
            spec = plan.stages[n - 1]
            after = stage(n + 1) if n < len(plan.stages) else "completion"
            soak = (spec.min_duration - (now - (state.entered_at or now))).total_seconds()
            pending = [
                r.metric
                for r, g in zip(rows, plan.gates, strict=False)
                if g.blocks_advance and r.verdict != "pass"
            ]
            if soak > 0:
                ends = (now + timedelta(seconds=soak)).astimezone(zone)
                out.append(
                    f"Soak ends in {format_duration(timedelta(seconds=soak), 'short')} ({ends:%Y-%m-%d %H:%M}), then {after} if every gate passes."
                )
            elif pending:
                out.append(f"Soak is over; {after} follows once {', '.join(pending)} pass.")
            else:
                out.append(f"Soak is over and every gate passes: {after} at the controller's next tick.")
            for r in rows:
                if r.needs_samples:
                    time_left = (
                        f" (about {format_duration(timedelta(seconds=r.needs_s), 'short')} at the current rate)"
                        if r.needs_s
                        else ""
                    )
                    out.append(
                        f"{r.metric} needs about {r.needs_samples:,.0f} more samples to decide{time_left}."
                    )
            if n < len(plan.stages) and (missing := state.missing(plan, n + 1)):
                out.append(
                    f"{stage(n + 1)[0].upper()}{stage(n + 1)[1:]} will wait for {', '.join(missing)}; "
                    f'sign off ahead with `rampup rollout signoff {rid} "PREREQUISITE" --by NAME`.'
                )
        case Phase.WAITING_FOR_DATA:
            out.append(
                f"Waiting for data ({last}). It advances by itself once the gates pass; "
                f"`rampup rollout advance {rid}` moves on by hand."
            )
        case Phase.PAUSED:
            out.append(
                f"Paused ({last}). `rampup rollout resume {rid}` resumes; safety rollbacks act meanwhile."
            )
        case Phase.ROLLED_BACK:
            out.append(
                f"Rolled back to {percentage:g}% ({last}). It holds there: investigate the root cause, fix "
                f"it, re-test on staging, then `rampup rollout resume {rid}`."
            )
        case Phase.DISABLED:
            out.append(f"Kill switch pulled ({last}). Investigate and fix, then start a new rollout.")
        case Phase.ABORTED:
            out.append("Aborted: everyone is back on the old version. Start a new rollout when ready.")
        case Phase.COMPLETED:
            out.append(_cleanup(plan, record, now, zone, flag_exists))
    if state.phase is not Phase.COMPLETED and not state.phase.is_terminal:
        for r in rows:
            if r.verdict == "warn":
                out.append(f"Watch {r.metric}: it is past its target or warning ({r.thresholds}).")
            elif r.verdict in ("fail", "critical"):
                held = (
                    f" if it lasts {format_duration(timedelta(seconds=r.sustain_s), 'short')}"
                    if r.sustain_s
                    else ""
                )
                act = "pulls the kill switch" if r.verdict == "critical" else "steps back"
                out.append(f"{r.metric} breaches {r.thresholds}: the controller {act}{held}.")
    return out


def _cleanup(plan: Plan, record: RolloutRecord, now: datetime, zone: ZoneInfo, flag_exists: bool) -> str:
    """Clean-up: remove the flag once everyone has had the feature for 3+ days with no issues."""
    final = plan.percentage_bp(record.state.stage) / 100
    if final < 100:
        return f"The plan ends at {final:g}%: the flag keeps serving that share until someone raises it."
    if not flag_exists:
        return f"The flag {plan.flag!r} is deleted in Rampup: the cleanup is done."
    since = record.state.entered_at or now
    ready = since + CLEANUP_AFTER
    if now >= ready:
        return (
            f"Everyone has had the feature since {since.astimezone(zone):%Y-%m-%d %H:%M} without a step back: "
            f"remove the flag {plan.flag!r} from the code, then delete it in Rampup."
        )
    return (
        f"Remove the flag {plan.flag!r} from the code after {ready.astimezone(zone):%Y-%m-%d %H:%M} (3 days at "
        f"100%) if nothing goes wrong meanwhile, then delete it in Rampup."
    )

"""The services' answers as the API shows them: the one place that turns domain values into JSON-ready
dicts (the dashboard reads the same shapes through `web/data.py`)."""

from dataclasses import asdict
from typing import Any

from rampup.core.durations import format_duration
from rampup.core.flags import FlagState
from rampup.core.lifecycle import Stewardship
from rampup.core.masking import mask_urls
from rampup.core.switch_off import SwitchOff
from rampup.core.telemetry import MetricResult, VariantValue
from rampup.services.alerts import AlertStatus, RuleStatus
from rampup.services.flags import FlagView
from rampup.services.lifecycle import Evaluations, FlagLife, describe
from rampup.services.notifications import Delivery
from rampup.services.reports import ScheduleStatus
from rampup.services.rollouts import Backtest, RolloutStatus
from rampup.services.segments import SegmentView

__all__ = [
    "alert_out",
    "alert_rule_out",
    "backtest_out",
    "delivery_out",
    "evaluations_out",
    "flag_life_out",
    "flag_out",
    "metric_out",
    "references_out",
    "rollout_out",
    "schedule_out",
    "segment_out",
    "state_out",
    "switch_off_out",
]


def flag_out(view: FlagView) -> dict[str, Any]:
    s = view.stewardship
    lifetime = s.kind.lifetime
    return {
        **view.record.definition.to_dict(),
        "kind": s.kind.value,
        "lifetime_days": None if lifetime is None else lifetime.days,
        "notify": list(s.notify),
        "status": s.status.value,
        "status_since": s.status_since,
        "archived_at": s.archived_at,
        "references": references_out(s),
        "created_at": view.record.created_at,
        "updated_at": view.record.updated_at,
        "environments": {
            env: {**state.to_dict(), "switched_off": switch_off_out(view.switched_off.get(env))}
            for env, state in view.states.items()
        },
    }


def state_out(
    flag: str, environment: str, state: FlagState, switched_off: SwitchOff | None
) -> dict[str, Any]:
    return {
        "flag": flag,
        "environment": environment,
        **state.to_dict(),
        "switched_off": switch_off_out(switched_off),
    }


def switch_off_out(off: SwitchOff | None) -> dict[str, Any] | None:
    """Who switched the flag off, while it stays off; None while it is on or has never been on."""
    if off is None:
        return None
    return {
        "at": off.at,
        "actor": off.actor,
        "on_behalf_of": off.on_behalf_of,
        "reason": off.reason,
        "how": off.how.value,
        "source_id": off.source_id,
    }


def references_out(s: Stewardship) -> dict[str, Any]:
    """Where the code uses a flag, as the last `rampup refs --push` found it."""
    return {
        "scanned_at": s.scanned_at,
        "count": len(s.references),
        "items": [r.to_dict() for r in s.references],
    }


def segment_out(view: SegmentView, *, keys: bool = False) -> dict[str, Any]:
    """A segment; with `keys`, every listed key too (a list of segments gives only their count)."""
    record = view.record
    return {
        **record.segment.summary(),
        "key_count": record.key_count,
        "environment": view.environment,
        "used_by": list(view.used_by),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        **({"keys": sorted(record.segment.keys)} if keys else {}),
    }


def rollout_out(status: RolloutStatus) -> dict[str, Any]:
    record = status.record
    plan, state = record.plan, record.state
    number = state.stage
    soak = status.soak_remaining
    return {
        "id": record.id,
        "name": plan.name,
        "flag": plan.flag,
        "environment": plan.environment,
        "state": state.phase.value,
        "stage": {
            "number": number,
            "name": "not started" if number == 0 else plan.stages[number - 1].name,
            "percentage": plan.percentage_bp(number) / 100,
            "entered_at": state.entered_at,
            "soak_remaining_s": None if soak is None else soak.total_seconds(),
        },
        "waiting_for": status.waiting_for,
        "stages": [{"number": i, **s.to_dict()} for i, s in enumerate(plan.stages, start=1)],
        "gates": [r.to_dict() for r in status.gates],
        "signoffs": [
            {"stage": s.stage, "prerequisite": s.prerequisite, "by": s.by, "at": s.at} for s in state.signoffs
        ],
        "timeline": [t.to_dict() for t in status.timeline],
        "actions": list(status.actions),
        "created_by": record.created_by,
        "created_at": record.created_at,
        "plan": mask_urls(record.plan_source),
        "forecast": [f.to_dict() for f in status.forecast],
        "srm_power": [p.to_dict() for p in status.srm_power],
    }


def backtest_out(b: Backtest) -> dict[str, Any]:
    return {
        "plan": b.plan.name,
        "flag": b.plan.flag,
        "environment": b.plan.environment,
        "from": b.since,
        "to": b.until,
        "tick_s": b.tick.total_seconds(),
        "decisions": [t.to_dict() for t in b.decisions],
        "state": b.state.phase.value,
        "stage": b.state.stage,
    }


def delivery_out(d: Delivery) -> dict[str, Any]:
    return asdict(d)


def alert_rule_out(r: RuleStatus) -> dict[str, Any]:
    return {
        "id": r.record.id,
        **r.record.rule.to_dict(),
        "rollout_id": r.record.rollout_id,
        "breaching_since": r.record.breaching_since,
        "firing": r.firing,
    }


def alert_out(s: AlertStatus) -> dict[str, Any]:
    a = s.alert
    return {
        "id": a.id,
        "rule_id": a.rule_id,
        "state": a.state,
        "value": a.value,
        "started_at": a.started_at,
        "resolved_at": a.resolved_at,
        "last_notified_at": a.last_notified_at,
        "rule": None if s.rule is None else s.rule.to_dict(),
    }


def schedule_out(s: ScheduleStatus) -> dict[str, Any]:
    r = s.record
    return {"id": r.id, **r.schedule.to_dict(), "last_period": r.last_period, "next_at": s.next_at}


def evaluations_out(e: Evaluations) -> dict[str, Any]:
    return {
        "flag": e.flag,
        "days": e.days,
        "environments": {
            env: {
                "total": sum(c.count for c in counts),
                "last_evaluated_at": max(c.last_at for c in counts),
                "days": [{"day": c.calendar_day.isoformat(), "count": c.count} for c in counts],
            }
            for env, counts in e.counts.items()
        },
    }


def flag_life_out(f: FlagLife) -> dict[str, Any]:
    life, s = f.life, f.stewardship
    return {
        "flag": f.key,
        "kind": s.kind.value,
        "status": life.status.value,
        "reasons": [why.value for why in life.reasons],
        "reason": describe(life, s),
        "since": life.since,
        "last_evaluated_at": f.last_evaluated_at,
        "completed_at": f.completed_at,
        "archived_at": s.archived_at,
        "references": len(s.references),
        "scanned_at": s.scanned_at,
        "channels": list(f.channels),
    }


def metric_out(r: MetricResult) -> dict[str, Any]:
    return {
        "metric": r.metric,
        "aggregation": r.spec.aggregation.value,
        "unit": r.spec.unit,
        "environment": r.environment,
        "flag": r.flag,
        "window": format_duration(r.window),
        "start": r.start,
        "end": r.end,
        "variants": {v: _variant_out(e, r.spec.counted) for v, e in r.variants.items()},
        "series": [
            {
                "at": p.at,
                "values": {v: e.value for v, e in p.estimates.items()},
                "lower": {v: e.lower for v, e in p.estimates.items()},
                "upper": {v: e.upper for v, e in p.estimates.items()},
            }
            for p in r.series
        ],
    }


def _variant_out(v: VariantValue, counted: str) -> dict[str, Any]:
    e = v.estimate
    counts = {counted: v.counted, "users": v.users, "mean": v.mean, "denominator": v.denominator}
    return {
        "value": e.value,
        "lower": e.lower,
        "upper": e.upper,
        "samples": e.samples,
        "count": v.count,
        **{k: n for k, n in counts.items() if n is not None},
    }

"""How long each stage should take to decide, from a power calculation at the traffic seen (or given).

A stage advances when its soak is over and its blocking gates pass. A target like "error rate < 0.1%"
passes at the first sample count n at which the rate's confidence sequence lies wholly under 0.1%: when
the failures so far, S_n, are at most b(n), the most that log M_n(0.1%) ≥ log(1/α) allows. S_n is random,
so so is that n; the forecast is its median — half of rollouts decide sooner, half later — computed exactly
over S_n's distribution (`passage.samples_to_pass`). Its time is n over the treatment's traffic, counted in users'
evidence (divided by the dispersion, as the gates count). A rate at or over its target never passes: the
forecast says so.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rampup.core.bucketing import BUCKETS
from rampup.core.gates import CONTROL, STAGE_ALPHA, Compare, Gate, GateInputs, Scale, spread_at
from rampup.core.passage import samples_to_pass
from rampup.core.plans import Plan
from rampup.core.rollups import ALL_VARIANT
from rampup.core.sketch import value_of
from rampup.core.telemetry import Aggregation, parse_metric_name

__all__ = ["Observed", "StageForecast", "forecast", "forecast_plan", "observe"]


@dataclass(frozen=True, slots=True)
class Observed:
    """What a gate's target will see per request: how many of its samples a request brings (1 for
    requests, the page loads per request for LCP), the share of them beyond the target's line (the error
    rate; for a percentile, the share slower than the target), and how clustered they are by user."""

    per_request: float
    share: float
    dispersion: float = 1.0


@dataclass(frozen=True, slots=True)
class StageForecast:
    stage: int
    name: str
    soak_s: float
    decision_s: float  # math.inf: never, at the traffic given
    limited_by: str | None  # the gate that takes longest, when it takes longer than the soak

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "soak_s": self.soak_s,
            "expected_decision_s": self.decision_s if math.isfinite(self.decision_s) else None,
            "limited_by": self.limited_by,
        }


def forecast(
    gates: Sequence[Gate],
    stages: Sequence[tuple[str, int, float]],
    requests_per_s: float,
    observe: Callable[[Gate], Observed | None],
) -> list[StageForecast]:
    """Per stage (name, percentage in basis points, soak in seconds): when it should decide."""
    out = []
    for number, (name, percentage_bp, soak_s) in enumerate(stages, start=1):
        share = percentage_bp / BUCKETS
        slowest, limited_by = 0.0, None
        for gate in gates:
            seconds = _seconds(gate, share, requests_per_s, soak_s, observe)
            if seconds is not None and seconds > slowest:
                slowest, limited_by = seconds, gate.metric
        decision = max(soak_s, slowest)
        out.append(StageForecast(number, name, soak_s, decision, limited_by if slowest > soak_s else None))
    return out


def _seconds(
    gate: Gate,
    share: float,
    requests_per_s: float,
    soak_s: float,
    observe: Callable[[Gate], Observed | None],
) -> float | None:
    """How long the gate's target takes to pass at this stage (at least the soak), or None when it does
    not need data."""
    target = gate.target
    if (
        target is None
        or target.op != "<"
        or gate.scale is not Scale.OWN
        or gate.compare is not Compare.ABSOLUTE
    ):
        return None
    if gate.aggregation is Aggregation.RATE:
        limit = target.value
    elif gate.aggregation is Aggregation.PERCENTILE:
        limit = 1 - (gate.quantile or 0.5)
    else:
        return None
    seen = observe(gate)
    if seen is None:
        return None
    per_s = requests_per_s * share * seen.per_request / max(seen.dispersion, 1.0)
    if per_s <= 0:
        return math.inf
    start = soak_s * per_s
    needed = samples_to_pass(seen.share, limit, STAGE_ALPHA, start)
    if needed <= start:  # decided at the soak's end (not a rounding's width after it)
        return soak_s
    return needed / per_s if math.isfinite(needed) else math.inf


def forecast_plan(plan: Plan, inputs: GateInputs, since_ms: int, until_ms: int) -> list[StageForecast]:
    """Each stage's expected time to a decision at the traffic the span saw (the server reads the
    environment's last day; `rampup simulate` a day of its synthetic traffic): one rule for both."""
    requests = inputs.aggregate("error_rate", ALL_VARIANT, since_ms, until_ms)
    if not requests.count:
        return []
    stages = [(s.name, s.percentage_bp, s.min_duration.total_seconds()) for s in plan.stages]
    per_s = requests.count / max((until_ms - since_ms) / 1000, 1.0)
    return forecast(plan.gates, stages, per_s, lambda gate: observe(gate, inputs, since_ms, until_ms))


def observe(gate: Gate, inputs: GateInputs, since_ms: int, until_ms: int) -> Observed | None:
    """What a gate's target will see, from the traffic before the rollout (None: nothing to go on). The
    clustering by user is control's, as the gates take it where the treatment has shown none yet: for an
    error rate its failures per user, for a percentile its users' design effect at the target's line."""
    requests = inputs.aggregate("error_rate", ALL_VARIANT, since_ms, until_ms)
    base, _ = parse_metric_name(gate.metric)
    if not requests.count or gate.target is None:
        return None
    if base == "error_rate":
        spread = inputs.dispersion(base, CONTROL, since_ms, until_ms)
        return Observed(1.0, requests.failures / requests.count, spread)
    seen = inputs.aggregate(base, ALL_VARIANT, since_ms, until_ms)
    if not seen.sketch:
        return None
    above = sum(n for b, n in seen.sketch.items() if value_of(b) > gate.target.value)
    users = inputs.exceedance(base, CONTROL, since_ms, until_ms)
    return Observed(seen.count / requests.count, above / seen.count, spread_at(users, gate.target.value))

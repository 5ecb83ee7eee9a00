"""How long each stage should take to decide, from a power calculation at the traffic seen (or given).

A stage advances when its soak is over and its blocking gates pass. A target like "error rate < 0.1%"
passes once the rate's confidence sequence lies wholly under 0.1%; with the true rate p that takes about
the n at which the sequence's evidence against 0.1%, log M_n(0.1%) at s = p·n, reaches log(1/α). The
expected time is n over the treatment's traffic. This is the typical (median) path: half of rollouts
decide sooner, half later. A rate at or over its target never passes: the forecast says so.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rampup.core import sequential
from rampup.core.bucketing import BUCKETS
from rampup.core.gates import STAGE_ALPHA, Compare, Gate, Scale
from rampup.core.telemetry import Aggregation

__all__ = ["Observed", "StageForecast", "forecast", "samples_to_pass"]


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


def samples_to_pass(share: float, limit: float) -> float:
    """The samples after which a rate of `share` is typically shown to be under `limit` (math.inf if
    it is not under it)."""
    if share >= limit:
        return math.inf
    level = math.log(1 / STAGE_ALPHA)

    def enough(n: float) -> bool:
        return sequential.log_mixture(n, share * n, limit) >= level

    high = 16.0
    while not enough(high):
        high *= 2
        if high > 1e13:
            return math.inf
    low = high / 2
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


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
            seconds = _seconds(gate, share, requests_per_s, observe)
            if seconds is not None and seconds > slowest:
                slowest, limited_by = seconds, gate.metric
        decision = max(soak_s, slowest)
        out.append(StageForecast(number, name, soak_s, decision, limited_by if slowest > soak_s else None))
    return out


def _seconds(
    gate: Gate, share: float, requests_per_s: float, observe: Callable[[Gate], Observed | None]
) -> float | None:
    """How long the gate's target takes to pass at this stage, or None when it does not need data."""
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
    needed = samples_to_pass(seen.share, limit)
    return needed / per_s if per_s > 0 and math.isfinite(needed) else math.inf

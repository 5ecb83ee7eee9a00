"""How long each stage should take to decide, from a power calculation at the traffic seen (or given).

A stage advances when its soak is over and its blocking gates pass. A target like "error rate < 0.1%"
passes at the first sample count n at which the rate's confidence sequence lies wholly under 0.1%: when
the failures so far, S_n, are at most b(n), the most that log M_n(0.1%) ≥ log(1/α) allows. S_n is random,
so so is that n; the forecast is its median — half of rollouts decide sooner, half later — computed exactly
over S_n's distribution (`samples_to_pass`). Its time is n over the treatment's traffic, counted in users'
evidence (divided by the dispersion, as the gates count). A rate at or over its target never passes: the
forecast says so.
"""

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rampup.core import sequential
from rampup.core.bucketing import BUCKETS
from rampup.core.gates import CONTROL, STAGE_ALPHA, Compare, Gate, GateInputs, Scale, spread_at
from rampup.core.plans import Plan
from rampup.core.rollups import ALL_VARIANT
from rampup.core.sketch import value_of
from rampup.core.telemetry import Aggregation, parse_metric_name

__all__ = ["Observed", "StageForecast", "forecast", "forecast_plan", "observe", "samples_to_pass"]


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


_LEVEL = math.log(1 / STAGE_ALPHA)
_TINY = 1e-15  # probabilities below this are dropped: far below any median's precision
MAX_EVENTS = 300  # beyond this many events at the median the walk is worked out at this many (see below)


def samples_to_pass(share: float, limit: float, start: float = 0.0) -> float:
    """The median number of samples at which a rate of `share` is shown to be under `limit`, counting
    from `start` samples on (a soak's end: a rate shown under its line earlier must be under it then);
    math.inf if it is not under it.

    Failures only add up and the boundary b(n) only rises, so a path that is over the boundary can come
    under it only where b(n) steps up, at n_k = the first n at which k failures pass. The walk is followed
    from one step to the next, its failures' distribution over the paths that have not passed yet carried
    by the binomial of the samples in between: a small dynamic programme over k, exact for independent
    samples. A rate so near its line that the median needs more than MAX_EVENTS failures would cost too
    much that way; there the expected path's crossing is scaled by the walk's own ratio at MAX_EVENTS
    (the ratio moves slowly: 1.175 at 265 failures, 1.142 at 6,500, for rates 80% and 95% of the line)."""
    if share >= limit:
        return math.inf
    expected = _expected_crossing(share, limit)
    if share * expected > MAX_EVENTS:
        return max(start, expected * _far_ratio(limit))
    return _median_passage(share, limit, start)


@functools.lru_cache(maxsize=64)
def _far_ratio(limit: float) -> float:
    """The median passage over the expected crossing, for the rate whose crossing has MAX_EVENTS failures."""
    near = _share_crossing_at(MAX_EVENTS, limit)
    return _median_passage(near, limit, 0.0) / _expected_crossing(near, limit)


def _evidence(n: float, k: float, limit: float) -> bool:
    return k < limit * n and sequential.log_mixture(n, k, limit) >= _LEVEL


def _median_passage(p: float, limit: float, start: float) -> float:
    """The walk of independent samples, each failing with probability p (see samples_to_pass)."""
    n, at = math.ceil(start), start
    low, alive = _binomial(n, p)  # alive[i]: P(S_n = low + i and not passed yet)
    passed = 0.0
    k = _most_passing(n, limit)
    while True:
        cut = min(max(k + 1 - low, 0), len(alive))
        passed += sum(alive[:cut])
        if passed >= 0.5:
            return at
        alive, low = alive[cut:], max(low, k + 1)
        while alive and alive[-1] < _TINY:
            alive.pop()
        k += 1
        step = _first_passing(k, limit, n) - n
        n += step
        at = float(n)
        shift, pmf = _binomial(step, p)
        low += shift
        grown = [0.0] * (len(alive) + len(pmf) - 1)
        for j, f in enumerate(pmf):
            for i, w in enumerate(alive):
                grown[i + j] += w * f
        alive = grown


def _most_passing(n: int, limit: float) -> int:
    """b(n): the most failures in n samples that pass (-1: none); fewer failures are more evidence."""
    low, high = -1, math.ceil(limit * n)  # passes (or none), fails
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _evidence(n, middle, limit) else (low, middle)
    return low


def _first_passing(k: int, limit: float, after: int) -> int:
    """n_k: the first n > `after` at which k failures pass."""
    low = max(after, math.floor(k / limit))  # fails (k ≥ limit · low, or already tried)
    width = max(1, low // 8)
    while not _evidence(low + width, k, limit):
        low, width = low + width, width * 2
    high = low + width
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _evidence(middle, k, limit) else (middle, high)
    return high


def _binomial(m: int, p: float) -> tuple[int, list[float]]:
    """Binomial(m, p) where it is not negligible: (its first count, the probabilities from there)."""
    if m == 0 or p == 0:
        return 0, [1.0]
    mode = min(m, math.floor((m + 1) * p))

    def log_pmf(j: int) -> float:
        return (
            math.lgamma(m + 1)
            - math.lgamma(j + 1)
            - math.lgamma(m - j + 1)
            + j * math.log(p)
            + (m - j) * math.log1p(-p)
        )

    peak = math.exp(log_pmf(mode))
    down, f = [], peak
    for j in range(mode, 0, -1):  # pmf(j − 1) = pmf(j) · j (1 − p) / ((m − j + 1) p)
        f *= j * (1 - p) / ((m - j + 1) * p)
        if f < _TINY * peak:
            break
        down.append(f)
    up, f = [peak], peak
    for j in range(mode, m):
        f *= (m - j) * p / ((j + 1) * (1 - p))
        if f < _TINY * peak:
            break
        up.append(f)
    return mode - len(down), down[::-1] + up


def _expected_crossing(share: float, limit: float) -> float:
    """Where the expected path s = share · n first has enough evidence (a smooth n, for scaling)."""

    def enough(n: float) -> bool:
        return sequential.log_mixture(n, share * n, limit) >= _LEVEL

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


def _share_crossing_at(events: float, limit: float) -> float:
    """The rate whose expected path crosses with `events` failures (more as the rate nears the line)."""
    low, high = 0.0, limit
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if middle * _expected_crossing(middle, limit) < events else (low, middle)
    return low


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
    needed = samples_to_pass(seen.share, limit, start)
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

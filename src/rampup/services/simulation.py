"""`rampup simulate`: the real gates and controller (core.gates, core.plans) in virtual time, against
synthetic traffic, beside the naive rule a person with a dashboard would apply.

Only the data source and the clock are simulated; every verdict and every decision is the production
code's. Traffic is drawn per minute (requests, failures, unhandled errors) and per controller tick
(latency and LCP sketches, engaged users), from a seeded generator, so runs repeat exactly.
"""

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from rampup.core import sketch
from rampup.core.durations import parse_duration
from rampup.core.gates import CONTROL, TREATMENT, assess
from rampup.core.plans import Phase, Plan, RolloutState, act, decide
from rampup.core.rollups import Aggregate, UnitTotals, combine
from rampup.errors import InvalidInput

__all__ = ["Traffic", "Regression", "TrialResult", "simulate_trial", "summarize", "Summary", "describe"]

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Traffic:
    requests_per_s: float = 10.0
    error_rate: float = 0.0005
    latency_ms: float = 120.0  # median; lognormal
    latency_sigma: float = 0.5
    lcp_ms: float = 1800.0
    lcp_sigma: float = 0.35
    page_load_share: float = 0.3  # page loads per request
    engagement: float = 0.4  # engaged actions per user
    unhandled_per_request: float = 0.0


@dataclass(frozen=True, slots=True)
class Regression:
    """The treatment gets worse from a stage on (or from a time on): `metric` takes `value`."""

    metric: str  # error_rate, latency_ms, lcp_ms, engagement, unhandled_per_request
    value: float
    stage: int | None = None
    after: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> "Regression":
        """`error_rate=0.02@stage1` or `latency_ms=900@6h`."""
        spec, _, when = text.partition("@")
        metric, _, value = spec.partition("=")
        if metric not in Traffic.__dataclass_fields__ or metric == "requests_per_s":
            raise InvalidInput(
                f"cannot regress {metric!r}; one of error_rate, latency_ms, lcp_ms, engagement, "
                "unhandled_per_request",
                where="--regression",
            )
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a number", where="--regression") from None
        if when.startswith("stage") and when[5:].isdigit():
            return cls(metric, number, stage=int(when[5:]))
        return cls(metric, number, after=parse_duration(when or "0s", "--regression"))


@dataclass
class _Inputs:
    """GateInputs over running totals since the stage began, plus the last hour minute by minute."""

    stage_since_ms: int = 0
    totals: dict[tuple[str, str], Aggregate] = field(default_factory=dict)
    recent: deque[tuple[int, dict[tuple[str, str], Aggregate]]] = field(
        default_factory=lambda: deque(maxlen=60)
    )
    units_total: dict[str, list[float]] = field(default_factory=dict)

    def reset(self, since_ms: int) -> None:
        self.stage_since_ms = since_ms
        self.totals.clear()
        self.units_total.clear()

    def add(self, minute_ms: int, metric: str, variant: str, a: Aggregate) -> None:
        self.totals.setdefault((metric, variant), Aggregate()).merge(a)
        if a.sketch is not None:
            return  # trailing windows are for count gates only (Gate.parse): sketches never need them
        if not self.recent or self.recent[-1][0] != minute_ms:
            self.recent.append((minute_ms, {}))
        self.recent[-1][1].setdefault((metric, variant), Aggregate()).merge(a)

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        if since_ms <= self.stage_since_ms:
            return self.totals.get((metric, variant), Aggregate())
        return combine(
            minute[(metric, variant)]
            for at, minute in self.recent
            if since_ms <= at + MINUTE_MS and at <= until_ms and (metric, variant) in minute
        )

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        users, engaged, squares = self.units_total.get(variant, [0, 0, 0])
        return UnitTotals(int(users), int(users), int(engaged), int(squares))


def _lognormal_buckets(median: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Sketch buckets covering ±6σ of a lognormal, with the probability of each."""
    low, high = (
        sketch.bucket_of(median * math.exp(-6 * sigma)),
        sketch.bucket_of(median * math.exp(6 * sigma)),
    )
    buckets = np.arange(low, high + 1)
    gamma = (1 + sketch.RELATIVE_ACCURACY) / (1 - sketch.RELATIVE_ACCURACY)
    upper_edges = np.log(gamma ** buckets.astype(float))
    cdf = 0.5 * (1 + np.vectorize(math.erf)((upper_edges - math.log(median)) / (sigma * math.sqrt(2))))
    probabilities = np.diff(np.concatenate(([0.0], cdf)))
    probabilities[-1] += 1 - probabilities.sum()
    return buckets, np.clip(probabilities, 0, None)


@dataclass
class TrialResult:
    outcome: str  # completed, rolled_back, disabled, paused, held
    ended_at: timedelta
    regression_at: timedelta | None
    acted_at: timedelta | None  # first automatic rollback or disable
    naive_outcome: str
    naive_acted_at: timedelta | None

    @property
    def delay(self) -> timedelta | None:
        if self.acted_at is None or self.regression_at is None or self.acted_at < self.regression_at:
            return None
        return self.acted_at - self.regression_at

    @property
    def naive_delay(self) -> timedelta | None:
        if (
            self.naive_acted_at is None
            or self.regression_at is None
            or self.naive_acted_at < self.regression_at
        ):
            return None
        return self.naive_acted_at - self.regression_at


class _World:
    """Synthetic traffic for one trial; the treatment's parameters change when a regression starts."""

    def __init__(self, traffic: Traffic, regression: Regression | None, rng: np.random.Generator) -> None:
        self.base, self.regression, self.rng = traffic, regression, rng
        self.regressed_at: timedelta | None = None
        self._buckets: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}

    def treatment(self, now: timedelta, stage: int) -> Traffic:
        r = self.regression
        if r is None:
            return self.base
        active = (r.stage is not None and stage >= r.stage) or (r.after is not None and now >= r.after)
        if active and self.regressed_at is None:
            self.regressed_at = now
        return replace(self.base, **{r.metric: r.value}) if self.regressed_at is not None else self.base

    def sketch(self, n: int, median: float, sigma: float) -> dict[int, int]:
        key = (median, sigma)
        if key not in self._buckets:
            self._buckets[key] = _lognormal_buckets(median, sigma)
        buckets, probabilities = self._buckets[key]
        counts = self.rng.multinomial(n, probabilities)
        drawn = np.flatnonzero(counts)
        return dict(zip(buckets[drawn].tolist(), counts[drawn].tolist(), strict=True))


def simulate_trial(
    plan: Plan,
    traffic: Traffic,
    regression: Regression | None,
    seed: int,
    tick: timedelta = timedelta(minutes=5),
    horizon: timedelta | None = None,
) -> TrialResult:
    rng = np.random.default_rng(seed)
    world = _World(traffic, regression, rng)
    horizon = horizon or 2 * sum((s.min_duration for s in plan.stages), timedelta()) + timedelta(days=1)
    state = _start(plan, EPOCH)
    inputs = _Inputs()
    inputs.reset(0)
    naive = _Naive(plan)
    minutes_per_tick = max(1, int(tick.total_seconds() // 60))
    acted_at: timedelta | None = None
    elapsed = timedelta()
    pending: dict[str, int] = {"t": 0, "c": 0}
    while elapsed < horizon and not state.phase.is_terminal:
        share = plan.percentage_bp(state.stage) / 10_000
        t_params = world.treatment(elapsed, state.stage)
        for _ in range(minutes_per_tick):
            minute_ms = int(elapsed.total_seconds() * 1000)
            n = int(rng.poisson(traffic.requests_per_s * 60))
            n_t = int(rng.binomial(n, share)) if 0 < share < 1 else (n if share >= 1 else 0)
            for variant, count, params in ((TREATMENT, n_t, t_params), (CONTROL, n - n_t, traffic)):
                failures = int(rng.binomial(count, params.error_rate)) if count else 0
                inputs.add(minute_ms, "error_rate", variant, Aggregate(count=count, failures=failures))
                unhandled = int(rng.poisson(count * params.unhandled_per_request)) if count else 0
                inputs.add(minute_ms, "unhandled_exceptions", variant, Aggregate(count=unhandled))
                if variant == TREATMENT:
                    naive.observe(count, failures)
            pending["t"] += n_t
            pending["c"] += n - n_t
            elapsed += timedelta(minutes=1)
            naive.check(elapsed, state.stage)
        _draw_tick(world, inputs, t_params, traffic, pending, elapsed)
        pending = {"t": 0, "c": 0}
        now = EPOCH + elapsed
        now_ms = int(elapsed.total_seconds() * 1000)
        results = [assess(g, inputs, inputs.stage_since_ms, now_ms) for g in plan.gates]
        decision = decide(plan, state, results, now)
        if decision.state.stage != state.stage or decision.state.phase != state.phase:
            if acted_at is None and decision.state.phase in (Phase.ROLLED_BACK, Phase.DISABLED):
                acted_at = elapsed
            inputs.reset(now_ms)
        state = _approve_pending(plan, decision.state, now)
        if state.phase in (Phase.ROLLED_BACK, Phase.PAUSED):
            break  # a person would look now; the trial ends with that outcome
        if (
            state.stage
            and now - (state.entered_at or now) > 2 * plan.stages[state.stage - 1].min_duration + tick
        ):
            break  # stuck twice as long as the soak: held, neither advancing nor rolling back
    outcome = {
        Phase.COMPLETED: "completed",
        Phase.ROLLED_BACK: "rolled_back",
        Phase.DISABLED: "disabled",
        Phase.PAUSED: "paused",
    }.get(state.phase, "held")
    return TrialResult(outcome, elapsed, world.regressed_at, acted_at, naive.outcome, naive.acted_at)


def _draw_tick(
    world: _World, inputs: _Inputs, t: Traffic, base: Traffic, pending: dict[str, int], elapsed: timedelta
) -> None:
    """Latency and LCP sketches and engaged users, drawn once a tick for the requests of the tick."""
    minute_ms = int((elapsed - timedelta(minutes=1)).total_seconds() * 1000)
    rng = world.rng
    n_t = pending["t"]
    if n_t:
        inputs.add(
            minute_ms,
            "api_latency",
            TREATMENT,
            Aggregate(count=n_t, sketch=world.sketch(n_t, t.latency_ms, t.latency_sigma)),
        )
        pages = int(rng.binomial(n_t, t.page_load_share))
        if pages:
            inputs.add(
                minute_ms,
                "lcp",
                TREATMENT,
                Aggregate(count=pages, sketch=world.sketch(pages, t.lcp_ms, t.lcp_sigma)),
            )
    for variant, users, params in ((TREATMENT, n_t, t), (CONTROL, pending["c"], base)):
        if users:
            counts = rng.multinomial(users, _poisson_pmf(params.engagement))
            ks = np.arange(len(counts))
            totals = inputs.units_total.setdefault(variant, [0, 0, 0])
            totals[0] += users
            totals[1] += float((ks * counts).sum())
            totals[2] += float((ks * ks * counts).sum())


def _poisson_pmf(mean: float, size: int = 12) -> np.ndarray:
    pmf = np.array([math.exp(-mean) * mean**k / math.factorial(k) for k in range(size)])
    pmf[-1] += 1 - pmf.sum()
    return pmf


def _start(plan: Plan, now: datetime) -> RolloutState:
    """Start, with every sign-off given: a simulation assumes people say yes at once."""
    return _approve_pending(plan, act(plan, RolloutState(), "start", "simulation", "", now).state, now)


def _approve_pending(plan: Plan, state: RolloutState, now: datetime) -> RolloutState:
    while state.phase is Phase.AWAITING_APPROVAL:
        nxt = state.stage + 1
        for prerequisite in plan.stages[nxt - 1].prerequisites:
            if prerequisite not in state.signed(nxt):
                state = act(plan, state, "signoff", "simulation", "", now, prerequisite).state
        if state.phase is Phase.AWAITING_APPROVAL:
            state = act(plan, state, "approve", "simulation", "", now).state
    return state


class _Naive:
    """The guide by hand: the treatment's error rate over the last 5 minutes, looked at every minute.
    Above the disable threshold → kill; above rollback → one stage back; advance after the soak time when
    the last 5 minutes are under target."""

    def __init__(self, plan: Plan) -> None:
        gate = next((g for g in plan.gates if g.metric == "error_rate"), None)
        self.target = gate.target.value if gate and gate.target else None
        self.rollback = gate.rollback.value if gate and gate.rollback else None
        self.disable = gate.disable.value if gate and gate.disable else None
        self.plan = plan
        self.window: deque[tuple[int, int]] = deque(maxlen=5)
        self.stage, self.entered = 1, timedelta()
        self.outcome = "held"
        self.acted_at: timedelta | None = None

    def observe(self, n: int, failures: int) -> None:
        self.window.append((n, failures))

    def check(self, now: timedelta, _controller_stage: int) -> None:
        if self.outcome != "held":
            return
        n = sum(w[0] for w in self.window)
        rate = sum(w[1] for w in self.window) / n if n else 0.0
        if self.disable is not None and rate > self.disable:
            self.outcome, self.acted_at = "disabled", now
        elif self.rollback is not None and rate > self.rollback:
            self.outcome, self.acted_at = "rolled_back", now
        elif now - self.entered >= self.plan.stages[self.stage - 1].min_duration and (
            self.target is None or (n and rate < self.target)
        ):
            if self.stage == len(self.plan.stages):
                self.outcome = "completed"
            else:
                self.stage, self.entered = self.stage + 1, now


@dataclass(frozen=True)
class Summary:
    trials: int
    outcomes: dict[str, int]
    acted_share: float  # rolled back or disabled
    delay_p50: timedelta | None
    delay_p90: timedelta | None
    duration_p50: timedelta | None  # time to complete, over completed trials


def summarize(results: Sequence[TrialResult], naive: bool = False) -> Summary:
    outcome: Callable[[TrialResult], str] = (lambda r: r.naive_outcome) if naive else (lambda r: r.outcome)
    counts: dict[str, int] = {}
    for r in results:
        counts[outcome(r)] = counts.get(outcome(r), 0) + 1
    delays = sorted(d for r in results if (d := (r.naive_delay if naive else r.delay)) is not None)
    durations = sorted(r.ended_at for r in results if outcome(r) == "completed") if not naive else []
    acted = sum(counts.get(k, 0) for k in ("rolled_back", "disabled"))
    return Summary(
        len(results),
        counts,
        acted / len(results) if results else 0.0,
        _percentile(delays, 0.5),
        _percentile(delays, 0.9),
        _percentile(durations, 0.5),
    )


def _percentile(values: Sequence[timedelta], q: float) -> timedelta | None:
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def describe(summary: Summary) -> dict[str, Any]:
    return {
        "trials": summary.trials,
        "outcomes": summary.outcomes,
        "acted_share": summary.acted_share,
        "delay_p50_s": summary.delay_p50.total_seconds() if summary.delay_p50 else None,
        "delay_p90_s": summary.delay_p90.total_seconds() if summary.delay_p90 else None,
        "duration_p50_s": summary.duration_p50.total_seconds() if summary.duration_p50 else None,
    }

"""`rampup simulate`: the real gates and controller (core.gates, core.plans) in virtual time, against
synthetic traffic shaped like production's, beside the naive rule a person with a dashboard would apply.

Only the data source and the clock are simulated; every verdict and every decision is the production
code's, at the production tick (10 s). Traffic is drawn a block of ticks at a time with numpy; the gates are
judged at the block's end, and when anything would change inside the block the first tick it changes at is
found by bisection, so decisions land on the exact tick they would in production without judging every
tick. Traffic has what production has: users whose request volumes are heavy-tailed (so the treatment's
share of requests is not its share of users) and whose latencies differ (a slow phone is slow in all it does;
latencies are drawn value by value, each from a user, so the gates get the per-user sums the store keeps), failures in bursts from one user (`burst`), incidents in both
variants, regressions in the treatment, users the flag serves who send nothing else (`silent_share`), and a
treatment whose telemetry is lost (`underreport`: its users' exposures still arrive) or whose users are lost
altogether (`dropped_users`): the two sample-ratio mismatches. Runs repeat exactly for a seed.
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
from rampup.core.forecast import StageForecast, forecast_plan
from rampup.core.gates import CONTROL, TREATMENT, GateResult, assess
from rampup.core.plans import (
    SRM_CHECKS,
    Decision,
    Phase,
    Plan,
    RolloutState,
    Srm,
    TransitionKind,
    approve_all,
    decide,
    sample_checks,
    start_signed,
)
from rampup.core.rollups import ALL_VARIANT, Aggregate, Exceedance, UnitTotals
from rampup.core.srm import SrmPower, srm_power
from rampup.errors import InvalidInput

__all__ = [
    "Traffic",
    "Regression",
    "TrialResult",
    "simulate_trial",
    "summarize",
    "Summary",
    "describe",
    "TICK",
    "expected_decisions",
    "stage_summary",
    "srm_caught",
]

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
TICK = timedelta(seconds=10)  # `rampup serve --tick`'s default
BLOCK = 180  # ticks drawn and judged together (30 min); changes inside a block are found by bisection


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
    burst: int = 1  # failures come in runs of this many, all from one user (a user's retries)
    requests_per_user: float = 5.0  # mean requests per user over a stage
    volume_sigma: float = 2.0  # requests per user are lognormal with this σ: a few users send most requests
    user_sigma: float = (
        0.3  # users differ: each user's latencies scaled by a lognormal factor of this σ (a slow
    )
    # phone, a far network), within the spread over all values (latency_sigma, lcp_sigma)
    # users the flag serves (their exposure events arrive) whose own telemetry never does, in both variants:
    # pages evaluated and left, requests no tracing sampled
    silent_share: float = 0.02
    underreport: float = (
        0.0  # share of the treatment's users whose telemetry is lost while their exposures arrive
    )
    dropped_users: float = 0.0  # share of the treatment's users lost altogether: their exposures too


_CHANGEABLE = (
    "error_rate",
    "latency_ms",
    "lcp_ms",
    "engagement",
    "unhandled_per_request",
    "underreport",
    "dropped_users",
)
_TREATMENT_ONLY = ("underreport", "dropped_users")


@dataclass(frozen=True, slots=True)
class Regression:
    """A change in traffic from a stage on (or from a time on, for a while): `metric` takes `value`. A
    regression changes the treatment; an incident (`everyone`) changes both variants."""

    metric: str  # one of _CHANGEABLE
    value: float
    stage: int | None = None
    after: timedelta | None = None
    lasts: timedelta | None = None  # None: to the end
    everyone: bool = False

    @classmethod
    def parse(cls, text: str, where: str = "--regression", everyone: bool = False) -> "Regression":
        """`error_rate=0.02@stage1`, `latency_ms=900@6h`, `error_rate=0.01@20h+2h` (for two hours)."""
        spec, _, when = text.partition("@")
        metric, _, value = spec.partition("=")
        if metric not in _CHANGEABLE or (everyone and metric in _TREATMENT_ONLY):
            raise InvalidInput(
                f"cannot change {metric!r}; one of " + ", ".join(m for m in _CHANGEABLE), where=where
            )
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a number", where=where) from None
        if not math.isfinite(number) or number < 0:
            raise InvalidInput(f"{value!r} is not a number ≥ 0", where=where)
        when, _, lasting = when.partition("+")
        lasts = parse_duration(lasting, where) if lasting else None
        if when.startswith("stage") and when[5:].isdigit():
            return cls(metric, number, stage=int(when[5:]), lasts=lasts, everyone=everyone)
        return cls(metric, number, after=parse_duration(when or "0s", where), lasts=lasts, everyone=everyone)


@dataclass
class TrialResult:
    outcome: str  # completed, rolled_back, disabled, paused, held
    ended_at: timedelta
    regression_at: timedelta | None
    acted_at: timedelta | None  # first automatic rollback or disable
    naive_outcome: str
    naive_acted_at: timedelta | None
    naive_regression_at: timedelta | None = None
    reasons: tuple[str, ...] = ()  # every automatic transition's reason, in order
    stage_times: tuple[
        tuple[int, timedelta], ...
    ] = ()  # (stage, how long it took) for each stage advanced from
    waits: tuple[
        tuple[int, timedelta], ...
    ] = ()  # (stage, when after its soak's end it said it waits for data)
    unseen_passes: tuple[int, ...] = ()  # stages passed with no failure seen in the treatment
    stepped_back: int = 0  # how often a breach at 100% stepped back to compare with control

    @property
    def delay(self) -> timedelta | None:
        return _delay(self.acted_at, self.regression_at)

    @property
    def naive_delay(self) -> timedelta | None:
        return _delay(self.naive_acted_at, self.naive_regression_at)


def _delay(acted: timedelta | None, onset: timedelta | None) -> timedelta | None:
    return None if acted is None or onset is None or acted < onset else acted - onset


class _World:
    """The traffic's parameters over time: the base, with regressions (treatment) and incidents (both)."""

    def __init__(self, traffic: Traffic, changes: Sequence[Regression]) -> None:
        self.base, self.changes = traffic, tuple(changes)
        self.regressed_at: timedelta | None = None

    def _active(self, c: Regression, now: timedelta, stage: int, since: dict[int, timedelta]) -> bool:
        if c.stage is not None:
            if stage < c.stage and id(c) not in since:
                return False
            started = since.setdefault(id(c), now)
        else:
            assert c.after is not None
            started = c.after
        return now >= started and (c.lasts is None or now < started + c.lasts)

    def params(self, now: timedelta, stage: int, since: dict[int, timedelta]) -> tuple[Traffic, Traffic]:
        treatment, control = self.base, self.base
        for c in self.changes:
            if self._active(c, now, stage, since):
                changed: dict[str, Any] = {c.metric: c.value}
                treatment = replace(treatment, **changed)
                if c.everyone:
                    control = replace(control, **changed)
        return treatment, control

    def onset(self, now: timedelta, stage: int, since: dict[int, timedelta]) -> bool:
        """Whether a regression of the treatment is under way (the first sets the trial's onset)."""
        return any(not c.everyone and self._active(c, now, stage, since) for c in self.changes)

    def boundaries(self) -> list[timedelta]:
        """Times at which a time-based change starts or ends: blocks never straddle them."""
        out = []
        for c in self.changes:
            if c.after is not None:
                out.append(c.after)
                if c.lasts is not None:
                    out.append(c.after + c.lasts)
        return sorted(out)


class _Buckets:
    """Sketch buckets and octaves for one metric over a fixed range (±5σ around its medians)."""

    def __init__(self, medians: Sequence[float], sigma: float) -> None:
        self.low = sketch.bucket_of(min(medians) * math.exp(-5 * sigma))
        high = sketch.bucket_of(max(medians) * math.exp(5 * sigma))
        self.ids = np.arange(self.low, high + 1)
        self.sigma = sigma
        self.first_level = sketch.level_of(sketch.value_of(self.low))
        self.levels = sketch.level_of(sketch.value_of(int(high))) - self.first_level + 1

    def to_dict(self, counts: np.ndarray) -> dict[int, int]:
        nonzero = np.flatnonzero(counts)
        return dict(zip((nonzero + self.low).tolist(), counts[nonzero].tolist(), strict=True))

    def octaves(self, spread: np.ndarray) -> dict[int, Exceedance]:
        """Per-user sums laid out by octave (`_Requests.spread`) as the store gives them."""
        totals = spread.astype(np.int64).tolist()
        return {
            self.first_level + i: Exceedance(
                totals[0][i], totals[1][i], totals[2][i], totals[3][i], totals[4][i]
            )
            for i in range(self.levels)
        }


@dataclass
class _Requests:
    """A block's values of one metric, one per request in tick order: its sketch bucket (index), octave
    (index) and user (users live within the block), so any tick's prefix gives both the sketch and the
    per-user sums the gates read."""

    buckets: np.ndarray
    levels: np.ndarray
    users: np.ndarray
    size: tuple[int, int]  # (bucket ids, octaves)

    def hist(self, m: int) -> np.ndarray:
        return np.bincount(self.buckets[:m], minlength=self.size[0])

    def spread(self, m: int) -> np.ndarray:
        """[Σn, Σn², Σe, Σe², Σen] per octave over the users of the first m values, e at or above it."""
        octaves = self.size[1]
        users = int(self.users[:m].max()) + 1 if m else 0
        # A row of users per octave, summed from the top octave down row by row (numpy's cumsum across rows
        # walks column by column, ten times slower at 16,000 users); integers, exact as the float sums were
        # (every count is far below 2⁵³).
        e = np.bincount(self.levels[:m] * users + self.users[:m], minlength=users * octaves)
        e = e.reshape(octaves, users)
        for level in range(octaves - 2, -1, -1):
            e[level] += e[level + 1]
        n = e[0]
        ones = np.ones(octaves, dtype=np.int64)
        sums = [n.sum() * ones, (n * n).sum() * ones, e.sum(1), (e * e).sum(1), e @ n]
        return np.stack(sums).astype(np.float64)


_SCALARS = ("count", "failures", "failures_sq")


@dataclass
class _Series:
    """One metric of one variant: what came before the block (since the stage began), and the block's
    cumulative sums, so any tick of the block can be judged. A histogram (sketch buckets, actions per user)
    is drawn once for the whole block; its part up to an earlier tick is a multivariate hypergeometric
    sample of it, drawn only when bisection asks."""

    base: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SCALARS, 0.0))
    base_hist: np.ndarray | None = None
    block: dict[str, np.ndarray] = field(default_factory=dict)
    block_hist: np.ndarray | None = None  # the whole block's histogram
    parts: dict[int, np.ndarray] = field(default_factory=dict)  # tick → histogram up to it
    values: _Requests | None = None  # a latency's block, value by value (its hist and spread come from it)
    base_spread: np.ndarray | None = None  # per-user sums by octave before the block (see _Requests.spread)
    spreads: dict[int, np.ndarray] = field(default_factory=dict)  # tick → the block's sums up to it
    recent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=360))  # (tick ms, count)
    per_tick: np.ndarray | None = None
    snapshots: dict[int, tuple[dict[str, float], np.ndarray | None, np.ndarray | None]] = field(
        default_factory=dict
    )

    def hist(self, k: int, rng: np.random.Generator) -> np.ndarray | None:
        if self.block_hist is None:
            return self.base_hist
        part = self.parts.get(k)
        if part is None:
            counted = int(self.block["count"][k])
            whole = self.block_hist
            if counted == int(self.block["count"][-1]):
                part = whole
            elif self.values is not None:
                part = self.values.hist(counted)
            else:
                part = rng.multivariate_hypergeometric(whole, counted) if counted else whole * 0
            self.parts[k] = part
        return part if self.base_hist is None else self.base_hist + part

    def spread(self, k: int) -> np.ndarray | None:
        if self.values is None:
            return self.base_spread
        part = self.spreads.get(k)
        if part is None:
            part = self.spreads[k] = self.values.spread(int(self.block["count"][k]))
        return part if self.base_spread is None else self.base_spread + part


class _Inputs:
    """GateInputs over the simulated data since the stage began, as of tick `k` of the current block."""

    def __init__(self, buckets: dict[str, _Buckets], rng: np.random.Generator) -> None:
        self.buckets, self.rng = buckets, rng
        self.series: dict[tuple[str, str], _Series] = {}
        self.stage_since_ms = 0
        self.block_start_ms = 0
        self.k = 0
        self._cache: dict[tuple[str, str, int, int, int], Aggregate] = {}
        self._octaves: dict[tuple[str, str, int, int], dict[int, Exceedance]] = {}

    def reset(self, since_ms: int) -> None:
        recent = {key: s.recent for key, s in self.series.items()}
        self.series = {key: _Series(recent=r) for key, r in recent.items()}
        self.stage_since_ms = since_ms
        self._forget()

    def _forget(self) -> None:
        """Drop what was read: the data or the tick changed."""
        self._cache.clear()
        self._octaves.clear()

    def load(self, start_ms: int, block: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
        """A new block of per-tick draws: {(metric, variant): {count, failures, failures_sq, hist}}."""
        self.block_start_ms = start_ms
        self._forget()
        for key, draws in block.items():
            s = self.series.setdefault(key, _Series())
            s.block = {name: np.cumsum(draws[name]) for name in _SCALARS if name in draws}
            counted = "failures" not in draws and "hist" not in draws  # count metrics: trailing windows
            s.per_tick = draws["count"] if counted else None
            s.block_hist = draws.get("hist")
            s.parts = {}
            s.values, s.spreads = draws.get("values"), {}  # type: ignore[assignment]

    def commit(self, k: int) -> None:
        """Ticks 0..k of the block happened; the rest are dropped (the world changed after tick k)."""
        self._forget()
        for s in self.series.values():
            hist, spread = s.hist(k, self.rng), s.spread(k)
            for name, cumulative in s.block.items():
                s.base[name] += float(cumulative[k])
            s.base_hist, s.base_spread, s.values, s.spreads = hist, spread, None, {}
            if s.per_tick is not None:
                at = range(self.block_start_ms, self.block_start_ms + (k + 1) * _TICK_MS, _TICK_MS)
                s.recent.extend(zip(at, s.per_tick[: k + 1].tolist(), strict=True))
            s.block, s.block_hist, s.per_tick, s.parts = {}, None, None, {}

    def _scalar(self, s: _Series, name: str) -> float:
        block = s.block.get(name)
        return s.base[name] + (float(block[self.k]) if block is not None else 0.0)

    def snapshot(self, at_ms: int) -> None:
        """Totals as they stand at a restart point (after a commit): windows from it subtract them."""
        for s in self.series.values():
            s.snapshots[at_ms] = (
                dict(s.base),
                None if s.base_hist is None else s.base_hist.copy(),
                None if s.base_spread is None else s.base_spread.copy(),
            )

    def _since(
        self, s: _Series, since_ms: int
    ) -> tuple[dict[str, float], np.ndarray | None, np.ndarray | None]:
        """What to subtract for data since `since_ms`: nothing from the stage's start, or a snapshot."""
        if since_ms <= self.stage_since_ms:
            return dict.fromkeys(_SCALARS, 0.0), None, None
        return s.snapshots.get(since_ms, (dict.fromkeys(_SCALARS, 0.0), None, None))

    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        s = self.series.get((metric, variant))
        if s is None:
            return 1.0
        before, _, _ = self._since(s, since_ms)
        failures = self._scalar(s, "failures") - before["failures"]
        squares = self._scalar(s, "failures_sq") - before["failures_sq"]
        return max(1.0, squares / failures) if failures > 0 else 1.0

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> dict[int, Exceedance]:
        """Per-user sums by octave since `since_ms` (users live within a block, so blocks add up); every
        line of a percentile gate reads them, so they are made once a tick."""
        key = (metric, variant, since_ms, self.k)
        cached = self._octaves.get(key)
        if cached is None:
            cached = self._octaves[key] = self._exceedance(metric, variant, since_ms)
        return cached

    def _exceedance(self, metric: str, variant: str, since_ms: int) -> dict[int, Exceedance]:
        s, octaves = self.series.get((metric, variant)), self.buckets.get(metric)
        spread = s.spread(self.k) if s is not None else None
        if s is None or octaves is None or spread is None:
            return {}
        _, _, before = self._since(s, since_ms)
        return octaves.octaves(spread if before is None else spread - before)

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        key = (metric, variant, since_ms, until_ms, self.k)
        cached = self._cache.get(key)
        if cached is None:  # gate lines of one metric read the same data
            cached = self._cache[key] = self._aggregate(metric, variant, since_ms, until_ms)
        return cached

    def _aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        if variant == ALL_VARIANT:  # the environment's: both variants together
            both = Aggregate()
            for v in (TREATMENT, CONTROL):
                both.merge(self._aggregate(metric, v, since_ms, until_ms))
            return both
        s = self.series.get((metric, variant))
        if s is None:
            return Aggregate()
        if since_ms > self.stage_since_ms and since_ms not in s.snapshots:  # a count gate's trailing window
            return Aggregate(count=round(self._window(s, since_ms, until_ms)))
        before, before_hist, _ = self._since(s, since_ms)
        sketched = self.buckets.get(metric)
        counts = s.hist(self.k, self.rng) if sketched else None
        if counts is not None and before_hist is not None:
            counts = counts - before_hist
        hist = sketched.to_dict(counts) or None if sketched and counts is not None else None
        return Aggregate(
            count=round(self._scalar(s, "count") - before["count"]),
            failures=round(self._scalar(s, "failures") - before["failures"]),
            sketch=hist,
        )

    def _window(self, s: _Series, since_ms: int, until_ms: int) -> float:
        total = sum(c for at, c in s.recent if since_ms <= at < until_ms)
        if s.per_tick is not None:
            for i in range(self.k + 1):
                if since_ms <= self.block_start_ms + i * _TICK_MS < until_ms:
                    total += float(s.per_tick[i])
        return total

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        """Users with their engaged actions: a histogram of actions per user."""
        s = self.series.get(("engagement", variant))
        counts = s.hist(self.k, self.rng) if s is not None else None
        if counts is None:
            return UnitTotals(0, 0, 0, 0)
        ks = np.arange(counts.size)
        users = int(counts.sum())
        return UnitTotals(users, users, int(counts @ ks), int(counts @ (ks * ks)))


_TICK_MS = int(TICK.total_seconds() * 1000)
_UNIT_COLUMNS = 4  # per tick: users of the treatment and of control, then the silent ones among them


def _most_evidence(counts: np.ndarray, share: np.ndarray | float) -> np.ndarray:
    """Per row of (treatment, control) counts, n·KL(observed share ‖ share): no mixture's evidence is more."""
    n: np.ndarray = counts.sum(axis=1)
    observed = np.clip(counts[:, 0] / np.maximum(n, 1), 1e-12, 1 - 1e-12)
    expected = np.clip(share, 1e-12, 1 - 1e-12)
    divergence = observed * np.log(observed / expected) + (1 - observed) * np.log(
        (1 - observed) / (1 - expected)
    )
    evidence: np.ndarray = n * divergence
    return evidence


_LOG_GAMMA = math.log((1 + sketch.RELATIVE_ACCURACY) / (1 - sketch.RELATIVE_ACCURACY))


class _Draw:
    """Per-tick traffic for a block, vectorised."""

    def __init__(self, rng: np.random.Generator, buckets: dict[str, _Buckets], tick_s: float) -> None:
        self.rng, self.buckets, self.tick_s = rng, buckets, tick_s
        self._pmf: dict[float, np.ndarray] = {}

    def block(
        self, ticks: int, share: float, request_share: float, t: Traffic, c: Traffic
    ) -> tuple[dict[tuple[str, str], dict[str, np.ndarray]], np.ndarray]:
        """The block's draws per (metric, variant), and the units the sample-ratio check counts per tick."""
        rng = self.rng
        rate = t.requests_per_s * self.tick_s
        n = rng.poisson(rate, ticks)
        n_t = rng.binomial(n, request_share)
        users = rng.poisson(rate / t.requests_per_user, ticks)
        users_t = rng.binomial(users, share)
        out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for variant, requests, people, params in (
            (TREATMENT, n_t, users_t, t),
            (CONTROL, n - n_t, users - users_t, c),
        ):
            if variant == TREATMENT and params.dropped_users:
                requests = rng.binomial(requests, 1 - params.dropped_users)
                people = rng.binomial(people, 1 - params.dropped_users)
            silent = rng.binomial(people, params.silent_share)
            if variant == TREATMENT and params.underreport:
                requests = rng.binomial(requests, 1 - params.underreport)
                silent += rng.binomial(people - silent, params.underreport)
            seen[variant] = (people, silent)
            reporting = people - silent
            out[("error_rate", variant)] = self._failures(requests, params)
            out[("unhandled_exceptions", variant)] = {
                "count": rng.poisson(requests * params.unhandled_per_request)
            }
            out[("api_latency", variant)] = self._values(
                "api_latency", requests, reporting, params, params.latency_ms
            )
            pages = rng.binomial(requests, params.page_load_share)
            out[("lcp", variant)] = self._values("lcp", pages, reporting, params, params.lcp_ms)
            out[("engagement", variant)] = self._histogram(people, silent, self._poisson(params.engagement))
        # as production counts them: users (all served), then those who sent nothing else, per variant
        return out, np.stack(
            [seen[TREATMENT][0], seen[CONTROL][0], seen[TREATMENT][1], seen[CONTROL][1]], axis=1
        )

    def _failures(self, requests: np.ndarray, p: Traffic) -> dict[str, np.ndarray]:
        if p.burst > 1:  # runs of `burst` failures, each from one user
            runs = self.rng.poisson(requests * p.error_rate / p.burst)
            failures = np.minimum(runs * p.burst, requests)
            return {"count": requests, "failures": failures, "failures_sq": runs * p.burst * p.burst}
        failures = self.rng.binomial(requests, min(p.error_rate, 1.0))
        return {"count": requests, "failures": failures, "failures_sq": failures}

    def _values(
        self, metric: str, n: np.ndarray, people: np.ndarray, p: Traffic, median: float
    ) -> dict[str, Any]:
        """The block's values one by one: each from a user (volumes lognormal of σ volume_sigma) whose
        values are scaled by their own factor (σ user_sigma), the rest of the spread within each user."""
        rng, b = self.rng, self.buckets[metric]
        total, users = int(n.sum()), max(int(people.sum()), 1)
        weights = rng.lognormal(0.0, p.volume_sigma, users)
        user = _choice(rng, weights / weights.sum(), total)
        between = min(p.user_sigma, b.sigma)  # the spread over all values stays the metric's
        within = math.sqrt(b.sigma**2 - between**2)
        # Each user's own median, then each value: the same numbers as summing per value, fewer operations.
        logs = (math.log(median) + between * rng.standard_normal(users))[user]
        logs += within * rng.standard_normal(total)
        bucket = np.clip(np.ceil(logs / _LOG_GAMMA).astype(np.int64) - b.low, 0, b.ids.size - 1)
        level = np.clip(np.floor(logs / math.log(2)).astype(np.int64) - b.first_level, 0, b.levels - 1)
        values = _Requests(bucket, level, user, (b.ids.size, b.levels))
        return {"count": n, "hist": values.hist(total), "values": values}

    def _histogram(
        self, n: np.ndarray, silent: np.ndarray, probabilities: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Actions per user of `n` users; the silent ones among them count, with none."""
        hist = self.rng.multinomial(int((n - silent).sum()), probabilities)
        hist[0] += int(silent.sum())
        return {"count": n, "hist": hist}

    def _poisson(self, mean: float) -> np.ndarray:
        """Actions per user: Poisson."""
        pmf = self._pmf.get(mean)
        if pmf is None:
            pmf = self._pmf[mean] = _poisson_pmf(mean)
        return pmf


def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """`rng.choice(p.size, size, p=p)`: the same draws from the same stream (it too takes `rng.random(size)`
    through p's normalised cumulative sums, searching on the right), three times as fast at 50 req/s, where
    a block draws ~80,000 values among ~16,000 users. A guide of 4–8 slots per user, a power of two so that
    u × slots and cdf × slots are exact, gives each draw the few users it may fall on; most draws (those
    inside a heavy user's span) have one, and the rest are bisected together."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    u = rng.random(size)
    slots = 1 << (int(cdf.size).bit_length() + 2)
    # guide[j]: the users whose cdf is at most j / slots, i.e. whose ⌈cdf × slots⌉ is at most j
    guide = np.bincount(np.ceil(cdf * slots).astype(np.int64), minlength=slots + 1).cumsum()
    slot = (u * slots).astype(np.int64)
    found = guide[slot]
    todo = np.flatnonzero(np.diff(guide)[slot])  # a user's span ends inside the slot: bisect
    low, high, u = found[todo], guide[slot[todo] + 1], u[todo]
    while todo.size:  # the first index whose cdf is above u, in [low, high]
        middle = (low + high) >> 1
        above = cdf[middle] > u
        high = np.where(above, middle, high)
        low = np.where(above, low, middle + 1)
        done = low >= high
        found[todo[done]] = low[done]
        todo, low, high, u = todo[~done], low[~done], high[~done], u[~done]
    return found


def _poisson_pmf(mean: float, size: int = 12) -> np.ndarray:
    pmf = np.array([math.exp(-mean) * mean**k / math.factorial(k) for k in range(size)])
    pmf[-1] += 1 - pmf.sum()
    return pmf


def _request_share(rng: np.random.Generator, share: float, traffic: Traffic, soak: timedelta) -> float:
    """The treatment's share of requests: its share of users, shifted by who those users are. With
    lognormal volumes of σ the heavy users dominate, and the share of requests varies by
    √(share (1 − share) e^σ² / users) around the share of users."""
    if not 0 < share < 1:
        return share
    users = max(traffic.requests_per_s * max(soak.total_seconds(), 3600) / traffic.requests_per_user, 1.0)
    spread = math.sqrt(share * (1 - share) * math.exp(traffic.volume_sigma**2) / users)
    return float(np.clip(rng.normal(share, spread), 1e-6, 1 - 1e-6))


def _buckets(traffic: Traffic, changes: Sequence[Regression] = ()) -> dict[str, _Buckets]:
    """The latencies' sketch ranges, wide enough for every median the changes bring."""
    medians = {
        "api_latency": [traffic.latency_ms] + [c.value for c in changes if c.metric == "latency_ms"],
        "lcp": [traffic.lcp_ms] + [c.value for c in changes if c.metric == "lcp_ms"],
    }
    return {
        "api_latency": _Buckets(medians["api_latency"], traffic.latency_sigma),
        "lcp": _Buckets(medians["lcp"], traffic.lcp_sigma),
    }


def simulate_trial(
    plan: Plan,
    traffic: Traffic,
    regression: Regression | None,
    seed: int,
    tick: timedelta = TICK,
    horizon: timedelta | None = None,
    incidents: Sequence[Regression] = (),
) -> TrialResult:
    """One rollout of the plan from start to end (completed, stopped by a decision, or the horizon)."""
    changes = ([regression] if regression else []) + list(incidents)
    buckets = _buckets(traffic, changes)
    trial = _Trial(plan, _World(traffic, changes), buckets, seed, tick)
    horizon = horizon or 2 * sum((s.min_duration for s in plan.stages), timedelta()) + timedelta(days=1)
    trial.run(horizon)
    naive = _Naive(plan, _World(traffic, changes), np.random.default_rng([seed, 1])).run(horizon)
    outcome = {
        Phase.COMPLETED: "completed",
        Phase.ROLLED_BACK: "rolled_back",
        Phase.DISABLED: "disabled",
        Phase.PAUSED: "paused",
        Phase.WAITING_FOR_DATA: "waiting_for_data",
    }.get(trial.state.phase, "held")
    return TrialResult(
        outcome,
        trial.elapsed,
        trial.regressed_at,
        trial.acted_at,
        naive[0],
        naive[1],
        naive[2],
        tuple(trial.reasons),
        tuple(trial.stage_times),
        tuple(trial.waits),
        tuple(trial.unseen_passes),
        trial.step_backs,
    )


class _Trial:
    def __init__(
        self,
        plan: Plan,
        world: _World,
        buckets: dict[str, _Buckets],
        seed: int,
        tick: timedelta,
    ) -> None:
        self.plan, self.world, self.tick = plan, world, tick
        self.rng = np.random.default_rng(seed)
        self.draw = _Draw(self.rng, buckets, tick.total_seconds())
        self.inputs = _Inputs(buckets, self.rng)
        self.state = start_signed(plan, EPOCH, "simulation")
        self.ticks = 0  # ticks done
        self.acted_at: timedelta | None = None
        self.regressed_at: timedelta | None = None
        self.reasons: list[str] = []
        self.stage_times: list[tuple[int, timedelta]] = []
        self.waits: list[tuple[int, timedelta]] = []
        self.unseen_passes: list[int] = []
        self.step_backs = 0
        self.since: dict[int, timedelta] = {}  # stage-triggered changes: when they began
        # what the sample-ratio checks count this stage: users, then silent users, treatment and control
        self.units = np.zeros(_UNIT_COLUMNS)
        self.units_block = np.zeros((1, _UNIT_COLUMNS))
        self.stage_tick = 0
        self.srm_from_tick = 0
        self.request_share = 0.0

    @property
    def elapsed(self) -> timedelta:
        return self.ticks * self.tick

    def run(self, horizon: timedelta) -> None:
        limit = int(horizon / self.tick)
        boundaries = [int(b / self.tick) for b in self.world.boundaries()]
        self._enter_stage()
        while self.ticks < limit and not self._over():
            size = min(BLOCK, limit - self.ticks, *(b - self.ticks for b in boundaries if b > self.ticks))
            size = min(size, self._ticks_to_soak_end() or size, self._ticks_to_hour())
            self._block(size)
            if (self.ticks - self.stage_tick) % self._hour_ticks == 0:
                self.inputs.snapshot(int(self.elapsed.total_seconds() * 1000))

    def _over(self) -> bool:
        """Stopped for a person to look: terminal, rolled back, or paused (unless only the environment
        holds it, which lifts by itself)."""
        phase = self.state.phase
        paused = phase is Phase.PAUSED and not self.state.environment_hold
        return phase.is_terminal or phase is Phase.ROLLED_BACK or paused

    @property
    def _hour_ticks(self) -> int:
        return max(1, round(timedelta(hours=1) / self.tick))

    def _ticks_to_hour(self) -> int:
        """Blocks end on the stage's hours, where restarted windows begin."""
        return self._hour_ticks - (self.ticks - self.stage_tick) % self._hour_ticks

    def _ticks_to_soak_end(self) -> int | None:
        if not self.state.stage or self.state.entered_at is None:
            return None
        end = self.state.entered_at + self.plan.stages[self.state.stage - 1].min_duration
        left = math.ceil((end - (EPOCH + self.elapsed)) / self.tick)
        return left if left > 0 else None

    def _enter_stage(self) -> None:
        now_ms = int(self.elapsed.total_seconds() * 1000)
        self.inputs.reset(now_ms)
        self.units = np.zeros(_UNIT_COLUMNS)
        self.stage_tick = self.ticks
        day_ticks = round(timedelta(days=1) / self.tick)
        self.srm_from_tick = -(-self.ticks // day_ticks) * day_ticks
        stage = self.state.stage
        share = self.plan.percentage_bp(stage) / 10_000
        soak = self.plan.stages[stage - 1].min_duration if stage else timedelta(0)
        self.request_share = _request_share(self.rng, share, self.world.base, soak)

    def _block(self, size: int) -> None:
        stage = self.state.stage
        share = self.plan.percentage_bp(stage) / 10_000
        now = self.elapsed
        t, c = self.world.params(now, stage, self.since)
        if self.regressed_at is None and self.world.onset(now, stage, self.since):
            self.regressed_at = now
        draws, units = self.draw.block(size, share, self.request_share, t, c)
        self.inputs.load(int(now.total_seconds() * 1000), draws)
        ticks = self.ticks + np.arange(size)
        units[ticks < self.srm_from_tick] = 0  # production counts users of whole days in the stage
        self.units_block = np.cumsum(units, axis=0)
        end = size - 1
        mismatch = self._first_mismatch(size)
        if mismatch is not None and mismatch < end and self._changes(self._judge(mismatch)):
            end = mismatch  # production checks every tick: a mismatch gone again by the block's end still pauses
        last = self._judge(end)
        if not self._changes(last):
            self._commit(end, last)
            return
        lo, hi = 0, end
        while lo < hi:  # the first tick at which the decision changes
            mid = (lo + hi) // 2
            if self._changes(self._judge(mid)):
                hi = mid
            else:
                lo = mid + 1
        self._commit(hi, self._judge(hi))

    def _first_mismatch(self, size: int) -> int | None:
        """The block's first tick at which a sample-ratio check finds a mismatch: its evidence is not
        monotone in time, so the block's end alone would miss one that comes and goes within the block."""
        share = self.plan.percentage_bp(self.state.stage) / 10_000
        if not self.plan.srm or not 0 < share < 1:
            return None
        seen = self.units + self.units_block[:size]
        users = seen[:, :2]
        served = users[:, 0] / np.maximum(users.sum(axis=1), 1)  # the treatment's share of the users served
        # A mixture's evidence is at most the best single alternative's, n·KL(observed share ‖ share): only
        # ticks where that reaches either check's level can pause, and few do.
        level = math.log(SRM_CHECKS / self.plan.srm_alpha)
        candidates = (_most_evidence(users, share) >= level) | (_most_evidence(seen[:, 2:], served) >= level)
        for k in np.flatnonzero(candidates):
            srm = self._srm(seen[k])
            if srm is not None and srm.mismatch:
                return int(k)
        return None

    def _srm(self, seen: np.ndarray) -> Srm | None:
        users, silent = (int(seen[0]), int(seen[1])), (int(seen[2]), int(seen[3]))
        share = self.plan.percentage_bp(self.state.stage) / 10_000
        return sample_checks(users, silent, users, share, self.plan.srm_alpha)  # every user is served

    def _judge(self, k: int) -> Decision:
        self.inputs.k = k
        elapsed = self.elapsed + (k + 1) * self.tick
        now_ms = int(elapsed.total_seconds() * 1000)
        horizon = self.plan.stages[self.state.stage - 1].horizon_h
        results: list[GateResult] = [
            assess(g, self.inputs, self.inputs.stage_since_ms, now_ms, None, horizon) for g in self.plan.gates
        ]
        return decide(
            self.plan, self.state, results, EPOCH + elapsed, self._srm(self.units + self.units_block[k])
        )

    def _changes(self, d: Decision) -> bool:
        return d.changed or {i for i, _ in d.state.breaches} != {i for i, _ in self.state.breaches}

    def _commit(self, k: int, d: Decision) -> None:
        self.inputs.commit(k)
        self.units = self.units + self.units_block[k]
        self.ticks += k + 1
        before = self.state
        self._record(before, d)
        self.state = approve_all(self.plan, d.state, EPOCH + self.elapsed, "simulation")
        if self.acted_at is None and self.state.phase in (Phase.ROLLED_BACK, Phase.DISABLED):
            self.acted_at = self.elapsed
        if self.state.stage != before.stage:
            self._enter_stage()

    def _record(self, before: RolloutState, d: Decision) -> None:
        """What the stage's transitions say: reasons, how long the stage took, when it said it waits."""
        entered = before.entered_at or EPOCH
        for t in d.transitions:
            self.reasons.append(t.reason)
            self.step_backs += t.kind is TransitionKind.STEPPED_BACK
            decided = (TransitionKind.ADVANCED, TransitionKind.AWAITING_APPROVAL, TransitionKind.COMPLETED)
            # the stage passed (sign-offs are given at once here); its first run only, as the forecast's
            if t.kind in decided and t.from_stage and all(s != t.from_stage for s, _ in self.stage_times):
                self.stage_times.append((t.from_stage, t.at - entered))
                if not self._treatment_failures(t.at):
                    self.unseen_passes.append(t.from_stage)
            elif t.kind in (TransitionKind.WAITING_FOR_DATA, TransitionKind.HELD):
                soak = self.plan.stages[t.from_stage - 1].min_duration
                self.waits.append((t.from_stage, t.at - entered - soak))

    def _treatment_failures(self, at: datetime) -> int:
        """The treatment's failed requests in the stage up to `at` (what its error-rate gates saw)."""
        now_ms = int((at - EPOCH).total_seconds() * 1000)
        return self.inputs.aggregate("error_rate", TREATMENT, self.inputs.stage_since_ms, now_ms).failures


class _Naive:
    """The naive rule, by hand: the treatment's error rate over the last 5 minutes, looked at every minute.
    Above the disable threshold → kill; above rollback → one stage back; advance after the soak time when
    the last 5 minutes are under target. It sees the same kind of traffic (bursts, incidents, regressions)
    drawn minute by minute for its own stages."""

    def __init__(self, plan: Plan, world: _World, rng: np.random.Generator) -> None:
        gate = next((g for g in plan.gates if g.metric == "error_rate"), None)
        self.target = gate.target.value if gate and gate.target else None
        self.rollback = gate.rollback.value if gate and gate.rollback else math.inf
        self.disable = gate.disable.value if gate and gate.disable else math.inf
        self.plan, self.world, self.rng = plan, world, rng
        self.since: dict[int, timedelta] = {}

    def run(self, horizon: timedelta) -> tuple[str, timedelta | None, timedelta | None]:
        """(outcome, when it acted, when the regression began) for the naive rule's own rollout."""
        minute, end = 0, int(horizon.total_seconds() // 60)
        onset: int | None = None
        for stage, spec in enumerate(self.plan.stages, start=1):
            share = spec.percentage_bp / 10_000
            soak = int(spec.min_duration.total_seconds() // 60)
            span = min(end - minute, 2 * soak + 24 * 60)
            if span <= 0:
                return "held", None, _minutes(onset)
            rates, onset_here = self._rates(minute, span, stage)
            onset = onset if onset is not None else onset_here
            n = self.rng.poisson(self.world.base.requests_per_s * 60 * share, span)
            window_n, window_f = self._window(n, self._failures(n, rates))
            observed = np.divide(window_f, window_n, out=np.zeros(span), where=window_n > 0)
            disabled = np.flatnonzero(observed > self.disable)
            rolled = np.flatnonzero(observed > self.rollback)
            good = observed < self.target if self.target is not None else np.ones(span, dtype=bool)
            advanced = np.flatnonzero(good & (window_n > 0) & (np.arange(span) >= soak - 1))
            first = {
                "disabled": disabled[0] if disabled.size else math.inf,
                "rolled_back": rolled[0] if rolled.size else math.inf,
                "advanced": advanced[0] if advanced.size else math.inf,
            }
            what = min(first, key=lambda k: (first[k], k != "disabled"))
            if first[what] == math.inf:
                return "held", None, _minutes(onset)
            at = minute + int(first[what]) + 1
            if what != "advanced":
                return what, _minutes(at), _minutes(onset)
            minute = at
        return "completed", None, _minutes(onset)

    def _rates(self, start: int, span: int, stage: int) -> tuple[np.ndarray, int | None]:
        """The treatment's error rate minute by minute, and the minute a regression began, if it did."""
        rates = np.full(span, self.world.base.error_rate)
        onset: int | None = None
        for c in self.world.changes:
            if c.stage is not None:
                if stage < c.stage and id(c) not in self.since:
                    continue
                begins = int(self.since.setdefault(id(c), timedelta(minutes=start)).total_seconds() // 60)
            else:
                assert c.after is not None
                begins = int(c.after.total_seconds() // 60)
            ends = begins + int(c.lasts.total_seconds() // 60) if c.lasts is not None else start + span
            lo, hi = max(begins - start, 0), min(ends - start, span)
            if lo >= hi:
                continue
            if c.metric == "error_rate":
                rates[lo:hi] = c.value
            if not c.everyone:
                onset = start + lo if onset is None else min(onset, start + lo)
        return rates, onset

    def _failures(self, n: np.ndarray, rates: np.ndarray) -> np.ndarray:
        burst = self.world.base.burst
        drawn: np.ndarray = (
            np.minimum(self.rng.poisson(n * rates / burst) * burst, n)
            if burst > 1
            else self.rng.binomial(n, np.minimum(rates, 1.0))
        )
        return drawn

    @staticmethod
    def _window(n: np.ndarray, f: np.ndarray, width: int = 5) -> tuple[np.ndarray, np.ndarray]:
        cn, cf = np.cumsum(n), np.cumsum(f)
        wn, wf = cn.copy(), cf.copy()
        wn[width:] -= cn[:-width]
        wf[width:] -= cf[:-width]
        return wn, wf


def _minutes(m: int | None) -> timedelta | None:
    return None if m is None else timedelta(minutes=m)


@dataclass(frozen=True)
class Summary:
    trials: int
    outcomes: dict[str, int]
    acted_share: float  # rolled back or disabled
    delay_p50: timedelta | None
    delay_p90: timedelta | None
    duration_p50: timedelta | None  # time to complete, over completed trials
    detected: int = 0  # rolled back or disabled after the regression began
    delays: tuple[timedelta, ...] = ()  # each detection's delay after the onset, sorted
    pauses: tuple[timedelta, ...] = ()  # each pause (sample ratio, a person's rule) after the onset, sorted
    stepped_back: int = (
        0  # trials in which a breach at 100% stepped back to compare (the naive rule never does)
    )


def summarize(results: Sequence[TrialResult], naive: bool = False) -> Summary:
    outcome: Callable[[TrialResult], str] = (lambda r: r.naive_outcome) if naive else (lambda r: r.outcome)
    counts: dict[str, int] = {}
    for r in results:
        counts[outcome(r)] = counts.get(outcome(r), 0) + 1
    delays = sorted(d for r in results if (d := (r.naive_delay if naive else r.delay)) is not None)
    durations = sorted(r.ended_at for r in results if outcome(r) == "completed") if not naive else []
    acted = sum(counts.get(k, 0) for k in ("rolled_back", "disabled"))
    pauses = sorted(r.ended_at - (r.regression_at or timedelta(0)) for r in results if outcome(r) == "paused")
    return Summary(
        len(results),
        counts,
        acted / len(results) if results else 0.0,
        _percentile(delays, 0.5),
        _percentile(delays, 0.9),
        _percentile(durations, 0.5),
        len(delays),
        tuple(delays),
        tuple(pauses),
        0 if naive else sum(r.stepped_back > 0 for r in results),
    )


def expected_decisions(plan: Plan, traffic: Traffic) -> list[StageForecast]:
    """The forecast `rampup apply` prints, by the server's own rule (`core.forecast.forecast_plan`), on
    what a long history of this synthetic traffic shows before the rollout (`_History`)."""
    history = _History(traffic)
    return forecast_plan(plan, history, 0, _History.SPAN_MS)


class _History:
    """GateInputs before the rollout, every user in control: the traffic's expected counts over a long
    span (its rates exactly, not one day's luck), and a drawn day of its users for how clustered their
    failures and latencies are (seeded: the same forecast for every run)."""

    SPAN_MS = 1000 * 86_400_000

    def __init__(self, traffic: Traffic) -> None:
        rng = np.random.default_rng(0)
        self.traffic, self.buckets = traffic, _buckets(traffic)
        self.day, draw = _Inputs(self.buckets, rng), _Draw(rng, self.buckets, TICK.total_seconds())
        blocks = round(timedelta(days=1) / (BLOCK * TICK))
        for i in range(blocks):
            draws, _ = draw.block(BLOCK, 0.0, 0.0, traffic, traffic)
            self.day.load(i * BLOCK * _TICK_MS, draws)
            self.day.commit(BLOCK - 1)
        self.day_ms = blocks * BLOCK * _TICK_MS

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        t = self.traffic
        requests = t.requests_per_s * (until_ms - since_ms) / 1000
        if metric == "error_rate":
            return Aggregate(count=round(requests), failures=round(requests * t.error_rate))
        medians = {"api_latency": (t.latency_ms, 1.0), "lcp": (t.lcp_ms, t.page_load_share)}
        if metric not in medians:
            return Aggregate()
        median, per_request = medians[metric]
        b = self.buckets[metric]
        edges = (
            np.arange(b.ids.size + 1) + b.low - 1
        ) * _LOG_GAMMA  # bucket i holds logs in (edge i, edge i+1]
        cdf = np.array([0.5 * math.erfc(-(e - math.log(median)) / (b.sigma * math.sqrt(2))) for e in edges])
        cdf[0], cdf[-1] = 0.0, 1.0  # values beyond the range land in its end buckets
        counts = np.rint(np.diff(cdf) * requests * per_request).astype(np.int64)
        return Aggregate(count=int(counts.sum()), sketch=b.to_dict(counts))

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        return self.day.units(variant, 0, self.day_ms)

    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        return self.day.dispersion(metric, variant, 0, self.day_ms)

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> dict[int, Exceedance]:
        return self.day.exceedance(metric, variant, 0, self.day_ms)


def stage_summary(plan: Plan, traffic: Traffic, results: Sequence[TrialResult]) -> list[dict[str, Any]]:
    """Per stage: the forecast beside what the trials did — how long stages took (each, and the median over
    trials that advanced), how many advanced with no failure seen in the treatment, how many waited for data,
    and how many said so within one tick of the soak's end."""
    out = []
    for f in expected_decisions(plan, traffic):
        took = sorted(t for r in results for stage, t in r.stage_times if stage == f.stage)
        waits = [w for r in results for stage, w in r.waits if stage == f.stage]
        median = _percentile(took, 0.5)
        out.append(
            {
                **f.to_dict(),
                "advanced": len(took),
                "advanced_unseen": sum(r.unseen_passes.count(f.stage) for r in results),
                "simulated_p50_s": median.total_seconds() if median is not None else None,
                "took_s": [t.total_seconds() for t in took],
                "waited_for_data": len(waits),
                "said_so_within_a_tick": sum(w <= TICK for w in waits),
            }
        )
    return out


def _percentile(values: Sequence[timedelta], q: float) -> timedelta | None:
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def describe(summary: Summary) -> dict[str, Any]:
    return {
        "trials": summary.trials,
        "outcomes": summary.outcomes,
        "acted_share": summary.acted_share,
        "detected_share": summary.detected / summary.trials if summary.trials else 0.0,
        "delay_p50_s": summary.delay_p50.total_seconds() if summary.delay_p50 else None,
        "delay_p90_s": summary.delay_p90.total_seconds() if summary.delay_p90 else None,
        "duration_p50_s": summary.duration_p50.total_seconds() if summary.duration_p50 else None,
        "delays_s": [d.total_seconds() for d in summary.delays],
        "pauses_s": [d.total_seconds() for d in summary.pauses],
        "stepped_back": summary.stepped_back,
    }


def srm_caught(plan: Plan, traffic: Traffic) -> list[SrmPower]:
    """The sample-ratio check's power `rampup apply` prints, for this synthetic traffic: its users arrive at
    requests_per_s / requests_per_user a second, each new (none comes back in a later tick)."""
    stages = [(s.name, s.percentage_bp, s.min_duration.total_seconds()) for s in plan.stages]
    per_s = traffic.requests_per_s / traffic.requests_per_user
    return srm_power(stages, lambda seconds: per_s * seconds, plan.srm_alpha / SRM_CHECKS)

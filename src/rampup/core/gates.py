"""Gates: a plan's criteria, judged statistically on the data since the stage began.

A gate has up to four thresholds — `target` (what passing means), `warn`, `rollback`, `disable` — and a
verdict: critical (disable breached), fail (rollback breached), warn, pass, or inconclusive. A threshold
counts as breached only when the confidence sequence lies wholly beyond it (see sequential.py); too
little data is inconclusive, never pass. `judge` is the only place a threshold is compared.
"""

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from rampup.core import sequential
from rampup.core.durations import parse_duration
from rampup.core.passage import samples_to_pass
from rampup.core.rollups import Aggregate, Exceedance, UnitTotals, exceedance_at
from rampup.core.sketch import first_bucket_above, level_of, value_of
from rampup.core.telemetry import BUILTIN_METRICS, Aggregation, parse_metric_name
from rampup.core.thresholds import Written, check_duration, check_own, parse_threshold
from rampup.errors import InvalidInput

__all__ = [
    "Verdict",
    "Compare",
    "Threshold",
    "Gate",
    "GateInputs",
    "GateResult",
    "Measurement",
    "judge",
    "measure",
    "assess",
    "TREATMENT",
    "CONTROL",
    "spread_at",
    "environment_could_share",
]

TREATMENT, CONTROL = "on", "off"


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    CRITICAL = "critical"
    INCONCLUSIVE = "inconclusive"
    ENVIRONMENT = (
        "environment"  # a line is breached, but control is just as bad: the environment, not the flag
    )


class Compare(StrEnum):
    ABSOLUTE = "absolute"  # the treatment's own value against the threshold
    CONTROL = "control"  # the treatment relative to the control, e.g. -10% = 10% worse
    BASELINE = "baseline"  # the environment now relative to the period before the rollout


class Scale(StrEnum):
    """What a threshold is measured on."""

    OWN = "own"  # the treatment's own value: '> 0.5%', '> 1000ms'
    RELATIVE = "relative"  # relative to control (or baseline): '> +25%', '< -10%'
    DIFFERENCE = "difference"  # minus control, in the metric's unit: '> +0.3pp', '> +50ms'


@dataclass(frozen=True, slots=True)
class Threshold:
    op: str  # "<" or ">"
    value: float  # in the metric's unit: a fraction for rates and relative changes, ms for latencies
    text: str
    scale: Scale = Scale.OWN

    @classmethod
    def parse(cls, raw: Any, where: str, compare: "Compare", aggregation: Aggregation) -> "Threshold":
        written = parse_threshold(raw, where, "'< 0.1%', '> 1000ms', '> 5', '< -10%', '> +0.3pp'")
        scale = _scale(compare, written, aggregation, raw, where)
        if scale is Scale.OWN:
            check_own(written, aggregation, raw, where)
        return cls(written.op, written.value, written.text, scale)

    def breached_by(self, m: "Measurement") -> bool:
        """Confidently on the wrong side: for '> x', the whole interval is above x."""
        return m.surely_above(self.value) if self.op == ">" else m.surely_below(self.value)

    def met_by(self, m: "Measurement") -> bool:
        """Confidently on the right side: for '< x', the whole interval is below x."""
        return m.surely_below(self.value) if self.op == "<" else m.surely_above(self.value)


_AGAINST_CONTROL = (
    "compared to control, thresholds are relative changes like '> +25%' or differences like '> +0.3pp' "
    "(an unsigned '> 0.5%' is the treatment's own line), not {raw!r}"
)


def _scale(compare: "Compare", written: Written, agg: Aggregation, raw: Any, where: str) -> Scale:
    """Against control, a signed threshold is a change ('+25%', '+0.3pp', '+50ms') and an unsigned one
    the treatment's own line ('0.5%'), so one gate can hold both."""
    signed, unit = written.signed, written.unit
    if compare is Compare.BASELINE or (compare is Compare.CONTROL and signed and unit == "%"):
        if unit != "%":
            raise InvalidInput(
                f"compared to baseline, thresholds are relative changes like '> +10%', not {raw!r}",
                where=where,
            )
        return Scale.RELATIVE
    if compare is Compare.CONTROL and (signed or unit == "pp"):
        if unit == "pp" and agg is not Aggregation.RATE:
            raise InvalidInput(f"{raw!r}: percentage points are for rates", where=where)
        check_duration(written, agg, raw, where)
        if unit is None and agg in (Aggregation.RATE, Aggregation.PERCENTILE):
            raise InvalidInput(_AGAINST_CONTROL.format(raw=raw), where=where)
        return Scale.DIFFERENCE
    if compare is Compare.CONTROL and unit is None and agg is Aggregation.RATE:
        raise InvalidInput(_AGAINST_CONTROL.format(raw=raw), where=where)
    return Scale.OWN


@dataclass(frozen=True, slots=True)
class Gate:
    metric: str
    aggregation: Aggregation
    quantile: float | None = None
    compare: Compare = Compare.ABSOLUTE
    target: Threshold | None = None
    warn: Threshold | None = None
    rollback: Threshold | None = None
    disable: Threshold | None = None
    rollback_to: int | None = None  # a stage number to fall back to on breach (0 = off), instead of one back
    sustain: timedelta = timedelta(0)  # the plan's `for`: a breach must last this long before acting
    window: timedelta | None = None  # judge a trailing window instead of the whole stage
    min_samples: int = 0  # fewer samples (per compared variant) than this are inconclusive, whatever they say

    @property
    def blocks_advance(self) -> bool:
        """Targets must pass before a stage may advance, and so must the treatment's own lines; lines
        against control without a target only guard (proving "not 10% worse" would stall low traffic;
        a non-inferiority target, e.g. `target: "< +0.2pp"`, asks for that proof)."""
        if self.target is not None:
            return True
        if (
            self.compare is Compare.CONTROL or self.window is not None
        ):  # a trailing window says nothing of the stage
            return False
        return not (self.warn and self.rollback is None and self.disable is None and self.rollback_to is None)

    @property
    def difference(self) -> bool:
        """Against control: treatment − control in the metric's unit, not a % change."""
        return self.scale is Scale.DIFFERENCE

    @property
    def scale(self) -> Scale:
        lines = [t for t in (self.target, self.warn, self.rollback, self.disable) if t is not None]
        return lines[0].scale if lines else Scale.OWN

    @classmethod
    def parse(cls, raw: Any, where: str) -> "Gate":
        """A gate whose thresholds are all of one kind (see `lines` for a plan's gates, which may mix)."""
        lines = cls.lines(raw, where)
        if len(lines) > 1:
            groups = _lines(
                raw,
                where,
                lines[0].compare if lines[0].scale is not Scale.OWN else lines[1].compare,
                lines[0].aggregation,
            )
            level = next(iter(groups.get(Scale.DIFFERENCE) or groups[lines[1].scale]))
            raise InvalidInput(
                "thresholds against control are all differences ('< -0.3') or all changes ('< -10%') in one "
                "line; a plan's gate may list several lines",
                where=f"{where}.{level}",
            )
        return lines[0]

    @classmethod
    def lines(cls, raw: Any, where: str) -> tuple["Gate", ...]:
        """One gate of a plan, as one Gate per scale: a gate may hold the treatment's own lines and lines
        against control at once (each threshold a string or a list of strings), e.g.
        `{metric: error_rate, compare: control, rollback: ["> 0.5%", "> +0.3pp"]}`."""
        if not isinstance(raw, Mapping):
            raise InvalidInput("a gate is a mapping with at least 'metric'", where=where)
        known = {
            "metric",
            "compare",
            "target",
            "warn",
            "rollback",
            "disable",
            "rollback_to",
            "for",
            "window",
            "min_samples",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInput(
                f"unknown gate field {unknown[0]!r}; a gate has " + ", ".join(sorted(known)),
                where=f"{where}.{unknown[0]}",
            )
        name, aggregation, q = _metric(raw.get("metric"), f"{where}.metric")
        spec = BUILTIN_METRICS[parse_metric_name(name)[0]]
        compare = _compare(raw.get("compare", "absolute"), name, aggregation, f"{where}.compare")
        groups = _lines(raw, where, compare, aggregation)
        rollback_to = raw.get("rollback_to")
        if rollback_to is not None and (
            not isinstance(rollback_to, int) or isinstance(rollback_to, bool) or rollback_to < 0
        ):
            raise InvalidInput("rollback_to is a stage number (0 = off)", where=f"{where}.rollback_to")
        if not groups and rollback_to is None:
            raise InvalidInput(
                "a gate needs a threshold (target, warn, rollback, disable) or rollback_to", where=where
            )
        sustain = parse_duration(raw["for"], f"{where}.for") if "for" in raw else timedelta(0)
        window = parse_duration(raw["window"], f"{where}.window") if "window" in raw else None
        if window is not None and aggregation is not Aggregation.COUNT:
            raise InvalidInput(
                "'window' counts events in a trailing window; it fits count metrics", where=f"{where}.window"
            )
        common: dict[str, Any] = {
            "sustain": sustain,
            "window": window,
            "min_samples": _min_samples(raw.get("min_samples", spec.min_samples), f"{where}.min_samples"),
        }
        kinds: dict[Scale, dict[str, Any]] = dict(groups)
        if not groups:
            return (cls(name, aggregation, q, compare, rollback_to=rollback_to, **common),)
        first = Scale.OWN if Scale.OWN in groups else next(iter(groups))
        return tuple(
            cls(
                name,
                aggregation,
                q,
                Compare.ABSOLUTE if scale is Scale.OWN and compare is Compare.CONTROL else compare,
                rollback_to=rollback_to if scale is first else None,
                **common,
                **lines,
            )
            for scale, lines in kinds.items()
        )

    def threshold_text(self) -> str:
        parts = [
            f"{k} {t.text}"
            for k, t in (
                ("target", self.target),
                ("warn", self.warn),
                ("rollback", self.rollback),
                ("disable", self.disable),
            )
            if t
        ]
        if self.rollback_to is not None:
            parts.append(f"any → stage {self.rollback_to}")
        return ", ".join(parts)


def _min_samples(raw: Any, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 1_000_000:
        raise InvalidInput("min_samples is a whole number from 0 to 1,000,000", where=where)
    return raw


def _metric(name: Any, where: str) -> tuple[str, Aggregation, float | None]:
    if not isinstance(name, str) or not name:
        raise InvalidInput("a gate needs 'metric'", where=where)
    base, q = parse_metric_name(name)
    spec = BUILTIN_METRICS.get(base)
    if spec is None:
        raise InvalidInput(
            f"unknown metric {name!r}; gates watch: " + ", ".join(sorted(BUILTIN_METRICS)), where=where
        )
    if (spec.aggregation is Aggregation.PERCENTILE) != (q is not None):
        raise InvalidInput(
            f"{base} is watched as a percentile, e.g. {base}_p95"
            if q is None
            else f"{base} has no percentiles",
            where=where,
        )
    return name, spec.aggregation, q


_COMPARABLE = {
    Compare.ABSOLUTE: tuple(Aggregation),
    Compare.CONTROL: (Aggregation.RATE, Aggregation.PERCENTILE, Aggregation.PER_USER, Aggregation.MEAN),
    Compare.BASELINE: (Aggregation.SUM, Aggregation.COUNT, Aggregation.RATE),
}


def _compare(raw: Any, name: str, aggregation: Aggregation, where: str) -> Compare:
    try:
        compare = Compare(raw)
    except ValueError:
        raise InvalidInput("compare is 'control' or 'baseline'", where=where) from None
    if aggregation not in _COMPARABLE[compare]:
        kinds = {
            Compare.CONTROL: "rates, latencies and per-user metrics can",
            Compare.BASELINE: "counts and rates can",
        }
        raise InvalidInput(f"{name} cannot be compared to {compare.value}; {kinds[compare]}", where=where)
    return compare


def _lines(
    raw: Mapping[str, Any], where: str, compare: Compare, aggregation: Aggregation
) -> dict[Scale, dict[str, Threshold]]:
    """The gate's thresholds by scale: {own: {rollback: …}, relative: {rollback: …}}."""
    groups: dict[Scale, dict[str, Threshold]] = {}
    for level in ("target", "warn", "rollback", "disable"):
        value = raw.get(level)
        if value is None:
            continue
        texts = value if isinstance(value, list) else [value]
        for i, text in enumerate(texts):
            at = f"{where}.{level}" + (f"[{i}]" if isinstance(value, list) else "")
            line = Threshold.parse(text, at, compare, aggregation)
            if level in groups.setdefault(line.scale, {}):
                raise InvalidInput(f"two {level} lines of the same kind; keep one", where=at)
            groups[line.scale][level] = line
    return groups


@dataclass(frozen=True)
class Measurement:
    """A value with bounds, and how sure we are it lies above or below a number."""

    value: float | None
    lower: float | None
    upper: float | None
    samples: int
    exact: bool = False  # counted, not estimated: no uncertainty to account for
    rate: tuple[float, float] | None = None  # (trials, events) behind a rate, for exact threshold checks
    # an undecided gate: roughly how many more samples settle it, and how long they take — worked out only
    # when someone reads `needs` (a wait announced, a status shown), not on every tick
    wait: Callable[[], dict[str, float]] | None = field(default=None, compare=False, repr=False)
    alpha: float = sequential.ALPHA
    rate_below: tuple[float, float] | None = None  # the rate's evidence for "surely below", when less (_rate)

    @functools.cached_property
    def needs(self) -> dict[str, float]:
        return self.wait() if self.wait is not None else {}

    @property
    def below(self) -> tuple[float, float] | None:
        """(trials, events) that "surely below" is judged on."""
        return self.rate_below or self.rate

    def bounds(self) -> tuple[float | None, float | None]:
        if self.rate is not None and self.lower is None:
            # only for display and comparisons: a verdict against a fixed line needs one evaluation
            interval = sequential.rate_bounds(*self.rate, alpha=self.alpha)
            if self.rate_below is None:
                return interval.lower, interval.upper
            return interval.lower, sequential.rate_bounds(*self.rate_below, alpha=self.alpha).upper
        return self.lower, self.upper

    def surely_above(self, x: float) -> bool:
        if self.value is None:
            return False
        if self.exact:
            return self.value > x
        if self.rate is not None:
            n, s = self.rate
            return n > 0 and s / n > x and sequential.excludes(n, s, x, self.alpha)
        return self.lower is not None and self.lower > x

    def surely_below(self, x: float) -> bool:
        if self.value is None:
            return False
        if self.exact:
            return self.value < x or (self.value <= x and x == 0)
        if self.below is not None:
            n, s = self.below
            return n > 0 and s / n < x and sequential.excludes(n, s, x, self.alpha)
        return self.upper is not None and self.upper < x


class GateInputs(Protocol):
    """The data a gate reads; a store in production, memory in simulations."""

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate: ...
    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals: ...
    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        """How clustered a rate's events are by user: Σ (a user's events)² / Σ events, 1 when every user
        has at most one (independent failures), about N when failures come in runs of N from one user."""
        ...

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Mapping[int, Exceedance]:
        """A sketched metric's values per user over the days the span touches, and those at or above each
        octave holding values (`rollups.exceedance_at` reads any octave): how clustered by user the values
        over a line are."""
        ...


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: Gate
    verdict: Verdict
    measurement: Measurement
    breached: str | None = None  # which threshold is breached right now: "disable", "rollback", "warn"
    since_ms: int | None = None  # the evidence's start when it is a restarted window, not the stage

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        lower, upper = m.bounds()
        out: dict[str, Any] = {
            "metric": self.gate.metric,
            "verdict": self.verdict.value,
            "value": _finite(m.value),
            "lower": _finite(lower),
            "upper": _finite(upper),
            "samples": m.samples,
            "threshold": self.gate.threshold_text(),
            "compare": self.gate.compare.value,
        }
        if m.needs:
            out["needs"] = m.needs
        if self.since_ms is not None:
            out["since_ms"] = self.since_ms
        return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _breach(gate: Gate, m: Measurement) -> tuple[Verdict, str | None]:
    """Whether a disable or rollback line is breached (CRITICAL, FAIL), else INCONCLUSIVE."""
    if gate.disable and gate.disable.breached_by(m):
        return Verdict.CRITICAL, "disable"
    if gate.rollback and gate.rollback.breached_by(m):
        return Verdict.FAIL, "rollback"
    if gate.rollback_to is not None and gate.rollback is None and m.value:
        return Verdict.FAIL, "rollback"
    return Verdict.INCONCLUSIVE, None


def judge(gate: Gate, m: Measurement) -> tuple[Verdict, str | None]:
    """The verdict and the breached threshold, if any. The only place thresholds are compared."""
    verdict, breached = _breach(gate, m)
    if breached:
        return verdict, breached
    if gate.warn and gate.warn.breached_by(m):
        return Verdict.WARN, "warn"
    if gate.target is not None:
        if gate.target.met_by(m):
            return Verdict.PASS, None
        opposite = Threshold(">" if gate.target.op == "<" else "<", gate.target.value, gate.target.text)
        return (Verdict.WARN if opposite.met_by(m) else Verdict.INCONCLUSIVE), None
    guards = [t for t in (gate.rollback, gate.disable, gate.warn) if t is not None]
    cleared = all(Threshold("<" if t.op == ">" else ">", t.value, t.text).met_by(m) for t in guards)
    if gate.rollback_to is not None and gate.rollback is None:
        cleared = cleared and m.value == 0
    return (Verdict.PASS if cleared else Verdict.INCONCLUSIVE), None


def _rate(
    n: int, s: int, dispersion: float = 1.0, alpha: float = sequential.ALPHA, floor: float = 1.0
) -> Measurement:
    """A rate, on per-user evidence: with failures clustered by user (a user's retries), n and s are
    divided by the dispersion, so a run of N failures from one user weighs as one. "Surely below" rests
    on failures not seen, which show no clustering of their own: it is judged at a dispersion of at least
    `floor`, the service's (see _variant_rate). "Surely above" rests on failures seen, clustered as seen."""
    d = max(dispersion, 1.0)
    below = (n / floor, s / floor) if floor > d else None
    return Measurement(
        s / n if n else None, None, None, n, rate=(n / d, s / d), alpha=alpha, rate_below=below
    )


class _Quantile(Measurement):
    """A percentile. Thresholds are checked as exceedance rates (P(X > x) against 1 − q) through the rate
    sequence, one evaluation each; the bounds for display come from a scan over the sketch's buckets.
    Per user: the exceedance counts are divided by their design effect at x (`spread`), so a user who is
    slow in everything weighs as one user, not as each of their requests."""

    def __init__(
        self,
        hist: Mapping[int, int],
        q: float,
        alpha: float = sequential.ALPHA,
        spread: Callable[[float], float] = lambda x: 1.0,
    ) -> None:
        self._buckets = sorted(hist)
        self._cumulative = list(itertools.accumulate(map(hist.__getitem__, self._buckets)))
        self._q = q
        self._spread = spread
        self._n = n = self._cumulative[-1] if self._cumulative else 0
        # sketch.quantile's rank rule, on the sums already made: the first bucket holding rank ⌊q (n − 1)⌋
        at = bisect.bisect_right(self._cumulative, math.floor(q * (n - 1))) if n else 0
        value = value_of(self._buckets[min(at, len(self._buckets) - 1)]) if n else None
        super().__init__(value, None, None, n, alpha=alpha)

    def _above(self, x: float) -> int:
        """Samples whose bucket's value exceeds x."""
        i = bisect.bisect_left(self._buckets, first_bucket_above(x))
        return self._n - (self._cumulative[i - 1] if i else 0)

    def _surely(self, above: int, side: int, x: float) -> bool:
        share, limit = above / self._n, 1 - self._q
        if (share - limit) * side <= 0:
            return False
        d = self._spread(x)
        return sequential.excludes(self._n / d, above / d, limit, self.alpha)

    def surely_above(self, x: float) -> bool:
        return self._n > 0 and self._surely(self._above(x), 1, x)

    def surely_below(self, x: float) -> bool:
        return self._n > 0 and self._surely(self._above(x), -1, x)

    def bounds(self) -> tuple[float | None, float | None]:
        """The buckets where the exceedance sequence crosses 1 − q, by bisection: the share above a bucket
        only falls as the bucket rises."""
        if not self._n:
            return None, None
        shares = [self._n - seen for seen in self._cumulative]  # samples above each bucket
        values = [value_of(b) for b in self._buckets]
        first_not_above = _first(len(shares), lambda i: not self._surely(shares[i], 1, values[i]))
        first_below = _first(len(shares), lambda i: self._surely(shares[i], -1, values[i]))
        lower = values[first_not_above - 1] if first_not_above > 0 else None
        upper = values[first_below] if first_below < len(shares) else None
        return lower, upper


def _first(n: int, holds: Callable[[int], bool]) -> int:
    """The first index in [0, n) where a monotone condition holds (n if none)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _quantile(
    inputs: "GateInputs", metric: str, variant: str, start: int, now: int, q: float, alpha: float
) -> Measurement:
    """A variant's percentile, judged per user: exceedances at x weigh by their design effect there, the
    larger of the two at the octaves around x (each user's values are kept per octave)."""
    a = inputs.aggregate(metric, variant, start, now)
    if not a.sketch:
        return Measurement(None, None, None, 0, alpha=alpha)
    octaves = inputs.exceedance(metric, variant, start, now)  # read now: bounds may be asked for later
    return _Quantile(a.sketch, q, alpha, lambda x: spread_at(octaves, x))


def spread_at(octaves: Mapping[int, Exceedance], x: float) -> float:
    """The design effect of values over x: the larger of those at the two octaves around x."""
    level = level_of(x)
    return max(exceedance_at(octaves, at).design_effect() for at in (level, level + 1))


def _change(t: float, c: float) -> float:
    """t / c − 1; against a control with no failures at all, any failure is an unbounded change (its
    sequence still bounds control above zero, so a breach remains a matter of evidence)."""
    if c == 0:
        return math.inf if t > 0 else 0.0
    return t / c - 1


class _Versus(Measurement):
    """The treatment against control, as a relative change (t / c − 1) or a difference (t − c). Each
    variant has its own sequence at α/2, so both hold at once with probability 1 − α; the change is
    breached when the treatment's sequence lies wholly beyond the line drawn from control's far bound.
    Unequal splits only make one sequence tighter than the other."""

    def __init__(self, treatment: Measurement, control: Measurement, scale: Scale) -> None:
        t, c = treatment.value, control.value
        relative = scale is Scale.RELATIVE
        value = None if t is None or c is None else _change(t, c) if relative else t - c
        super().__init__(
            value, None, None, min(treatment.samples, control.samples), alpha=treatment.alpha * 2
        )
        self._t, self._c, self._relative = treatment, control, relative
        self._c_bounds: tuple[float | None, float | None] | None = None

    def _control(self) -> tuple[float | None, float | None]:
        if self._c_bounds is None:
            self._c_bounds = self._c.bounds() if self._c.value is not None else (None, None)
        return self._c_bounds

    def _line(self, c: float | None, x: float) -> float | None:
        return None if c is None else c * (1 + x) if self._relative else c + x

    def surely_above(self, x: float) -> bool:
        if self.value is None or self.value <= x:  # the estimate is not even beyond: no need for bounds
            return False
        line = self._line(self._control()[1], x)
        return line is not None and self._t.surely_above(line)

    def surely_below(self, x: float) -> bool:
        if self.value is None or self.value >= x:
            return False
        line = self._line(self._control()[0], x)
        return line is not None and self._t.surely_below(line)

    def bounds(self) -> tuple[float | None, float | None]:
        (t_lo, t_hi), (c_lo, c_hi) = self._t.bounds(), self._control()
        if self.value is None or None in (t_lo, t_hi, c_lo, c_hi):
            return None, None
        assert t_lo is not None and t_hi is not None and c_lo is not None and c_hi is not None
        if not self._relative:
            return t_lo - c_hi, t_hi - c_lo
        return (t_lo / c_hi - 1 if c_hi else None), (t_hi / c_lo - 1 if c_lo > 0 else None)


class _Split(Measurement):
    """An error rate relative to control's, through how the failures split between the variants: given K
    failures in all, the treatment's share of them is binomial with π(r) = n_t r / (n_t r + n_c), r being
    the ratio of the rates. "More than 50% above control" is π surely above π(1.5): one sequence on the
    split at the line's whole α, instead of one per variant at α/2 with the treatment judged against
    control's far bound, so it needs about half the data (a change late in a soak is caught within the
    hour). Counts are per-user evidence (divided by each variant's dispersion), which keeps the rates; a
    change shown under a line uses each variant's evidence for "surely below" (see _rate)."""

    def __init__(self, treatment: Measurement, control: Measurement, alpha: float) -> None:
        t, c = treatment.value, control.value
        value = None if t is None or c is None else _change(t, c)
        super().__init__(value, None, None, min(treatment.samples, control.samples), alpha=alpha)
        self._above = _Shares.of(treatment.rate, control.rate)
        cautious = treatment.rate_below is not None or control.rate_below is not None
        self._under = _Shares.of(treatment.below, control.below) if cautious else self._above

    def _surely(self, x: float, side: int) -> bool:
        counts = self._above if side > 0 else self._under
        if self.value is None or (self.value - x) * side <= 0 or not counts.nc or not counts.k:
            return False
        return sequential.excludes(counts.k, counts.kt, counts.share(x), self.alpha, sequential.SPLIT_PRIOR)

    def surely_above(self, x: float) -> bool:
        return self._surely(x, 1)

    def surely_below(self, x: float) -> bool:
        return self._surely(x, -1)

    def bounds(self) -> tuple[float | None, float | None]:
        if self.value is None:
            return None, None
        lower, upper = self._above.bounds(self.alpha)
        return lower, upper if self._under is self._above else self._under.bounds(self.alpha)[1]


@dataclass(frozen=True, slots=True)
class _Shares:
    """A split's per-user evidence: each variant's requests, and the failures in all and the treatment's."""

    nt: float
    nc: float
    k: float
    kt: float

    @classmethod
    def of(cls, treatment: tuple[float, float] | None, control: tuple[float, float] | None) -> "_Shares":
        (nt, st), (nc, sc) = treatment or (0.0, 0.0), control or (0.0, 0.0)
        return cls(nt, nc, st + sc, st)

    def share(self, x: float) -> float:
        """π for a change x (r = 1 + x)."""
        r = 1 + x
        return self.nt * r / (self.nt * r + self.nc)

    def bounds(self, alpha: float) -> tuple[float | None, float | None]:
        """The split's sequence mapped back to r − 1."""
        if not self.nt or not self.nc or not self.k:
            return None, None
        split = sequential.rate_bounds(self.k, self.kt, alpha, sequential.SPLIT_PRIOR)

        def change(pi: float) -> float | None:
            return None if pi >= 1 else pi / (1 - pi) * self.nc / self.nt - 1

        return change(split.lower), change(split.upper)


EXPOSURE_MARGIN = 0.5  # a count gate breaches on surely 50% more events per request than control


class _PerExposure(Measurement):
    """A count in a trailing window ("more than 5 unhandled in 5 minutes"), normalised by exposure. The
    treatment serves only its share of the traffic, and the line was drawn for a whole service at some
    traffic: taken literally it scales with the percentage and the traffic (at 100% and 50 req/s a healthy
    service crosses it all the time). So it is breached only when the window's count is over the line
    **and** the treatment has surely more of these events per request than control, judged on how the
    events since `since_ms` split between the variants against their requests (or users, for a service that
    sends only its errors) — the stage, or a restarted window: the same α as the rate lines. "More" is by a
    margin (EXPOSURE_MARGIN): at "more at all" every healthy treatment's truth sits on the line, which spends
    the line's whole α on healthy rollouts. At 100% there is no control, and it is not judged."""

    def __init__(
        self, count: int, inputs: "GateInputs", metric: str, since_ms: int, now_ms: int, alpha: float
    ) -> None:
        super().__init__(float(count), None, None, count, alpha=alpha)
        variants = (TREATMENT, CONTROL)
        exposure = [inputs.aggregate("error_rate", v, since_ms, now_ms).count for v in variants]  # requests
        if not any(exposure):  # a service that sends only its errors: its users are the exposure
            exposure = [inputs.units(v, since_ms, now_ms).users for v in variants]
        t, c = (
            _rate(n, inputs.aggregate(metric, v, since_ms, now_ms).count)
            for n, v in zip(exposure, variants, strict=True)
        )
        self._split = _Split(t, c, alpha)

    def surely_above(self, x: float) -> bool:
        return self.value is not None and self.value > x and self._split.surely_above(EXPOSURE_MARGIN)

    def surely_below(self, x: float) -> bool:
        return self.value is not None and self.value < x


def _mean(n: int, total: float, total_sq: float, alpha: float, floor: float = 0.0) -> Measurement:
    """A mean with the asymptotic sequence. Its variance is at least `floor` (the other variant's): ten
    users who all did nothing do not prove that nobody ever does anything."""
    if n == 0:
        return Measurement(None, None, None, 0, alpha=alpha)
    m = total / n
    radius = sequential.asymptotic_radius(n, max(_variance(n, total, total_sq), floor), alpha)
    return Measurement(m, m - radius, m + radius, n, alpha=alpha)


def _variance(n: int, total: float, total_sq: float) -> float:
    return max(0.0, (total_sq - total * total / n) / (n - 1)) if n > 1 else 0.0


Moments = tuple[int, float, float]  # n, Σx, Σx²


def _means(t: Moments, c: Moments, alpha: float) -> tuple[Measurement, Measurement]:
    floor = max(_variance(*t), _variance(*c))
    return _mean(*t, alpha / 2, floor), _mean(*c, alpha / 2, floor)


def measure(
    gate: Gate,
    inputs: GateInputs,
    since_ms: int,
    now_ms: int,
    baseline: tuple[int, int] | None,
    alpha: float = sequential.ALPHA,
) -> Measurement:
    """What the gate looks at: the treatment since `since_ms` (or its trailing window), or a comparison."""
    base, _ = parse_metric_name(gate.metric)
    start = now_ms - int(gate.window.total_seconds() * 1000) if gate.window else since_ms
    subject = "all" if BUILTIN_METRICS[base].environment_wide else TREATMENT
    match gate.aggregation, gate.compare:
        case Aggregation.RATE, Compare.ABSOLUTE:
            return _with_needs(
                _variant_rate(inputs, base, TREATMENT, start, now_ms, alpha),
                gate,
                since_ms,
                now_ms,
                lambda: inputs.aggregate(base, CONTROL, start, now_ms),
            )
        case Aggregation.PERCENTILE, Compare.ABSOLUTE:
            return _quantile(inputs, base, TREATMENT, start, now_ms, gate.quantile or 0.5, alpha)
        case Aggregation.MEAN, Compare.ABSOLUTE:
            a = inputs.aggregate(base, TREATMENT, start, now_ms)
            return _mean(a.count, a.total, a.total_sq, alpha)
        case Aggregation.COUNT, Compare.ABSOLUTE if _per_exposure(gate):
            count = inputs.aggregate(base, TREATMENT, start, now_ms).count
            return _PerExposure(count, inputs, base, since_ms, now_ms, alpha)
        case Aggregation.COUNT, Compare.ABSOLUTE:
            treatment = inputs.aggregate(base, subject, start, now_ms)
            return Measurement(float(treatment.count), None, None, treatment.count, exact=True)
        case Aggregation.GAUGE, _:
            treatment = inputs.aggregate(base, subject, start, now_ms)
            return Measurement(treatment.last_value, None, None, treatment.count, exact=True)
        case Aggregation.RATE, Compare.CONTROL if gate.scale is Scale.RELATIVE:
            t, c = (_variant_rate(inputs, base, v, start, now_ms, alpha) for v in (TREATMENT, CONTROL))
            return _Split(t, c, alpha)
        case _, Compare.CONTROL:
            t, c = _arms(gate, inputs, base, start, now_ms, alpha)
            return _Versus(t, c, gate.scale)
        case _, Compare.BASELINE if baseline is not None:
            return _versus_baseline(gate, inputs, start, now_ms, baseline)
    return Measurement(None, None, None, 0)


def _variant_rate(
    inputs: GateInputs, metric: str, variant: str, start: int, now: int, alpha: float
) -> Measurement:
    """A variant's rate. Its failures' clustering by user is measured on them once there are some; until
    then a treatment's count would be judged as if its requests failed independently (0 failures in 6,500
    requests, strong evidence, where failures come in runs of ten: about 650 chances of a run). The
    clustering is the service's (one user's retries), and control, the larger arm until 50%, sees it over
    the same span: its dispersion is the floor for being shown under a line."""
    a = inputs.aggregate(metric, variant, start, now)
    spread = inputs.dispersion(metric, variant, start, now) if a.failures else 1.0
    floor = inputs.dispersion(metric, CONTROL, start, now) if variant != CONTROL else spread
    return _rate(a.count, a.failures, spread, alpha, floor)


def _arms(
    gate: Gate, inputs: GateInputs, metric: str, start: int, now: int, alpha: float
) -> tuple[Measurement, Measurement]:
    """The treatment and the control, each at α/2."""
    if gate.aggregation is Aggregation.RATE:
        return tuple(_variant_rate(inputs, metric, v, start, now, alpha / 2) for v in (TREATMENT, CONTROL))  # type: ignore[return-value]
    if gate.aggregation is Aggregation.PERCENTILE:
        q = gate.quantile or 0.5
        return tuple(_quantile(inputs, metric, v, start, now, q, alpha / 2) for v in (TREATMENT, CONTROL))  # type: ignore[return-value]
    if gate.aggregation is Aggregation.PER_USER:
        t, c = inputs.units(TREATMENT, start, now), inputs.units(CONTROL, start, now)
        return _means((t.users, t.engaged, t.engaged_sq), (c.users, c.engaged, c.engaged_sq), alpha)
    ta, ca = (inputs.aggregate(metric, v, start, now) for v in (TREATMENT, CONTROL))
    return _means((ta.count, ta.total, ta.total_sq), (ca.count, ca.total, ca.total_sq), alpha)


def _versus_baseline(
    gate: Gate, inputs: GateInputs, start: int, now: int, baseline: tuple[int, int]
) -> Measurement:
    """Events per hour now against the period before the rollout: a Poisson rate ratio, through the
    binomial split of all events between the two periods."""
    base, _ = parse_metric_name(gate.metric)
    from_ms, until_ms = baseline
    now_agg = inputs.aggregate(base, "all", start, now)
    before = inputs.aggregate(base, "all", from_ms, until_ms)
    count_now = round(now_agg.total) if gate.aggregation is Aggregation.SUM else now_agg.count
    count_before = round(before.total) if gate.aggregation is Aggregation.SUM else before.count
    span_now, span_before = max(now - start, 1), max(until_ms - from_ms, 1)
    total = count_now + count_before
    if count_before == 0 or total == 0:
        return Measurement(None, None, None, total)
    share = sequential.rate_bounds(total, count_now)

    def ratio(pi: float) -> float:
        return math.inf if pi >= 1 else (pi / (1 - pi)) * (span_before / span_now) - 1

    value = (count_now / span_now) / (count_before / span_before) - 1
    return Measurement(value, ratio(share.lower), ratio(share.upper), total)


def _with_needs(
    m: Measurement, gate: Gate, since_ms: int, now_ms: int, control: Callable[[], Aggregate]
) -> Measurement:
    """For an undecided rate gate: roughly how many more samples settle it, and how long they take. A
    target still to be shown met (a stage waiting for data) is the median first passage from the failures
    seen so far, at control's rate where there is a control: the stages that wait are those whose
    treatment drew more failures than its rate, so its own rate would put the wait far too long."""
    if m.rate is None or m.value is None:
        return m
    # what keeps the stage: the target if there is one (a rollback line already cleared settles nothing)
    thresholds = [t.value for t in ((gate.target,) if gate.target else (gate.rollback,)) if t is not None]
    if not thresholds or any(m.surely_above(x) or m.surely_below(x) for x in thresholds):
        return m
    p = max(m.value, 1e-6)
    nearest = min(thresholds, key=lambda x: abs(x - p))
    if abs(nearest - p) < 1e-9:
        return m
    above, below = m.rate, m.rate_below or m.rate  # the evidence that settles "surely above" or "below"

    shown_under = gate.target is not None and gate.target.op == "<"
    c = control() if shown_under else Aggregate()  # read now: the inputs are the tick's, not the reader's

    def wait() -> dict[str, float]:
        needed = math.inf
        if shown_under:
            rate = c.failures / c.count if c.count else p
            needed = samples_to_pass(rate, nearest, m.alpha, below[0], round(below[1]))
        n = below[0]
        if not math.isfinite(needed):  # a line to be shown crossed, or control over the target itself
            n = (above if p > nearest else below)[0]
            needed = max(n, 1)
            while needed < 10**9 and not sequential.excludes(needed, round(needed * p), nearest, m.alpha):
                needed *= 2
        elapsed_s = max((now_ms - since_ms) / 1000, 1.0)
        more = max(needed - n, 0)  # per-user evidence, as n is: requests over the dispersion
        return {"samples": round(more * m.samples / n), "seconds": more / (n / elapsed_s)}

    return replace(m, wait=wait)


STAGE_ALPHA = 0.02  # each gate line's sequence over the whole stage
LATE_ALPHA = (
    0.015  # each gate line's restarted sequences in a stage, all of them together (≤ 2×, see restarts)
)
LATE_PERIODS_H = (1, 4, 16)
_HOUR_MS = 3_600_000


def restarts(since_ms: int, now_ms: int, horizon_h: int) -> list[tuple[int, float]]:
    """The restarted sequences alive now, as (start, α): for periods of 1, 4 and 16 hours, the two
    latest starts on the period's grid since the stage began, so a change is judged on data from after it
    within about twice its age. The sequence started h hours into the stage has α = LATE_ALPHA / horizon_h
    while h ≤ horizon_h and LATE_ALPHA · horizon_h / h² after: all the starts a stage can ever have
    together spend at most 2 · LATE_ALPHA, however long it runs."""
    elapsed_h = (now_ms - since_ms) // _HOUR_MS
    starts = {j * p for p in LATE_PERIODS_H for j in (elapsed_h // p, elapsed_h // p - 1) if j >= 1}
    return [
        (
            since_ms + h * _HOUR_MS,
            LATE_ALPHA / horizon_h if h <= horizon_h else LATE_ALPHA * horizon_h / (h * h),
        )
        for h in sorted(starts)
    ]


def _watches_late(gate: Gate) -> bool:
    """Rollback and disable lines on rates, latencies and means are also judged on restarted windows: a
    regression that begins late in a soak is caught on the data after it, not diluted by the hours before.
    So are counts in a trailing window, whose comparison with control reads the same spans. (Per-user
    metrics are counted per day.)"""
    judged = (
        gate.aggregation in (Aggregation.RATE, Aggregation.PERCENTILE, Aggregation.MEAN)
        if gate.window is None
        else _per_exposure(gate)
    )
    return (
        judged
        and (gate.rollback is not None or gate.disable is not None)
        and gate.compare is not Compare.BASELINE
    )


def _per_exposure(gate: Gate) -> bool:
    """A count in a trailing window of the treatment's own events, compared with control per request."""
    return (
        gate.window is not None
        and gate.aggregation is Aggregation.COUNT
        and gate.compare is Compare.ABSOLUTE
        and not BUILTIN_METRICS[parse_metric_name(gate.metric)[0]].environment_wide
    )


_SEVERITY = {Verdict.CRITICAL: 2, Verdict.FAIL: 1}


def assess(
    gate: Gate,
    inputs: GateInputs,
    since_ms: int,
    now_ms: int,
    baseline: tuple[int, int] | None = None,
    horizon_h: int = 120,
) -> GateResult:
    """The gate's verdict now: on the stage's data, and for breaches also on restarted windows. A breach
    of the treatment's own line that control shares is the environment's, not the flag's."""
    m = measure(gate, inputs, since_ms, now_ms, baseline, STAGE_ALPHA)
    if m.samples < gate.min_samples:  # three angry ratings decide nothing, however sure they look
        short = Measurement(
            m.value, None, None, m.samples, wait=lambda: {"samples": gate.min_samples - m.samples}
        )
        return GateResult(gate, Verdict.INCONCLUSIVE, short)
    verdict, breached = judge(gate, m)
    result = GateResult(gate, verdict, m, breached)
    if _watches_late(gate) and verdict is not Verdict.CRITICAL:
        for start, alpha in restarts(since_ms, now_ms, horizon_h):
            w = measure(gate, inputs, start, now_ms, baseline, alpha)
            v, b = _breach(gate, w)
            if _SEVERITY.get(v, 0) > _SEVERITY.get(result.verdict, 0):
                result = GateResult(gate, v, w, b, start)
    if result.verdict in _SEVERITY and _shared(gate, inputs, result, since_ms, now_ms):
        return replace(result, verdict=Verdict.ENVIRONMENT)
    return result


def _shared(gate: Gate, inputs: GateInputs, result: GateResult, since_ms: int, now_ms: int) -> bool:
    """Whether a breach of the treatment's own '>' line is the environment's: the treatment is not surely
    worse than control over the same data (both variants degraded together, e.g. an incident)."""
    if not environment_could_share(gate, result.breached):
        return False
    base, _ = parse_metric_name(gate.metric)
    start = result.since_ms if result.since_ms is not None else since_ms
    alpha = result.measurement.alpha
    if gate.aggregation is Aggregation.RATE:
        control = _variant_rate(inputs, base, CONTROL, start, now_ms, alpha)
    else:
        control = _quantile(inputs, base, CONTROL, start, now_ms, gate.quantile or 0.5, alpha)
    upper = control.bounds()[1] if control.value is not None else None
    return upper is not None and not result.measurement.surely_above(upper)


def environment_could_share(gate: Gate, breached: str | None) -> bool:
    """Whether a breach of this line could be the environment's: a treatment's own '>' line on an error rate
    or a percentile, which an incident lifts in both variants alike (where there is a control, `assess`
    tells the two apart)."""
    line = gate.disable if breached == "disable" else gate.rollback
    return (
        gate.compare is Compare.ABSOLUTE
        and line is not None
        and line.op == ">"
        and gate.aggregation in (Aggregation.RATE, Aggregation.PERCENTILE)
    )

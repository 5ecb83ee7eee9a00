"""Gates: a plan's criteria, judged statistically on the data since the stage began.

A gate has up to four thresholds — `target` (what passing means), `warn`, `rollback`, `disable` — and a
verdict: critical (disable breached), fail (rollback breached), warn, pass, or inconclusive. A threshold
counts as breached only when the confidence sequence lies wholly beyond it (see sequential.py); too
little data is inconclusive, never pass. `judge` is the only place a threshold is compared.
"""

import bisect
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from rampup.core import sequential
from rampup.core.durations import parse_duration
from rampup.core.rollups import Aggregate, UnitTotals
from rampup.core.sketch import first_bucket_above, value_of
from rampup.core.sketch import quantile as sketch_quantile
from rampup.core.telemetry import BUILTIN_METRICS, Aggregation, parse_metric_name
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
]

TREATMENT, CONTROL = "on", "off"


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    CRITICAL = "critical"
    INCONCLUSIVE = "inconclusive"


class Compare(StrEnum):
    ABSOLUTE = "absolute"  # the treatment's own value against the threshold
    CONTROL = "control"  # the treatment relative to the control, e.g. -10% = 10% worse
    BASELINE = "baseline"  # the environment now relative to the period before the rollout


_THRESHOLD = re.compile(r"^\s*([<>])\s*([+-]?\d+(?:\.\d+)?)\s*(%|ms|s)?\s*$")


@dataclass(frozen=True, slots=True)
class Threshold:
    op: str  # "<" or ">"
    value: float  # in the metric's unit: a fraction for rates and relative changes, ms for latencies
    text: str

    @classmethod
    def parse(cls, raw: Any, where: str, relative: bool, aggregation: Aggregation) -> "Threshold":
        m = (
            _THRESHOLD.match(str(raw))
            if isinstance(raw, str | int | float) and not isinstance(raw, bool)
            else None
        )
        if m is None:
            raise InvalidInput(
                f"{raw!r} is not a threshold; write '< 0.1%', '> 1000ms', '> 5', '< -10%'", where=where
            )
        op, number, unit = m.group(1), float(m.group(2)), m.group(3)
        if relative and unit != "%" and not (unit is None and aggregation is Aggregation.MEAN):
            raise InvalidInput(
                f"compared to control or baseline, thresholds are relative changes like '< -10%' "
                f"or '> +10%', not {raw!r}",
                where=where,
            )
        if unit in ("ms", "s") and aggregation is not Aggregation.PERCENTILE:
            raise InvalidInput(f"{raw!r} is a duration, but this metric is not a latency", where=where)
        scale = {"%": 0.01, "ms": 1.0, "s": 1000.0, None: 1.0}[unit]
        if unit is None and aggregation is Aggregation.RATE:
            raise InvalidInput(f"write rates as percentages, e.g. '> 0.5%', not {raw!r}", where=where)
        return cls(op, number * scale, str(raw).strip())

    def breached_by(self, m: "Measurement") -> bool:
        """Confidently on the wrong side: for '> x', the whole interval is above x."""
        return m.surely_above(self.value) if self.op == ">" else m.surely_below(self.value)

    def met_by(self, m: "Measurement") -> bool:
        """Confidently on the right side: for '< x', the whole interval is below x."""
        return m.surely_below(self.value) if self.op == "<" else m.surely_above(self.value)


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
    difference: bool = False  # against control: treatment − control in the metric's unit, not a % change
    min_samples: int = 0  # fewer samples (per compared variant) than this are inconclusive, whatever they say

    @property
    def blocks_advance(self) -> bool:
        """Warn-only gates inform; every other gate must pass before a stage may advance."""
        return not (
            self.warn
            and self.target is None
            and self.rollback is None
            and self.disable is None
            and self.rollback_to is None
        )

    @classmethod
    def parse(cls, raw: Any, where: str) -> "Gate":
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
        name = raw.get("metric")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a gate needs 'metric'", where=f"{where}.metric")
        base, q = parse_metric_name(name)
        spec = BUILTIN_METRICS.get(base)
        if spec is None:
            raise InvalidInput(
                f"unknown metric {name!r}; gates watch: " + ", ".join(sorted(BUILTIN_METRICS)),
                where=f"{where}.metric",
            )
        if (spec.aggregation is Aggregation.PERCENTILE) != (q is not None):
            raise InvalidInput(
                f"{base} is watched as a percentile, e.g. {base}_p95"
                if q is None
                else f"{base} has no percentiles",
                where=f"{where}.metric",
            )
        try:
            compare = Compare(raw.get("compare", "absolute"))
        except ValueError:
            raise InvalidInput("compare is 'control' or 'baseline'", where=f"{where}.compare") from None
        relative = compare is not Compare.ABSOLUTE
        thresholds = {
            k: Threshold.parse(raw[k], f"{where}.{k}", relative, spec.aggregation)
            for k in ("target", "warn", "rollback", "disable")
            if raw.get(k) is not None
        }
        rollback_to = raw.get("rollback_to")
        if rollback_to is not None and (
            not isinstance(rollback_to, int) or isinstance(rollback_to, bool) or rollback_to < 0
        ):
            raise InvalidInput("rollback_to is a stage number (0 = off)", where=f"{where}.rollback_to")
        if not thresholds and rollback_to is None:
            raise InvalidInput(
                "a gate needs a threshold (target, warn, rollback, disable) or rollback_to", where=where
            )
        sustain = parse_duration(raw["for"], f"{where}.for") if "for" in raw else timedelta(0)
        window = parse_duration(raw["window"], f"{where}.window") if "window" in raw else None
        if window is not None and spec.aggregation is not Aggregation.COUNT:
            raise InvalidInput(
                "'window' counts events in a trailing window; it fits count metrics", where=f"{where}.window"
            )
        if compare is Compare.CONTROL and spec.aggregation not in (
            Aggregation.RATE,
            Aggregation.PER_USER,
            Aggregation.MEAN,
        ):
            raise InvalidInput(
                f"{base} cannot be compared to control; rates and per-user metrics can",
                where=f"{where}.compare",
            )
        if compare is Compare.BASELINE and spec.aggregation not in (
            Aggregation.SUM,
            Aggregation.COUNT,
            Aggregation.RATE,
        ):
            raise InvalidInput(
                f"{base} cannot be compared to baseline; counts and rates can", where=f"{where}.compare"
            )
        return cls(
            name,
            spec.aggregation,
            q,
            compare,
            rollback_to=rollback_to,
            sustain=sustain,
            window=window,
            difference=_is_difference(raw, compare, thresholds, where),
            min_samples=_min_samples(raw.get("min_samples", spec.min_samples), f"{where}.min_samples"),
            **thresholds,
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


def _is_difference(
    raw: Mapping[str, Any], compare: Compare, thresholds: Mapping[str, Threshold], where: str
) -> bool:
    """Against control, a mean's thresholds are either all differences ('< -0.3') or all changes ('< -10%')."""
    if compare is not Compare.CONTROL or not thresholds:
        return False
    kinds = {k: str(raw[k]).strip().endswith("%") for k in thresholds}
    if len(set(kinds.values())) > 1:
        first = next(k for k, relative in kinds.items() if not relative)
        raise InvalidInput(
            "thresholds against control are all differences ('< -0.3') or all changes ('< -10%')",
            where=f"{where}.{first}",
        )
    return not next(iter(kinds.values()))


def _min_samples(raw: Any, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 1_000_000:
        raise InvalidInput("min_samples is a whole number from 0 to 1,000,000", where=where)
    return raw


@dataclass(frozen=True)
class Measurement:
    """A value with bounds, and how sure we are it lies above or below a number."""

    value: float | None
    lower: float | None
    upper: float | None
    samples: int
    exact: bool = False  # counted, not estimated: no uncertainty to account for
    rate: tuple[int, int] | None = None  # (trials, events) behind a rate, for exact threshold checks
    needs: dict[str, float] = field(default_factory=dict)

    def bounds(self) -> tuple[float | None, float | None]:
        if self.rate is not None and self.lower is None:
            interval = sequential.rate_bounds(*self.rate)  # only for display: verdicts need one evaluation
            return interval.lower, interval.upper
        return self.lower, self.upper

    def surely_above(self, x: float) -> bool:
        if self.value is None:
            return False
        if self.exact:
            return self.value > x
        if self.rate is not None:
            n, s = self.rate
            return n > 0 and s / n > x and sequential.excludes(n, s, x)
        return self.lower is not None and self.lower > x

    def surely_below(self, x: float) -> bool:
        if self.value is None:
            return False
        if self.exact:
            return self.value < x or (self.value <= x and x == 0)
        if self.rate is not None:
            n, s = self.rate
            return n > 0 and s / n < x and sequential.excludes(n, s, x)
        return self.upper is not None and self.upper < x


class GateInputs(Protocol):
    """The data a gate reads; a store in production, memory in simulations."""

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate: ...
    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals: ...


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: Gate
    verdict: Verdict
    measurement: Measurement
    breached: str | None = None  # which threshold is breached right now: "disable", "rollback", "warn"

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
        return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def judge(gate: Gate, m: Measurement) -> tuple[Verdict, str | None]:
    """The verdict and the breached threshold, if any. The only place thresholds are compared."""
    if gate.disable and gate.disable.breached_by(m):
        return Verdict.CRITICAL, "disable"
    if gate.rollback and gate.rollback.breached_by(m):
        return Verdict.FAIL, "rollback"
    if gate.rollback_to is not None and gate.rollback is None and m.value:
        return Verdict.FAIL, "rollback"
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


def _rate(n: int, s: int) -> Measurement:
    return Measurement(s / n if n else None, None, None, n, rate=(n, s))


class _Quantile(Measurement):
    """A percentile. Thresholds are checked as exceedance rates (P(X > x) against 1 − q) through the rate
    sequence, one evaluation each; the bounds for display come from a scan over the sketch's buckets."""

    def __init__(self, hist: Mapping[int, int], q: float) -> None:
        self._buckets = sorted(hist)
        self._cumulative = list(itertools.accumulate(hist[b] for b in self._buckets))
        self._q = q
        self._n = n = self._cumulative[-1] if self._cumulative else 0
        super().__init__(sketch_quantile(hist, q, n) if n else None, None, None, n)

    def _above(self, x: float) -> int:
        """Samples whose bucket's value exceeds x."""
        i = bisect.bisect_left(self._buckets, first_bucket_above(x))
        return self._n - (self._cumulative[i - 1] if i else 0)

    def _surely(self, above: int, side: int) -> bool:
        share, limit = above / self._n, 1 - self._q
        return (share - limit) * side > 0 and sequential.excludes(self._n, above, limit)

    def surely_above(self, x: float) -> bool:
        return self._n > 0 and self._surely(self._above(x), 1)

    def surely_below(self, x: float) -> bool:
        return self._n > 0 and self._surely(self._above(x), -1)

    def bounds(self) -> tuple[float | None, float | None]:
        lower = upper = None
        for bucket, seen in zip(self._buckets, self._cumulative, strict=True):
            above = self._n - seen
            if self._surely(above, 1):
                lower = value_of(bucket)
            elif upper is None and self._surely(above, -1):
                upper = value_of(bucket)
        return lower, upper


def _quantile(a: Aggregate, q: float) -> Measurement:
    return _Quantile(a.sketch or {}, q) if a.sketch else Measurement(None, None, None, 0)


def _relative(treatment: Measurement, control: Measurement) -> Measurement:
    """treatment / control − 1, with the interval from the two sequences' extremes."""
    (t_lo, t_hi), (c_lo, c_hi) = treatment.bounds(), control.bounds()
    samples = min(treatment.samples, control.samples)
    if treatment.value is None or not control.value or None in (t_lo, t_hi, c_lo, c_hi):
        return Measurement(None, None, None, samples)
    assert t_lo is not None and t_hi is not None and c_lo is not None and c_hi is not None
    lower = t_lo / c_hi - 1 if c_hi else None
    upper = t_hi / c_lo - 1 if c_lo > 0 else None
    return Measurement(treatment.value / control.value - 1, lower, upper, samples)


def _difference(treatment: Measurement, control: Measurement) -> Measurement:
    """treatment − control, with the interval from the two sequences' extremes."""
    samples = min(treatment.samples, control.samples)
    if None in (
        treatment.value,
        control.value,
        treatment.lower,
        treatment.upper,
        control.lower,
        control.upper,
    ):
        return Measurement(None, None, None, samples)
    assert treatment.value is not None and control.value is not None
    assert treatment.lower is not None and treatment.upper is not None
    assert control.lower is not None and control.upper is not None
    return Measurement(
        treatment.value - control.value,
        treatment.lower - control.upper,
        treatment.upper - control.lower,
        samples,
    )


def _mean(n: int, total: float, total_sq: float) -> Measurement:
    if n == 0:
        return Measurement(None, None, None, 0)
    m = total / n
    variance = max(0.0, (total_sq - n * m * m) / (n - 1)) if n > 1 else 0.0
    radius = sequential.asymptotic_radius(n, variance, sequential.ALPHA / 2)  # two sides, two variants
    return Measurement(m, m - radius, m + radius, n)


def measure(
    gate: Gate, inputs: GateInputs, since_ms: int, now_ms: int, baseline: tuple[int, int] | None
) -> Measurement:
    """What the gate looks at: the treatment since `since_ms` (or its trailing window), or a comparison."""
    base, _ = parse_metric_name(gate.metric)
    start = now_ms - int(gate.window.total_seconds() * 1000) if gate.window else since_ms
    subject = "all" if BUILTIN_METRICS[base].environment_wide else TREATMENT
    treatment = inputs.aggregate(base, subject, start, now_ms)
    match gate.aggregation, gate.compare:
        case Aggregation.RATE, Compare.ABSOLUTE:
            return _with_needs(_rate(treatment.count, treatment.failures), gate, since_ms, now_ms)
        case Aggregation.PERCENTILE, _:
            return _quantile(treatment, gate.quantile or 0.5)
        case Aggregation.COUNT, Compare.ABSOLUTE:
            return Measurement(float(treatment.count), None, None, treatment.count, exact=True)
        case Aggregation.GAUGE, _:
            return Measurement(treatment.last_value, None, None, treatment.count, exact=True)
        case Aggregation.RATE, Compare.CONTROL:
            control = inputs.aggregate(base, CONTROL, start, now_ms)
            return _relative(
                _rate(treatment.count, treatment.failures), _rate(control.count, control.failures)
            )
        case Aggregation.PER_USER, Compare.CONTROL:
            t, c = inputs.units(TREATMENT, start, now_ms), inputs.units(CONTROL, start, now_ms)
            return _relative(_mean(t.users, t.engaged, t.engaged_sq), _mean(c.users, c.engaged, c.engaged_sq))
        case Aggregation.MEAN, Compare.ABSOLUTE:
            return _mean(treatment.count, treatment.total, treatment.total_sq)
        case Aggregation.MEAN, Compare.CONTROL:
            control = inputs.aggregate(base, CONTROL, start, now_ms)
            compared = _difference if gate.difference else _relative
            return compared(
                _mean(treatment.count, treatment.total, treatment.total_sq),
                _mean(control.count, control.total, control.total_sq),
            )
        case _, Compare.BASELINE if baseline is not None:
            return _versus_baseline(gate, inputs, start, now_ms, baseline)
    return Measurement(None, None, None, 0)


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


def _with_needs(m: Measurement, gate: Gate, since_ms: int, now_ms: int) -> Measurement:
    """For an undecided rate gate: roughly how many more samples settle it, and how long they take."""
    if m.rate is None or m.value is None:
        return m
    n, s = m.rate
    thresholds = [t.value for t in (gate.target, gate.rollback) if t is not None]
    if not thresholds or any(m.surely_above(x) or m.surely_below(x) for x in thresholds):
        return m
    p = max(m.value, 1e-6)
    nearest = min(thresholds, key=lambda x: abs(x - p))
    if abs(nearest - p) < 1e-9:
        return m
    needed = max(n, 1)
    while needed < 10**9 and not sequential.excludes(needed, round(needed * p), nearest):
        needed *= 2
    elapsed_s = max((now_ms - since_ms) / 1000, 1.0)
    more = max(needed - n, 0)
    return Measurement(
        m.value,
        m.lower,
        m.upper,
        m.samples,
        rate=m.rate,
        needs={"samples": more, "seconds": more / (n / elapsed_s) if n else math.inf},
    )


def assess(
    gate: Gate, inputs: GateInputs, since_ms: int, now_ms: int, baseline: tuple[int, int] | None = None
) -> GateResult:
    m = measure(gate, inputs, since_ms, now_ms, baseline)
    if m.samples < gate.min_samples:  # three angry ratings decide nothing, however sure they look
        short = Measurement(
            m.value, m.lower, m.upper, m.samples, needs={"samples": gate.min_samples - m.samples}
        )
        return GateResult(gate, Verdict.INCONCLUSIVE, short)
    verdict, breached = judge(gate, m)
    return GateResult(gate, verdict, m, breached)

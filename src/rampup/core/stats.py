"""Estimates with 95% confidence bounds for the metric queries. Pure math; no I/O."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rampup.core import sketch

__all__ = ["Estimate", "Z95", "proportion", "poisson_count", "mean", "percentile", "scaled", "ratio"]

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float | None
    lower: float | None
    upper: float | None
    samples: int


def proportion(successes: int, trials: int, z: float = Z95) -> Estimate:
    """Wilson score interval: honest at small counts and near 0, where error rates live."""
    if trials == 0:
        return Estimate(None, None, None, 0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, lower, upper, trials)


def poisson_count(count: int, z: float = Z95) -> Estimate:
    """A count with the Wilson–Hilferty approximation of the exact Poisson interval (good from 0 up)."""
    lower = 0.0 if count == 0 else count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
    upper_n = count + 1
    upper = upper_n * (1 - 1 / (9 * upper_n) + z / (3 * math.sqrt(upper_n))) ** 3
    return Estimate(float(count), max(0.0, lower), upper, count)


def mean(n: int, total: float, total_squares: float, z: float = Z95) -> Estimate:
    if n == 0:
        return Estimate(None, None, None, 0)
    m = total / n
    if n == 1:
        return Estimate(m, None, None, 1)
    variance = max(0.0, (total_squares - n * m * m) / (n - 1))
    half = z * math.sqrt(variance / n)
    return Estimate(m, m - half, m + half, n)


def percentile(hist: Mapping[int, int], q: float, z: float = Z95) -> Estimate:
    """The q-quantile with a distribution-free interval from the binomial spread of its rank."""
    n = sum(hist.values())
    if n == 0:
        return Estimate(None, None, None, 0)
    spread = z * math.sqrt(n * q * (1 - q))
    low_q = max(0.0, (n * q - spread) / n)
    high_q = min(1.0, (n * q + spread + 1) / n)
    return Estimate(
        sketch.quantile(hist, q, n), sketch.quantile(hist, low_q, n), sketch.quantile(hist, high_q, n), n
    )


def scaled(count: Estimate, divisor: float, samples: int) -> Estimate:
    """A count's estimate divided by a known number (e.g. events per exposed user)."""
    if divisor == 0 or count.value is None:
        return Estimate(None, None, None, samples)
    return Estimate(
        count.value / divisor, (count.lower or 0) / divisor, (count.upper or 0) / divisor, samples
    )


def ratio(numerator: int, denominator: int, z: float = Z95) -> Estimate:
    """Two counts' ratio with the delta-method interval of two independent Poisson counts."""
    if denominator == 0:
        return Estimate(None, None, None, 0)
    r = numerator / denominator
    if numerator == 0:
        return Estimate(0.0, 0.0, poisson_count(0, z).upper / denominator, denominator)  # type: ignore[operator]
    half = z * r * math.sqrt(1 / numerator + 1 / denominator)
    return Estimate(r, max(0.0, r - half), r + half, denominator)

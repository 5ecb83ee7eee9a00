"""Anytime-valid inference: confidence sequences that stay valid however often the data are looked at.

A rollout checks its gates every tick for days. A fixed-sample 95% interval checked every minute would
cross any threshold by chance sooner or later; a confidence sequence holds for all times at once
(P(the truth ever leaves it) ≤ α), so a breach it shows is a breach at the stated confidence.

- Proportions (error rates, and percentile gates turned into exceedance rates): Robbins' beta–binomial
  mixture martingale. For a hypothesised rate p, M_n(p) = B(a+S, b+n−S) / B(a, b) / (pˢ (1−p)ⁿ⁻ˢ) is a
  nonnegative martingale under p, so by Ville's inequality P(∃n: M_n(p) ≥ 1/α) ≤ α. The sequence is
  {p : M_n(p) < 1/α}. It adapts to the variance, so it is tight for rare events, where Hoeffding-style
  bounds are useless.
- Means and differences of means (engagement vs control): the asymptotic confidence sequence of
  Waudby-Smith, Arnold, Wu, Howard & Ramdas (2021), a normal-mixture boundary with the sample variance.

Verdicts only ask whether one threshold is inside the sequence, which is one evaluation of M_n; the
bounds themselves (for display) are found by bisection.
"""

import math
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "PRIOR",
    "SPLIT_PRIOR",
    "log_mixture",
    "excludes",
    "rate_bounds",
    "asymptotic_radius",
    "Interval",
    "share_evidence",
]

ALPHA = 0.05
PRIOR = (0.5, 20.0)  # Beta(a, b): mass near small rates, where error rates live; any proper prior is valid
SPLIT_PRIOR = (1.0, 1.0)  # for a split of events between variants, which may lie anywhere in (0, 1)
_RHO2 = 1.0  # normal-mixture tuning for the asymptotic CS, in units of the variance (tight near n≈1/ρ²·…)


@dataclass(frozen=True, slots=True)
class Interval:
    lower: float
    upper: float


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(n: float, s: float, p: float, prior: tuple[float, float] = PRIOR) -> float:
    """log M_n(p): the evidence against the rate being p after s events in n trials."""
    a, b = prior
    p = min(max(p, 1e-12), 1 - 1e-12)
    return _lbeta(a + s, b + n - s) - _lbeta(a, b) - s * math.log(p) - (n - s) * math.log1p(-p)


def excludes(n: float, s: float, p: float, alpha: float = ALPHA, prior: tuple[float, float] = PRIOR) -> bool:
    """Whether p lies outside the confidence sequence: the data rule it out at level α, at any time."""
    return n > 0 and log_mixture(n, s, p, prior) >= math.log(1 / alpha)


def rate_bounds(n: float, s: float, alpha: float = ALPHA, prior: tuple[float, float] = PRIOR) -> Interval:
    """The confidence sequence for a rate at this n, by bisection on each side of the estimate."""
    if n == 0:
        return Interval(0.0, 1.0)
    centre = s / n
    level = math.log(1 / alpha)

    def edge(inside: float, outside: float) -> float:
        if log_mixture(n, s, outside, prior) < level:
            return outside
        for _ in range(40):  # to 2⁻⁴⁰ of the span: far finer than any threshold
            middle = (inside + outside) / 2
            inside, outside = (
                (middle, outside) if log_mixture(n, s, middle, prior) < level else (inside, middle)
            )
        return inside

    # The mixture's minimum sits near the posterior mode, not at s/n; start from inside the sequence.
    inside = min(max(centre, 1e-12), 1 - 1e-12)
    return Interval(edge(inside, 0.0), edge(inside, 1.0))


def asymptotic_radius(n: int, variance: float, alpha: float = ALPHA) -> float:
    """Half-width of the asymptotic confidence sequence for a mean after n observations."""
    if n < 2:
        return math.inf
    v = n * variance * _RHO2
    return (
        math.sqrt(2 * (v + 1) / (n * n * _RHO2) * math.log(math.sqrt(v + 1) / alpha)) if variance > 0 else 0.0
    )


SHARE_PRIOR_WEIGHT = 2000.0  # the mixture over shares: centred on the promised share, sd ≈ √(s(1−s)/2000)


def share_evidence(n: float, s: float, share: float, weight: float = SHARE_PRIOR_WEIGHT) -> float:
    """log M_n against "each unit is in the treatment with probability `share`": a beta-binomial mixture
    centred on the share itself, of `weight` pseudo-units: the default is tight for the small mismatches a
    sample-ratio check looks for. An anytime-valid p-value is min(1, exp(−log M))."""
    prior = (share * weight, (1 - share) * weight)
    return log_mixture(n, s, share, prior)

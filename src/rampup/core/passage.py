"""When a rate is shown under its line: the median first passage of a sequential test's walk.

A target like "error rate < 0.1%" passes at the first sample count n at which the rate's confidence sequence
lies wholly under 0.1%. The failures so far are random, so so is that n: `samples_to_pass` gives its median,
worked out exactly over the failures' distribution. `rampup apply` forecasts a stage with it from zero
(core/forecast.py); a stage that waits for data estimates its wait with it from the failures it has seen.
"""

import functools
import math

from rampup.core import sequential

__all__ = ["MAX_EVENTS", "samples_to_pass"]

_TINY = 1e-15  # probabilities below this are dropped: far below any median's precision
MAX_EVENTS = 300  # beyond this many events at the median the walk is worked out at this many (see below)


def samples_to_pass(
    share: float, limit: float, alpha: float, start: float = 0.0, failures: int | None = None
) -> float:
    """The median number of samples at which a rate of `share` is shown to be under `limit` at level α,
    counting from `start` samples on (a soak's end: a rate shown under its line earlier must be under it
    then) — with `failures` already seen in those, when they are known (a stage waiting for data);
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
    level = math.log(1 / alpha)
    expected = _expected_crossing(share, limit, level)
    if share * expected > MAX_EVENTS:
        return max(start, expected * _far_ratio(limit, level))
    return _median_passage(share, limit, level, start, failures)


@functools.lru_cache(maxsize=64)
def _far_ratio(limit: float, level: float) -> float:
    """The median passage over the expected crossing, for the rate whose crossing has MAX_EVENTS failures."""
    near = _share_crossing_at(MAX_EVENTS, limit, level)
    return _median_passage(near, limit, level, 0.0, None) / _expected_crossing(near, limit, level)


def _evidence(n: float, k: float, limit: float, level: float) -> bool:
    return k < limit * n and sequential.log_mixture(n, k, limit) >= level


def _median_passage(p: float, limit: float, level: float, start: float, failures: int | None) -> float:
    """The walk of independent samples, each failing with probability p (see samples_to_pass)."""
    n, at = math.ceil(start), start
    # alive[i]: P(S_n = low + i and not passed yet)
    low, alive = (failures, [1.0]) if failures is not None else _binomial(n, p)
    passed = 0.0
    k = _most_passing(n, limit, level)
    while True:
        cut = min(max(k + 1 - low, 0), len(alive))
        passed += sum(alive[:cut])
        if passed >= 0.5:
            return at
        alive, low = alive[cut:], max(low, k + 1)
        while alive and alive[-1] < _TINY:
            alive.pop()
        k += 1
        step = _first_passing(k, limit, level, n) - n
        n += step
        at = float(n)
        shift, pmf = _binomial(step, p)
        low += shift
        grown = [0.0] * (len(alive) + len(pmf) - 1)
        for j, f in enumerate(pmf):
            for i, w in enumerate(alive):
                grown[i + j] += w * f
        alive = grown


def _most_passing(n: int, limit: float, level: float) -> int:
    """b(n): the most failures in n samples that pass (-1: none); fewer failures are more evidence."""
    low, high = -1, math.ceil(limit * n)  # passes (or none), fails
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _evidence(n, middle, limit, level) else (low, middle)
    return low


def _first_passing(k: int, limit: float, level: float, after: int) -> int:
    """n_k: the first n > `after` at which k failures pass."""
    low = max(after, math.floor(k / limit))  # fails (k ≥ limit · low, or already tried)
    width = max(1, low // 8)
    while not _evidence(low + width, k, limit, level):
        low, width = low + width, width * 2
    high = low + width
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _evidence(middle, k, limit, level) else (middle, high)
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


def _expected_crossing(share: float, limit: float, level: float) -> float:
    """Where the expected path s = share · n first has enough evidence (a smooth n, for scaling)."""

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


def _share_crossing_at(events: float, limit: float, level: float) -> float:
    """The rate whose expected path crosses with `events` failures (more as the rate nears the line)."""
    low, high = 0.0, limit
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if middle * _expected_crossing(middle, limit, level) < events else (low, middle)
        )
    return low

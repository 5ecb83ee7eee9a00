"""A mergeable quantile sketch with bounded relative error (the DDSketch idea, logarithmic buckets).

A value x > 0 falls in bucket i = ceil(log_γ x) with γ = (1 + α) / (1 − α); any quantile read back from
bucket i is within α of the true value of some sample in that bucket. Buckets add, so per-minute
sketches merge into hours, days and whole stages exactly.
"""

import math
from collections.abc import Mapping

__all__ = [
    "RELATIVE_ACCURACY",
    "bucket_of",
    "value_of",
    "first_bucket_above",
    "quantile",
    "ZERO_BUCKET",
    "level_of",
    "ZERO_LEVEL",
]

RELATIVE_ACCURACY = 0.01  # a quantile read back is within 1% of a true sample value
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
MIN_VALUE = 1e-3  # values at or below this (ms) count as zero
ZERO_BUCKET = -(2**31)
ZERO_LEVEL = -11  # below every octave of a value over MIN_VALUE


def bucket_of(value: float) -> int:
    if value <= MIN_VALUE:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def level_of(value: float) -> int:
    """A value's octave, ⌊log₂ value⌋: the coarse grid on which each user's latencies are kept per day, where
    the sketch's 1% buckets would cost a row per value (values at or below MIN_VALUE: ZERO_LEVEL)."""
    return math.floor(math.log2(value)) if value > MIN_VALUE else ZERO_LEVEL


def value_of(bucket: int) -> float:
    """The representative value of a bucket: within the relative accuracy of everything in it."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2 * _GAMMA**bucket / (_GAMMA + 1)


def first_bucket_above(x: float) -> int:
    """The lowest bucket whose value exceeds x."""
    if x < 0:
        return ZERO_BUCKET
    if x == 0:
        return ZERO_BUCKET + 1
    b = math.floor(math.log(x * (_GAMMA + 1) / 2) / _LOG_GAMMA) + 1
    while value_of(b - 1) > x:  # guard the float rounding at bucket edges
        b -= 1
    while value_of(b) <= x:
        b += 1
    return b


def quantile(sketch: Mapping[int, int], q: float, total: int | None = None) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) by rank: the value of the sample with rank floor(q·(n−1))."""
    n = sum(sketch.values()) if total is None else total
    if n == 0:
        return None
    rank = math.floor(q * (n - 1))
    seen = 0
    for bucket in sorted(sketch):
        seen += sketch[bucket]
        if seen > rank:
            return value_of(bucket)
    return value_of(max(sketch))

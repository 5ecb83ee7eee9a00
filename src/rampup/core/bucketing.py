"""Sticky bucketing: one tiny pure function, published with test vectors (docs/bucketing.md).

bucket(salt, key) = murmur3_x86_32(f"{salt}:{key}", seed=0) as unsigned, mod 10,000.
A user is in a rollout of p percent iff bucket < round(p * 100). Raising p therefore never removes
anyone; lowering it removes the most recent additions first. Variants use the same function with
a different seed so a user's variant does not change when the rollout grows.

The unit bucketed is the targeting key, or with `bucket_by` an attribute of the context (an account id), so
every user of one account shares a bucket; `bucketing_unit` is that choice, published with the vectors too.
"""

from collections.abc import Mapping
from typing import Any

import mmh3

from rampup.errors import InvalidInput

__all__ = [
    "BUCKETS",
    "VARIANT_SEED",
    "TARGETING_KEY",
    "bucket",
    "variant_bucket",
    "threshold",
    "in_rollout",
    "bucketing_unit",
    "parse_rollout",
]

TARGETING_KEY = "targetingKey"  # how a result names the targeting key as its bucketing unit

BUCKETS = 10_000
VARIANT_SEED = 86028157  # Unleash's variant seed; any constant works as long as every SDK agrees


def bucket(salt: str, key: str) -> int:
    return mmh3.hash(f"{salt}:{key}", signed=False) % BUCKETS


def variant_bucket(salt: str, key: str) -> int:
    return mmh3.hash(f"{salt}:{key}", VARIANT_SEED, signed=False) % BUCKETS


def threshold(percent: float) -> int:
    """Percent (two decimals) → number of buckets that are in."""
    return round(percent * 100)


def in_rollout(salt: str, key: str, percent: float) -> bool:
    return bucket(salt, key) < threshold(percent)


def bucketing_unit(
    bucket_by: str, targeting_key: str | None, attributes: Mapping[str, Any]
) -> tuple[str | None, str]:
    """(unit, what it is): the `bucket_by` attribute when it is a non-empty string or an integer (written in
    decimal), else the targeting key. Other types fall back too: their text differs between languages."""
    if bucket_by:
        value = attributes.get(bucket_by)
        if isinstance(value, str) and value:
            return value, bucket_by
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), bucket_by
    return targeting_key, TARGETING_KEY


def parse_rollout(value: Any, where: str = "rollout") -> int:
    """A percentage with at most two decimals → basis points (0..10000)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidInput(f"rollout must be a number from 0 to 100, got {value!r}", where=where)
    if not 0 <= value <= 100:
        raise InvalidInput(f"rollout must be from 0 to 100, got {value}", where=where)
    basis_points = round(value * 100)
    if abs(basis_points - value * 100) > 1e-6:
        raise InvalidInput(f"rollout has at most two decimals, got {value}", where=where)
    return basis_points

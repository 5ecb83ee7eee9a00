"""Sticky bucketing: one tiny pure function, published with test vectors (docs/bucketing.md).

bucket(salt, key) = murmur3_x86_32(f"{salt}:{key}", seed=0) as unsigned, mod 10,000.
A user is in a rollout of p percent iff bucket < round(p * 100). Raising p therefore never removes
anyone; lowering it removes the most recent additions first. Variants use the same function with
a different seed so a user's variant does not change when the rollout grows.
"""

import mmh3

__all__ = ["BUCKETS", "VARIANT_SEED", "bucket", "variant_bucket", "threshold", "in_rollout"]

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

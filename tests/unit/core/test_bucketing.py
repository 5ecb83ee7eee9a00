"""Bucketing: the published vectors, an independent murmur3, and the properties users rely on."""

import json
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rampup.core.bucketing import (
    BUCKETS,
    VARIANT_SEED,
    bucket,
    bucketing_unit,
    in_rollout,
    threshold,
    variant_bucket,
)

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "bucketing.json").read_text())


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 written from the reference, to show the documented function is exactly this."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    rounded = len(data) - len(data) % 4
    for i in range(0, rounded, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    k = 0
    tail = data[rounded:]
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def test_vectors_have_at_least_a_thousand_cases_over_several_percentages() -> None:
    assert len(VECTORS["cases"]) >= 1000
    assert len(VECTORS["cases"][0]["in_rollout"]) >= 5


def test_every_published_vector_matches_this_implementation() -> None:
    for case in VECTORS["cases"]:
        salt, key = case["salt"], case["targeting_key"]
        assert bucket(salt, key) == case["bucket"], case
        assert variant_bucket(salt, key) == case["variant_bucket"], case
        for percent, expected in case["in_rollout"].items():
            assert in_rollout(salt, key, float(percent)) is expected, (case, percent)


def test_published_vectors_follow_the_documented_formula_with_an_independent_murmur3() -> None:
    for case in VECTORS["cases"]:
        data = f"{case['salt']}:{case['targeting_key']}".encode()
        assert murmur3_32(data) % BUCKETS == case["bucket"]
        assert murmur3_32(data, VARIANT_SEED) % BUCKETS == case["variant_bucket"]


@given(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=60),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_raising_the_percentage_never_removes_a_user(salt: str, key: str, a: int, b: int) -> None:
    low, high = sorted((a / 100, b / 100))
    assert not in_rollout(salt, key, low) or in_rollout(salt, key, high)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=60))
def test_bucket_is_in_range_and_edges_are_exact(salt: str, key: str) -> None:
    assert 0 <= bucket(salt, key) < BUCKETS
    assert not in_rollout(salt, key, 0)
    assert in_rollout(salt, key, 100)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from([0.5, 1, 5, 10, 25, 33.33, 50, 75, 90, 99]), st.integers(0, 2**32))
def test_observed_share_of_100k_random_keys_is_within_one_point(percent: float, seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"user-{rng.getrandbits(64):016x}" for _ in range(100_000)]
    share = sum(in_rollout("checkout", k, percent) for k in keys) / len(keys) * 100
    assert abs(share - percent) <= 1.0


def test_two_processes_give_the_same_answers() -> None:
    # Python's own hash() is salted per process; this catches anyone reaching for it.
    keys = [f"user-{i}" for i in range(2000)]
    program = (
        "import sys, json; from rampup.core.bucketing import bucket;"
        "print(json.dumps([bucket('workstation', k) for k in json.loads(sys.stdin.read())]))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", program],
            input=json.dumps(keys),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout
        for seed in (1, 2)
    ]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == [bucket("workstation", k) for k in keys]


def test_rolling_back_removes_only_the_newest_users() -> None:
    keys = [f"u{i}" for i in range(20_000)]
    at_10 = {k for k in keys if in_rollout("ws", k, 10)}
    at_25 = {k for k in keys if in_rollout("ws", k, 25)}
    assert at_10 < at_25
    back_to_10 = {k for k in keys if in_rollout("ws", k, 10)}
    assert back_to_10 == at_10


def test_threshold_takes_two_decimals() -> None:
    assert threshold(33.33) == 3333
    assert threshold(0.01) == 1
    assert threshold(100) == BUCKETS


def test_every_published_unit_vector_matches_this_implementation() -> None:
    assert len(VECTORS["unit_cases"]) >= 80
    for case in VECTORS["unit_cases"]:
        context = case["context"]
        unit, bucketed_by = bucketing_unit(case["bucket_by"], context.get("targetingKey"), context)
        assert (unit, bucketed_by) == (case["unit"], case["bucketed_by"]), case
        if unit is None:
            continue
        assert (bucket(case["salt"], unit), variant_bucket(case["salt"], unit)) == (
            case["bucket"],
            case["variant_bucket"],
        ), case
        for percent, expected in case["in_rollout"].items():
            assert in_rollout(case["salt"], unit, float(percent)) is expected, (case, percent)

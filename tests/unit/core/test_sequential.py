"""Confidence sequences: valid however often they are looked at, and tight enough to act on."""

import random

import pytest

from rampup.core.sequential import asymptotic_radius, excludes, rate_bounds


@pytest.mark.parametrize("p", [0.0005, 0.005, 0.05])
def test_the_true_rate_is_rarely_ever_excluded_when_checked_after_every_batch(p: float) -> None:
    rng = random.Random(7)
    runs, ever_wrong = 300, 0
    for _ in range(runs):
        n = s = 0
        for _ in range(200):
            batch = 50
            n += batch
            s += sum(rng.random() < p for _ in range(batch))
            if excludes(n, s, p):
                ever_wrong += 1
                break
    assert ever_wrong / runs <= 0.05


def test_bounds_hold_the_estimate_and_shrink_with_data() -> None:
    narrow, wide = rate_bounds(100_000, 50), rate_bounds(1000, 0)
    assert narrow.lower < 50 / 100_000 < narrow.upper
    assert narrow.upper - narrow.lower < wide.upper - wide.lower
    assert wide.lower == 0.0


def test_a_regression_is_told_apart_from_the_threshold() -> None:
    assert excludes(2000, 40, 0.005)  # 2% against a 0.5% threshold
    assert not excludes(60, 1, 0.005)  # one failure in 60 proves nothing


def test_asymptotic_radius_shrinks_like_one_over_root_n() -> None:
    r1, r4 = asymptotic_radius(10_000, 1.0), asymptotic_radius(40_000, 1.0)
    assert 0.4 < r4 / r1 < 0.6

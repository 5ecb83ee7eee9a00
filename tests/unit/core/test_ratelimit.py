"""Token buckets: a burst at once, then the rate; each key on its own; the wait it answers is the true one."""

import pytest

from rampup.core.ratelimit import RateLimiter


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("dsn", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("dsn", 100.0) == pytest.approx(0.5)
    assert limiter.take("dsn", 100.25) == pytest.approx(0.25)  # a refused request takes nothing
    assert limiter.take("dsn", 100.5) == 0.0
    assert limiter.take("dsn", 100.5) == pytest.approx(0.5)


def test_keys_are_limited_apart_and_idle_time_refills_only_up_to_the_burst() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    assert limiter.take("a", 0.0) == limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0
    assert [limiter.take("a", 3600.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_a_zero_rate_never_refills() -> None:
    limiter = RateLimiter(rate=0.0, burst=1)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 1e9) == float("inf")

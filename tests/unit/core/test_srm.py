"""The sample-ratio check (users per variant against the stage's share) and what it can catch at a traffic."""

import math
from pathlib import Path

import numpy as np
import pytest

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core import sequential
from rampup.core.plans import SRM_ALPHA, Plan, sample_ratio
from rampup.core.srm import DAY_S, smallest_caught, srm_power

EXAMPLE = load_plan((Path(__file__).parents[3] / "examples" / "plans" / "workstation.yaml").read_text())[1]
ALPHA = EXAMPLE.srm_alpha


def lost(users: int, share: float, loss: float) -> tuple[int, int]:
    """Treatment and control users when the treatment loses `loss` of its users (the expected counts)."""
    treatment = users * share * (1 - loss)
    return round(treatment), round(users * (1 - share))


def test_the_plans_stages_with_a_control_share_its_budget() -> None:
    assert ALPHA == pytest.approx(SRM_ALPHA / 3)  # 10%, 25%, 50%; the 100% stage has no control
    one = Plan.parse(
        {
            "name": "one",
            "flag": "one",
            "environment": "production",
            "stages": [{"name": "half", "percentage": 50}, {"name": "all", "percentage": 100}],
            "gates": [],
        }
    )
    assert one.srm_alpha == SRM_ALPHA


@pytest.mark.parametrize(
    ("treatment", "control", "share", "mismatch"),
    [
        (10_000, 90_000, 0.1, False),  # as promised
        (1_772, 17_560, 0.1, False),  # healthy by chance (p = 0.0031): paused a rollout at 0.33% a stage
        (9_000, 90_000, 0.1, True),  # a tenth of the treatment's users missing
        (*lost(20_000, 0.1, 0.2), 0.1, True),  # a fifth of them at 20,000 users
        (*lost(43_200, 0.1, 0.03), 0.1, False),  # 3% in 12 h at 5 req/s: 1.9 σ, not enough
        (*lost(432_000, 0.1, 0.03), 0.1, True),  # 3% in 12 h at 50 req/s: 5.9 σ
        (*lost(43_200, 0.5, 0.03), 0.5, False),
        (0, 0, 0.1, None),  # no users yet: no check
        (500, 0, 1.0, None),  # at 100% there is no control
    ],
)
def test_sample_ratio_on_users(treatment: int, control: int, share: float, mismatch: bool | None) -> None:
    srm = sample_ratio(treatment, control, share, ALPHA)
    assert (srm.mismatch if srm else None) == mismatch


def test_the_check_keeps_its_level_checked_at_every_look_where_a_repeated_fixed_test_does_not() -> None:
    """Seeded null data: 2,000 stages of 60 growing looks at 10%. The sequential check pauses at most α of
    them; a fixed-sample z-test at the same level, repeated on the same looks, far more."""
    rng = np.random.default_rng(11)
    n = np.arange(1, 61) * 500
    s = np.cumsum(rng.binomial(500, 0.1, (2000, 60)), axis=1)
    level = math.log(1 / ALPHA)
    paused = sum(any(sequential.share_evidence(n[i], row[i], 0.1) >= level for i in range(60)) for row in s)
    z = np.abs(s / n - 0.1) / np.sqrt(0.09 / n)
    repeated = int((z >= 3.29).any(axis=1).sum())  # two-sided 0.1% each time
    assert paused <= ALPHA * 2000 < repeated


@pytest.mark.parametrize(
    ("users", "share", "at_least", "at_most"),
    [
        (43_200, 0.1, 0.055, 0.07),  # 12 h at 5 req/s, 5 requests a user: 3% is out of reach
        (172_800, 0.1, 0.03, 0.035),  # the 48 h soak
        (432_000, 0.1, 0.018, 0.024),  # 12 h at 50 req/s
        (43_200, 0.5, 0.033, 0.041),  # a 50% stage sees a loss sooner
    ],
)
def test_the_smallest_loss_caught_at_a_number_of_users(
    users: int, share: float, at_least: float, at_most: float
) -> None:
    caught = smallest_caught(users, share, ALPHA)
    assert at_least < caught < at_most
    # It is where the check on the expected counts begins to pause.
    above, below = (
        sample_ratio(*lost(users, share, caught * 1.02), share, ALPHA),
        sample_ratio(*lost(users, share, caught * 0.98), share, ALPHA),
    )
    assert above is not None and above.mismatch and below is not None and not below.mismatch


def test_too_few_users_catch_nothing() -> None:
    assert smallest_caught(0, 0.1, ALPHA) == math.inf
    assert smallest_caught(20, 0.1, ALPHA) == math.inf  # not even losing every treatment user shows


def test_each_stage_with_a_control_gets_its_power_within_a_day_and_its_soak() -> None:
    stages = [(s.name, s.percentage_bp, s.min_duration.total_seconds()) for s in EXAMPLE.stages]
    power = srm_power(stages, lambda seconds: seconds * 1.0, ALPHA)  # one new user a second
    assert [(p.stage, p.share, p.users_day, p.users_soak) for p in power] == [
        (1, 0.1, DAY_S, 2 * DAY_S),
        (2, 0.25, DAY_S, 2 * DAY_S),
        (3, 0.5, DAY_S, 2 * DAY_S),
    ]
    assert all(p.caught_soak < p.caught_day for p in power)
    assert power[0].caught_day == smallest_caught(DAY_S, 0.1, ALPHA)

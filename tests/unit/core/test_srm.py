"""The sample-ratio checks (users per variant against the stage's share; users served who sent nothing else, per
variant, against each variant's share of the served) and what they can catch at a traffic."""

import math
from pathlib import Path

import numpy as np
import pytest

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core import sequential
from rampup.core.plans import (
    SRM_ALPHA,
    SRM_CHECKS,
    Plan,
    SrmCheck,
    missing_telemetry,
    sample_checks,
    sample_ratio,
)
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


def served(users: int, share: float, silent: float, loss: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """(silent, exposed) per variant, (treatment, control), when `silent` of every variant's users send nothing
    but their exposures and the treatment loses the telemetry of `loss` more of its users (expected counts)."""
    exposed = round(users * share), round(users * (1 - share))
    treatment_silent = exposed[0] * (1 - (1 - silent) * (1 - loss))
    return (round(treatment_silent), round(exposed[1] * silent)), exposed


@pytest.mark.parametrize(
    ("silent", "exposed", "mismatch"),
    [
        (*served(43_200, 0.1, 0.02, 0.0), False),  # 2% silent in both: as the shares of the served
        (*served(43_200, 0.1, 0.02, 0.03), True),  # 3% of the treatment lost in 12 h at 5 req/s: 8 σ
        (*served(43_200, 0.1, 0.0, 0.03), True),  # nobody else silent: every silent user is the treatment's
        (*served(4_320, 0.1, 0.02, 0.03), False),  # 1.2 h of it: too few yet
        (*served(43_200, 0.1, 0.3, 0.03), False),  # most users silent anyway: the loss drowns
        ((3, 0), (300, 2_700), False),  # three silent users prove nothing, all in the treatment or not
        ((0, 0), (4_320, 38_880), None),  # nobody silent: no check (zero counts give no verdict)
        ((5, 0), (500, 0), None),  # nobody served in control
    ],
)
def test_missing_telemetry_counts_the_silent_users_against_the_served(
    silent: tuple[int, int], exposed: tuple[int, int], mismatch: bool | None
) -> None:
    check = missing_telemetry(silent, exposed, ALPHA / SRM_CHECKS)
    assert (check.mismatch if check else None) == mismatch
    if check is not None:
        assert check.check is SrmCheck.SILENT and check.expected_share == exposed[0] / sum(exposed)
        assert check.to_dict()["metric"] == "missing_telemetry"


def test_both_checks_split_the_stages_level_and_say_which_found_the_mismatch() -> None:
    users = 43_200
    exposed = (round(users * 0.1), round(users * 0.9))
    lost_telemetry = sample_checks(exposed, *served(users, 0.1, 0.02, 0.03), 0.1, ALPHA)
    assert lost_telemetry is not None and lost_telemetry.check is SrmCheck.SILENT and lost_telemetry.mismatch
    assert lost_telemetry.alpha == ALPHA / 2 and lost_telemetry.reason.startswith("telemetry missing:")

    lost_users = lost(432_000, 0.1, 0.05)
    ratio = sample_checks(lost_users, (0, 0), lost_users, 0.1, ALPHA)
    assert ratio is not None and ratio.check is SrmCheck.RATIO and ratio.mismatch
    assert ratio.reason.startswith("sample-ratio mismatch:")

    healthy = sample_checks(exposed, *served(users, 0.1, 0.02, 0.0), 0.1, ALPHA)
    assert (
        healthy is not None and healthy.check is SrmCheck.RATIO and not healthy.mismatch
    )  # what a status shows
    assert sample_checks((500, 0), (5, 0), (500, 0), 1.0, ALPHA) is None  # at 100% there is no control


def test_the_missing_telemetry_check_keeps_its_level_checked_at_every_look() -> None:
    """Seeded null data: 2,000 stages at 10% of 60 growing looks, 2% of every variant's users silent. The
    check pauses at most its level of them (here a generous α = 5%, to see the rate at all)."""
    rng = np.random.default_rng(5)
    alpha, stages, looks, per_look = 0.05, 2_000, 60, 500
    exposed_t = rng.binomial(per_look, 0.1, (stages, looks)).cumsum(axis=1)
    exposed_c = np.arange(1, looks + 1) * per_look - exposed_t
    silent_t = rng.binomial(np.diff(exposed_t, prepend=0), 0.02).cumsum(axis=1)
    silent_c = rng.binomial(np.diff(exposed_c, prepend=0), 0.02).cumsum(axis=1)
    paused = 0
    for i in range(stages):
        for k in range(looks):
            check = missing_telemetry(
                (int(silent_t[i, k]), int(silent_c[i, k])),
                (int(exposed_t[i, k]), int(exposed_c[i, k])),
                alpha,
            )
            if check is not None and check.mismatch:
                paused += 1
                break
    assert paused / stages <= alpha

"""The expected time to a decision per stage: a power calculation on the gates' own sequences."""

import math

import pytest

from rampup.core import sequential
from rampup.core.forecast import Observed, forecast, samples_to_pass
from rampup.core.gates import STAGE_ALPHA, Gate
from rampup.core.plans import Plan

PLAN = Plan.parse(
    {
        "name": "p",
        "flag": "f",
        "environment": "production",
        "stages": [
            {"name": "a", "percentage": 10, "min_duration": "48h"},
            {"name": "b", "percentage": 100, "min_duration": "1h"},
        ],
        "gates": [
            {"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%"},
            {"metric": "api_latency_p95", "target": "< 500ms"},
            {"metric": "data_loss", "rollback_to": 0},
        ],
    }
)
STAGES = [(s.name, s.percentage_bp, s.min_duration.total_seconds()) for s in PLAN.stages]


def seen(errors: float, slow: float = 0.002) -> "dict[str, Observed]":
    return {"error_rate": Observed(1.0, errors), "api_latency_p95": Observed(1.0, slow)}


def test_samples_to_pass_is_where_the_sequence_first_excludes_the_target() -> None:
    n = samples_to_pass(0.0005, 0.001)
    level = math.log(1 / STAGE_ALPHA)
    assert (
        sequential.log_mixture(n, 0.0005 * n, 0.001)
        >= level
        > sequential.log_mixture(0.95 * n, 0.0005 * 0.95 * n, 0.001)
    )
    assert samples_to_pass(0.001, 0.001) == math.inf and samples_to_pass(0.002, 0.001) == math.inf


@pytest.mark.parametrize(("rate", "limited"), [(0.5, "error_rate"), (50.0, None)])
def test_a_stage_decides_at_its_soak_or_when_its_slowest_target_passes(
    rate: float, limited: str | None
) -> None:
    observed = seen(0.0005)
    stages = forecast(PLAN.gates, STAGES, rate, lambda g: observed.get(g.metric))
    first = stages[0]
    assert first.limited_by == limited
    expected = samples_to_pass(0.0005, 0.001) / (rate * 0.1)
    assert first.decision_s == pytest.approx(max(48 * 3600, expected))
    assert first.to_dict()["expected_decision_s"] == first.decision_s


def test_a_target_not_met_never_decides_and_clustered_failures_take_longer() -> None:
    never = forecast(PLAN.gates, STAGES, 5.0, lambda g: seen(0.002).get(g.metric))
    assert never[0].decision_s == math.inf and never[0].to_dict()["expected_decision_s"] is None
    one = forecast(PLAN.gates[:1], STAGES, 0.5, lambda g: Observed(1.0, 0.0005))[0].decision_s
    ten = forecast(PLAN.gates[:1], STAGES, 0.5, lambda g: Observed(1.0, 0.0005, 10.0))[0].decision_s
    assert ten == pytest.approx(10 * one)


def test_only_targets_of_the_treatments_own_lines_need_data() -> None:
    (guard,) = Gate.lines({"metric": "error_rate", "compare": "control", "rollback": "> +0.3pp"}, "g")
    assert forecast([guard], STAGES, 0.01, lambda g: Observed(1.0, 0.0005))[0].decision_s == 48 * 3600

"""The expected time to a decision per stage: a power calculation on the gates' own sequences."""

import math
import random

import pytest

from rampup.core import sequential
from rampup.core.forecast import Observed, forecast
from rampup.core.gates import CONTROL, STAGE_ALPHA, TREATMENT, Gate, Verdict, assess
from rampup.core.passage import samples_to_pass
from rampup.core.plans import Plan
from rampup.core.rollups import Aggregate
from tests.support.gate_inputs import AggregatesOnly

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
LEVEL = math.log(1 / STAGE_ALPHA)


def seen(errors: float, slow: float = 0.002) -> "dict[str, Observed]":
    return {"error_rate": Observed(1.0, errors), "api_latency_p95": Observed(1.0, slow)}


def passed_by(share: float, limit: float, start: int, until: int, seen: int | None = None) -> float:
    """Brute force: the share of paths of independent samples (each failing with probability `share`)
    that the gate's own check, sample by sample, has passed under `limit` by `until` — none before
    `start` (the soak's end: a path must be under the line then or later); paths that had `seen` failures
    at `start`, when it is given."""
    alive, passed = {0: 1.0}, 0.0  # failures so far → probability, over paths not passed yet
    if seen is not None:
        alive = {seen: 1.0}
    for n in range(1 if seen is None else start + 1, until + 1):
        grown: dict[int, float] = {}
        for s, w in alive.items():
            grown[s] = grown.get(s, 0.0) + w * (1 - share)
            grown[s + 1] = grown.get(s + 1, 0.0) + w * share
        alive = grown
        if n >= start:
            for s in [s for s in alive if s / n < limit and sequential.excludes(n, s, limit, STAGE_ALPHA)]:
                passed += alive.pop(s)
    return passed


def paths_passed_by(share: float, limit: float, until: int, paths: int = 2000) -> float:
    """The same by drawing paths (seeded): the share of them passed by `until`."""
    rng, seen, passed = random.Random(7), {}, 0
    for _ in range(paths):
        failures = 0
        for n in range(1, until + 1):
            failures += rng.random() < share
            if (n, failures) not in seen:
                seen[n, failures] = failures / n < limit and sequential.excludes(
                    n, failures, limit, STAGE_ALPHA
                )
            if seen[n, failures]:
                passed += 1
                break
    return passed / paths


@pytest.mark.parametrize(("share", "limit", "start"), [(0.02, 0.05, 0), (0.1, 0.2, 0), (0.02, 0.05, 300)])
def test_samples_to_pass_is_the_median_first_passage(share: float, limit: float, start: int) -> None:
    """Half the paths have passed by the forecast's sample count, fewer than half one sample before it
    (worked out sample by sample, and by drawing paths). The expected path's crossing (s = share · n), the
    old forecast, comes about a quarter later, when nearly two thirds have passed."""
    n = int(samples_to_pass(share, limit, STAGE_ALPHA, start))
    assert passed_by(share, limit, start, n) >= 0.5 > passed_by(share, limit, start, n - 1)
    if not start:
        for m in (n - 1, n):  # paths drawn agree
            assert paths_passed_by(share, limit, m) == pytest.approx(passed_by(share, limit, 0, m), abs=0.03)
        expected_path = next(
            m for m in range(1, 10**6) if sequential.log_mixture(m, share * m, limit) >= LEVEL
        )
        assert paths_passed_by(share, limit, expected_path) > 0.6


class Counts(AggregatesOnly):
    """GateInputs of one stage: each variant's requests and failures, failures independent."""

    def __init__(self, requests: int, failures: int, control: Aggregate = Aggregate()) -> None:
        self.treatment, self.control = Aggregate(requests, failures), control

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        return {TREATMENT: self.treatment, CONTROL: self.control}.get(variant, Aggregate())


@pytest.mark.parametrize(("share", "failures"), [(0.0, 0), (0.0005, 19)])
def test_the_forecast_walks_under_the_gates_own_boundary(share: float, failures: int) -> None:
    """At the forecast's median the target passes with the failures the walk allows there, and not one
    sample sooner: the forecast's level is the gate's. (An undecided rate once lost the stage's α on its
    way to the verdict and passed at 5%: 0.05% against 0.1% in a median 33,400 samples, not 41,000.)"""
    (gate,) = Gate.lines({"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%"}, "g")
    n = int(samples_to_pass(share, 0.001, STAGE_ALPHA))
    verdicts = [assess(gate, Counts(m, failures), 0, 60_000).verdict for m in (n - 1, n)]
    assert verdicts == [Verdict.INCONCLUSIVE, Verdict.PASS]


def test_a_rate_far_from_its_line_is_worked_out_exactly_and_one_near_it_by_the_ratio_at_max_events() -> None:
    assert samples_to_pass(0.0005, 0.001, STAGE_ALPHA) == 41_007  # 19 failures at the median: the walk itself
    near = samples_to_pass(0.0009, 0.001, STAGE_ALPHA)  # about 1,400 failures: the ratio at MAX_EVENTS
    assert near == pytest.approx(1_548_797, rel=0.03)  # the walk's own median, worked out once (0.7 s)
    assert (
        samples_to_pass(0.001, 0.001, STAGE_ALPHA) == math.inf
        and samples_to_pass(0.002, 0.001, STAGE_ALPHA) == math.inf
    )


@pytest.mark.parametrize(("rate", "limited"), [(0.5, "error_rate"), (50.0, None)])
def test_a_stage_decides_at_its_soak_or_when_its_slowest_target_passes(
    rate: float, limited: str | None
) -> None:
    observed = seen(0.0005)
    stages = forecast(PLAN.gates, STAGES, rate, lambda g: observed.get(g.metric))
    first = stages[0]
    assert first.limited_by == limited
    per_s = rate * 0.1
    expected = samples_to_pass(0.0005, 0.001, STAGE_ALPHA, 48 * 3600 * per_s) / per_s
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


@pytest.mark.parametrize("rate", [20.5, 37.3, 50.0, 82.0])
def test_a_target_decided_by_the_soaks_end_limits_nothing(rate: float) -> None:
    """Passed by the soak's end on half the paths: the stage decides at its soak, and no gate is named as
    holding it (not a rounding's width after it: soak × rate / rate need not be the soak)."""
    (stage,) = forecast(
        PLAN.gates[:1], [("all", 10_000, 604_800.0)], rate, lambda g: Observed(0.3, 0.0005, 50.8)
    )
    assert stage.decision_s == 604_800.0 and stage.limited_by is None


def test_a_stage_waiting_for_data_says_how_long_from_the_failures_it_has_seen_at_control_s_rate() -> None:
    """The stages that wait are those whose treatment drew more failures than its rate: 9 in 200 (4.5%)
    against a target of 5%, where control fails 2% of 1,800. At control's rate, half the walks from
    there have passed by the samples the wait asks for, and fewer one sample sooner; the treatment's own
    4.5% would have asked for several times as many."""
    (gate,) = Gate.lines({"metric": "error_rate", "target": "< 5%"}, "g")
    result = assess(gate, Counts(200, 9, control=Aggregate(1_800, 36)), 0, 3_600_000)
    assert result.verdict is Verdict.INCONCLUSIVE
    needs = result.to_dict()["needs"]
    until = 200 + int(needs["samples"])
    assert passed_by(0.02, 0.05, 200, until, seen=9) >= 0.5 > passed_by(0.02, 0.05, 200, until - 1, seen=9)
    assert needs["seconds"] == pytest.approx(needs["samples"] / 200 * 3600)
    own_rate = samples_to_pass(0.045, 0.05, STAGE_ALPHA, 200, 9) - 200
    assert own_rate > 4 * needs["samples"]

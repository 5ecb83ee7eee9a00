"""Satisfaction gates: a mean rating against control as a difference ('< -0.3') or a change ('< -10%'), and
the minimum sample that keeps a handful of ratings from deciding a stage."""

from dataclasses import dataclass, field

import pytest

from rampup.core.feedback import MIN_RATINGS
from rampup.core.gates import CONTROL, TREATMENT, Compare, Gate, Verdict, assess
from rampup.core.rollups import Aggregate
from rampup.errors import InvalidInput
from tests.support.gate_inputs import AggregatesOnly


@dataclass
class Ratings(AggregatesOnly):
    """In-memory gate inputs: each variant's scores."""

    scores: dict[str, list[float]] = field(default_factory=dict)

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        scores = self.scores.get(variant, []) if metric == "satisfaction" else []
        return Aggregate.of((False, s, False, 0, 1) for s in scores)


def ratings(on: list[float], off: list[float], times: int) -> Ratings:
    return Ratings({TREATMENT: on * times, CONTROL: off * times})


GATE = {"metric": "satisfaction", "compare": "control", "warn": "< -0.3"}


def test_a_drop_in_the_treatment_s_ratings_warns() -> None:
    gate = Gate.parse(GATE, "gates[0]")
    assert (gate.compare, gate.difference, gate.min_samples) == (Compare.CONTROL, True, MIN_RATINGS)
    result = assess(gate, ratings([2, 3, 3, 2], [4, 5, 4, 4], 20), 0, 1)
    assert result.verdict is Verdict.WARN and result.breached == "warn"
    assert result.measurement.value == pytest.approx(2.5 - 4.25)
    lower, upper = result.measurement.bounds()
    assert lower is not None and upper is not None and lower < -1.75 < upper < -0.3


def test_equal_ratings_pass_and_a_small_difference_stays_undecided() -> None:
    gate = Gate.parse(GATE, "gates[0]")
    assert assess(gate, ratings([4, 5, 4, 3], [4, 5, 4, 3], 150), 0, 1).verdict is Verdict.PASS
    assert assess(gate, ratings([1, 5, 4, 3], [4, 5, 1, 4], 8), 0, 1).verdict is Verdict.INCONCLUSIVE


def test_three_angry_ratings_decide_nothing() -> None:
    gate = Gate.parse(GATE, "gates[0]")
    few = assess(gate, Ratings({TREATMENT: [1, 1, 1], CONTROL: [5] * 100}), 0, 1)
    assert few.verdict is Verdict.INCONCLUSIVE and few.breached is None
    assert few.to_dict()["needs"] == {"samples": MIN_RATINGS - 3}
    lowered = Gate.parse({**GATE, "min_samples": 3}, "gates[0]")
    assert assess(lowered, Ratings({TREATMENT: [1, 1, 1], CONTROL: [5] * 100}), 0, 1).verdict is Verdict.WARN


def test_a_change_against_control_and_an_absolute_line() -> None:
    relative = Gate.parse({"metric": "satisfaction", "compare": "control", "rollback": "< -20%"}, "g")
    result = assess(relative, ratings([2, 3], [4, 4], 40), 0, 1)
    assert not relative.difference and result.measurement.value == pytest.approx(2.5 / 4 - 1)
    assert result.verdict is Verdict.FAIL
    line = Gate.parse({"metric": "satisfaction", "target": "> 3.5"}, "g")
    assert assess(line, ratings([4, 5], [], 40), 0, 1).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("gate", "where", "message"),
    [
        ({**GATE, "rollback": "< -20%"}, "g.warn", "all differences"),
        ({**GATE, "min_samples": -1}, "g.min_samples", "whole number"),
        ({**GATE, "min_samples": True}, "g.min_samples", "whole number"),
        ({"metric": "error_rate", "compare": "control", "warn": "> 0.3"}, "g.warn", "relative changes"),
    ],
)
def test_mixed_or_malformed_satisfaction_gates_are_refused(
    gate: dict[str, object], where: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        Gate.parse(gate, "g")
    assert caught.value.where == where

"""Thresholds as plans and alert rules write them: one parser and one unit table for both."""

from typing import Any

import pytest

from rampup.core.telemetry import Aggregation
from rampup.core.thresholds import check_own, parse_threshold
from rampup.errors import InvalidInput

EXAMPLES = "'> 0.5%' or '> 5'"


@pytest.mark.parametrize(
    ("raw", "op", "signed", "unit", "value", "text"),
    [
        ("> 0.5%", ">", False, "%", 0.005, "> 0.5%"),
        ("<2%", "<", False, "%", 0.02, "< 2%"),
        ("> 5", ">", False, None, 5.0, "> 5"),
        ("> 300ms", ">", False, "ms", 300.0, "> 300ms"),
        ("> 1.5 s", ">", False, "s", 1500.0, "> 1.5s"),
        ("> +25%", ">", True, "%", 0.25, "> +25%"),
        ("< -10%", "<", True, "%", -0.1, "< -10%"),
        (" > + 0.3pp ", ">", True, "pp", 0.003, "> +0.3pp"),
        ("< +50ms", "<", True, "ms", 50.0, "< +50ms"),
    ],
)
def test_a_threshold_is_a_side_a_number_and_a_unit_in_the_metrics_own_unit(
    raw: str, op: str, signed: bool, unit: str | None, value: float, text: str
) -> None:
    written = parse_threshold(raw, "gates[0].rollback", EXAMPLES)
    assert (written.op, written.signed, written.unit, written.text) == (op, signed, unit, text)
    assert written.value == pytest.approx(value)


@pytest.mark.parametrize(
    "raw", ["", "0.5%", "= 0.5%", ">= 5", "above 5", "> 5 minutes", "> 5x", None, True, 5]
)
def test_anything_else_is_refused_saying_where_and_what_fits(raw: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_threshold(raw, "alerts[2].condition", EXAMPLES)
    assert caught.value.where == "alerts[2].condition"
    assert caught.value.message == f"{raw!r} is not a threshold; write {EXAMPLES}"


@pytest.mark.parametrize(
    ("raw", "aggregation"),
    [
        ("> 0.5%", Aggregation.RATE),
        ("> 300ms", Aggregation.PERCENTILE),
        ("> 2500", Aggregation.PERCENTILE),
        ("> 5", Aggregation.COUNT),
        ("< 3.5", Aggregation.MEAN),
    ],
)
def test_a_metrics_own_value_takes_its_own_unit(raw: str, aggregation: Aggregation) -> None:
    check_own(parse_threshold(raw, "x", EXAMPLES), aggregation, raw, "x")


@pytest.mark.parametrize(
    ("raw", "aggregation", "words"),
    [
        ("> 0.5", Aggregation.RATE, "write rates as percentages"),
        ("> 5s", Aggregation.COUNT, "not a latency"),
        ("> 300ms", Aggregation.RATE, "not a latency"),
        ("> +0.3pp", Aggregation.RATE, "compare: control"),
    ],
)
def test_a_unit_that_does_not_fit_the_metric_is_refused_saying_why(
    raw: str, aggregation: Aggregation, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_own(parse_threshold(raw, "gates[1].target", EXAMPLES), aggregation, raw, "gates[1].target")
    assert caught.value.where == "gates[1].target"
    assert words in caught.value.message and repr(raw) in caught.value.message

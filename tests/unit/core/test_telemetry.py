"""Which metrics each kind of observation feeds: the table `contributions` answers."""

import pytest

from rampup.core.telemetry import Aggregation, CustomMetric, Kind, Observation, contributions

CHECKOUT_P95 = CustomMetric("checkout_time", "checkout", Aggregation.PERCENTILE, tags=(("route", "/pay"),))

CASES = [
    (
        Observation(Kind.REQUEST, 0, value=120.0),
        [("error_rate", False, None, False), ("api_latency", False, 120.0, True)],
    ),
    (Observation(Kind.REQUEST, 0, failed=True), [("error_rate", True, None, False)]),
    (Observation(Kind.SESSION, 0, failed=True), [("error_rate", True, None, False)]),
    (Observation(Kind.ERROR, 0), [("errors", False, None, False)]),
    (
        Observation(Kind.ERROR, 0, failed=True),
        [("errors", False, None, False), ("unhandled_exceptions", False, None, False)],
    ),
    (Observation(Kind.PAGE_LOAD, 0, value=2100.0), [("lcp", False, 2100.0, True)]),
    (Observation(Kind.PAGE_LOAD, 0), []),
    (Observation(Kind.EXPOSURE, 0, name="checkout", variant="on"), [("exposures", False, None, False)]),
    (Observation(Kind.DATA_LOSS, 0), [("data_loss", False, None, False)]),
    (
        Observation(Kind.COUNTER, 0, name="support_tickets", value=3.0),
        [("support_tickets", False, 3.0, False)],
    ),
    (Observation(Kind.GAUGE, 0, name="lighthouse", value=91.0), [("lighthouse", False, 91.0, False)]),
    (
        Observation(Kind.FEEDBACK, 0, name="1-5", value=4.0, message="nice"),
        [("feedback", False, None, False), ("satisfaction", False, 4.0, False)]
        + [("satisfaction_positive", True, None, False)],
    ),
    (
        Observation(Kind.FEEDBACK, 0, name="1-5", value=3.0),
        [("feedback", False, None, False), ("satisfaction", False, 3.0, False)]
        + [("satisfaction_positive", False, None, False)],
    ),
    (Observation(Kind.FEEDBACK, 0, message="a comment alone"), [("feedback", False, None, False)]),
    (Observation(Kind.CUSTOM, 0, name="search", value=1.0), [("event:search", False, 1.0, False)]),
    (
        Observation(Kind.CUSTOM, 0, name="share", value=1.0, engagement=True),
        [("event:share", False, 1.0, False), ("engagement", False, 1.0, False)],
    ),
    (
        Observation(Kind.CUSTOM, 0, name="checkout", value=840.0, tags={"route": "/pay"}),
        [("event:checkout", False, 840.0, False), ("metric:checkout_time", False, 840.0, True)],
    ),
    (
        Observation(Kind.CUSTOM, 0, name="checkout", value=840.0, tags={"route": "/cart"}),
        [("event:checkout", False, 840.0, False)],
    ),
]


@pytest.mark.parametrize(("observation", "expected"), CASES, ids=lambda v: getattr(v, "kind", ""))
def test_each_kind_feeds_its_metrics(
    observation: Observation, expected: list[tuple[str, bool, float | None, bool]]
) -> None:
    assert list(contributions(observation, [CHECKOUT_P95])) == expected


def test_every_kind_feeds_something_or_is_listed_here() -> None:
    assert {o.kind for o, _ in CASES} == set(Kind)

"""Alert rules as people write them (validation names the field at fault) and the pure state machine that
fires only after `for`, re-sends every `renotify` while firing, resolves when the condition clears, and
does nothing when nothing changed."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rampup.core.alerts import AlertAction, AlertRule, Step, step
from rampup.core.notifications import Severity
from rampup.errors import InvalidInput

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)

BASE: dict[str, Any] = {"environment": "production", "metric": "error_rate", "condition": "> 0.5%"}


def rule(**overrides: Any) -> AlertRule:
    return AlertRule.parse({**BASE, **overrides})


# ---------------------------------------------------------------- parsing


def test_a_full_rule_parses_with_its_units_and_filters() -> None:
    r = rule(
        name="Workstation errors",
        window="2m",
        severity="critical",
        channels=["pager", "slack"],
        flag="workstation",
        variant="on",
        tags={"route": "/checkout"},
        renotify="30m",
        **{"for": "5m"},
    )
    assert r.name == "Workstation errors"
    assert (r.metric, r.op, r.condition_text) == ("error_rate", ">", "> 0.5%")
    assert r.threshold == pytest.approx(0.005)
    assert r.window == timedelta(minutes=2) and r.sustain == timedelta(minutes=5)
    assert r.severity is Severity.CRITICAL
    assert r.channels == ("pager", "slack")
    assert (r.flag, r.variant, r.subject) == ("workstation", "on", "on")
    assert r.tags == (("route", "/checkout"),)
    assert r.renotify == timedelta(minutes=30)
    # The stored form parses back to the same rule.
    assert AlertRule.parse(r.to_dict()) == r


def test_defaults_are_a_5m_window_no_sustain_warning_hourly_renotify_and_the_whole_environment() -> None:
    r = rule()
    assert r.window == timedelta(minutes=5) and r.sustain == timedelta(0)
    assert r.severity is Severity.WARNING and r.renotify == timedelta(hours=1)
    assert r.channels == () and r.flag is None and r.subject == "all" and r.tags == ()
    assert r.name  # a readable default name from the condition
    assert "error_rate" in r.name
    assert rule(renotify="never").renotify is None
    assert rule(flag="workstation").subject == "on"  # a flag's treatment by default


@pytest.mark.parametrize(
    ("metric", "condition", "threshold"),
    [
        ("error_rate", "> 0.5%", 0.005),
        ("error_rate", "< 2%", 0.02),
        ("unhandled_exceptions", "> 5", 5.0),
        ("api_latency_p95", "> 1000ms", 1000.0),
        ("api_latency_p95", "> 1.5s", 1500.0),
        ("lcp_p75", "> 2500", 2500.0),
        ("satisfaction", "< 3.5", 3.5),
        ("satisfaction_positive", "< 60%", 0.6),
    ],
)
def test_thresholds_are_in_the_metrics_unit(metric: str, condition: str, threshold: float) -> None:
    assert rule(metric=metric, condition=condition).threshold == pytest.approx(threshold)


def test_plan_defaults_fill_in_and_errors_name_the_rule_inside_the_plan() -> None:
    defaults = {"environment": "production", "flag": "workstation", "channels": ["rollout-channel"]}
    r = AlertRule.parse({"metric": "error_rate", "condition": "> 1%"}, defaults, "alerts[0]")
    assert (r.environment, r.flag, r.channels) == ("production", "workstation", ("rollout-channel",))
    with pytest.raises(InvalidInput) as info:
        AlertRule.parse({"metric": "error_rate", "condition": "more than 1%"}, defaults, "alerts[2]")
    assert info.value.where == "alerts[2].condition"


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        ({"metric": "error_ratio"}, "metric", ["error_ratio"]),
        ({"metric": 42}, "metric", []),
        ({"metric": "api_latency"}, "metric", []),  # a percentile needs its _pNN
        ({"metric": "error_rate_p95"}, "metric", []),  # a rate has none
        ({"condition": "above 0.5%"}, "condition", []),
        ({"condition": "= 0.5%"}, "condition", []),
        ({"condition": ""}, "condition", []),
        ({"condition": "> 0.5"}, "condition", ["percentage"]),  # a rate without %
        ({"metric": "unhandled_exceptions", "condition": "> 5%"}, "condition", []),  # a count with %
        ({"metric": "api_latency_p95", "condition": "> 5%"}, "condition", []),
        ({"environment": ""}, "environment", []),
        ({"environment": None}, "environment", []),
        ({"severity": "urgent"}, "severity", []),
        ({"channels": "pager"}, "channels", []),
        ({"channels": ["pager", ""]}, "channels", []),
        ({"channels": [1]}, "channels", []),
        ({"tags": ["route"]}, "tags", []),
        ({"tags": {"route": 5}}, "tags", []),
        ({"variant": "on"}, "variant", ["flag"]),  # a variant without its flag
        ({"window": "5 minutes"}, "window", []),
        ({"window": "500ms"}, "window", []),  # below 1s
        ({"window": "8d"}, "window", []),  # above 7d
        ({"for": "a while"}, "for", []),
        ({"renotify": "hourly"}, "renotify", []),
        ({"threshold": 5}, "threshold", ["threshold"]),  # unknown field
    ],
)
def test_bad_rules_are_refused_naming_the_field(change: dict[str, Any], where: str, words: list[str]) -> None:
    body = {**BASE, **change}
    with pytest.raises(InvalidInput) as info:
        AlertRule.parse(body)
    assert info.value.where == where, info.value.message
    for word in words:
        assert word in info.value.message


def test_a_missing_environment_or_metric_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        AlertRule.parse({"metric": "error_rate", "condition": "> 1%"})
    assert info.value.where == "environment"
    with pytest.raises(InvalidInput) as info:
        AlertRule.parse({"environment": "production", "condition": "> 1%"})
    assert info.value.where == "metric"


def test_a_count_is_not_compared_with_a_duration() -> None:
    """'unhandled_exceptions > 5s' cannot mean anything; taking it as a count of 5000 silently hides a typo."""
    with pytest.raises(InvalidInput) as info:
        rule(metric="unhandled_exceptions", condition="> 5s")
    assert info.value.where == "condition"


def test_holds_compares_in_the_right_direction_and_no_data_never_holds() -> None:
    above, below = rule(condition="> 0.5%"), rule(condition="< 0.5%")
    assert above.holds(0.006) and not above.holds(0.005) and not above.holds(0.001)
    assert below.holds(0.004) and not below.holds(0.005) and not below.holds(0.01)
    assert not above.holds(None) and not below.holds(None)


# ---------------------------------------------------------------- the state machine


BAD, GOOD = 0.01, 0.0


def test_nothing_happens_while_the_condition_is_clear() -> None:
    r = rule()
    assert step(r, GOOD, None, None, None, T0) == Step(None, None)
    assert step(r, None, None, None, None, T0) == Step(None, None)  # no data: nothing to say


def test_without_for_it_fires_on_the_first_breach() -> None:
    assert step(rule(), BAD, None, None, None, T0) == Step(T0, AlertAction.FIRE)


def test_it_fires_only_once_the_breach_has_lasted_for() -> None:
    r = rule(**{"for": "5m"})
    first = step(r, BAD, None, None, None, T0)
    assert first == Step(T0, None)  # breaching from now on, not firing yet
    assert step(r, BAD, T0, None, None, T0 + 299 * S) == Step(T0, None)
    assert step(r, BAD, T0, None, None, T0 + 300 * S) == Step(T0, AlertAction.FIRE)


def test_a_breach_that_clears_before_for_starts_over() -> None:
    r = rule(**{"for": "5m"})
    assert step(r, BAD, None, None, None, T0) == Step(T0, None)
    assert step(r, GOOD, T0, None, None, T0 + 200 * S) == Step(None, None)  # cleared: no alert, no action
    restart = T0 + 250 * S
    assert step(r, BAD, None, None, None, restart) == Step(restart, None)
    assert step(r, BAD, restart, None, None, T0 + 300 * S) == Step(
        restart, None
    )  # not 5m since the new breach
    assert step(r, BAD, restart, None, None, restart + 300 * S).action is AlertAction.FIRE


def test_while_firing_it_renotifies_every_interval_and_is_quiet_in_between() -> None:
    r = rule(renotify="10m")
    fired = T0
    assert step(r, BAD, T0, fired, fired, T0 + 60 * S) == Step(T0, None)
    assert step(r, BAD, T0, fired, fired, T0 + 599 * S) == Step(T0, None)
    assert step(r, BAD, T0, fired, fired, T0 + 600 * S) == Step(T0, AlertAction.RENOTIFY)
    renotified = T0 + 600 * S
    assert step(r, BAD, T0, fired, renotified, T0 + 900 * S) == Step(T0, None)  # counted from the last send
    assert step(r, BAD, T0, fired, renotified, T0 + 1200 * S).action is AlertAction.RENOTIFY


def test_renotify_never_sends_once() -> None:
    r = rule(renotify="never")
    assert step(r, BAD, T0, T0, T0, T0 + timedelta(days=3)) == Step(T0, None)


def test_it_does_not_fire_twice() -> None:
    r = rule(**{"for": "1m"})
    assert step(r, BAD, T0, T0 + 60 * S, T0 + 60 * S, T0 + 61 * S).action is None


def test_it_resolves_when_the_condition_clears_or_the_data_stops() -> None:
    r = rule(**{"for": "1m"})
    assert step(r, GOOD, T0, T0 + 60 * S, T0 + 60 * S, T0 + 120 * S) == Step(None, AlertAction.RESOLVE)
    assert step(r, None, T0, T0 + 60 * S, T0 + 60 * S, T0 + 120 * S) == Step(None, AlertAction.RESOLVE)
    # Once resolved (nothing firing), a clear value is no news.
    assert step(r, GOOD, None, None, None, T0 + 121 * S) == Step(None, None)


def test_a_below_rule_fires_when_the_value_drops() -> None:
    r = rule(metric="api_latency_p95", condition="< 10ms")
    assert step(r, 50.0, None, None, None, T0) == Step(None, None)
    assert step(r, 5.0, None, None, None, T0) == Step(T0, AlertAction.FIRE)
    assert step(r, 50.0, T0, T0, T0, T0 + S) == Step(None, AlertAction.RESOLVE)

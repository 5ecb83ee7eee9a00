"""`rampup simulate`: the real controller in virtual time, at the production tick, against traffic shaped
like production's (heavy-tailed users, bursts, incidents, under-reporting)."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.errors import InvalidInput
from rampup.services.simulation import TICK, Regression, Traffic, simulate_trial, summarize

PLAN_FILE = Path(__file__).parents[2] / "examples" / "plans" / "workstation.yaml"
_, PLAN = load_plan(PLAN_FILE.read_text())
EVEN: dict[str, Any] = {"volume_sigma": 0.0}  # every user sends about as much


def test_healthy_traffic_completes_the_whole_plan() -> None:
    """Heavy-tailed users (the default) too: the sample-ratio check counts users, not requests. One trial (each
    runs the whole plan, seconds of CPU): how rarely a healthy rollout is stopped is bench/simulate_goals.py's
    measure, over hundreds of trials."""
    r = simulate_trial(PLAN, Traffic(requests_per_s=10), None, 0)
    assert r.outcome == "completed" and r.ended_at.days >= 13


def test_a_regression_is_caught_on_the_production_tick() -> None:
    caught = [
        simulate_trial(PLAN, Traffic(requests_per_s=10, **EVEN), Regression("error_rate", 0.02, stage=1), s)
        for s in range(4)
    ]
    assert {r.outcome for r in caught} <= {"rolled_back", "disabled"}
    for r in caught:
        assert r.delay is not None and r.delay < timedelta(hours=1)
        assert r.acted_at is not None and r.acted_at % TICK == timedelta(0)  # decided on a 10 s tick
        assert any("error_rate" in reason for reason in r.reasons)


def test_a_treatment_30_percent_slower_rolls_back_on_p95_against_control_within_a_day() -> None:
    """Users differ (each user's latencies scaled by their own factor) and send heavy-tailed volumes; the
    gate counts them per user and still sees every percentile 30% up at 5 req/s."""
    slower = Regression("latency_ms", Traffic().latency_ms * 1.3, stage=1)
    for seed in range(2):
        r = simulate_trial(PLAN, Traffic(requests_per_s=5), slower, seed)
        assert r.outcome == "rolled_back" and r.delay is not None and r.delay < timedelta(hours=24)
        assert "api_latency_p95" in r.reasons[-1] and "+10%" in r.reasons[-1], r.reasons


def test_the_sample_ratio_check_sees_a_treatment_that_loses_users() -> None:
    r = simulate_trial(
        PLAN, Traffic(requests_per_s=10, **EVEN), Regression("dropped_users", 0.3, after=timedelta(0)), 1
    )
    assert r.outcome == "paused"
    assert any(reason.startswith("sample-ratio mismatch") for reason in r.reasons)


def test_a_treatment_whose_telemetry_is_lost_while_its_exposures_arrive_is_paused_within_hours() -> None:
    """3% of the treatment's users at 5 req/s: the ratio of users cannot see it (their exposures count them),
    the users served who sent nothing else can, against the 2% of every variant's users who never do."""
    lost = Regression("underreport", 0.03, after=timedelta(0))
    for seed in range(3):
        r = simulate_trial(PLAN, Traffic(requests_per_s=5), lost, seed, horizon=timedelta(days=2))
        assert r.outcome == "paused" and r.ended_at < timedelta(hours=12), r.reasons
        assert r.reasons[-1].startswith("telemetry missing:"), r.reasons


def test_an_incident_in_both_variants_pauses_for_the_environment_and_the_rollout_goes_on() -> None:
    incident = Regression.parse("error_rate=0.03@1h+1h", "--incident", everyone=True)
    # One trial runs the whole plan; how often is bench/simulate_goals.py's measure.
    results = [simulate_trial(PLAN, Traffic(requests_per_s=10, **EVEN), None, 0, incidents=[incident])]
    assert all(r.regression_at is None for r in results)
    assert {r.outcome for r in results} == {"completed"}
    for r in results:
        assert any(reason.startswith("environment unhealthy") for reason in r.reasons)
        assert any(reason.startswith("environment healthy again") for reason in r.reasons)
    assert summarize(results, naive=True).acted_share == 1.0  # the naive rule blames the flag


def test_an_incident_at_100_percent_steps_back_to_compare_and_the_rollout_still_completes() -> None:
    """With everyone on the flag nothing tells an incident from the flag: the rollout steps back to 50%,
    where control shows the incident is everyone's, and comes back to 100% once it is over."""
    incident = Regression.parse("error_rate=0.03@150h+1h", "--incident", everyone=True)
    r = simulate_trial(PLAN, Traffic(requests_per_s=10, **EVEN), None, 0, incidents=[incident])
    assert (r.outcome, r.stepped_back) == ("completed", 1), r.reasons
    stepped = next(i for i, reason in enumerate(r.reasons) if "to compare with control" in reason)
    assert any(reason.startswith("environment unhealthy") for reason in r.reasons[stepped:]), r.reasons
    assert summarize([r]).stepped_back == 1 and summarize([r], naive=True).acted_share == 1.0


def test_bursts_come_in_runs_from_one_user() -> None:
    from rampup.services.simulation import _Draw

    draw = _Draw(np.random.default_rng(3), {}, 10.0)
    out = draw._failures(np.full(1000, 500), Traffic(error_rate=0.01, burst=10))
    assert out["failures"].sum() > 0 and (out["failures"] % 10 == 0).all()
    assert (out["failures_sq"] == out["failures"] * 10).all()


def test_the_naive_rule_rolls_back_healthy_low_traffic() -> None:
    # One trial runs the whole plan; how often is bench/simulate_goals.py's measure.
    results = [simulate_trial(PLAN, Traffic(requests_per_s=1, **EVEN), None, 0)]
    assert summarize(results, naive=True).acted_share == 1.0
    assert summarize(results).acted_share == 0.0


def test_same_seed_same_result() -> None:
    a = simulate_trial(PLAN, Traffic(), Regression("error_rate", 0.02, stage=2), 42)
    b = simulate_trial(PLAN, Traffic(), Regression("error_rate", 0.02, stage=2), 42)
    assert a == b


@pytest.mark.parametrize(
    ("regression", "acted_at", "reason"),
    [
        (
            Regression("latency_ms", 156, after=timedelta(0)),
            timedelta(hours=1, minutes=21, seconds=50),
            "api_latency_p95 = 0.2969 [0.08329, 0.522] breached rollback > +10% for 10m (n = 24693)",
        ),
        (
            Regression("error_rate", 0.0075, after=timedelta(hours=30)),
            timedelta(hours=30, minutes=10),
            "error_rate = 3.677 [0.9249, 9.544] breached rollback > +50% for 5m (n = 21143)",
        ),
    ],
)
def test_a_seeded_trial_decides_exactly_as_before(
    regression: Regression, acted_at: timedelta, reason: str
) -> None:
    """Pinned at 50 req/s, seed 7: the tick, the figures and the reason of the decision. The simulator's
    speed-ups (drawing users, per-user sums) must give the very same draws; a change that alters the random
    stream on purpose updates these figures and says so."""
    r = simulate_trial(PLAN, Traffic(requests_per_s=50), regression, 7)
    assert (r.outcome, r.acted_at, r.reasons) == ("rolled_back", acted_at, (reason,))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour=3@1h", "cannot change 'colour'"),
        ("error_rate=x@1h", "not a number"),
        ("error_rate=0.1@soon", "soon"),
    ],
)
def test_a_bad_change_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        Regression.parse(text, "--incident", everyone=True)
    assert caught.value.where == "--incident"


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rampup", "simulate", str(PLAN_FILE), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_prints_both_columns_as_json() -> None:
    out = _simulate(
        "-n",
        "3",
        "--rate",
        "10",
        "--volume-sigma",
        "0",
        "--regression",
        "error_rate=0.02@stage1",
        "--incident",
        "latency_ms=400@30h+1h",
        "--burst",
        "3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["tick_s"] == 10 and report["burst"] == 3
    assert report["incidents"] == ["latency_ms=400@30h+1h"]
    assert report["rampup"]["trials"] == 3 and report["rampup"]["acted_share"] == 1.0
    assert report["naive"]["acted_share"] == 1.0
    assert report["rampup"]["delay_p50_s"] > 0


def test_the_command_refuses_a_bad_incident() -> None:
    out = _simulate("-n", "1", "--incident", "colour=3@1h")
    assert out.returncode != 0
    assert "--incident" in out.stderr and "colour" in out.stderr


def test_low_traffic_waits_for_data_says_so_on_the_soaks_last_tick_and_the_forecast_holds() -> None:
    from rampup.services.simulation import stage_summary

    traffic = Traffic(requests_per_s=0.5, **EVEN)
    results = [simulate_trial(PLAN, traffic, None, 0)]  # one trial runs the whole plan, slowly at this rate
    assert all(r.outcome not in ("rolled_back", "disabled") for r in results)
    first = stage_summary(PLAN, traffic, results)[0]
    assert first["limited_by"] == "error_rate" and first["expected_decision_s"] > first["soak_s"]
    assert first["waited_for_data"] == first["said_so_within_a_tick"] == 1
    assert all(any("error_rate needs about" in reason for reason in r.reasons) for r in results)


def test_the_printed_forecast_counts_users_for_a_percentile_target_as_the_server_does() -> None:
    """`rampup simulate` prints the forecast by the server's rule, read from its own traffic: a p95 target
    takes longer when each user's latencies are alike (slow phones: the evidence is the users') than when
    users do not differ."""
    from rampup.core.plans import Plan
    from rampup.services.simulation import expected_decisions

    plan = Plan.parse(
        {
            "name": "p95",
            "flag": "f",
            "environment": "production",
            "stages": [{"name": "Tenth", "percentage": 10, "min_duration": "1m"}],
            "gates": [{"metric": "api_latency_p95", "target": "< 300ms"}],  # 3.4% of requests over it
        }
    )
    alike, apart = (
        expected_decisions(plan, Traffic(requests_per_s=5, user_sigma=sigma))[0] for sigma in (0.5, 0.0)
    )
    assert alike.limited_by == apart.limited_by == "api_latency_p95"
    assert alike.decision_s > 3 * apart.decision_s, (alike, apart)


def test_the_stage_summary_counts_stages_passed_with_no_failure_seen() -> None:
    from rampup.core.plans import Plan
    from rampup.services.simulation import stage_summary

    plan = Plan.parse(
        {
            "name": "one hour",
            "flag": "f",
            "environment": "e",
            "stages": [{"name": "Half", "percentage": 50, "min_duration": "1h"}],
            "gates": [{"metric": "error_rate", "target": "< 1%"}],
        }
    )
    for error_rate, unseen in ((0.0, 1), (0.002, 0)):  # about 9,000 treatment requests in the hour
        traffic = Traffic(requests_per_s=5, error_rate=error_rate)
        first = stage_summary(plan, traffic, [simulate_trial(plan, traffic, None, 0)])[0]
        assert (first["advanced"], first["advanced_unseen"]) == (1, unseen)

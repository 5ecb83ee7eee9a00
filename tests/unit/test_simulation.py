"""`rampup simulate`: the real controller in virtual time tells healthy, broken and borderline apart."""

import json
import subprocess
import sys
from pathlib import Path

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.services.simulation import Regression, Traffic, simulate_trial, summarize

PLAN_FILE = Path(__file__).parents[2] / "examples" / "plans" / "workstation.yaml"
_, PLAN = load_plan(PLAN_FILE.read_text())


def test_healthy_traffic_completes_the_guides_plan() -> None:
    results = [simulate_trial(PLAN, Traffic(requests_per_s=10), None, seed) for seed in range(3)]
    assert {r.outcome for r in results} == {"completed"}
    assert all(r.ended_at.days >= 13 for r in results)


def test_a_two_percent_regression_at_stage_one_is_caught_and_a_borderline_one_holds() -> None:
    caught = [
        simulate_trial(PLAN, Traffic(requests_per_s=10), Regression("error_rate", 0.02, stage=1), s)
        for s in range(5)
    ]
    assert {r.outcome for r in caught} <= {"rolled_back", "disabled"}
    assert all(r.delay is not None and r.delay.total_seconds() < 6 * 3600 for r in caught)
    borderline = simulate_trial(PLAN, Traffic(requests_per_s=10), Regression("error_rate", 0.003, stage=1), 1)
    assert borderline.outcome == "held"


def test_the_naive_rule_rolls_back_healthy_low_traffic() -> None:
    results = [simulate_trial(PLAN, Traffic(requests_per_s=1), None, seed) for seed in range(3)]
    naive = summarize(results, naive=True)
    assert naive.acted_share == 1.0
    assert summarize(results).acted_share == 0.0


def test_same_seed_same_result() -> None:
    a = simulate_trial(PLAN, Traffic(), Regression("error_rate", 0.02, stage=2), 42)
    b = simulate_trial(PLAN, Traffic(), Regression("error_rate", 0.02, stage=2), 42)
    assert a == b


def test_the_command_prints_both_columns() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rampup",
            "simulate",
            str(PLAN_FILE),
            "-n",
            "4",
            "--rate",
            "10",
            "--regression",
            "error_rate=0.02@stage1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(out.stdout)
    assert report["rampup"]["trials"] == 4 and report["rampup"]["acted_share"] == 1.0
    assert report["naive"]["acted_share"] == 1.0
    assert report["rampup"]["delay_p50_s"] > 0

"""Decisions end to end on a real `rampup serve` with a manual clock: a stage whose soak ends without enough
evidence says so once, with what is missing, and goes on when the data come; a line against control rolls
back a treatment that is several times worse than control while still under the plan's absolute line; a
count gate compares with control per request; p95 latency 30% over control's rolls back, and alike does not."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.receivers import Receiver
from tests.support.rollouts import at, create_rollout, drive, rollout, summary
from tests.support.servers import FAST, Server
from tests.support.traffic import Traffic, flag_state
from tests.support.waiting import PATIENCE_S, wait_until

ENV = "production"
SECRET = "whsec-loopback-test-secret-0123"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as r:
        yield r


def prepare(c: httpx.Client, flag: str, hook: str) -> None:
    r = c.post("/api/v1/flags", json={"key": flag, "description": f"decisions {flag}", "type": "boolean"})
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/channels", json={"name": "hook", "type": "webhook", "url": hook, "secret": SECRET})
    assert r.status_code == 201, r.text


def kinds(status: dict[str, Any]) -> list[str]:
    return [t["kind"] for t in status["timeline"]]


def test_a_stage_short_of_data_waits_says_so_once_and_goes_on_when_the_data_come(
    receiver: Receiver, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    flag = "decide-wait"
    with server.client() as c:
        prepare(c, flag, receiver.url("/hook"))
        quiet = Traffic(c, flag, users=200)
        for _ in range(3):
            quiet.send()
        plan = {
            "name": f"{flag}-plan",
            "flag": flag,
            "environment": ENV,
            "stages": [
                {"name": "Early Access", "percentage": 10, "min_duration": "1h"},
                {"name": "Full", "percentage": 100, "min_duration": "1s"},
            ],
            "gates": [{"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%"}],
            "notify": ["hook"],
        }
        rid = create_rollout(c, plan)

        # At apply: each stage's expected time to a decision at the traffic seen — far beyond the soak here.
        forecast = rollout(c, rid)["forecast"]
        assert [f["stage"] for f in forecast] == [1, 2]
        assert forecast[0]["limited_by"] == "error_rate" and forecast[0]["expected_decision_s"] > 3600

        quiet.send()
        server.advance("1h")  # the soak is over, with a few dozen treatment requests: far too few
        status = rollout(c, rid)
        assert status["state"] == "waiting_for_data" and status["stage"]["number"] == 1, summary(status)
        waiting = status["timeline"][-1]
        assert waiting["kind"] == "waiting_for_data" and waiting["actor"] == "controller"
        assert (
            "without enough evidence" in waiting["reason"] and "error_rate needs about" in waiting["reason"]
        )
        errors = next(g for g in status["gates"] if g["metric"] == "error_rate")
        assert errors["verdict"] == "inconclusive" and errors["needs"]["samples"] > 1000

        # Told once: more ticks without data change nothing and send nothing more.
        for _ in range(3):
            quiet.send()
            server.advance("1m")
        status = rollout(c, rid)
        assert kinds(status).count("waiting_for_data") == 1, summary(status)
        wait_until(
            lambda: any(b["type"] == "rollout.waiting_for_data" for b in receiver.bodies("/hook")),
            "the waiting_for_data notification",
        )
        told = [b for b in receiver.bodies("/hook") if b["type"] == "rollout.waiting_for_data"]
        assert len(told) == 1 and "needs about" in told[0]["details"]["reason"]

        # The data come: the target passes and the stage advances by itself.
        busy = Traffic(c, flag, users=10_000)
        status = drive(server, c, rid, lambda s: s["stage"]["number"] == 2, traffic=busy, what="stage 2")
        assert kinds(status)[-1] == "advanced" or status["state"] == "completed", summary(status)


def start_two_stages(c: httpx.Client, flag: str, percentage: int, gate: str) -> int:
    """A new flag and a rollout of it: an hour at `percentage`, then an hour at 100%, with one gate (YAML)."""
    r = c.post("/api/v1/flags", json={"key": flag, "description": f"decisions {flag}", "type": "boolean"})
    assert r.status_code == 201, r.text
    plan = f"""\
name: {flag}-plan
flag: {flag}
environment: production
stages:
  - {{name: First, percentage: {percentage}, min_duration: 1h}}
  - {{name: Full, percentage: 100, min_duration: 1h}}
gates:
  - {gate}
"""
    return create_rollout(c, plan)


def test_a_treatment_several_times_worse_than_control_rolls_back_under_the_absolute_line(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    flag = "decide-versus"
    with server.client() as c:
        gate = (
            '{metric: error_rate, compare: control, target: "< 5%", rollback: ["> 4%", "> +100%"], for: 1s}'
        )
        rid = start_two_stages(c, flag, 10, gate)
        traffic = Traffic(c, flag, users=2000)
        status = drive(
            server, c, rid, at("rolled_back"), traffic=traffic, fail_every=50, what="the step back"
        )
        assert status["stage"]["number"] == 0, summary(status)
        back = status["timeline"][-1]
        assert back["kind"] == "rolled_back" and back["actor"] == "controller"
        assert "> +100%" in back["reason"], back["reason"]
        lines = [g for g in back["evidence"] if g["metric"] == "error_rate"]
        assert {g["compare"] for g in lines} == {"absolute", "control"}
        own = next(g for g in lines if g["compare"] == "absolute")
        assert own["verdict"] != "fail" and 0.01 < own["value"] < 0.04  # about 2%: under the 4% line
        versus = next(g for g in lines if g["compare"] == "control")
        assert versus["verdict"] == "fail" and versus["lower"] > 1.0  # surely more than double control


def test_a_count_gate_is_compared_with_control_per_request_not_taken_literally(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """ "> 5 unhandled in 5 minutes" at 50%: both variants throwing alike is over the line every window and
    rolls nothing back; the treatment alone throwing does."""
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    flag = "decide-count"
    with server.client() as c:
        rid = start_two_stages(c, flag, 50, '{metric: unhandled_exceptions, window: 5m, rollback: "> 5"}')
        traffic = Traffic(c, flag, users=2000)
        traffic.unhandled = (10, 10)
        for _ in range(10):
            traffic.send()
            server.advance("1s")
        status = rollout(c, rid)
        counted = next(g for g in status["gates"] if g["metric"] == "unhandled_exceptions")
        assert status["state"] == "running" and counted["value"] > 5, summary(status)
        assert counted["verdict"] != "fail"
        traffic.unhandled = (20, 0)
        status = drive(server, c, rid, at("rolled_back"), traffic=traffic, what="the step back")
        back = status["timeline"][-1]
        assert back["actor"] == "controller" and "unhandled_exceptions" in back["reason"], back


def test_a_treatment_30_percent_slower_than_control_rolls_back_and_an_even_one_does_not(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """p95 latency against control at 50%, per user: each user's duration is their own (a user is slow in
    everything), so the evidence is the users', however many requests each sends."""
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    gate = '{metric: api_latency_p95, compare: control, rollback: ["> 2000ms", "> +10%"], for: 1s}'
    with server.client() as c:
        slow_id, even_id = (start_two_stages(c, flag, 50, gate) for flag in ("decide-slow", "decide-even"))
        slow, even = Traffic(c, "decide-slow", users=2000), Traffic(c, "decide-even", users=2000)
        slow.slower = 1.3
        for _ in range(5):
            even.send()
        status = drive(server, c, slow_id, at("rolled_back"), traffic=slow, what="the step back")
        back = status["timeline"][-1]
        assert back["actor"] == "controller" and "> +10%" in back["reason"], back
        versus = next(g for g in back["evidence"] if g["compare"] == "control")
        assert versus["verdict"] == "fail" and 0.2 < versus["value"] < 0.4, versus  # about +30%
        status = drive(server, c, even_id, lambda s: even.batches >= 10, traffic=even, what="ten batches")
        assert status["state"] == "running", summary(status)
        lines = [g for g in status["gates"] if g["metric"] == "api_latency_p95"]
        assert {g["compare"] for g in lines} == {"absolute", "control"}
        assert all(g["verdict"] != "fail" for g in lines), summary(status)


def test_a_breach_at_100_percent_steps_back_to_compare_an_incident_pauses_a_regression_rolls_back(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """At 100% nobody is without the flag, so a breach of the error rate's own line cannot say whose it is.
    The rollout steps back to 50% to compare: failures everyone has (an incident) pause it until they pass and
    it returns to 100%; failures only the flag's users have roll it back."""
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    gate = '{metric: error_rate, compare: control, rollback: ["> 4%", "> +100%"], for: 1s}'
    with server.client() as c:
        ids = {flag: start_two_stages(c, flag, 50, gate) for flag in ("decide-incident", "decide-late")}
        traffic = {flag: Traffic(c, flag, users=2000) for flag in ids}
        for flag, rid in ids.items():
            drive(server, c, rid, at("running", 2), traffic=traffic[flag], step="10m", what="100%")
        traffic["decide-incident"].incident = True

        for flag, rid in ids.items():
            status = drive(
                server, c, rid, at("running", 1), traffic=traffic[flag], fail_every=20, what="the step back"
            )
            stepped = status["timeline"][-1]
            assert stepped["kind"] == "stepped_back" and stepped["actor"] == "controller", summary(status)
            assert "to compare with control" in stepped["reason"], stepped["reason"]
            assert flag_state(c, flag)["rollout"] == 50  # half the users are control again

        incident, late = ids["decide-incident"], ids["decide-late"]
        status = drive(
            server, c, late, at("rolled_back"), traffic=traffic["decide-late"], fail_every=20, what="rollback"
        )
        assert "> +100%" in status["timeline"][-1]["reason"], summary(status)  # the flag's, against control

        everyone = traffic["decide-incident"]
        status = drive(server, c, incident, at("paused"), traffic=everyone, fail_every=20, what="the pause")
        assert status["timeline"][-1]["kind"] == "environment_unhealthy", summary(status)
        everyone.incident = False
        status = drive(server, c, incident, at("running", 2), traffic=everyone, step="10m", what="100% again")
        assert [k for k in kinds(status) if k != "advanced"][-3:] == [
            "stepped_back",
            "environment_unhealthy",
            "environment_healthy",
        ], summary(status)
        assert flag_state(c, "decide-incident")["rollout"] == 100
        status = drive(server, c, incident, at("completed"), traffic=everyone, step="10m", what="the end")
        assert "rolled_back" not in kinds(status), summary(status)


BACKTESTED = """\
name: replayed
flag: decide-replay
environment: production
stages:
  - {name: Early Access, percentage: 10, min_duration: 2h}
  - {name: Full, percentage: 100, min_duration: 1h}
gates:
  - {metric: error_rate, compare: control, target: "< 0.1%", rollback: ["> 0.5%", "> +100%"], disable: "> 3%"}
"""


def test_a_backtest_replays_the_plan_over_recorded_telemetry_and_says_what_it_would_have_decided(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    flag = "decide-replay"
    with server.client() as c:
        r = c.post("/api/v1/flags", json={"key": flag, "description": "replayed", "type": "boolean"})
        assert r.status_code == 201, r.text
        # What happened: the flag at 10% for an hour of healthy traffic (a batch every 5 minutes: the replay
        # judges every minute, with or without new data), then 5% failures in the treatment every minute. 2,000
        # users put about 200 requests a batch in the treatment: 10 failing batches prove "> 0.5%" many times over.
        holder = {"name": "hold", "flag": flag, "environment": ENV, "gates": []}
        create_rollout(c, {**holder, "stages": [{"name": "hold", "percentage": 10, "min_duration": "10h"}]})
        traffic = Traffic(c, flag, users=2000)
        began = server.now()
        for _ in range(12):
            traffic.send()
            server.advance("5m")
        broke = server.now()
        for _ in range(10):
            traffic.send(fail_every=20)
            server.advance("1m")
        ended = server.now()

        body = {
            "plan": {"yaml": BACKTESTED},
            "from": began.isoformat(),
            "to": ended.isoformat(),
            "tick": "1m",
        }
        replay = c.post("/api/v1/rollouts/backtest", json=body)
        assert replay.status_code == 200, replay.text
        report = replay.json()
        assert (report["flag"], report["environment"], report["tick_s"]) == (flag, ENV, 60)
        kinds_seen = [d["kind"] for d in report["decisions"]]
        assert kinds_seen == ["rolled_back"], report["decisions"]  # a step back before the kill line
        back = report["decisions"][-1]
        assert broke <= datetime.fromisoformat(back["at"]) <= ended  # on the first failing batch, not before
        assert "error_rate" in back["reason"] and (back["from_stage"], back["to_stage"]) == (1, 0)
        assert report["state"] == "rolled_back"
        # Only a replay: the flag and the live rollout are untouched.
        assert c.get(f"/api/v1/flags/{flag}/environments/{ENV}").json()["rollout"] == 10

        # The attacker's tries: no token, a span too long, a bad flag key.
        assert (
            httpx.post(f"{server.url}/api/v1/rollouts/backtest", json=body, timeout=PATIENCE_S).status_code
            == 401
        )
        long = c.post("/api/v1/rollouts/backtest", json={**body, "tick": "1s", "to": "2030-01-01T00:00:00Z"})
        assert long.status_code == 422 and long.json()["error"]["where"] == "tick", long.text
        bad = c.post("/api/v1/rollouts/backtest", json={**body, "flag": "../etc"})
        assert bad.status_code == 422 and bad.json()["error"]["where"] == "flag", bad.text

    plan = tmp_path / "replayed.yaml"
    plan.write_text(BACKTESTED)
    env = {**os.environ, "RAMPUP_SERVER": server.url, "RAMPUP_TOKEN": server.admin_token, "COLUMNS": "200"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rampup",
            "backtest",
            str(plan),
            "--env",
            ENV,
            "--flag",
            flag,
            "--from",
            began.isoformat(),
            "--to",
            ended.isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "rolled_back" in out.stdout and "error_rate" in out.stdout


def test_a_treatment_whose_telemetry_goes_missing_pauses_and_one_whose_silent_users_are_its_share_does_not(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """Both flags' users send their exposures; in one, 40 of the treatment's ~400 users send nothing else (the
    treatment's telemetry lost on the way), in the other 2% of each variant's users (pages opened and left).
    The checks count the whole days in a stage, so the stage begins at 23:00 and the traffic comes after midnight."""
    server = server_factory(
        make_database_url("sqlite"), extra_env=FAST, manual_clock=datetime(2026, 12, 1, 23, tzinfo=UTC)
    )
    gate = '{metric: error_rate, rollback: "> 5%"}'
    with server.client() as c:
        lost, kept = "telemetry-lost", "telemetry-kept"
        rollouts = {flag: start_two_stages(c, flag, 20, gate) for flag in (lost, kept)}
        traffic = {flag: Traffic(c, flag, users=2000, exposures=True) for flag in (lost, kept)}
        traffic[lost].silent = (40, 0)
        traffic[kept].silent = (8, 32)
        server.advance("1h")
        for _ in range(3):
            for t in traffic.values():
                t.send()
            server.advance("10m")

        paused = rollout(c, rollouts[lost])
        assert paused["state"] == "paused" and paused["stage"]["number"] == 1, summary(paused)
        why = paused["timeline"][-1]
        assert why["actor"] == "controller" and why["reason"].startswith(
            "telemetry missing: 40 treatment vs 0 control users sent nothing but the flag's exposure"
        ), why["reason"]
        check = next(e for e in why["evidence"] if e["metric"] == "missing_telemetry")
        assert 0.15 < check["expected_share"] < 0.25 and check["p_value"] < check["alpha"]

        # its hour's soak over, the other advanced as its gates allowed, never paused
        running = rollout(c, rollouts[kept])
        assert running["state"] == "running" and running["stage"]["number"] == 2, summary(running)
        assert "paused" not in kinds(running)

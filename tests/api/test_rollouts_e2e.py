"""Rollouts end to end: a real `rampup serve` on a manual clock, plans with 1-second stages, and live request
events posted over HTTP whose treatment share follows the flag (tests/support/traffic.py). Each tick moves
the clock one second and runs the controller once, so every stage sees exactly the batches sent in it, and
a slow machine changes how long a test takes, never what it sees.

What the gates need (anytime-valid confidence sequences, see core/sequential.py): an error-rate target of
"< 0.1%" passes only after roughly 6,400 clean treatment requests since the stage began; a rollback
"> 0.5%" with a true rate of 0.8% needs roughly 7,800 treatment requests; a disable "> 1%" at 5% needs
about 110. The batches below are sized for that.
"""

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rampup.core.bucketing import in_rollout
from tests.support.cli import rampup_at
from tests.support.receivers import Receiver
from tests.support.rollouts import (
    at,
    audit,
    command,
    create_rollout,
    drive,
    reached,
    rollout,
    stage_changes,
    summary,
)
from tests.support.servers import FAST, Server
from tests.support.traffic import Traffic, flag_state
from tests.support.waiting import wait_until

ENV = "production"


# ---------------------------------------------------------------- helpers


def start(server_factory: Callable[..., Server], database_url: str) -> Server:
    """A server on a manual clock: the test decides when time passes and when the controller ticks."""
    return server_factory(database_url, extra_env=FAST, manual_clock=True)


def create_flag(c: httpx.Client, key: str) -> None:
    r = c.post("/api/v1/flags", json={"key": key, "description": f"e2e {key}", "type": "boolean"})
    assert r.status_code == 201, r.text


def ticks(server: Server, n: int, traffic: Traffic | None = None, step: str = "1s") -> None:
    """`n` controller ticks, `step` apart, each after one batch of traffic (if any)."""
    for _ in range(n):
        if traffic is not None:
            traffic.send()
        server.advance(step)


def gate(evidence: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    found = [g for g in evidence if g["metric"] == metric]
    assert found, f"no {metric} in the evidence {evidence}"
    return found[0]


# ---------------------------------------------------------------- 1. sign-off, healthy climb, approval


CLIMB_PLAN = """\
name: e2e-climb
flag: {flag}
environment: production
stages:
  - name: Early Access
    percentage: 10
    min_duration: 1s
    prerequisites: [Support team briefed]
  - {{name: Expanded, percentage: 25, min_duration: 1s}}
  - {{name: General, percentage: 50, min_duration: 1s}}
  - {{name: Full Rollout, percentage: 100, min_duration: 1s, approval: required}}
gates:
  - {{metric: error_rate, target: "< 0.1%", rollback: "> 0.5%", disable: "> 1%", for: 1s}}
  - {{metric: api_latency_p95, target: "< 500ms", rollback: "> 1000ms"}}
  - {{metric: data_loss, rollback_to: 0}}
notify: []
"""


def test_waits_for_signoff_then_climbs_through_every_stage_on_healthy_traffic(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-climb"
    with server.client() as c:
        create_flag(c, flag)
        traffic = Traffic(c, flag, users=10_000)
        r = c.post("/api/v1/rollouts", json={"plan": {"yaml": CLIMB_PLAN.format(flag=flag)}})
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "awaiting_approval"
        rid = r.json()["id"]

        # Stage 0 holds until the prerequisite is signed off, whatever the traffic and however many ticks.
        ticks(server, 3, traffic)  # beyond the first stage's soak time
        status = rollout(c, rid)
        assert status["state"] == "awaiting_approval", summary(status)
        assert status["stage"]["number"] == 0 and status["stage"]["percentage"] == 0
        assert status["waiting_for"] == ["sign-off: Support team briefed"]
        assert flag_state(c, flag)["rollout"] == 0
        refused = c.post(f"/api/v1/rollouts/{rid}/advance", json={"reason": "impatient"})
        assert refused.status_code == 409, refused.text
        assert "Support team briefed" in refused.json()["error"]["message"]

        signed = c.post(
            f"/api/v1/rollouts/{rid}/signoff", json={"prerequisite": "Support team briefed", "by": "dana"}
        )
        assert signed.status_code == 200, signed.text
        status = signed.json()
        assert status["state"] == "running" and status["stage"]["number"] == 1, summary(status)
        assert status["waiting_for"] == []
        assert [(s["prerequisite"], s["by"]) for s in status["signoffs"]] == [
            ("Support team briefed", "dana")
        ]
        state = flag_state(c, flag)
        assert (state["enabled"], state["rollout"]) == (True, 10)

        # Healthy traffic: each stage advances once its soak is over and every gate passes.
        for stage, percentage in ((2, 25), (3, 50)):
            status = drive(server, c, rid, reached(stage), traffic=traffic, what=f"stage {stage}")
            assert status["stage"]["number"] == stage and status["stage"]["percentage"] == percentage, (
                summary(status)
            )
            state = flag_state(c, flag)
            assert (state["enabled"], state["rollout"]) == (True, percentage)

        # The last stage asks for an approval: stage 3 soaks and passes, then waits for a person.
        status = drive(server, c, rid, at("awaiting_approval"), traffic=traffic, what="the approval wait")
        assert status["stage"]["number"] == 3 and status["waiting_for"] == ["approval"], summary(status)
        ticks(server, 2, traffic)
        status = rollout(c, rid)
        assert status["state"] == "awaiting_approval" and status["stage"]["number"] == 3, summary(status)
        assert flag_state(c, flag)["rollout"] == 50

        approved = command(c, rid, "approve", "team ready for full launch", by="lee")
        assert approved["state"] == "running" and approved["stage"]["number"] == 4, summary(approved)
        assert flag_state(c, flag)["rollout"] == 100

        status = drive(server, c, rid, at("completed"), traffic=traffic, what="completion")
        assert status["stage"]["number"] == 4 and status["stage"]["percentage"] == 100
        state = flag_state(c, flag)
        assert (state["enabled"], state["rollout"]) == (True, 100)

        # The timeline: every transition, in order, with its actor (the token's name; the person it acted for
        # beside it) and reason.
        timeline = status["timeline"]
        for t in timeline:
            assert t["at"] and t["actor"] and t["reason"], t
        assert stage_changes(status) == [(0, 1), (1, 2), (2, 3), (3, 4)]
        moves = [
            (t["from"], t["to"], t["from_stage"], t["to_stage"], t["actor"], t["on_behalf_of"])
            for t in timeline
        ]
        assert moves[0][:4] == ("pending", "awaiting_approval", 0, 0)
        assert (
            "awaiting_approval",
            "awaiting_approval",
            0,
            0,
            "admin",
            "dana",
        ) in moves  # the sign-off itself
        assert ("awaiting_approval", "running", 0, 1, "admin", "dana") in moves
        # Whether one second of traffic proves "< 0.1%" before the soak ends is the statistics' business (unit
        # tests); here each advance is the controller's, from running or from the visible wait for data.
        for from_stage, to_stage in ((1, 2), (2, 3)):
            advance = [m for m in moves if m[2:4] == (from_stage, to_stage)]
            assert len(advance) == 1 and advance[0][4:] == ("controller", None), advance
            assert advance[0][:2] in {("running", "running"), ("waiting_for_data", "running")}, advance
        approval_wait = [m for m in moves if m[1:5] == ("awaiting_approval", 3, 3, "controller")]
        assert [m[0] for m in approval_wait] in (["running"], ["waiting_for_data"]), approval_wait
        assert ("awaiting_approval", "running", 3, 4, "admin", "lee") in moves
        assert moves[-1] == ("running", "completed", 4, 4, "controller", None)
        assert "Support team briefed" in timeline[0]["reason"]
        assert any(
            "team ready for full launch" in t["reason"] for t in timeline if t["on_behalf_of"] == "lee"
        )

        # The controller's decisions carry their evidence: value, bounds, samples and threshold of every gate.
        decided = [t for t in timeline if t["actor"] == "controller" and t["to"] != "waiting_for_data"]
        assert len(decided) == 4
        for t in decided:
            assert "pass" in t["reason"], t["reason"]
            errors = gate(t["evidence"], "error_rate")
            assert errors["verdict"] == "pass"
            assert errors["value"] == 0
            assert errors["lower"] == 0 and 0 < errors["upper"] < 0.001
            assert errors["samples"] >= 5000
            assert "< 0.1%" in errors["threshold"] and "> 0.5%" in errors["threshold"]
            latency = gate(t["evidence"], "api_latency_p95")
            assert latency["verdict"] == "pass" and 0 < latency["value"] < 500 and latency["samples"] > 0
            assert "< 500ms" in latency["threshold"]
            assert gate(t["evidence"], "data_loss")["verdict"] == "pass"

        # The audit log has each flag change, the controller's under its own name.
        entries = [e for e in audit(c, flag) if e["action"] in ("flag.update", "flag.kill")]
        changes = [(e["actor"], e["on_behalf_of"], e["after"]["rollout"]) for e in entries]
        assert changes[-4:] == [
            ("admin", "dana", 10),
            ("controller", None, 25),
            ("controller", None, 50),
            ("admin", "lee", 100),
        ], changes
        for e in entries[-4:]:
            assert e["after"]["enabled"] is True and e["reason"], e

        listed = c.get("/api/v1/rollouts", params={"flag": flag}).json()
        assert [(r["id"], r["state"]) for r in listed] == [(rid, "completed")]
        assert c.get("/api/v1/rollouts", params={"flag": flag, "live": "true"}).json() == []


# ---------------------------------------------------------------- 2. errors rise: step back, then kill switch


EXAMPLE_GATES = [
    {"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%", "disable": "> 1%", "for": "1s"},
    {"metric": "data_loss", "rollback_to": 0},
]


def four_stages(
    flag: str, soak: str = "1s", gates: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": soak},
            {"name": "Expanded", "percentage": 25, "min_duration": soak},
            {"name": "General", "percentage": 50, "min_duration": soak},
            {"name": "Full Rollout", "percentage": 100, "min_duration": soak},
        ],
        "gates": EXAMPLE_GATES if gates is None else gates,
        **extra,
    }


def test_errors_in_the_treatment_step_back_one_stage_then_pull_the_kill_switch(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-errors"
    with server.client() as c:
        create_flag(c, flag)
        traffic = Traffic(c, flag, users=10_000)
        rid = create_rollout(c, four_stages(flag))
        drive(server, c, rid, reached(2), traffic=traffic, what="stage 2")
        status = rollout(c, rid)
        assert status["state"] == "running" and status["stage"]["number"] == 2, summary(status)
        assert flag_state(c, flag)["rollout"] == 25

        # 0.8% of the treatment's requests fail: above rollback (0.5%), below disable (1%). The control is clean.
        before = traffic.failures
        status = drive(
            server,
            c,
            rid,
            lambda s: s["state"] != "running",
            traffic=traffic,
            fail_every=125,
            what="the step back",
        )
        assert traffic.failures > before
        assert status["state"] == "rolled_back", summary(status)
        assert status["stage"]["number"] == 1 and status["stage"]["percentage"] == 10
        state = flag_state(c, flag)
        assert (state["enabled"], state["rollout"]) == (True, 10)
        back = status["timeline"][-1]
        assert (back["from"], back["to"], back["from_stage"], back["to_stage"], back["actor"]) == (
            "running",
            "rolled_back",
            2,
            1,
            "controller",
        )
        assert "error_rate" in back["reason"] and "rollback" in back["reason"] and "> 0.5%" in back["reason"]
        errors = gate(back["evidence"], "error_rate")
        assert errors["verdict"] == "fail"
        # 0.8% of the treatment since stage 2 began: every batch of stage 2 was sent after the advance.
        assert errors["lower"] > 0.005 and errors["value"] == pytest.approx(0.008, abs=0.0005)
        assert errors["samples"] >= 1000

        # Rolled back: it holds at stage 1 (no automatic advance), but safety still acts.
        ticks(server, 2, step="1h")
        status = rollout(c, rid)
        assert status["state"] == "rolled_back" and status["stage"]["number"] == 1, summary(status)

        # Errors rise to 5% of the treatment: the kill switch. One batch, so every threshold sees the same data.
        traffic.send(fail_every=20)
        status = drive(
            server, c, rid, lambda s: s["state"] != "rolled_back", max_ticks=3, what="the kill switch"
        )
        assert status["state"] == "disabled", summary(status)
        state = flag_state(c, flag)
        assert state["enabled"] is False
        kill = status["timeline"][-1]
        assert (kill["from"], kill["to"], kill["from_stage"], kill["to_stage"], kill["actor"]) == (
            "rolled_back",
            "disabled",
            1,
            1,
            "controller",
        )
        assert "error_rate" in kill["reason"] and "disable" in kill["reason"] and "> 1%" in kill["reason"]
        errors = gate(kill["evidence"], "error_rate")
        assert errors["verdict"] == "critical" and errors["lower"] > 0.01
        # Exactly the 5% batch: the rolled-back stage counts only what was sent since the step back.
        assert errors["value"] == pytest.approx(0.05, abs=0.0005)

        # Both decisions are in the audit log under the controller's name, with their reasons.
        entries = audit(c, flag)
        mine = [
            (e["actor"], e["action"], e["after"]["enabled"], e["after"]["rollout"])
            for e in entries
            if e["actor"] == "controller"
        ]
        assert mine == [
            ("controller", "flag.update", True, 25),
            ("controller", "flag.update", True, 10),
            ("controller", "flag.kill", False, 10),
        ], mine
        assert "error_rate" in entries[-1]["reason"]

        # A disabled rollout is over: it is no longer live, and a person's commands are refused.
        assert c.get("/api/v1/rollouts", params={"flag": flag, "live": "true"}).json() == []
        refused = c.post(f"/api/v1/rollouts/{rid}/resume", json={"reason": "try again"})
        assert refused.status_code == 409 and "disabled" in refused.json()["error"]["message"]


# ---------------------------------------------------------------- 3. data loss: straight back to 0%


DATA_LOSS_ONLY = [{"metric": "data_loss", "rollback_to": 0}]


def data_loss_plan(flag: str) -> dict[str, Any]:
    return {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": "0.5s"},
            {"name": "General", "percentage": 50, "min_duration": "10m"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "1s"},
        ],
        "gates": DATA_LOSS_ONLY,
    }


def test_one_data_loss_event_in_the_treatment_goes_straight_back_to_zero(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-data-loss"
    with server.client() as c:
        create_flag(c, flag)
        traffic = Traffic(c, flag, users=2000)
        rid = create_rollout(c, data_loss_plan(flag))
        drive(server, c, rid, at("running", 2), traffic=traffic, what="stage 2")
        assert flag_state(c, flag)["rollout"] == 50
        ticks(server, 2, traffic)
        assert at("running", 2)(rollout(c, rid)), summary(rollout(c, rid))

        # One data-loss event from a user who has the feature (attributed from the user id, as an SDK would).
        user = next(u for u in traffic.users if in_rollout(flag, u, 50))
        r = c.post(
            "/api/v1/events",
            params={"environment": ENV},
            json={"events": [{"type": "data_loss", "targeting_key": user, "message": "lost 3 rows"}]},
        )
        assert r.status_code == 202, r.text
        server.advance("0s")  # one tick, no time passing: data loss acts at once
        status = rollout(c, rid)
        assert status["state"] == "rolled_back" and status["stage"]["number"] == 0, summary(status)
        assert status["stage"]["percentage"] == 0
        assert flag_state(c, flag)["rollout"] == 0
        back = status["timeline"][-1]
        assert (back["from"], back["to"], back["from_stage"], back["to_stage"], back["actor"]) == (
            "running",
            "rolled_back",
            2,
            0,
            "controller",
        )
        assert "data_loss" in back["reason"]
        loss = gate(back["evidence"], "data_loss")
        assert loss["verdict"] == "fail" and loss["value"] == 1 and loss["samples"] == 1
        last = audit(c, flag)[-1]
        assert (last["actor"], last["action"], last["after"]["rollout"]) == ("controller", "flag.update", 0)
        assert "data_loss" in last["reason"]


def test_a_data_loss_event_without_a_user_also_rolls_back(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """The rollback matrix: data loss, any at all, is an immediate rollback; `data_loss` is "any such event".
    A data-loss report rarely comes with a user (a background job, a replication check), so the gate must not
    wait for one it can attribute."""
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-data-loss-anon"
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, data_loss_plan(flag))
        drive(server, c, rid, at("running", 2), what="stage 2")
        r = c.post("/api/v1/events", params={"environment": ENV}, json={"events": [{"type": "data_loss"}]})
        assert r.status_code == 202, r.text
        server.advance("0s")
        status = rollout(c, rid)
        assert status["state"] == "rolled_back" and status["stage"]["number"] == 0, summary(status)
        assert flag_state(c, flag)["rollout"] == 0


# ---------------------------------------------------------------- 4. kill the server mid-rollout


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_server_resumes_the_rollout_where_it_was(
    backend: str, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_database_url(backend)
    server = start(server_factory, database_url)
    flag = f"e2e-restart-{backend}"
    plan = {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": "0.3s"},
            {"name": "Expanded", "percentage": 25, "min_duration": "1h"},
            {"name": "General", "percentage": 50, "min_duration": "0.3s"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "0.3s"},
        ],
        "gates": DATA_LOSS_ONLY,
    }
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, plan)
        before = drive(server, c, rid, at("running", 2), what="stage 2")
        audit_before = audit(c, flag)
    stopped_at = server.now()
    server.stop(kill=True)  # SIGKILL: no shutdown, no flush
    assert server.process.returncode == -9

    # The new process's clock goes on from where the old one stood.
    server = server_factory(database_url, extra_env=FAST, manual_clock=stopped_at)
    with server.client() as c:
        after = rollout(c, rid)
        assert after["state"] == "running" and after["stage"]["number"] == 2, summary(after)
        assert after["stage"]["entered_at"] == before["stage"]["entered_at"]  # the soak is not restarted
        assert after["timeline"] == before["timeline"]
        assert flag_state(c, flag)["rollout"] == 25
        assert audit(c, flag) == audit_before

        # The dead process's lease still runs: the new one does not act yet.
        assert server.advance("0s")["leader"] is False
        assert rollout(c, rid)["timeline"] == before["timeline"]

        # Once it has run out, the new process takes over the controller and finishes the plan.
        done = drive(server, c, rid, at("completed"), step="1h", what="completion after the restart")
        assert done["timeline"][: len(before["timeline"])] == before["timeline"]
        assert stage_changes(done) == [(0, 1), (1, 2), (2, 3), (3, 4)]
        keys = [(t["from"], t["to"], t["from_stage"], t["to_stage"]) for t in done["timeline"]]
        assert len(keys) == len(set(keys)), f"a decision was applied twice: {keys}"
        controller = [
            (e["action"], e["after"]["rollout"]) for e in audit(c, flag) if e["actor"] == "controller"
        ]
        assert controller == [("flag.update", 25), ("flag.update", 50), ("flag.update", 100)]
        assert flag_state(c, flag)["rollout"] == 100


# ---------------------------------------------------------------- 5. hooks: webhook and command


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# A hook command the server defines: appends the environment it was started with (as the kernel holds it:
# Python's own locale coercion adds LC_CTYPE later), as one JSON line, to the file it is given.
RECORD_ENVIRONMENT = (
    "import json, sys; pairs = open('/proc/self/environ', 'rb').read().decode().split(chr(0)); "
    "open(sys.argv[1], 'a').write(json.dumps(dict(p.split('=', 1) for p in pairs if p)) + chr(10))"
)
HOOK_VARIABLES = {
    "PATH",
    "RAMPUP_DELIVERY",
    "RAMPUP_FLAG",
    "RAMPUP_ENVIRONMENT",
    "RAMPUP_ENABLED",
    "RAMPUP_ROLLOUT",
    "RAMPUP_STAGE",
}


def test_every_stage_change_calls_the_webhook_and_the_command(
    tmp_path: Path,
    receiver: Receiver,
    make_database_url: Callable[[str], str],
    server_factory: Callable[..., Server],
) -> None:
    out = tmp_path / "hook-calls.jsonl"
    commands = {"record": [sys.executable, "-c", RECORD_ENVIRONMENT, str(out)]}
    server = server_factory(
        make_database_url("sqlite"),
        extra_env={**FAST, "RAMPUP_HOOK_COMMANDS": json.dumps(commands)},
        manual_clock=True,
    )
    flag = "e2e-hooks"
    hooks = {"webhook": receiver.url("/rampup-hook"), "command": "record"}
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, four_stages(flag, soak="1s", gates=[], hooks=hooks))
        drive(server, c, rid, at("completed"), what="completion")
        changes = [e for e in audit(c, flag) if e["action"] == "flag.update"]
        expected = [e["after"]["rollout"] for e in changes]
        assert expected[-4:] == [10, 25, 50, 100]

        def called() -> list[dict[str, str]]:
            return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

        # Each destination's queue is delivered in order, the next item only once the one before is marked
        # delivered: when the last change has arrived, no earlier one can arrive again.
        wait_until(
            lambda: len(called()) >= len(expected) and len(receiver.bodies()) >= len(expected),
            "every change at the command and the webhook",
            detail=lambda: f"{called()}\n{receiver.bodies()}\n{server.output()[-2000:]}",
        )
        calls = called()

    # The command: the new percentage in its environment, every change, in order, and nothing of the server's
    # environment (its admin token) but PATH.
    assert [float(e["RAMPUP_ROLLOUT"]) for e in calls] == expected, calls
    assert all(e["RAMPUP_ENABLED"] == "true" and e["RAMPUP_FLAG"] == flag for e in calls), calls
    assert [int(e["RAMPUP_STAGE"]) for e in calls][-4:] == [1, 2, 3, 4]
    assert all(set(e) == HOOK_VARIABLES for e in calls), calls[0]

    # The webhook: the same changes, in order, each with its own delivery id.
    bodies = receiver.bodies()
    assert [b["rollout"] for b in bodies] == expected, bodies
    assert [b["stage"] for b in bodies][-4:] == [1, 2, 3, 4]
    ids = [b["id"] for b in bodies]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    for post in receiver.accepted():
        body = post.body
        assert body["flag"] == flag and body["environment"] == ENV and body["rollout_id"] == rid
        assert body["enabled"] is True
        assert post.headers.get("x-rampup-delivery") == body["id"]
    assert bodies[-1]["phase"] in ("running", "completed")


# ---------------------------------------------------------------- 6. bad plans are refused, with file and line


GOOD_YAML = """\
name: bad-plan
flag: {flag}
environment: production
stages:
  - name: Early Access
    percentage: 10
    min_duration: 2s
  - name: Expanded
    percentage: 25
    min_duration: 2s
  - name: General
    percentage: 50
    min_duration: 2s
gates:
  - metric: error_rate
    target: "< 0.1%"
    rollback: "> 0.5%"
notify: []
"""

# (what is wrong, line to replace (1-based), its replacement, the line named, words of the problem)
MISTAKES = [
    ("percentages fall", 12, "    percentage: 20", 12, ["must rise", "20%", "25%"]),
    ("bad duration", 10, "    min_duration: 2 weeks", 10, ["'2 weeks'", "not a duration"]),
    ("unknown metric", 15, "  - metric: error_ratio", 15, ["unknown metric", "error_ratio"]),
    ("unknown stage field", 13, "    min_duraton: 2s", 13, ["unknown stage field", "min_duraton"]),
    ("unknown plan field", 18, "notfiy: []", 18, ["unknown field", "notfiy"]),
    ("bad threshold", 16, '    target: "below 0.1%"', 16, ["not a threshold"]),
]
CLI_MISTAKES = 1  # the CLI prints the server's error: one mistake shows how; the API shows them all


def test_bad_plans_are_refused_with_file_line_and_problem_and_start_nothing(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"))
    flag = "e2e-bad-plans"
    with server.client() as c:
        create_flag(c, flag)
        flag_before = flag_state(c, flag)
        rollouts_before = c.get("/api/v1/rollouts").json()
        good = GOOD_YAML.format(flag=flag).splitlines()
        for i, (what, line, replacement, named, words) in enumerate(MISTAKES):
            lines = list(good)
            lines[line - 1] = replacement
            text = "\n".join(lines) + "\n"
            # Over HTTP: 422, the file and line named where the error says where.
            r = c.post("/api/v1/rollouts", json={"plan": {"yaml": text}, "filename": "bad.yaml"})
            assert r.status_code == 422, f"{what}: {r.status_code} {r.text}"
            error = r.json()["error"]
            assert f"bad.yaml:{named} " in error["where"], f"{what}: {error}"
            for word in words:
                assert word in error["message"], f"{what}: {word!r} not in {error}"
            if i >= CLI_MISTAKES:
                continue
            # With the CLI: one stderr line, file:line, problem.
            (tmp_path / "bad.yaml").write_text(text)
            result = rampup_at(server, "apply", "-f", "bad.yaml", cwd=tmp_path)
            assert result.returncode != 0, f"{what}: accepted\n{result.stdout}"
            assert "Traceback" not in result.stderr, result.stderr
            errors = result.stderr.strip().splitlines()
            assert len(errors) == 1, f"{what}: expected one line on stderr:\n{result.stderr}"
            assert f"bad.yaml:{named} " in errors[0], f"{what}: {errors[0]}"
            for word in words:
                assert word in errors[0], f"{what}: {word!r} not in {errors[0]!r}"
        # Not valid YAML at all.
        (tmp_path / "bad.yaml").write_text("\n".join(good[:5]) + "\n    percentage: [10\n")
        result = rampup_at(server, "apply", "-f", "bad.yaml", cwd=tmp_path)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "bad.yaml:" in result.stderr and "YAML" in result.stderr

        # Nothing was started or changed.
        assert c.get("/api/v1/rollouts").json() == rollouts_before
        assert flag_state(c, flag) == flag_before

        # A good plan starts; a second one for the same flag and environment is a conflict, and starts nothing.
        (tmp_path / "good.yaml").write_text(GOOD_YAML.format(flag=flag))
        started = rampup_at(server, "apply", "-f", "good.yaml", "--json", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        first = json.loads(started.stdout)
        assert first["flag"] == flag and first["state"] == "running" and first["stage"]["number"] == 1
        again = c.post("/api/v1/rollouts", json={"plan": {"yaml": GOOD_YAML.format(flag=flag)}})
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] and str(first["id"]) in again.json()["error"]["message"]
        assert [r["id"] for r in c.get("/api/v1/rollouts", params={"flag": flag}).json()] == [first["id"]]


# ---------------------------------------------------------------- 7. a person's commands


def test_pause_resume_rollback_disable_and_abort_by_hand(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-manual"
    plan = {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": "0.5s"},
            {"name": "General", "percentage": 50, "min_duration": "0.5s"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "10m"},
        ],
        "gates": [{"metric": "error_rate", "rollback": "> 5%", "disable": "> 20%"}, *DATA_LOSS_ONLY],
    }
    with server.client() as c:
        create_flag(c, flag)
        traffic = Traffic(c, flag, users=3000)
        rid = create_rollout(c, plan)

        paused = command(c, rid, "pause", "waiting for the release notes", by="sam")
        assert paused["state"] == "paused" and paused["stage"]["number"] == 1
        ticks(server, 4, traffic)  # healthy traffic, soak times over, and still no advance
        status = rollout(c, rid)
        assert status["state"] == "paused" and status["stage"]["number"] == 1, summary(status)
        assert flag_state(c, flag)["rollout"] == 10
        refused = command(c, rid, "pause", expect=409)
        assert "cannot pause" in refused["error"]["message"] and "paused" in refused["error"]["message"]

        resumed = command(c, rid, "resume", "notes are out", by="sam")
        assert resumed["state"] == "running" and resumed["stage"]["number"] == 1
        drive(server, c, rid, at("running", 2), traffic=traffic, what="stage 2 after resume")
        assert flag_state(c, flag)["rollout"] == 50

        back = command(c, rid, "rollback", "a customer report to look at", by="sam")
        assert back["state"] == "rolled_back" and back["stage"]["number"] == 1
        assert flag_state(c, flag)["rollout"] == 10
        ticks(server, 3, traffic)  # rolled back by a person: it holds
        status = rollout(c, rid)
        assert status["state"] == "rolled_back" and status["stage"]["number"] == 1, summary(status)

        for action, words in (
            ("pause", ["cannot pause", "rolled_back"]),
            ("approve", ["does not ask for an approval"]),
        ):
            refused = command(c, rid, action, expect=409)
            for word in words:
                assert word in refused["error"]["message"], refused
        r = c.post(
            f"/api/v1/rollouts/{rid}/signoff", json={"prerequisite": "Nobody asked for this", "by": "sam"}
        )
        assert r.status_code == 422 and "Nobody asked for this" in r.json()["error"]["message"], r.text
        assert c.post(f"/api/v1/rollouts/{rid}/explode", json={}).status_code in (404, 422)
        assert c.post("/api/v1/rollouts/999999/pause", json={}).status_code == 404

        disabled = command(c, rid, "disable", "turn it off", by="sam")
        assert disabled["state"] == "disabled"
        assert flag_state(c, flag)["enabled"] is False
        for action in ("resume", "pause", "rollback", "advance", "disable", "abort"):
            refused = command(c, rid, action, expect=409)
            assert "disabled" in refused["error"]["message"], refused

        timeline = rollout(c, rid)["timeline"]
        manual = [
            (t["from"], t["to"], t["from_stage"], t["to_stage"], t["actor"], t["reason"])
            for t in timeline
            if t["on_behalf_of"] == "sam"
        ]
        assert manual == [
            ("running", "paused", 1, 1, "admin", "waiting for the release notes"),
            ("paused", "running", 1, 1, "admin", "notes are out"),
            ("running", "rolled_back", 2, 1, "admin", "a customer report to look at"),
            ("rolled_back", "disabled", 1, 1, "admin", "turn it off"),
        ]
        for_sam = [
            (e["actor"], e["action"], e["after"]["enabled"], e["after"]["rollout"])
            for e in audit(c, flag)
            if e["on_behalf_of"] == "sam"
        ]
        assert for_sam == [("admin", "flag.update", True, 10), ("admin", "flag.kill", False, 10)]

        # A new rollout of the same flag may start once the last one is over and a person has put its kill
        # switch back (the plan alone would turn the flag on again); abort takes it back to 0%.
        again = c.post("/api/v1/rollouts", json={"plan": plan})
        assert again.status_code == 409 and "was switched off" in again.json()["error"]["message"], again.text
        assert [r["id"] for r in c.get("/api/v1/rollouts", params={"flag": flag}).json()] == [rid]
        on = c.put(f"/api/v1/flags/{flag}/environments/{ENV}", json={"enabled": True, "rollout": 0})
        assert on.status_code == 200, on.text
        second = create_rollout(c, plan)
        assert rollout(c, second)["state"] == "running"
        assert flag_state(c, flag)["enabled"] is True and flag_state(c, flag)["rollout"] == 10
        aborted = command(c, second, "abort", "wrong build", by="kim")
        assert aborted["state"] == "aborted" and aborted["stage"]["number"] == 0
        assert flag_state(c, flag)["rollout"] == 0
        last = aborted["timeline"][-1]
        assert (last["to"], last["actor"], last["on_behalf_of"], last["reason"]) == (
            "aborted",
            "admin",
            "kim",
            "wrong build",
        )
        refused = command(c, second, "resume", expect=409)
        assert "aborted" in refused["error"]["message"]

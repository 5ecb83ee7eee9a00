"""Rollouts end to end: a real `rampup serve` with a fast controller tick, plans with 1-second stages, and
live request events posted over HTTP whose treatment share follows the flag.

Traffic is honest: every batch is one request from each user of a fixed pool, and a user is in the
treatment iff `in_rollout(salt, user, percentage)` for the flag's production state read just before the
batch is sent — what an SDK evaluating the flag would have answered. Failures, when a test wants them, are
injected deterministically among the treatment's requests only (every k-th), so the rates are exact.

What the gates need (anytime-valid confidence sequences, see core/sequential.py): an error-rate target of
"< 0.1%" passes only after roughly 6,400 clean treatment requests since the stage began; a rollback
"> 0.5%" with a true rate of 0.8% needs roughly 7,800 treatment requests; a disable "> 1%" at 5% needs
about 110. The batches below are sized for that.
"""

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rampup.core.bucketing import in_rollout
from tests.conftest import Server

FAST = {"RAMPUP_TICK_S": "0.2", "RAMPUP_OUTBOX_POLL_S": "0.2"}
ENV = "production"


# ---------------------------------------------------------------- helpers


def start(server_factory: Callable[..., Server], database_url: str) -> Server:
    return server_factory(database_url, extra_env=FAST)


def create_flag(c: httpx.Client, key: str) -> None:
    r = c.post("/api/v1/flags", json={"key": key, "description": f"e2e {key}", "type": "boolean"})
    assert r.status_code == 201, r.text


def flag_state(c: httpx.Client, key: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/flags/{key}/environments/{ENV}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def rollout(c: httpx.Client, rollout_id: int) -> dict[str, Any]:
    r = c.get(f"/api/v1/rollouts/{rollout_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def create_rollout(c: httpx.Client, plan: dict[str, Any] | str) -> int:
    body = {"plan": {"yaml": plan}} if isinstance(plan, str) else {"plan": plan}
    r = c.post("/api/v1/rollouts", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def command(
    c: httpx.Client, rollout_id: int, action: str, reason: str = "", by: str | None = None, expect: int = 200
) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason, **({"by": by} if by else {})}
    r = c.post(f"/api/v1/rollouts/{rollout_id}/{action}", json=body)
    assert r.status_code == expect, f"{action}: {r.status_code} {r.text}"
    return r.json()  # type: ignore[no-any-return]


def audit(c: httpx.Client, key: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/audit", params={"target": f"flag:{key}", "environment": ENV, "limit": 1000})
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda e: e["id"])


def summary(status: dict[str, Any]) -> str:
    """Enough of a rollout's status to understand a timeout."""
    gates = [
        {k: g.get(k) for k in ("metric", "verdict", "value", "lower", "upper", "samples", "needs")}
        for g in status["gates"]
    ]
    timeline = [
        (t["from"], t["to"], t["from_stage"], t["to_stage"], t["actor"], t["reason"])
        for t in status["timeline"][-4:]
    ]
    return json.dumps(
        {
            "state": status["state"],
            "stage": status["stage"],
            "waiting_for": status["waiting_for"],
            "gates": gates,
            "timeline": timeline,
        },
        indent=1,
        default=str,
    )


class Traffic:
    """Request events from a fixed pool of users, attributed with the flag's state at send time."""

    def __init__(self, c: httpx.Client, flag: str, users: int = 10_000) -> None:
        self.c, self.flag = c, flag
        self.users = [f"{flag}-user-{i}" for i in range(users)]
        self._bodies: dict[tuple[float, bool, str, int | None], tuple[bytes, int, int]] = {}
        self.requests = self.treatment = self.failures = 0

    def _body(
        self, percentage: float, enabled: bool, salt: str, fail_every: int | None
    ) -> tuple[bytes, int, int]:
        key = (percentage, enabled, salt, fail_every)
        if key not in self._bodies:
            events, treated, failed = [], 0, 0
            for i, user in enumerate(self.users):
                on = enabled and in_rollout(salt, user, percentage)
                ok = True
                if on:
                    treated += 1
                    if fail_every and treated % fail_every == 0:
                        ok, failed = False, failed + 1
                events.append(
                    {
                        "type": "request",
                        "targeting_key": user,
                        "flags": {self.flag: on},
                        "duration_ms": 40.0 + i % 200,
                        "ok": ok,
                    }
                )
            self._bodies[key] = (json.dumps({"events": events}).encode(), treated, failed)
        return self._bodies[key]

    def send(self, fail_every: int | None = None) -> dict[str, Any]:
        """One batch: every user of the pool makes one request. Returns the flag state it was attributed with."""
        state = flag_state(self.c, self.flag)
        body, treated, failed = self._body(state["rollout"], state["enabled"], state["salt"], fail_every)
        r = self.c.post(
            "/api/v1/events",
            params={"environment": ENV},
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": len(self.users)}
        self.requests += len(self.users)
        self.treatment += treated
        self.failures += failed
        return state


def pump_until(
    c: httpx.Client,
    rollout_id: int,
    done: Callable[[dict[str, Any]], bool],
    traffic: Traffic | None = None,
    fail_every: int | None = None,
    timeout: float = 30.0,
    what: str = "",
    pace: float = 0.0,
) -> dict[str, Any]:
    """Send traffic (if any) until the rollout's status satisfies `done`; fail with its status on timeout.
    With `pace`, batches start at least that many seconds apart (the status is checked just before each)."""
    deadline = time.monotonic() + timeout
    while True:
        status = rollout(c, rollout_id)
        if done(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what or 'the rollout'}:\n{summary(status)}"
            )
        if traffic is not None:
            sent = time.monotonic()
            traffic.send(fail_every)
            time.sleep(max(0.0, pace - (time.monotonic() - sent)))
        else:
            time.sleep(0.05)


def at(state: str, stage: int | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["state"] == state and (stage is None or s["stage"]["number"] == stage)


def reached(stage: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: bool(s["stage"]["number"] >= stage)


def stage_changes(status: dict[str, Any]) -> list[tuple[int, int]]:
    return [(t["from_stage"], t["to_stage"]) for t in status["timeline"] if t["from_stage"] != t["to_stage"]]


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
        traffic = Traffic(c, flag)
        r = c.post("/api/v1/rollouts", json={"plan": {"yaml": CLIMB_PLAN.format(flag=flag)}})
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "awaiting_approval"
        rid = r.json()["id"]

        # Stage 0 holds until the prerequisite is signed off, whatever the traffic and however many ticks.
        for _ in range(3):
            traffic.send()
        time.sleep(1.2)  # several ticks, beyond the first stage's soak time
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
            status = pump_until(c, rid, reached(stage), traffic, timeout=40, what=f"stage {stage}")
            assert status["stage"]["number"] == stage and status["stage"]["percentage"] == percentage, (
                summary(status)
            )
            state = flag_state(c, flag)
            assert (state["enabled"], state["rollout"]) == (True, percentage)

        # The last stage asks for an approval: stage 3 soaks and passes, then waits for a person.
        status = pump_until(c, rid, at("awaiting_approval"), traffic, timeout=40, what="the approval wait")
        assert status["stage"]["number"] == 3 and status["waiting_for"] == ["approval"], summary(status)
        traffic.send()
        time.sleep(0.6)
        status = rollout(c, rid)
        assert status["state"] == "awaiting_approval" and status["stage"]["number"] == 3, summary(status)
        assert flag_state(c, flag)["rollout"] == 50

        approved = command(c, rid, "approve", "team ready for full launch", by="lee")
        assert approved["state"] == "running" and approved["stage"]["number"] == 4, summary(approved)
        assert flag_state(c, flag)["rollout"] == 100

        status = pump_until(c, rid, at("completed"), traffic, timeout=40, what="completion")
        assert status["stage"]["number"] == 4 and status["stage"]["percentage"] == 100
        state = flag_state(c, flag)
        assert (state["enabled"], state["rollout"]) == (True, 100)

        # The timeline: every transition, in order, with its actor and reason.
        timeline = status["timeline"]
        for t in timeline:
            assert t["at"] and t["actor"] and t["reason"], t
        assert stage_changes(status) == [(0, 1), (1, 2), (2, 3), (3, 4)]
        moves = [(t["from"], t["to"], t["from_stage"], t["to_stage"], t["actor"]) for t in timeline]
        assert moves[0][:4] == ("pending", "awaiting_approval", 0, 0)
        assert ("awaiting_approval", "awaiting_approval", 0, 0, "dana") in moves  # the sign-off itself
        assert ("awaiting_approval", "running", 0, 1, "dana") in moves
        assert ("running", "running", 1, 2, "controller") in moves
        assert ("running", "running", 2, 3, "controller") in moves
        assert ("running", "awaiting_approval", 3, 3, "controller") in moves
        assert ("awaiting_approval", "running", 3, 4, "lee") in moves
        assert moves[-1] == ("running", "completed", 4, 4, "controller")
        assert "Support team briefed" in timeline[0]["reason"]
        assert any("team ready for full launch" in t["reason"] for t in timeline if t["actor"] == "lee")

        # The controller's decisions carry their evidence: value, bounds, samples and threshold of every gate.
        decided = [t for t in timeline if t["actor"] == "controller"]
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
        changes = [(e["actor"], e["after"]["rollout"]) for e in entries]
        assert changes[-4:] == [("dana", 10), ("controller", 25), ("controller", 50), ("lee", 100)], changes
        for e in entries[-4:]:
            assert e["after"]["enabled"] is True and e["reason"], e

        listed = c.get("/api/v1/rollouts", params={"flag": flag}).json()
        assert [(r["id"], r["state"]) for r in listed] == [(rid, "completed")]
        assert c.get("/api/v1/rollouts", params={"flag": flag, "live": "true"}).json() == []


# ---------------------------------------------------------------- 2. errors rise: step back, then kill switch


GUIDE_GATES = [
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
        "gates": GUIDE_GATES if gates is None else gates,
        **extra,
    }


def test_errors_in_the_treatment_step_back_one_stage_then_pull_the_kill_switch(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-errors"
    with server.client() as c:
        create_flag(c, flag)
        traffic = Traffic(c, flag)
        rid = create_rollout(c, four_stages(flag))
        pump_until(c, rid, reached(2), traffic, timeout=40, what="stage 2")
        status = rollout(c, rid)
        assert status["state"] == "running" and status["stage"]["number"] == 2, summary(status)
        assert flag_state(c, flag)["rollout"] == 25

        # 0.8% of the treatment's requests fail: above rollback (0.5%), below disable (1%). The control is clean.
        # Paced, because a gate's window starts at the whole second in which its stage began (per-second rollup
        # edges): the last fraction of a second of stage 2's traffic also counts at stage 1, and at full speed
        # (~8,000 treatment requests a second) that alone steps stage 1 back to 0 before the 5% errors arrive.
        before = traffic.failures
        status = pump_until(
            c,
            rid,
            lambda s: s["state"] != "running",
            traffic,
            fail_every=125,
            timeout=40,
            what="the step back",
            pace=1.2,
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
        # 0.8% of the treatment since stage 2 began (a clean batch in flight at the advance may dilute it a little).
        assert errors["lower"] > 0.005 and 0.005 < errors["value"] < 0.01
        assert errors["samples"] >= 1000

        # Rolled back: it holds at stage 1 (no automatic advance), but safety still acts.
        time.sleep(0.5)
        status = rollout(c, rid)
        assert status["state"] == "rolled_back" and status["stage"]["number"] == 1, summary(status)

        # Errors rise to 5% of the treatment: the kill switch. One batch, so every threshold sees the same data.
        traffic.send(fail_every=20)
        status = pump_until(c, rid, lambda s: s["state"] != "rolled_back", timeout=15, what="the kill switch")
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
        # Mostly the 5% batch; stage 2's 0.8% traffic from the second of the step back may count too (see above).
        assert 0.01 < errors["value"] <= 0.05

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
        status = pump_until(c, rid, at("running", 2), traffic, timeout=15, what="stage 2")
        assert flag_state(c, flag)["rollout"] == 50
        traffic.send()
        time.sleep(0.5)
        assert at("running", 2)(rollout(c, rid)), summary(rollout(c, rid))

        # One data-loss event from a user who has the feature (attributed from the user id, as an SDK would).
        user = next(u for u in traffic.users if in_rollout(flag, u, 50))
        r = c.post(
            "/api/v1/events",
            params={"environment": ENV},
            json={"events": [{"type": "data_loss", "targeting_key": user, "message": "lost 3 rows"}]},
        )
        assert r.status_code == 202, r.text
        status = pump_until(c, rid, lambda s: s["state"] != "running", timeout=10, what="the rollback to 0")
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
    """The guide's matrix: data loss, any at all, is an immediate rollback; `data_loss` is "any such event".
    A data-loss report rarely comes with a user (a background job, a replication check), so the gate must not
    wait for one it can attribute."""
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-data-loss-anon"
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, data_loss_plan(flag))
        pump_until(c, rid, at("running", 2), timeout=15, what="stage 2")
        r = c.post("/api/v1/events", params={"environment": ENV}, json={"events": [{"type": "data_loss"}]})
        assert r.status_code == 202, r.text
        status = pump_until(c, rid, lambda s: s["state"] != "running", timeout=5, what="the rollback to 0")
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
            {"name": "Expanded", "percentage": 25, "min_duration": "6s"},
            {"name": "General", "percentage": 50, "min_duration": "0.3s"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "0.3s"},
        ],
        "gates": DATA_LOSS_ONLY,
    }
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, plan)
        before = pump_until(c, rid, at("running", 2), timeout=15, what="stage 2")
        audit_before = audit(c, flag)
    server.stop(kill=True)  # SIGKILL: no shutdown, no flush
    assert server.process.returncode == -9

    server = start(server_factory, database_url)
    with server.client() as c:
        after = rollout(c, rid)
        assert after["state"] == "running" and after["stage"]["number"] == 2, summary(after)
        assert after["stage"]["entered_at"] == before["stage"]["entered_at"]  # the soak is not restarted
        assert after["timeline"] == before["timeline"]
        assert flag_state(c, flag)["rollout"] == 25
        assert audit(c, flag) == audit_before

        # The new process takes over the controller (after the dead one's lease runs out) and finishes the plan.
        done = pump_until(c, rid, at("completed"), timeout=30, what="completion after the restart")
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


class Receiver:
    """A tiny webhook receiver on loopback that keeps every JSON body with its headers."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                received.bodies.append(json.loads(self.rfile.read(length)))
                received.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/rampup-hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_every_stage_change_calls_the_webhook_and_the_command(
    tmp_path: Path,
    receiver: Receiver,
    make_database_url: Callable[[str], str],
    server_factory: Callable[..., Server],
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
    flag = "e2e-hooks"
    out = tmp_path / "hook-calls.txt"
    hooks = {
        "webhook": receiver.url,
        "command": f'echo "$RAMPUP_ROLLOUT $RAMPUP_ENABLED $RAMPUP_STAGE $RAMPUP_FLAG" >> {shlex.quote(str(out))}',
    }
    with server.client() as c:
        create_flag(c, flag)
        rid = create_rollout(c, four_stages(flag, soak="0.4s", gates=[], hooks=hooks))
        pump_until(c, rid, at("completed"), timeout=20, what="completion")
        changes = [e for e in audit(c, flag) if e["action"] == "flag.update"]
        expected = [e["after"]["rollout"] for e in changes]
        assert expected[-4:] == [10, 25, 50, 100]

        deadline = time.monotonic() + 15
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= len(expected) and len(receiver.bodies) >= len(expected):
                break
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more arrives: each change is delivered once
        lines = out.read_text().splitlines() if out.exists() else []

    # The command: the new percentage in its environment, every change, in order.
    calls = [line.split() for line in lines]
    assert [float(c[0]) for c in calls] == expected, lines
    assert all(c[1] == "true" and c[3] == flag for c in calls), lines
    assert [int(c[2]) for c in calls][-4:] == [1, 2, 3, 4]

    # The webhook: the same changes, in order, each with its own delivery id.
    bodies = receiver.bodies
    assert [b["rollout"] for b in bodies] == expected, bodies
    assert [b["stage"] for b in bodies][-4:] == [1, 2, 3, 4]
    ids = [b["id"] for b in bodies]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    for body, headers in zip(bodies, receiver.headers, strict=True):
        assert body["flag"] == flag and body["environment"] == ENV and body["rollout_id"] == rid
        assert body["enabled"] is True
        assert {k.lower(): v for k, v in headers.items()}.get("x-rampup-delivery") == body["id"]
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
CLI_MISTAKES = 4


def rampup_cli(server: Server, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPUP_")}
    env.update(RAMPUP_SERVER=server.url, RAMPUP_TOKEN=server.admin_token, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "rampup", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_bad_plans_are_refused_with_file_line_and_problem_and_start_nothing(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = start(server_factory, make_database_url("sqlite"))
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
            # With the CLI (a second per start-up, so only the first few): one stderr line, file:line, problem.
            (tmp_path / "bad.yaml").write_text(text)
            result = rampup_cli(server, "apply", "-f", "bad.yaml", cwd=tmp_path)
            assert result.returncode != 0, f"{what}: accepted\n{result.stdout}"
            assert "Traceback" not in result.stderr, result.stderr
            errors = result.stderr.strip().splitlines()
            assert len(errors) == 1, f"{what}: expected one line on stderr:\n{result.stderr}"
            assert f"bad.yaml:{named} " in errors[0], f"{what}: {errors[0]}"
            for word in words:
                assert word in errors[0], f"{what}: {word!r} not in {errors[0]!r}"
        # Not valid YAML at all.
        (tmp_path / "bad.yaml").write_text("\n".join(good[:5]) + "\n    percentage: [10\n")
        result = rampup_cli(server, "apply", "-f", "bad.yaml", cwd=tmp_path)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "bad.yaml:" in result.stderr and "YAML" in result.stderr

        # Nothing was started or changed.
        assert c.get("/api/v1/rollouts").json() == rollouts_before
        assert flag_state(c, flag) == flag_before

        # A good plan starts; a second one for the same flag and environment is a conflict, and starts nothing.
        (tmp_path / "good.yaml").write_text(GOOD_YAML.format(flag=flag))
        started = rampup_cli(server, "apply", "-f", "good.yaml", "--json", cwd=tmp_path)
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
        deadline = time.monotonic() + 2.0  # four soak times, ten ticks: healthy traffic, and still no advance
        while time.monotonic() < deadline:
            traffic.send()
        status = rollout(c, rid)
        assert status["state"] == "paused" and status["stage"]["number"] == 1, summary(status)
        assert flag_state(c, flag)["rollout"] == 10
        refused = command(c, rid, "pause", expect=409)
        assert "cannot pause" in refused["error"]["message"] and "paused" in refused["error"]["message"]

        resumed = command(c, rid, "resume", "notes are out", by="sam")
        assert resumed["state"] == "running" and resumed["stage"]["number"] == 1
        pump_until(c, rid, at("running", 2), traffic, timeout=15, what="stage 2 after resume")
        assert flag_state(c, flag)["rollout"] == 50

        back = command(c, rid, "rollback", "a customer report to look at", by="sam")
        assert back["state"] == "rolled_back" and back["stage"]["number"] == 1
        assert flag_state(c, flag)["rollout"] == 10
        traffic.send()
        time.sleep(1.0)  # rolled back by a person: it holds
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
            if t["actor"] == "sam"
        ]
        assert manual == [
            ("running", "paused", 1, 1, "sam", "waiting for the release notes"),
            ("paused", "running", 1, 1, "sam", "notes are out"),
            ("running", "rolled_back", 2, 1, "sam", "a customer report to look at"),
            ("rolled_back", "disabled", 1, 1, "sam", "turn it off"),
        ]
        by_sam = [
            (e["action"], e["after"]["enabled"], e["after"]["rollout"])
            for e in audit(c, flag)
            if e["actor"] == "sam"
        ]
        assert by_sam == [("flag.update", True, 10), ("flag.kill", False, 10)]

        # A new rollout of the same flag may start once the last one is over; abort takes it back to 0%.
        second = create_rollout(c, plan)
        assert rollout(c, second)["state"] == "running"
        assert flag_state(c, flag)["enabled"] is True and flag_state(c, flag)["rollout"] == 10
        aborted = command(c, second, "abort", "wrong build", by="kim")
        assert aborted["state"] == "aborted" and aborted["stage"]["number"] == 0
        assert flag_state(c, flag)["rollout"] == 0
        last = aborted["timeline"][-1]
        assert (last["to"], last["actor"], last["reason"]) == ("aborted", "kim", "wrong build")
        refused = command(c, second, "resume", expect=409)
        assert "aborted" in refused["error"]["message"]

"""Rollouts over the API, and driving one through a manual clock."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.servers import Server
from tests.support.traffic import Traffic

__all__ = [
    "at",
    "audit",
    "command",
    "create_rollout",
    "drive",
    "reached",
    "rollout",
    "stage_changes",
    "summary",
]

Status = dict[str, Any]


def rollout(c: httpx.Client, rollout_id: int) -> Status:
    r = c.get(f"/api/v1/rollouts/{rollout_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def create_rollout(c: httpx.Client, plan: dict[str, Any] | str) -> int:
    """Starts a plan (a dict, or YAML text) and returns the rollout's id."""
    body = {"plan": {"yaml": plan}} if isinstance(plan, str) else {"plan": plan}
    r = c.post("/api/v1/rollouts", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def command(
    c: httpx.Client,
    rollout_id: int,
    action: str,
    reason: str | None = None,
    by: str | None = None,
    expect: int = 200,
    **fields: str,
) -> Status:
    """A person's command (`pause`, `approve`, `signoff` with `prerequisite=…`, …); asserts the status code."""
    given = {"reason": reason, "by": by, **fields}
    body = {k: v for k, v in given.items() if v is not None}
    r = c.post(f"/api/v1/rollouts/{rollout_id}/{action}", json=body)
    assert r.status_code == expect, f"{action}: {r.status_code} {r.text}"
    return dict(r.json())


def audit(c: httpx.Client, key: str, environment: str = "production") -> list[dict[str, Any]]:
    """The audit entries of a flag in an environment, oldest first."""
    r = c.get("/api/v1/audit", params={"target": f"flag:{key}", "environment": environment, "limit": 1000})
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda e: e["id"])


def stage_changes(status: Status) -> list[tuple[int, int]]:
    return [(t["from_stage"], t["to_stage"]) for t in status["timeline"] if t["from_stage"] != t["to_stage"]]


def at(state: str, stage: int | None = None) -> Callable[[Status], bool]:
    return lambda s: s["state"] == state and (stage is None or s["stage"]["number"] == stage)


def reached(stage: int) -> Callable[[Status], bool]:
    return lambda s: bool(s["stage"]["number"] >= stage)


def summary(status: Status) -> str:
    """Enough of a rollout's status to understand a failure."""
    gates = [
        {k: g.get(k) for k in ("metric", "verdict", "value", "lower", "upper", "samples", "needs")}
        for g in status["gates"]
    ]
    timeline = [
        (t["from"], t["to"], t["from_stage"], t["to_stage"], t["actor"], t["reason"])
        for t in status["timeline"][-4:]
    ]
    brief = {
        "state": status["state"],
        "stage": status["stage"],
        "waiting_for": status["waiting_for"],
        "gates": gates,
        "timeline": timeline,
    }
    return json.dumps(brief, indent=1, default=str)


def drive(
    server: Server,
    c: httpx.Client,
    rollout_id: int,
    done: Callable[[Status], bool],
    *,
    traffic: Traffic | None = None,
    fail_every: int | None = None,
    step: str = "1s",
    max_ticks: int = 60,
    what: str = "",
) -> Status:
    """Tick a manual-clock server `step` at a time (sending one batch of `traffic` before each tick) until the
    rollout's status satisfies `done`. Bounded by ticks, not seconds: a slow machine takes longer, never fails."""
    for _ in range(max_ticks):
        status = rollout(c, rollout_id)
        if done(status):
            return status
        if traffic is not None:
            traffic.send(fail_every)
        server.advance(step)
    status = rollout(c, rollout_id)
    if not done(status):
        pytest.fail(
            f"{what or 'the rollout'} not reached after {max_ticks} ticks of {step}:\n{summary(status)}"
        )
    return status

"""A rollout judged on SDK summaries decides exactly as one judged on the raw events they stand for: two
environments on one PostgreSQL, the same plan in each, the same traffic sent as events through one instance and
as summaries through another, a worker of its own driving both; verdicts, evidence and decisions compared tick by
tick."""

import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from rampup.adapters.codecs.sdk_config import decode_config
from rampup.core.bucketing import in_rollout
from rampup.core.flags import CompiledFlag
from rampup.sdk.tracking import Tracker
from tests.support.api import new_token
from tests.support.rollouts import create_rollout, rollout
from tests.support.servers import FAST, Server, start_all, wall_clock_second
from tests.support.waiting import PATIENCE_S

FLAG = "summarized-checkout"
ENVIRONMENTS = ("production", "summarized")
PER_TICK, USERS, TICKS, STEP_S = 400, 500, 14, 10


def plan(environment: str) -> dict[str, Any]:
    return {
        "name": f"{environment}-checkout",
        "flag": FLAG,
        "environment": environment,
        "stages": [
            {"name": "Canary", "percentage": 20, "min_duration": "30s"},
            {"name": "Half", "percentage": 50, "min_duration": "30s"},
            {"name": "Full", "percentage": 100, "min_duration": "30s"},
        ],
        "gates": [
            {"metric": "error_rate", "target": "< 5%", "rollback": "> 25%"},
            {"metric": "api_latency_p95", "target": "< 350ms"},
            {"metric": "error_rate", "compare": "control", "target": "< +300%"},
        ],
    }


def judged(status: dict[str, Any]) -> dict[str, Any]:
    """What the controller judged and decided, without what names the environment."""
    timeline = [{k: v for k, v in t.items() if k not in ("id", "rollout_id")} for t in status["timeline"]]
    return {
        "state": status["state"],
        "stage": status["stage"],
        "gates": status["gates"],
        "timeline": timeline,
    }


def requests(rng: random.Random, percentage: float, now: datetime) -> list[tuple[dict[str, Any], float]]:
    """One tick of a service's requests, each with the variant its user got, in the tick's last STEP_S."""
    made = []
    for _ in range(PER_TICK):
        user = f"user-{rng.randrange(USERS)}"
        on = in_rollout(FLAG, user, percentage)
        ok = rng.random() > (0.5 if on else 0.02)  # the feature is broken: a rollback on clear evidence
        duration = float(rng.randrange(200, 700) if on else rng.randrange(20, 300))
        request = {
            "type": "request",
            "targeting_key": user,
            "flags": {FLAG: on},
            "ok": ok,
            "duration_ms": duration,
        }
        made.append((request, now.timestamp() - rng.uniform(0, STEP_S)))
    return made


def test_a_summary_and_the_raw_events_it_stands_for_give_the_same_gate_verdicts(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    token = f"test-admin-{uuid.uuid4().hex}"
    start = wall_clock_second()
    events_in, summaries_in = start_all(
        server_factory,
        2,
        make_database_url("postgres"),
        manual_clock=start,
        args=["--no-worker"],
        extra_env=FAST,
        admin_token=token,
    )
    worker = server_factory(
        events_in.database_url, manual_clock=start, command="worker", admin_token=token, extra_env=FAST
    )
    with events_in.client() as api:
        assert api.post("/api/v1/environments", json={"key": ENVIRONMENTS[1], "name": "S"}).status_code == 201
        assert api.post("/api/v1/flags", json={"key": FLAG, "type": "boolean"}).status_code == 201
        ids = [create_rollout(api, plan(env)) for env in ENVIRONMENTS]
        ingest = [new_token(api, "ingest", env) for env in ENVIRONMENTS]
        sdk = new_token(api, "sdk", ENVIRONMENTS[1])
    configuration = httpx.Client(
        base_url=summaries_in.url, headers={"Authorization": f"Bearer {sdk}"}, timeout=PATIENCE_S
    )
    flags: dict[str, CompiledFlag] = {}
    trackers = [
        Tracker(
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=PATIENCE_S
            ),
            "/api/v1/events",
            flush_interval=3600,
            mode=mode,
            flags=lambda: flags,
        )
        for server, secret, mode in zip(
            (events_in, summaries_in), ingest, ("events", "summaries"), strict=True
        )
    ]
    rng = random.Random(15)
    seen: list[dict[str, Any]] = []
    try:
        with events_in.client() as api:
            for _ in range(TICKS):
                raw, summarized = (judged(rollout(api, rid)) for rid in ids)
                assert summarized == raw
                seen.append(raw)
                if raw["state"] == "rolled_back":
                    break
                flags = decode_config(configuration.get("/api/v1/sdk/flags").content)[2]
                for event, at in requests(rng, raw["stage"]["percentage"], worker.now()):
                    for tracker in trackers:
                        tracker.add(event, at)
                assert all(tracker.flush(30) for tracker in trackers)
                worker.advance(f"{STEP_S}s")
    finally:
        for tracker in trackers:
            tracker.close(1)
        configuration.close()
    verdicts = {g["verdict"] for status in seen for g in status["gates"]}
    assert len(verdicts) > 1, f"the gates should not always agree, or the comparison shows little: {verdicts}"
    assert seen[-1]["state"] == "rolled_back", seen[-1]

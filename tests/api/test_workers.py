"""Rampup beyond one process: `rampup serve --no-worker` instances and `rampup worker`s on one database."""

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from rampup.sdk import Client
from tests.support.receivers import Receiver
from tests.support.rollouts import at, audit, create_rollout, drive, rollout, stage_changes
from tests.support.servers import FAST, Server, start_all, wall_clock_second
from tests.support.tokens import new_token
from tests.support.waiting import PATIENCE_S, wait_until

ENV = "production"


def plan(flag: str) -> dict[str, Any]:
    return {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": "1s"},
            {"name": "General", "percentage": 50, "min_duration": "1s"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "1s"},
        ],
        "gates": [{"metric": "data_loss", "rollback_to": 0}],
    }


def test_a_server_without_a_worker_serves_and_a_worker_alone_drives_the_rollout(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_database_url("sqlite")
    server = server_factory(database_url, extra_env=FAST, manual_clock=True, args=["--no-worker"])
    flag = "worker-alone"
    with server.client() as c:
        assert c.post("/api/v1/flags", json={"key": flag, "type": "boolean"}).status_code == 201
        rid = create_rollout(c, plan(flag))
        started = rollout(c, rid)
        assert server.advance("5s")["leader"] is False, "a server started with --no-worker never leads"
        assert rollout(c, rid)["timeline"] == started["timeline"], "no controller ran"

        worker = server_factory(
            database_url,
            extra_env=FAST,
            manual_clock=server.now(),
            command="worker",
            admin_token=server.admin_token,
        )
        with worker.client() as w:
            assert w.get("/api/v1/flags").status_code == 404, "a worker's port serves no API"
        assert worker.advance("0s")["leader"] is True
        done = drive(worker, c, rid, at("completed"), what="completion driven by the worker")
        assert [t["to_stage"] for t in done["timeline"] if t["from_stage"] != t["to_stage"]] == [1, 2, 3]
        assert done["timeline"][: len(started["timeline"])] == started["timeline"]
        # Each process is scraped on its own port and says what it is; only the worker reports the lease.
        with worker.client() as w:
            scraped = w.get("/metrics").text
        assert 'role="worker"' in scraped and "rampup_leader 1.0" in scraped
        served = c.get("/metrics").text
        assert 'role="serve"' in served and "rampup_leader" not in served
    assert "Rampup worker" in worker.output()


def test_three_instances_a_kill_switch_through_one_is_felt_on_the_others_and_ingest_through_all_is_counted(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_database_url("postgres")
    no_poll = {"RAMPUP_SNAPSHOT_POLL_S": "3600"}  # only LISTEN/NOTIFY can carry a change in time
    a = server_factory(database_url, extra_env=no_poll)
    b, c = start_all(
        server_factory, 2, database_url, extra_env=no_poll, admin_token=a.admin_token, args=["--no-worker"]
    )
    sdk_token = new_token(a, "sdk", "checkout-service")  # made through A, honoured by B and C
    flag = "pushed-kill"
    with a.client() as admin:
        assert admin.post("/api/v1/flags", json={"key": flag, "type": "boolean"}).status_code == 201
        on = admin.put(f"/api/v1/flags/{flag}/environments/{ENV}", json={"enabled": True, "rollout": 100})
        assert on.status_code == 200, on.text
        with ExitStack() as stack:
            sdks = [stack.enter_context(Client(s.url, sdk_token)) for s in (b, c)]
            for sdk in sdks:
                wait_until(partial(sdk.is_enabled, flag, "user-1"), "the flag on, through B and C")
            killed = admin.post(f"/api/v1/flags/{flag}/environments/{ENV}/kill", json={"reason": "incident"})
            assert killed.status_code == 200, killed.text
            for sdk in sdks:
                off = partial(sdk.is_enabled, flag, "user-1", default=True)
                wait_until(lambda: not off(), "the kill, felt through B and C")  # noqa: B023

    # Ingest through all three at once: every acknowledged event is stored, once.
    ingest_token = new_token(a, "write", "telemetry")

    def send(server: Server) -> int:
        acknowledged = 0
        with server.client(ingest_token) as sender:
            for batch in range(BATCHES):
                events = [
                    {"type": "request", "targeting_key": f"{server.url}-{batch}-{i}", "ok": i % 10 != 0}
                    for i in range(BATCH)
                ]
                r = sender.post("/api/v1/events", params={"environment": ENV}, json={"events": events})
                assert r.status_code == 202, r.text
                acknowledged += r.json()["accepted"]
        return acknowledged

    with ThreadPoolExecutor(3) as pool:
        acknowledged = sum(pool.map(send, (a, b, c)))
    assert acknowledged == 3 * BATCHES * BATCH
    for server in (a, b, c):
        with server.client() as reader:
            r = reader.get(
                "/api/v1/metrics", params={"metric": "error_rate", "environment": ENV, "window": "1h"}
            )
        assert r.status_code == 200, r.text
        stored = r.json()["variants"]["all"]
        assert (stored["count"], stored["failures"]) == (acknowledged, acknowledged // 10)


BATCHES, BATCH = 20, 250


def test_the_leading_worker_killed_mid_rollout_another_finishes_it_with_no_decision_applied_twice(
    make_empty_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_empty_database_url("postgres")  # the three below migrate it at once, taking turns
    start = wall_clock_second()
    token = f"test-admin-{uuid.uuid4().hex}"  # one admin token for all: each process sets it as it starts
    a, b, c = start_all(
        server_factory,
        3,
        database_url,
        manual_clock=start,
        args=["--no-worker"],
        extra_env=FAST,
        admin_token=token,
    )
    first = server_factory(
        database_url, manual_clock=start, command="worker", admin_token=token, extra_env=FAST
    )
    assert first.advance("0s")["leader"] is True  # the first worker holds the lease before the second starts
    second = server_factory(
        database_url, manual_clock=start, command="worker", admin_token=token, extra_env=FAST
    )
    assert second.advance("0s")["leader"] is False, "a second worker stands by"

    flag = "worker-failover"
    stages = [
        {"name": "Early Access", "percentage": 10, "min_duration": "1s"},
        {"name": "Expanded", "percentage": 25, "min_duration": "1h"},
        {"name": "General", "percentage": 50, "min_duration": "1s"},
        {"name": "Full Rollout", "percentage": 100, "min_duration": "1s"},
    ]
    with a.client() as api, Client(c.url, new_token(b, "sdk", "app")) as sdk:
        assert api.post("/api/v1/flags", json={"key": flag, "type": "boolean"}).status_code == 201
        rid = create_rollout(api, {**plan(flag), "stages": stages})
        before = drive(first, api, rid, at("running", 2), what="stage 2, driven by the first worker")
        stopped_at = first.now()
        first.stop(kill=True)  # SIGKILL mid-rollout: its lease is not given back
        assert first.process.returncode == -9

        with b.client() as through_b:
            assert rollout(through_b, rid)["timeline"] == before["timeline"]
        assert second.advance_to(stopped_at)["leader"] is False, "the dead worker's lease still runs"
        assert rollout(api, rid)["timeline"] == before["timeline"]

        done = drive(second, api, rid, at("completed"), step="1h", what="completion by the second worker")
        assert stage_changes(done) == [(0, 1), (1, 2), (2, 3), (3, 4)]
        assert done["timeline"][: len(before["timeline"])] == before["timeline"]
        keys = [(t["from"], t["to"], t["from_stage"], t["to_stage"]) for t in done["timeline"]]
        assert len(keys) == len(set(keys)), f"a decision was applied twice: {keys}"
        controller = [
            (e["action"], e["after"]["rollout"]) for e in audit(api, flag) if e["actor"] == "controller"
        ]
        assert controller == [("flag.update", 25), ("flag.update", 50), ("flag.update", 100)]
        # The worker's last change reaches an SDK connected to another instance.
        wait_until(lambda: all(sdk.is_enabled(flag, f"user-{i}") for i in range(50)), "100% through C")


def test_a_scheduled_change_with_two_instances_on_one_database_is_made_once_and_felt_through_both(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_database_url("postgres")
    start = wall_clock_second()
    token = f"test-admin-{uuid.uuid4().hex}"
    a, b = start_all(server_factory, 2, database_url, manual_clock=start, extra_env=FAST, admin_token=token)
    flag = "scheduled-once"
    berlin = (start + timedelta(hours=1)).astimezone(ZoneInfo("Europe/Berlin"))
    with Receiver() as receiver, a.client() as api, Client(b.url, new_token(a, "sdk", "app")) as sdk:
        hook = {"name": "release-room", "type": "webhook", "url": receiver.url("/hook"), "secret": "s" * 16}
        assert api.post("/api/v1/channels", json=hook).status_code == 201
        created = api.post("/api/v1/flags", json={"key": flag, "type": "boolean", "notify": ["release-room"]})
        assert created.status_code == 201, created.text
        change = {
            "flag": flag,
            "environment": ENV,
            "at": berlin.strftime("%Y-%m-%d %H:%M"),
            "timezone": "Europe/Berlin",
            "change": {"enabled": True, "rollout": 100},
        }
        with b.client(new_token(b, "write", "release-bot")) as bot:
            scheduled = bot.post("/api/v1/scheduled-changes", json=change)
        assert scheduled.status_code == 201, scheduled.text
        due = datetime.fromisoformat(scheduled.json()["at"])
        assert not sdk.is_enabled(flag, "user-1")

        # Both instances reach the time at once, then again when either could have taken the other's lease.
        for instant in (due, due + timedelta(seconds=10)):
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda s: s.advance_to(instant), (a, b)))  # noqa: B023
        wait_until(lambda: all(sdk.is_enabled(flag, f"user-{i}") for i in range(20)), "on, through B's SDK")
        ofrep = httpx.post(
            f"{a.url}/ofrep/v1/evaluate/flags/{flag}",
            json={"context": {"targetingKey": "user-1"}},
            headers={"Authorization": f"Bearer {new_token(a, 'sdk', 'ofrep')}"},
            timeout=PATIENCE_S,
        )
        assert ofrep.status_code == 200 and ofrep.json()["value"] is True, ofrep.text

        made = api.get(f"/api/v1/scheduled-changes/{scheduled.json()['id']}").json()
        assert made["status"] == "done" and datetime.fromisoformat(made["finished_at"]) == due
        [entry] = [e for e in audit(api, flag) if e["action"] == "flag.scheduled"]
        assert entry["actor"] == "release-bot" and made["finished_by"] in entry["reason"]
        wait_until(
            lambda: all(d["status"] == "delivered" for d in api.get("/api/v1/notifications").json()),
            "every notification delivered",
        )
        told = [body for body in receiver.bodies("/hook") if body["type"] == "schedule.done"]
        assert len(told) == 1 and told[0]["details"] == {"scheduled_change": made["id"]}

"""Rampup beyond one process: `rampup serve --no-worker` instances and `rampup worker`s on one database."""

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from rampup.sdk import Client
from tests.support.rollouts import at, create_rollout, drive, rollout
from tests.support.servers import FAST, Server
from tests.support.tokens import new_token
from tests.support.waiting import wait_until

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


def test_a_kill_switch_pulled_through_one_instance_reaches_sdks_on_the_others_without_a_poll(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database_url = make_database_url("postgres")
    no_poll = {"RAMPUP_SNAPSHOT_POLL_S": "3600"}  # only LISTEN/NOTIFY can carry the change in time
    a = server_factory(database_url, extra_env=no_poll)
    b, c = (
        server_factory(database_url, extra_env=no_poll, admin_token=a.admin_token, args=["--no-worker"])
        for _ in range(2)
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

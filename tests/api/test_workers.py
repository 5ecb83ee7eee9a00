"""Rampup beyond one process: `rampup serve --no-worker` instances and `rampup worker`s on one database."""

from collections.abc import Callable
from typing import Any

from tests.support.rollouts import at, create_rollout, drive, rollout
from tests.support.servers import FAST, Server

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
    assert "Rampup worker" in worker.output()

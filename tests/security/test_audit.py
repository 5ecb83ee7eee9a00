"""An audit log you can trust. Every rollout command and channel test is audited under the token's name;
a `by` in the body is kept beside it ("on behalf of"), never instead of it. A revoked RAMPUP_ADMIN_TOKEN stays
revoked across restarts; only a new value makes an admin token from the environment again."""

from collections.abc import Callable
from typing import Any

import httpx

from tests.support.receivers import Receiver
from tests.support.rollouts import command, create_rollout
from tests.support.servers import Server
from tests.support.tokens import new_token


def audit(c: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/audit", params={"limit": "1000", **params})
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda e: e["id"])


def test_commands_are_audited_as_the_token_with_the_person_beside_it(
    database_url: str, server_factory: Callable[..., Server]
) -> None:
    server = server_factory(database_url)
    with Receiver() as receiver, server.client() as admin:
        created = admin.post("/api/v1/flags", json={"key": "audited", "type": "boolean"})
        assert created.status_code == 201, created.text
        hook = {"name": "ops", "type": "webhook", "url": receiver.url(), "secret": "a-long-shared-secret"}
        assert admin.post("/api/v1/channels", json=hook).status_code == 201
    plan = {
        "name": "audited",
        "flag": "audited",
        "environment": "production",
        "stages": [{"name": "early", "percentage": 10}, {"name": "all", "percentage": 100}],
    }
    with server.client(new_token(server, "write", "ci-bot")) as writer:
        rid = create_rollout(writer, plan)
        command(writer, rid, "pause", "release notes first", by="the-ceo")
        command(writer, rid, "resume", "notes are out")
        command(writer, rid, "abort", "wrong build", by="sam")
        pending = writer.post("/api/v1/rollouts", json={"plan": plan, "start": False})
        assert pending.status_code == 201, pending.text
        command(writer, pending.json()["id"], "start", "go", by="sam")
        assert writer.post("/api/v1/channels/ops/test").status_code == 202

        done = [(e["actor"], e["on_behalf_of"], e["action"]) for e in audit(writer, action="rollout.")]
        assert done == [
            ("ci-bot", None, "rollout.create"),
            ("ci-bot", None, "rollout.start"),
            ("ci-bot", "the-ceo", "rollout.pause"),
            ("ci-bot", None, "rollout.resume"),
            ("ci-bot", "sam", "rollout.abort"),
            ("ci-bot", None, "rollout.create"),
            ("ci-bot", "sam", "rollout.start"),
        ]
        flag_changes = [(e["actor"], e["on_behalf_of"]) for e in audit(writer, target="flag:audited")]
        # The flag's creation, the first start (0% then 10%), the abort (back to 0%), the second start.
        assert flag_changes == [("admin", None)] + [("ci-bot", None)] * 2 + [("ci-bot", "sam")] * 3, (
            flag_changes
        )
        tested = audit(writer, action="channel.test")
        assert [(e["actor"], e["target"]) for e in tested] == [("ci-bot", "channel:ops")]
        timeline = writer.get(f"/api/v1/rollouts/{rid}").json()["timeline"]
        assert ("ci-bot", "the-ceo") in [(t["actor"], t["on_behalf_of"]) for t in timeline]
        assert all(t["actor"] in ("ci-bot", "controller") for t in timeline), timeline


def test_a_revoked_environment_admin_token_stays_revoked_across_restarts(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    database = make_database_url("sqlite")
    leaked = "rampup-admin-secret-that-leaked"
    server = server_factory(database, admin_token=leaked)
    second_admin = new_token(server, "admin", "second-admin")
    with server.client(second_admin) as admin:
        env_token = next(t for t in admin.get("/api/v1/tokens").json() if t["name"] == "admin")
        assert admin.delete(f"/api/v1/tokens/{env_token['id']}").status_code == 200
    with server.client(leaked) as c:
        assert c.get("/api/v1/flags").status_code == 401
    server.stop()

    restarted = server_factory(database, admin_token=leaked)
    with restarted.client(leaked) as c:
        assert c.get("/api/v1/flags").status_code == 401, "a restart does not revive a revoked token"
    assert "RAMPUP_ADMIN_TOKEN was revoked and stays revoked" in restarted.output()
    restarted.stop()

    renewed = server_factory(database, admin_token="a-new-admin-secret-after-the-leak")
    with renewed.client() as c:
        assert c.get("/api/v1/flags").status_code == 200, "a new value makes the token again"
    with renewed.client(leaked) as c:
        assert c.get("/api/v1/flags").status_code == 401

"""Environments created, renamed and deleted through the API and the command line; refused while a rollout runs.

The module shares a server per backend: one test keeps to an environment it creates, the other to staging and
production, which it leaves with their keys."""

import httpx
import pytest

from tests.support.api import new_flag, new_token
from tests.support.rollouts import command, create_rollout
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


def plan(flag: str, environment: str) -> dict[str, object]:
    return {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": environment,
        "stages": [{"name": "Early", "percentage": 10, "min_duration": "1h"}],
        "gates": [],
    }


def test_rename_keeps_flags_and_tokens_and_delete_takes_them_away(server: Server) -> None:
    api = server.client()
    assert api.post("/api/v1/environments", json={"key": "qa", "name": "QA"}).status_code == 201
    key = new_flag(api, rollout=100, env="qa")
    sdk = new_token(api, "sdk", "qa")
    renamed = api.patch("/api/v1/environments/qa", json={"key": "acceptance", "name": "Acceptance"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["key"], renamed.json()["name"]) == ("acceptance", "Acceptance")
    assert api.get(f"/api/v1/flags/{key}").json()["environments"]["acceptance"]["rollout"] == 100
    ofrep = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sdk}"}, timeout=PATIENCE_S)
    assert ofrep.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": {}}).json()["value"] is True
    audit = api.get("/api/v1/audit", params={"target": "environment:qa"}).json()
    assert audit[0]["action"] == "environment.update" and audit[0]["after"]["key"] == "acceptance"

    assert api.delete("/api/v1/environments/acceptance").status_code == 204
    assert "acceptance" not in {e["key"] for e in api.get("/api/v1/environments").json()}
    assert "acceptance" not in api.get(f"/api/v1/flags/{key}").json()["environments"]
    assert ofrep.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": {}}).status_code == 401


def test_refused_while_a_rollout_runs_and_bad_input_changes_nothing(server: Server) -> None:
    api = server.client()
    key = new_flag(api)
    rollout = create_rollout(api, plan(key, "staging"))
    for refused in (
        api.patch("/api/v1/environments/staging", json={"key": "stage"}),
        api.delete("/api/v1/environments/staging"),
    ):
        assert refused.status_code == 409, refused.text
        assert f"rollout {rollout}" in refused.json()["error"]["message"]
    bad_key = api.patch("/api/v1/environments/production", json={"key": "Not A Key"})
    assert (bad_key.status_code, bad_key.json()["error"]["where"]) == (422, "key")
    taken = api.patch("/api/v1/environments/production", json={"key": "staging"})
    assert taken.status_code == 409
    reader = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {new_token(api, 'read', None)}"},
        timeout=PATIENCE_S,
    )
    writer = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {new_token(api, 'write', None)}"},
        timeout=PATIENCE_S,
    )
    for client in (reader, writer):
        assert client.delete("/api/v1/environments/production").status_code == 403
        assert client.patch("/api/v1/environments/production", json={"name": "x"}).status_code == 403
    assert {e["key"] for e in api.get("/api/v1/environments").json()} >= {"staging", "production"}
    assert api.get("/api/v1/environments").json()[0]["name"] != "x"
    command(api, rollout, "abort")
    assert api.patch("/api/v1/environments/staging", json={"name": "Staging 2"}).status_code == 200

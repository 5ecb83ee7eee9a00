"""The admin API over HTTP against a running server: the core calls, errors and auth. Every test works on flags of
its own (random keys) or only reads, so the module shares a server per backend."""

import uuid
from typing import Any

import httpx
import pytest

from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S


def new_key() -> str:
    return f"flag-{uuid.uuid4().hex[:10]}"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return dict(body["error"])


def test_create_set_and_kill_a_flag_and_each_change_is_audited(shared_server: Server) -> None:
    api = shared_server.client()
    key = new_key()
    created = api.post("/api/v1/flags", json={"key": key, "description": "New UI", "type": "boolean"})
    assert created.status_code == 201
    assert created.json()["key"] == key and created.json()["environments"]["production"]["enabled"] is False

    put = api.put(f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": 25})
    assert put.status_code == 200
    assert {k: put.json()[k] for k in ("enabled", "rollout", "version")} == {
        "enabled": True,
        "rollout": 25,
        "version": 2,
    }
    killed = api.post(f"/api/v1/flags/{key}/environments/production/kill", json={"reason": "error spike"})
    assert killed.status_code == 200 and killed.json()["enabled"] is False and killed.json()["rollout"] == 25

    shown = api.get(f"/api/v1/flags/{key}").json()
    assert shown["environments"]["production"]["version"] == 3
    assert shown["environments"]["staging"]["version"] == 1
    audit = api.get("/api/v1/audit", params={"target": f"flag:{key}"}).json()
    assert [a["action"] for a in audit] == ["flag.kill", "flag.update", "flag.create"]
    assert audit[0]["reason"] == "error spike" and audit[0]["actor"] == "admin"


def test_duplicate_key_is_409_and_unknown_things_are_404(shared_server: Server) -> None:
    api = shared_server.client()
    key = new_key()
    assert api.post("/api/v1/flags", json={"key": key}).status_code == 201
    assert error_of(api.post("/api/v1/flags", json={"key": key}))["code"] == "conflict"
    assert api.get("/api/v1/flags/nope").status_code == 404
    assert api.get(f"/api/v1/flags/{key}/environments/nowhere").status_code == 404
    assert api.put(f"/api/v1/flags/{key}/environments/nowhere", json={"rollout": 5}).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        ({"rollout": 101}, 422, "rollout"),
        ({"rollout": 12.345}, 422, "rollout"),
        ({"enabled": "yes"}, 422, "enabled"),
        (
            {"rules": [{"conditions": [{"attribute": "age", "operator": "gt", "values": ["old"]}]}]},
            422,
            "rules[0].conditions[0].values",
        ),
        (
            {
                "rules": [
                    {"conditions": [{"attribute": "a", "operator": "in", "values": ["x"]}], "variant": "blue"}
                ]
            },
            422,
            "rules[0].variant",
        ),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_bad_input_says_what_and_where_and_changes_nothing(
    shared_server: Server, body: dict[str, Any], status: int, where: str
) -> None:
    api = shared_server.client()
    key = new_key()
    api.post("/api/v1/flags", json={"key": key})
    before = api.get(f"/api/v1/flags/{key}").json()
    response = api.put(f"/api/v1/flags/{key}/environments/production", json=body)
    assert response.status_code == status
    error = error_of(response)
    assert error["where"] == where, error
    assert api.get(f"/api/v1/flags/{key}").json() == before
    assert len(api.get("/api/v1/audit", params={"target": f"flag:{key}"}).json()) == 1


def test_malformed_json_is_400(shared_sqlite_server: Server) -> None:
    response = shared_sqlite_server.client().post(
        "/api/v1/flags", content=b'{"key": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and error_of(response)["code"] == "bad_request"


@pytest.mark.parametrize("key", ["Bad", "-x", "a" * 129, "with space", ""])
def test_bad_flag_keys_are_rejected(shared_sqlite_server: Server, key: str) -> None:
    response = shared_sqlite_server.client().post("/api/v1/flags", json={"key": key})
    assert response.status_code == 422 and error_of(response)["where"] == "key"


def test_multivariate_flag_with_weights(shared_sqlite_server: Server) -> None:
    api = shared_sqlite_server.client()
    key = new_key()
    created = api.post(
        "/api/v1/flags",
        json={
            "key": key,
            "type": "string",
            "variants": [
                {"name": "control", "value": "grey"},
                {"name": "blue", "value": "blue"},
                {"name": "green", "value": "green"},
            ],
        },
    )
    assert created.status_code == 201 and created.json()["off_variant"] == "control"
    put = api.put(
        f"/api/v1/flags/{key}/environments/staging",
        json={"enabled": True, "rollout": 50, "weights": {"blue": 70, "green": 30}},
    )
    assert put.status_code == 200 and put.json()["weights"] == {"blue": 70, "green": 30}
    bad = api.put(f"/api/v1/flags/{key}/environments/staging", json={"weights": {"blue": 70}})
    assert bad.status_code == 422 and "add up to 100" in error_of(bad)["message"]


def test_optimistic_concurrency_with_version(shared_sqlite_server: Server) -> None:
    api = shared_sqlite_server.client()
    key = new_key()
    api.post("/api/v1/flags", json={"key": key})
    assert (
        api.put(
            f"/api/v1/flags/{key}/environments/production", json={"rollout": 10, "version": 1}
        ).status_code
        == 200
    )
    stale = api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 50, "version": 1})
    assert stale.status_code == 409
    assert api.get(f"/api/v1/flags/{key}/environments/production").json()["rollout"] == 10


def test_tokens_scopes_and_auth(shared_sqlite_server: Server) -> None:
    admin = shared_sqlite_server.client()
    made = {
        scope: admin.post("/api/v1/tokens", json={"scope": scope, "name": f"{scope}-bot"}).json()
        for scope in ("read", "write")
    }
    sdk = admin.post("/api/v1/tokens", json={"scope": "sdk", "environment": "production"})
    assert sdk.status_code == 201 and sdk.json()["token"].startswith("rp_")
    key = new_key()

    anonymous = httpx.post(f"{shared_sqlite_server.url}/api/v1/flags", json={"key": key}, timeout=PATIENCE_S)
    assert anonymous.status_code == 401 and error_of(anonymous)["code"] == "unauthorized"
    wrong = shared_sqlite_server.client("rp_not-a-real-token").get("/api/v1/flags")
    assert wrong.status_code == 401
    reader = shared_sqlite_server.client(made["read"]["token"])
    assert reader.get("/api/v1/flags").status_code == 200
    assert reader.post("/api/v1/flags", json={"key": key}).status_code == 403
    writer = shared_sqlite_server.client(made["write"]["token"])
    assert writer.post("/api/v1/flags", json={"key": key}).status_code == 201
    assert writer.post("/api/v1/tokens", json={"scope": "admin"}).status_code == 403
    assert shared_sqlite_server.client(sdk.json()["token"]).get("/api/v1/flags").status_code == 403
    audit = admin.get("/api/v1/audit", params={"target": f"flag:{key}"}).json()
    assert audit[0]["actor"] == "write-bot"

    listed = admin.get("/api/v1/tokens").json()
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    assert admin.delete(f"/api/v1/tokens/{made['read']['id']}").status_code == 200
    assert reader.get("/api/v1/flags").status_code == 401


def test_environments_listed_with_ids_and_created(shared_sqlite_server: Server) -> None:
    api = shared_sqlite_server.client()
    assert [(e["id"], e["key"]) for e in api.get("/api/v1/environments").json()] == [
        (1, "staging"),
        (2, "production"),
    ]
    created = api.post("/api/v1/environments", json={"key": "qa", "name": "QA"})
    assert created.status_code == 201 and created.json()["id"] == 3
    assert api.post("/api/v1/environments", json={"key": "qa"}).status_code == 409


def test_health_readiness_and_openapi(shared_sqlite_server: Server) -> None:
    # Without a token, as a load balancer asks; with a timeout that only ends a hung call (the schema is built on
    # the first request, slowly on a busy machine).
    with httpx.Client(base_url=shared_sqlite_server.url, timeout=PATIENCE_S) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json()["status"] == "ready"
        paths = anonymous.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/flags",
        "/api/v1/flags/{key}/environments/{environment}",
        "/api/v1/tokens",
        "/ofrep/v1/evaluate/flags/{key}",
        "/ofrep/v1/evaluate/flags",
    } <= set(paths)


def test_a_flags_kind_and_channels_are_set_shown_audited_and_refused_when_wrong(
    shared_server: Server,
) -> None:
    api = shared_server.client()
    key = new_key()
    created = api.post("/api/v1/flags", json={"key": key, "kind": "experiment"}).json()
    assert (created["kind"], created["lifetime_days"], created["status"]) == ("experiment", 40, "active")
    assert created["references"] == {"scanned_at": None, "count": 0, "items": []}
    assert api.get("/api/v1/flags").json()[-1]["kind"] in {"experiment", "release"}

    hook = {"name": "team", "type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-s3cret"}
    assert api.post("/api/v1/channels", json=hook).status_code == 201
    put = api.put(f"/api/v1/flags/{key}", json={"kind": "kill-switch", "notify": ["team"]})
    assert put.status_code == 200
    assert (put.json()["kind"], put.json()["lifetime_days"], put.json()["notify"]) == (
        "kill-switch",
        None,
        ["team"],
    )
    patched = api.patch(f"/api/v1/flags/{key}", json={"description": "ops"}).json()
    assert (patched["kind"], patched["notify"], patched["description"]) == ("kill-switch", ["team"], "ops")
    audit = api.get("/api/v1/audit", params={"target": f"flag:{key}", "action": "flag.update"}).json()
    assert audit[-1]["before"]["kind"] == "experiment" and audit[-1]["after"]["kind"] == "kill-switch"

    for body, where in (
        ({"kind": "forever"}, "kind"),
        ({"notify": ["nobody"]}, "notify[0]"),
        ({"notify": "team"}, "notify"),
        ({"key": "renamed"}, "key"),
    ):
        refused = api.patch(f"/api/v1/flags/{key}", json=body)
        assert refused.status_code in (400, 422), body
        assert where in (error_of(refused).get("where") or ""), (body, refused.text)
    assert api.get(f"/api/v1/flags/{key}").json()["kind"] == "kill-switch"
    assert api.post("/api/v1/flags", json={"key": new_key(), "kind": "forever"}).status_code == 422


def test_flags_have_tags_and_an_owner_and_the_list_filters_by_them(shared_server: Server) -> None:
    api = shared_server.client()
    team = f"team-{uuid.uuid4().hex[:6]}"
    checkout = api.post("/api/v1/flags", json={"key": new_key(), "tags": [team, "q3"], "owner": "dana"})
    search = api.post("/api/v1/flags", json={"key": new_key(), "tags": [team], "owner": "lee"})
    assert checkout.status_code == search.status_code == 201, checkout.text
    assert (checkout.json()["tags"], checkout.json()["owner"]) == ([team, "q3"], "dana")
    keys = [checkout.json()["key"], search.json()["key"]]
    assert [f["key"] for f in api.get("/api/v1/flags", params={"tag": team}).json()] == sorted(keys)
    dana = api.get("/api/v1/flags", params={"tag": team, "owner": "dana"}).json()
    assert [f["key"] for f in dana] == [keys[0]]
    moved = api.patch(f"/api/v1/flags/{keys[1]}", json={"owner": "dana", "tags": ["q3"]})
    assert moved.status_code == 200 and moved.json()["tags"] == ["q3"]
    assert api.get("/api/v1/flags", params={"tag": team}).json()[0]["key"] == keys[0]
    audit = api.get("/api/v1/audit", params={"target": f"flag:{keys[1]}", "action": "flag.update"}).json()
    assert (audit[0]["before"]["owner"], audit[0]["after"]["owner"]) == ("lee", "dana")
    bad = api.patch(f"/api/v1/flags/{keys[1]}", json={"tags": ["no spaces"]})
    assert (bad.status_code, error_of(bad)["where"]) == (422, "tags[0]")
    assert api.get(f"/api/v1/flags/{keys[1]}").json()["tags"] == ["q3"]


def test_a_rule_with_one_condition_may_write_it_inline(shared_sqlite_server: Server) -> None:
    api = shared_sqlite_server.client()
    key = new_key()
    assert api.post("/api/v1/flags", json={"key": key}).status_code == 201
    path = f"/api/v1/flags/{key}/environments/production"
    inline = {"attribute": "email", "operator": "ends_with", "values": ["@example.com"], "variant": "on"}
    put = api.put(path, json={"enabled": True, "rules": [inline]})
    assert put.status_code == 200, put.text
    assert put.json()["rules"] == [
        {
            "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}],
            "variant": "on",
        }
    ]
    both = {**inline, "conditions": [{"attribute": "plan", "operator": "in", "values": ["pro"]}]}
    refused = api.put(path, json={"rules": [both]})
    assert refused.status_code == 422 and error_of(refused)["where"] == "rules[0].conditions"
    misspelt = api.put(path, json={"rules": [{**inline, "operator": "ends"}]})
    assert misspelt.status_code == 422 and error_of(misspelt)["where"] == "rules[0].operator"
    assert api.get(path).json()["version"] == 2

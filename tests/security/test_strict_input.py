"""Strict types from outside: a rollout is a number (never `true`, never "50"), in the API and in YAML plans; a
key never ends in a newline. Each refusal names where and changes nothing."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.servers import Server


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    server = module_server_factory(module_database_url("sqlite"))
    with server.client() as api:
        assert api.post("/api/v1/flags", json={"key": "checkout"}).status_code == 201
    return server


@pytest.mark.parametrize("rollout", [True, "50", "50%"])
@pytest.mark.parametrize("where", ["rollout", "rules"])
def test_a_rollout_is_a_number(server: Server, rollout: Any, where: str) -> None:
    body: dict[str, Any] = (
        {"enabled": True, "rollout": rollout}
        if where == "rollout"
        else {
            "rules": [
                {
                    "conditions": [{"attribute": "country", "operator": "in", "values": ["DE"]}],
                    "rollout": rollout,
                }
            ]
        }
    )
    with server.client() as api:
        before = api.get("/api/v1/flags/checkout").json()
        response = api.put("/api/v1/flags/checkout/environments/production", json=body)
        assert response.status_code == 422, response.text
        assert "rollout" in response.json()["error"]["where"]
        assert api.get("/api/v1/flags/checkout").json() == before


@pytest.mark.parametrize("percentage", ["true", "yes", '"50"', "'25'"])
def test_a_plans_percentage_is_a_number(server: Server, percentage: str) -> None:
    plan = f"name: r\nflag: checkout\nenvironment: production\nstages:\n  - name: one\n    percentage: {percentage}\n"
    with server.client() as api:
        response = api.post("/api/v1/rollouts", json={"plan": {"yaml": plan}, "filename": "r.yaml"})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "rollout must be a number" in error["message"] and error["where"].startswith("r.yaml:6"), error
        assert api.get("/api/v1/rollouts").json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/flags", {"key": "banner\n"}),
        ("/api/v1/environments", {"key": "qa\n", "name": "QA"}),
        ("/api/v1/channels", {"name": "ops\n", "type": "webhook", "url": "https://hooks.example.com/x"}),
        ("/api/v1/metric-definitions", {"name": "checkouts\n", "aggregation": "count", "event": "checkout"}),
    ],
)
def test_a_key_never_ends_in_a_newline(server: Server, path: str, body: dict[str, Any]) -> None:
    with server.client() as api:
        listed = api.get(path).json()
        response = api.post(path, json=body)
        assert response.status_code == 422, response.text
        assert api.get(path).json() == listed

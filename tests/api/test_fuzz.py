"""Schemathesis fuzzing of a running server's own OpenAPI schema (GET /openapi.json).

One `rampup serve` (SQLite) is started for the module. Every documented operation — the admin API and
the OFREP routes — is fed generated requests (schema examples, the deterministic coverage phase of edge
cases, then random fuzzing, valid and invalid inputs) and must answer without a 5xx and, for every status
the schema documents, with a body that matches the documented schema.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import Server, start_server

MAX_EXAMPLES = 100  # per operation and test, fuzzing phase only; the coverage phase adds its own fixed set
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    server = start_server(f"sqlite:///{directory / 'fuzz.db'}", directory / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sdk_token(live_server: Server) -> str:
    with live_server.client() as client:
        response = client.post("/api/v1/tokens", json={"scope": "sdk", "environment": "production", "name": "fuzz"})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


@pytest.fixture(scope="module")
def protected_token_ids(live_server: Server, sdk_token: str) -> frozenset[str]:
    """The fuzzer must not revoke the tokens it authenticates with: the rest of the run would be 401s."""
    with live_server.client() as client:
        return frozenset(t["id"] for t in client.get("/api/v1/tokens").json())


def _load(server: Server, token: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
    schema.config.update(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                    max_examples=MAX_EXAMPLES, database="none")
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    return schema


@pytest.fixture(scope="module")
def admin_schema(live_server: Server) -> schemathesis.BaseSchema:
    return _load(live_server, live_server.admin_token)


@pytest.fixture(scope="module")
def sdk_schema(live_server: Server, sdk_token: str) -> schemathesis.BaseSchema:
    return _load(live_server, sdk_token).include(path_regex=r"^/ofrep/")


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.x's lazy loader reads `node._nodeid`, which pytest 9 no longer has; give it one.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _spare_protected_tokens(case: schemathesis.Case, protected: frozenset[str]) -> None:
    if case.method.upper() == "DELETE" and case.path_parameters and case.path_parameters.get("token_id") in protected:
        case.path_parameters["token_id"] = "no-such-token"


admin_api = schemathesis.pytest.from_fixture("admin_schema")
sdk_api = schemathesis.pytest.from_fixture("sdk_schema")


@admin_api.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_with_an_admin_token(case: schemathesis.Case, protected_token_ids: frozenset[str]) -> None:
    _spare_protected_tokens(case, protected_token_ids)
    case.call_and_validate(checks=CHECKS)


@sdk_api.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_ofrep_with_an_sdk_token(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


def test_the_fuzzed_server_is_still_healthy(live_server: Server) -> None:
    """Runs last in the module: after all that, the server still answers and its admin token still works."""
    assert httpx.get(f"{live_server.url}/readyz", timeout=5).status_code == 200
    with live_server.client() as client:
        assert client.get("/api/v1/flags").status_code == 200
    assert "Traceback" not in live_server.output(), live_server.output()[-4000:]

"""Schemathesis fuzzing of a running server's own OpenAPI schema (GET /openapi.json).

One `rampup serve` (SQLite) is started for the module. Every documented operation — the admin API and the
OFREP routes — gets generated requests: the schema's examples, the deterministic coverage phase (boundary
and invalid values), then random fuzzing with valid and invalid data, and linked call sequences. Each
request must be answered without a 5xx and, for every status the schema documents, with a body that
matches the documented schema.

Random path parameters rarely name anything that exists, so the flag operations and OFREP evaluation are
also fuzzed against a real flag, where the request bodies reach the product's own validation.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S

# Random examples per operation, beside the coverage phase's fixed set of boundary and invalid cases, which always
# runs in full. Every run of the suite fuzzes a little; RAMPUP_FUZZ_EXAMPLES=500 fuzzes deeply (before a release).
MAX_EXAMPLES = int(os.environ.get("RAMPUP_FUZZ_EXAMPLES", "15"))
STATEFUL_SCENARIOS = max(10, MAX_EXAMPLES // 2)
CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ_SETTINGS = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)

Case = schemathesis.Case[Any]

STATE_FLAG = "fuzz-state"  # its per-environment state is fuzzed in production
TARGETED_FLAG = "fuzz-targeted"  # enabled, 50% rollout and rules: OFREP contexts are fuzzed against it


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
        response = client.post(
            "/api/v1/tokens", json={"scope": "sdk", "environment": "production", "name": "fuzz"}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


@pytest.fixture(scope="module")
def flags(live_server: Server) -> None:
    rules = [
        {"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}]},
        {
            "conditions": [
                {"attribute": "plan", "operator": "in", "values": ["pro", "team"]},
                {"attribute": "app_version", "operator": "semver_gte", "values": ["2.1.0"]},
            ]
        },
        {"conditions": [{"attribute": "age", "operator": "gt", "values": [17]}], "variant": "off"},
    ]
    with live_server.client() as client:
        for key in (STATE_FLAG, TARGETED_FLAG):
            assert client.post("/api/v1/flags", json={"key": key}).status_code == 201
        response = client.put(
            f"/api/v1/flags/{TARGETED_FLAG}/environments/production",
            json={"enabled": True, "rollout": 50, "rules": rules},
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def protected_token_ids(live_server: Server, sdk_token: str) -> frozenset[str]:
    """The fuzzer must not revoke the tokens it authenticates with: the rest of the run would be 401s."""
    with live_server.client() as client:
        return frozenset(t["id"] for t in client.get("/api/v1/tokens").json())


def _load(server: Server, token: str, parameters: dict[str, str] | None = None) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=PATIENCE_S)
    schema.config.update(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, parameters=parameters
    )
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, database="none"
    )
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
    return schema


@pytest.fixture(scope="module")
def admin_schema(live_server: Server) -> schemathesis.BaseSchema:
    return _load(live_server, live_server.admin_token)


@pytest.fixture(scope="module")
def sdk_schema(live_server: Server, sdk_token: str) -> schemathesis.BaseSchema:
    return _load(live_server, sdk_token)


@pytest.fixture(scope="module")
def existing_flag_schema(live_server: Server, flags: None) -> schemathesis.BaseSchema:
    return _load(
        live_server, live_server.admin_token, {"path.key": STATE_FLAG, "path.environment": "production"}
    )


@pytest.fixture(scope="module")
def targeted_ofrep_schema(live_server: Server, sdk_token: str, flags: None) -> schemathesis.BaseSchema:
    return _load(live_server, sdk_token, {"path.key": TARGETED_FLAG})


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's from_fixture() reads `node._nodeid`, which pytest 9 no longer has; give it one.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _spare_protected_tokens(case: Case, protected: frozenset[str]) -> None:
    if case.method.upper() == "DELETE" and (case.path_parameters or {}).get("token_id") in protected:
        case.path_parameters["token_id"] = "no-such-token"


# Operation filters go on these lazy schemas: from_fixture() drops filters set on the fixture's schema.
admin_api = schemathesis.pytest.from_fixture("admin_schema")
sdk_api = schemathesis.pytest.from_fixture("sdk_schema").include(path_regex=r"^/ofrep/")
# Deleting the flag would leave nothing to fuzz; DELETE is fuzzed with random keys by the admin test.
existing_flag_api = (
    schemathesis.pytest.from_fixture("existing_flag_schema")
    .include(path_regex=r"^/api/v1/flags/\{key\}")
    .exclude(method="DELETE")
)
targeted_ofrep_api = schemathesis.pytest.from_fixture("targeted_ofrep_schema").include(
    path_regex=r"^/ofrep/v1/evaluate/flags/\{key\}$"
)


@admin_api.parametrize()
@FUZZ_SETTINGS
def test_every_operation_with_an_admin_token(case: Case, protected_token_ids: frozenset[str]) -> None:
    _spare_protected_tokens(case, protected_token_ids)
    case.call_and_validate(checks=CHECKS)


@sdk_api.parametrize()
@FUZZ_SETTINGS
def test_ofrep_with_an_sdk_token(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


@existing_flag_api.parametrize()
@FUZZ_SETTINGS
def test_operations_on_an_existing_flag(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


@targeted_ofrep_api.parametrize()
@FUZZ_SETTINGS
def test_ofrep_contexts_against_a_targeted_flag(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


def _failure_titles(group: BaseExceptionGroup[BaseException]) -> str:
    return "; ".join(sorted({str(e).splitlines()[0] for e in group.exceptions}))


def test_stateful_sequences(
    admin_schema: schemathesis.BaseSchema, protected_token_ids: frozenset[str]
) -> None:
    """Chains of calls linked through the schema: create a flag, then read, change, kill or delete it, …"""
    calls: list[str] = []
    scenarios: list[int] = []
    failures: dict[str, str] = {}  # one report per operation and kind of failure

    # OFREP has no links to follow; its routes are fuzzed above.
    class Sequences(admin_schema.include(path_regex=r"^/api/").as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            scenarios.append(len(calls))

        def before_call(self, case: Case) -> None:
            _spare_protected_tokens(case, protected_token_ids)

        def after_call(self, response: schemathesis.Response, case: Case) -> None:
            calls.append(f"{case.method.upper()} {case.operation.path} {response.status_code}")

        def validate_response(
            self,
            response: schemathesis.Response,
            case: Case,
            additional_checks: object = None,
            **kwargs: object,
        ) -> None:
            # Collected rather than raised: the server keeps what earlier scenarios did, so Hypothesis could
            # not replay a failing scenario faithfully and would report a "flaky strategy" instead of the bug.
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except BaseExceptionGroup as group:
                failures.setdefault(f"{case.operation.label}: {_failure_titles(group)}", str(group))

    for _session in range(3):
        remaining = STATEFUL_SCENARIOS - len(scenarios)
        if remaining <= 0:
            break
        try:
            Sequences.run(
                settings=settings(
                    FUZZ_SETTINGS,
                    max_examples=remaining,
                    stateful_step_count=8,
                    phases=[Phase.explicit, Phase.generate],
                )
            )
            break
        except Flaky:
            # What earlier scenarios left on the server changed what a replayed one drew. Like schemathesis'
            # own runner, carry on in a fresh session: this is about the test's inputs, not a product failure.
            continue
    assert calls, "the state machine made no calls"
    assert not failures, "\n\n".join(failures.values())


def _integer_parameters(schema: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, location, name) of every query or path parameter declared as an integer."""
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                declared = parameter.get("schema", {})
                if parameter["in"] in ("query", "path") and any(
                    t.get("type") == "integer" for t in [declared, *declared.get("anyOf", [])]
                ):
                    found.append((method.upper(), path, parameter["in"], parameter["name"]))
    return found


def _first_problem(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    location: str,
    name: str,
    value: int,
    auth: dict[str, str],
    protected: frozenset[str],
) -> str | None:
    """Send a few generated requests to `operation` with parameter `name` set to `value`; the first failure."""
    problems: list[str] = []
    fixed = {name: value}

    @given(
        case=operation.as_strategy(
            query=fixed if location == "query" else None,
            path_parameters=fixed if location == "path" else None,
        )
    )
    @settings(FUZZ_SETTINGS, max_examples=3, phases=[Phase.generate])
    def send(case: Case) -> None:
        _spare_protected_tokens(case, protected)
        response = case.call(headers=auth)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except BaseExceptionGroup as group:
            problems.append(f"{_failure_titles(group)}: {response.status_code} {response.text[:150]}")

    send()
    return problems[0] if problems else None


def test_integer_parameters_beyond_64_bits(
    live_server: Server, admin_schema: schemathesis.BaseSchema, protected_token_ids: frozenset[str]
) -> None:
    """The generators seldom reach numbers a database column cannot hold, so try those on purpose.

    An integer the schema allows but the database cannot store gets a 4xx, or simply matches nothing; it
    never causes a 5xx. The rest of each request (other parameters, the body) is generated as usual.
    """
    raw = httpx.get(f"{live_server.url}/openapi.json", timeout=PATIENCE_S).json()
    targets = _integer_parameters(raw)
    assert targets, "expected at least one integer parameter (e.g. GET /api/v1/audit?before=)"
    auth = {"Authorization": f"Bearer {live_server.admin_token}"}
    problems = []
    for method, path, location, name in targets:
        for value in (2**63, -(2**63) - 1, 10**30):
            problem = _first_problem(
                admin_schema[path][method], location, name, value, auth, protected_token_ids
            )
            if problem:
                problems.append(f"{method} {path} with {name}={value} -> {problem}")
    assert not problems, "\n".join(problems)


def test_the_fuzzed_server_is_still_healthy(live_server: Server) -> None:
    """Runs last in the module: after all that, the server still answers and its admin token still works."""
    assert httpx.get(f"{live_server.url}/readyz", timeout=PATIENCE_S).status_code == 200
    with live_server.client() as client:
        assert client.get("/api/v1/flags").status_code == 200
    errors = [
        line
        for line in live_server.output().splitlines()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)
    ]
    assert not errors, "the server logged unhandled exceptions:\n" + "\n".join(sorted(set(errors)))

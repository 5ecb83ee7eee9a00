"""OFREP through the real PyPI OpenFeature SDK and OFREP provider, against a running server: the module's one
per backend (`shared_server`), each test on flags and tokens of its own."""

import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from rampup.core.bucketing import in_rollout
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S, wait_until

# Every answer is checked against the bucketing function itself, so a thousand users show what a share would;
# the distribution of the function is tested in tests/unit/core/test_bucketing.py.
USERS = [f"user-{i}" for i in range(1_000)]


def sdk_token(server: Server, environment: str = "production") -> str:
    response = server.client().post("/api/v1/tokens", json={"scope": "sdk", "environment": environment})
    return str(response.json()["token"])


@pytest.fixture
def of_client(shared_server: Server) -> Iterator[OpenFeatureClient]:
    token = sdk_token(shared_server)
    domain = f"rampup-{uuid.uuid4().hex}"
    openfeature.set_provider_and_wait(
        OFREPProvider(shared_server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}),
        domain=domain,
    )
    yield openfeature.get_client(domain)
    openfeature.shutdown()


def set_state(server: Server, key: str, **state: object) -> None:
    response = server.client().put(f"/api/v1/flags/{key}/environments/production", json=state)
    assert response.status_code == 200, response.text


def new_flag(server: Server, **body: object) -> str:
    key = f"ofrep-{uuid.uuid4().hex[:8]}"
    assert server.client().post("/api/v1/flags", json={"key": key, **body}).status_code == 201
    return key


def test_rollout_share_raise_and_kill_through_the_real_openfeature_client(
    shared_server: Server, of_client: OpenFeatureClient
) -> None:
    # A key of its own, always the same: USERS' share of it is the same every run.
    key = "ofrep-raise-and-kill"
    assert shared_server.client().post("/api/v1/flags", json={"key": key}).status_code == 201
    set_state(shared_server, key, enabled=True, rollout=25)

    at_25 = {u: of_client.get_boolean_details(key, False, EvaluationContext(targeting_key=u)) for u in USERS}
    assert [d.value for d in at_25.values()] == [in_rollout(key, u, 25) for u in USERS]
    assert 0.2 <= sum(d.value for d in at_25.values()) / len(USERS) <= 0.3
    assert {d.reason for d in at_25.values()} == {Reason.SPLIT}
    assert {d.variant for d in at_25.values() if d.value} == {"on"}
    assert {d.variant for d in at_25.values() if not d.value} == {"off"}
    assert {d.flag_metadata["version"] for d in at_25.values()} == {2}

    set_state(shared_server, key, rollout=50)
    at_50 = {u: of_client.get_boolean_value(key, False, EvaluationContext(targeting_key=u)) for u in USERS}
    assert all(at_50[u] for u, d in at_25.items() if d.value), "raising 25% → 50% must keep every 25% user"
    assert list(at_50.values()) == [in_rollout(key, u, 50) for u in USERS]

    shared_server.client().post(f"/api/v1/flags/{key}/environments/production/kill", json={"reason": "test"})
    killed = [
        of_client.get_boolean_details(key, True, EvaluationContext(targeting_key=u)) for u in USERS[:500]
    ]
    assert {(d.value, d.reason) for d in killed} == {(False, Reason.DISABLED)}


def test_unknown_flag_and_missing_targeting_key(shared_server: Server, of_client: OpenFeatureClient) -> None:
    missing = of_client.get_boolean_details("no-such-flag", True, EvaluationContext(targeting_key="u1"))
    assert (missing.value, missing.error_code, missing.reason) == (
        True,
        ErrorCode.FLAG_NOT_FOUND,
        Reason.ERROR,
    )

    key = new_flag(shared_server)
    set_state(shared_server, key, enabled=True, rollout=25)
    no_key = of_client.get_boolean_details(key, True)
    assert (no_key.value, no_key.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)


def test_flags_that_need_no_targeting_key_evaluate_without_one(
    shared_server: Server, of_client: OpenFeatureClient
) -> None:
    everyone = new_flag(shared_server)
    set_state(shared_server, everyone, enabled=True, rollout=100)
    details = of_client.get_boolean_details(everyone, False)
    assert (details.value, details.reason, details.variant, details.error_code) == (
        True,
        Reason.STATIC,
        "on",
        None,
    )
    off = of_client.get_boolean_details(new_flag(shared_server), True)
    assert (off.value, off.reason) == (False, Reason.DISABLED)


def test_targeting_rules_and_multivariate_through_openfeature(
    shared_server: Server, of_client: OpenFeatureClient
) -> None:
    key = new_flag(shared_server)
    set_state(
        shared_server,
        key,
        enabled=True,
        rollout=0,
        rules=[{"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}]}],
    )
    staff = of_client.get_boolean_details(key, False, EvaluationContext("u1", {"email": "dana@example.com"}))
    other = of_client.get_boolean_details(key, False, EvaluationContext("u2", {"email": "pat@elsewhere.org"}))
    assert (staff.value, staff.reason) == (True, Reason.TARGETING_MATCH)
    assert (other.value, other.reason) == (False, Reason.DEFAULT)

    colors = new_flag(
        shared_server,
        type="string",
        variants=[{"name": "control", "value": "grey"}, {"name": "blue", "value": "blue"}],
    )
    set_state(shared_server, colors, enabled=True, rollout=100)
    values = {of_client.get_string_value(colors, "none", EvaluationContext(f"u{i}")) for i in range(50)}
    assert values == {"blue"}


def test_bulk_evaluation_with_etag(shared_server: Server) -> None:
    token = sdk_token(shared_server)
    key = new_flag(shared_server)
    set_state(shared_server, key, enabled=True, rollout=100)
    url = f"{shared_server.url}/ofrep/v1/evaluate/flags"
    headers = {"Authorization": f"Bearer {token}"}
    body = {"context": {"targetingKey": "user-7"}}
    first = httpx.post(url, json=body, headers=headers, timeout=PATIENCE_S)
    assert first.status_code == 200 and first.headers["etag"]
    flags = {f["key"]: f for f in first.json()["flags"]}
    assert flags[key] == {
        "key": key,
        "value": True,
        "reason": "STATIC",
        "variant": "on",
        "metadata": {"version": 2},
    }
    assert flags["workstation"]["reason"] == "DISABLED"

    again = httpx.post(
        url, json=body, headers={**headers, "If-None-Match": first.headers["etag"]}, timeout=PATIENCE_S
    )
    assert again.status_code == 304 and again.content == b""
    set_state(shared_server, key, rollout=0)
    changed = httpx.post(
        url, json=body, headers={**headers, "If-None-Match": first.headers["etag"]}, timeout=PATIENCE_S
    )
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "PARSE_ERROR"),
        (b"[]", 400, "PARSE_ERROR"),
        (b'{"context": "u1"}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 42}}', 400, "INVALID_CONTEXT"),
    ],
)
def test_bad_ofrep_requests_get_the_spec_error_codes(
    shared_sqlite_server: Server, body: bytes, status: int, code: str
) -> None:
    token = sdk_token(shared_sqlite_server)
    response = httpx.post(
        f"{shared_sqlite_server.url}/ofrep/v1/evaluate/flags/workstation",
        content=body,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        timeout=PATIENCE_S,
    )
    assert response.status_code == status
    assert response.json()["errorCode"] == code and response.json()["key"] == "workstation"
    assert response.json()["errorDetails"]


def test_ofrep_auth(shared_sqlite_server: Server) -> None:
    url = f"{shared_sqlite_server.url}/ofrep/v1/evaluate/flags/workstation"
    staging = sdk_token(shared_sqlite_server, "staging")
    ingest = shared_sqlite_server.client().post(
        "/api/v1/tokens", json={"scope": "ingest", "environment": "production"}
    )
    assert httpx.post(url, json={}, timeout=PATIENCE_S).status_code == 401
    assert (
        httpx.post(url, json={}, headers={"Authorization": "Bearer rp_wrong"}, timeout=PATIENCE_S).status_code
        == 401
    )
    assert (
        httpx.post(
            url, json={}, headers={"Authorization": f"Bearer {ingest.json()['token']}"}, timeout=PATIENCE_S
        ).status_code
        == 403
    )
    by_api_key = httpx.post(url, json={}, headers={"X-API-Key": staging}, timeout=PATIENCE_S)
    assert by_api_key.status_code == 200 and by_api_key.json()["reason"] == "DISABLED"
    admin = httpx.post(
        url + "?environment=production",
        json={},
        headers={"Authorization": f"Bearer {shared_sqlite_server.admin_token}"},
        timeout=PATIENCE_S,
    )
    assert admin.status_code == 200
    assert (
        httpx.post(
            url,
            json={},
            headers={"Authorization": f"Bearer {shared_sqlite_server.admin_token}"},
            timeout=PATIENCE_S,
        ).status_code
        == 400
    )
    assert httpx.get(url, headers={"X-API-Key": staging}, timeout=PATIENCE_S).status_code == 405
    too_big = httpx.post(
        url, content=b"{" + b" " * 300_000 + b"}", headers={"X-API-Key": staging}, timeout=PATIENCE_S
    )
    assert too_big.status_code == 413


def ofrep_streams_open(server: Server) -> float:
    metrics = server.client().get("/metrics").text
    lines = [m for m in metrics.splitlines() if m.startswith('rampup_stream_clients{stream="ofrep"}')]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_bulk_announces_a_change_stream_that_says_refetch_on_change(shared_sqlite_server: Server) -> None:
    token = sdk_token(shared_sqlite_server)
    key = new_flag(shared_sqlite_server)
    bulk = httpx.post(
        f"{shared_sqlite_server.url}/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "u1"}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=PATIENCE_S,
    ).json()
    (stream,) = bulk["eventStreams"]
    assert stream["type"] == "sse" and stream["url"].startswith(
        f"{shared_sqlite_server.url}/ofrep/v1/events/2?ticket="
    )
    received: list[str] = []
    already_open = ofrep_streams_open(shared_sqlite_server)

    def listen() -> None:
        with httpx.stream("GET", stream["url"], timeout=10) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    received.append(line)
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_until(lambda: ofrep_streams_open(shared_sqlite_server) == already_open + 1, "the stream is open")
    assert received == []  # connected, and nothing has changed yet: nothing is sent
    set_state(shared_sqlite_server, key, enabled=True, rollout=40)
    listener.join(timeout=PATIENCE_S)  # how soon it arrives is measured in bench/, not here
    assert received and json.loads(received[0][5:])["type"] == "refetchEvaluation"
    assert httpx.get(f"{shared_sqlite_server.url}/ofrep/v1/events/99", timeout=PATIENCE_S).status_code == 404

"""A DSN's key is public: what it can make the server do must stay small. A session aggregate is stored as a
count (not expanded into one row per session), and each ingest token has a rate."""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.api import new_token
from tests.support.rawhttp import resident_bytes
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S

MiB = 1024 * 1024
PRODUCTION_ID = 2


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    # A burst of 3, then one request every 1,000 s: the fourth request in a row is always refused.
    rate = {"RAMPUP_INGEST_RATE": "0.001", "RAMPUP_INGEST_BURST": "3"}
    return module_server_factory(module_database_url("sqlite"), extra_env=rate)


def new_dsn_key(server: Server) -> str:
    with server.client() as api:
        return new_token(api)


def sessions(server: Server) -> tuple[int, int]:
    """(sessions, failed ones) in production over the last 48 hours."""
    with server.client() as api:
        response = api.get(
            "/api/v1/metrics", params={"metric": "error_rate", "environment": "production", "window": "48h"}
        )
    assert response.status_code == 200, response.text
    everyone = response.json()["variants"]["all"]
    return int(everyone["count"]), int(everyone["failures"])


def post_envelope(server: Server, key: str, body: bytes) -> httpx.Response:
    url = f"{server.url}/api/{PRODUCTION_ID}/envelope/"
    return httpx.post(url, params={"sentry_key": key}, content=body, timeout=PATIENCE_S)


def test_a_billion_sessions_in_one_aggregate_cost_one_row(server: Server) -> None:
    key = new_dsn_key(server)
    started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    payload = json.dumps({"aggregates": [{"started": started, "exited": 1_000_000_000, "crashed": 7}]})
    body = b'{}\n{"type":"sessions"}\n' + payload.encode() + b"\n"
    assert len(body) < 130  # a billion sessions in a 115-byte envelope, with a crash count added
    before, rss = sessions(server), resident_bytes(server.process.pid)
    response = post_envelope(server, key, body)
    assert response.status_code == 200, response.text
    assert sessions(server) == (before[0] + 1_000_000_007, before[1] + 7)
    assert resident_bytes(server.process.pid) - rss < 16 * MiB

    too_many = body.replace(b"1000000000", b"1000000001")
    refused = post_envelope(server, key, too_many)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["where"] == "item 0 (sessions).aggregates[0].exited"


def test_each_ingest_token_has_a_rate(server: Server) -> None:
    key, other = new_dsn_key(server), new_dsn_key(server)
    event = b'{}\n{"type":"event"}\n{"message":"boom","timestamp":%d}\n' % int(time.time())
    assert [post_envelope(server, key, event).status_code for _ in range(3)] == [200] * 3
    refused = post_envelope(server, key, event)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "slow_down" and int(refused.headers["Retry-After"]) >= 1
    # Refused before its body is parsed: not even broken JSON gets a 400 while the token is over its rate.
    assert post_envelope(server, key, b"not json").status_code == 429
    assert post_envelope(server, other, event).status_code == 200  # another token is not held back
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=PATIENCE_S
    ) as native:
        assert native.post("/api/v1/events", json={"events": []}).status_code == 429  # every ingest route

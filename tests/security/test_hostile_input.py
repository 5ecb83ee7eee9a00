"""Hostile YAML plans and Sentry envelopes against a real server: refused with a 4xx that says where, nothing
stored, and the server's memory unmoved."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.api import new_token
from tests.support.rawhttp import resident_bytes
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S

MiB = 1024 * 1024
PRODUCTION_ID = 2

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    return module_server_factory(module_database_url("sqlite"))


@pytest.fixture(scope="module")
def dsn_key(server: Server) -> str:
    with server.client() as api:
        return new_token(api)


def sessions_total(server: Server) -> int:
    with server.client() as api:
        response = api.get(
            "/api/v1/metrics", params={"metric": "error_rate", "environment": "production", "window": "48h"}
        )
    assert response.status_code == 200, response.text
    return int(response.json()["variants"]["all"]["count"])


@pytest.mark.parametrize(
    ("plan", "line", "words"),
    [
        (BILLION_LAUGHS, 5, "more than 10000 values"),
        ("name: x\nstages: &s\n  - name: a\n    more: *s\n", 4, "an alias that contains itself"),
        ("name: x\nstages: " + "[" * 5000 + "]" * 5000 + "\n", 2, "nested deeper than 32 levels"),
        ("name: x\n? [a, b]\n: 1\n", 2, "a key is a text"),
        ("name: x\n2: two\n", 2, "a key is a text"),
    ],
)
def test_hostile_yaml_plans_are_refused_with_a_line(server: Server, plan: str, line: int, words: str) -> None:
    assert len(BILLION_LAUGHS) < 400  # the classic: a few hundred bytes that expand to a billion strings
    before = resident_bytes(server.process.pid)
    with server.client() as api:
        response = api.post("/api/v1/rollouts", json={"plan": {"yaml": plan}, "filename": "bomb.yaml"})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert words in error["message"] and error["where"] == f"bomb.yaml:{line}", error
        assert api.get("/api/v1/rollouts").json() == []
    assert resident_bytes(server.process.pid) - before < 16 * MiB


def envelope(item_type: str, payload: bytes) -> bytes:
    header = json.dumps({"type": item_type, "length": len(payload)}).encode()
    return b"{}\n" + header + b"\n" + payload + b"\n"


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (
            envelope("session", b'{"status":"exited","attrs":' + nested(100_000) + b"}"),
            400,
            "item 0 (session)",
        ),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", 400, "envelope header"),
        (envelope("session", b'{"status":"crashed","timestamp":1e300}'), 422, "item 0 (session).timestamp"),
        (
            envelope("session", b'{"status":"crashed","timestamp":' + b"9" * 400 + b"}"),
            422,
            "item 0 (session).timestamp",
        ),
        (
            envelope("session", b'{"status":"crashed","started":"9999-12-31T23:59:59Z"}'),
            422,
            "item 0 (session).timestamp",
        ),
        (envelope("session", b'{"status":"crashed","timestamp":-1e300}'), 422, "item 0 (session).timestamp"),
        (
            envelope("sessions", b'{"aggregates":[{"started":"2999-01-01T00:00:00Z","crashed":1}]}'),
            422,
            "item 0 (sessions).aggregates[0].started",
        ),
        (
            envelope("transaction", b'{"timestamp":1.0,"start_timestamp":-5e300}'),
            422,
            "item 0 (transaction).start_timestamp",
        ),
    ],
)
def test_hostile_envelopes_are_refused_and_store_nothing(
    server: Server, dsn_key: str, body: bytes, status: int, where: str
) -> None:
    before = sessions_total(server)
    response = httpx.post(
        f"{server.url}/api/{PRODUCTION_ID}/envelope/",
        params={"sentry_key": dsn_key},
        content=body,
        timeout=PATIENCE_S,
    )
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["where"] == where, error
    assert sessions_total(server) == before

"""Scheduled changes tried by someone who should not, or with bodies nobody should send: refused with where,
and nothing scheduled."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rampup.services.scheduled_changes import MAX_PENDING_PER_FLAG
from tests.support import api
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S

FLAG = "checkout"
PATH = "/api/v1/scheduled-changes"


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    server = module_server_factory(module_database_url("sqlite"), manual_clock=True)
    with server.client() as admin:
        assert admin.post("/api/v1/flags", json={"key": FLAG}).status_code == 201
    return server


def body(**fields: Any) -> dict[str, Any]:
    return {"flag": FLAG, "environment": "production", "at": "23:59", "change": {"enabled": True}, **fields}


def everything(server: Server) -> list[dict[str, Any]]:
    with server.client() as admin:
        return list(admin.get(PATH, params={"limit": 1000}).json())


@pytest.mark.parametrize(
    ("scope", "environment"), [("read", None), ("sdk", "production"), ("ingest", "production")]
)
def test_a_token_that_may_not_change_flags_cannot_schedule_or_cancel(
    server: Server, scope: str, environment: str | None
) -> None:
    with server.client() as admin:
        token = api.new_token(admin, scope, environment)
        pending = admin.post(PATH, json=body(at="23:58"))
    assert pending.status_code == 201, pending.text
    before = everything(server)
    with server.client(token) as them:
        assert them.post(PATH, json=body()).status_code == 403
        assert them.post(f"{PATH}/{pending.json()['id']}/cancel", json={}).status_code == 403
        assert them.get(PATH).status_code == (200 if scope == "read" else 403)  # a read token may look
    assert everything(server) == before
    with server.client() as admin:
        assert admin.post(f"{PATH}/{pending.json()['id']}/cancel", json={}).status_code == 200


LONG = "x" * 100_000


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"at": "9999-12-31 23:59"}, "at"),
        ({"at": "2020-01-01 00:00"}, "at"),
        ({"at": LONG}, "at"),
        ({"at": "2026-02-30 09:00"}, "at"),
        ({"at": 1767254400}, "at"),
        ({"timezone": "../../../../etc/passwd"}, "timezone"),
        ({"timezone": "Europe/Berlin\x00"}, "body"),
        ({"reason": "\x00"}, "body"),  # a NUL anywhere: the whole body is refused
        ({"reason": LONG}, "reason"),
        ({"change": {"rollout": 1e308}}, "change.rollout"),
        ({"change": {"rollout": True}}, "change.rollout"),
        ({"change": {"version": 1}}, "change.version"),
        ({"change": {"rules": [{"conditions": [], "variant": "on"}] * 1001}}, "change.rules"),
        ({"change": {"salt": LONG}}, "change.salt"),
        ({"change": {"enabled": True}, "run": "rm -rf /"}, "run"),
        ({"notify": [f"c{i}" for i in range(21)]}, "notify"),
        ({"flag": "../flags"}, None),
        ({"environment": "production\n"}, None),
    ],
)
def test_hostile_bodies_are_refused_and_schedule_nothing(
    server: Server, fields: dict[str, Any], where: str | None
) -> None:
    before = everything(server)
    with server.client() as admin:
        refused = admin.post(PATH, json=body(**fields))
    assert refused.status_code in (404, 422), refused.text
    if where is not None:
        assert refused.status_code == 422 and refused.json()["error"]["where"].startswith(where), refused.text
    assert everything(server) == before


def test_an_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    with server.client() as admin:
        refused = admin.post(PATH, content=b'{"reason": "' + b"x" * 2_000_000 + b'"}')
    assert refused.status_code == 413


def test_pending_changes_are_limited_and_ids_beyond_the_range_are_refused(server: Server) -> None:
    with server.client() as admin:
        admin.post("/api/v1/flags", json={"key": "limited"})
        for minute in range(MAX_PENDING_PER_FLAG):
            assert admin.post(PATH, json=body(flag="limited", at=f"23:{minute:02d}")).status_code == 201
        before = everything(server)
        over = admin.post(PATH, json=body(flag="limited", at="22:00"))
        assert over.status_code == 409 and "pending changes" in over.json()["error"]["message"]
        assert everything(server) == before
        for path in (f"{PATH}/{2**40}", f"{PATH}/0", f"{PATH}/-1", f"{PATH}/x"):
            assert admin.get(path).status_code == 422
        assert admin.post(f"{PATH}/{2**31 - 1}/cancel").status_code == 404
        assert httpx.get(f"{server.url}{PATH}", timeout=PATIENCE_S).status_code == 401

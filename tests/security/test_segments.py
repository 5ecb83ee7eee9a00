"""The segment endpoints against an attacker: too many keys, keys too long, bodies too large, bad names and
values, the wrong scope. Each is refused with where, and nothing changes (not even the revision)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.api import new_token
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S

SEGMENTS = "/api/v1/environments/production/segments"


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    server = module_server_factory(module_database_url("sqlite"))
    with server.client() as api:
        created = api.post(SEGMENTS, json={"key": "beta", "keys": ["u-1", "u-2"]})
        assert created.status_code == 201, created.text
    return server


def revision(api: httpx.Client) -> int:
    return int(api.get("/api/v1/audit", params={"limit": 1}).json()[0]["id"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "where"),
    [
        ("POST", SEGMENTS, {"key": "many", "keys": [f"k{i}" for i in range(100_001)]}, 422, "keys"),
        ("POST", SEGMENTS, {"key": "long", "keys": ["ok", "x" * 257]}, 422, "keys.1"),
        ("POST", SEGMENTS, {"key": "empty", "keys": [""]}, 422, "keys.0"),
        ("POST", SEGMENTS, {"key": "nul", "keys": ["a\x00b"]}, 422, "body"),
        ("POST", SEGMENTS, {"key": "../etc", "keys": []}, 422, "key"),
        ("POST", SEGMENTS, {"key": "beta"}, 409, None),
        ("POST", SEGMENTS, {"key": "typed", "keys": [1, 2]}, 422, "keys.0"),
        (
            "POST",
            SEGMENTS,
            {"key": "deep", "conditions": [{"operator": "in_segment", "values": ["beta"]}]},
            422,
            "conditions[0].operator",
        ),
        (
            "POST",
            SEGMENTS,
            {"key": "cond", "conditions": [{"attribute": "a", "operator": "in", "values": [[1]]}]},
            422,
            "conditions.0.values.0.str",
        ),
        ("POST", "/api/v1/environments/nowhere/segments", {"key": "x"}, 404, None),
        ("PATCH", f"{SEGMENTS}/beta", {"keys": ["a"], "add_keys": ["b"]}, 422, "keys"),
        ("PATCH", f"{SEGMENTS}/beta", {"add_keys": [f"k{i}" for i in range(100_001)]}, 422, "add_keys"),
        ("PATCH", f"{SEGMENTS}/beta", {"version": 99, "description": "x"}, 409, None),
        ("PATCH", f"{SEGMENTS}/beta", {"unknown": 1}, 422, "unknown"),
        ("PATCH", f"{SEGMENTS}/nobody", {"description": "x"}, 404, None),
    ],
)
def test_hostile_segments_are_refused_and_change_nothing(
    server: Server, method: str, path: str, body: Any, status: int, where: str | None
) -> None:
    with server.client() as api:
        before = revision(api)
        response = api.request(method, path, json=body)
        assert response.status_code == status, response.text[:500]
        error = response.json()["error"]
        if where is not None:
            assert error["where"] == where, error
        assert revision(api) == before
        beta = api.get(f"{SEGMENTS}/beta").json()
        assert (beta["keys"], beta["version"]) == (["u-1", "u-2"], 1)


def test_keys_that_change_nothing_answer_the_segment_as_it_is(server: Server) -> None:
    with server.client() as api:
        before = revision(api)
        for body in ({"remove_keys": ["nobody"]}, {"add_keys": ["u-1"]}):
            same = api.patch(f"{SEGMENTS}/beta", json=body)
            assert same.status_code == 200, same.text
            assert (same.json()["key_count"], same.json()["version"]) == (2, 1)
        assert revision(api) == before


def test_a_segment_grows_to_its_limit_and_no_further(server: Server) -> None:
    with server.client() as api:
        created = api.post(SEGMENTS, json={"key": "big", "keys": [f"user-{i:06d}" for i in range(60_000)]})
        assert created.status_code == 201, created.text
        refused = api.patch(f"{SEGMENTS}/big", json={"add_keys": [f"more-{i:06d}" for i in range(40_001)]})
        assert refused.status_code == 422 and refused.json()["error"]["where"] == "add_keys", refused.text
        grown = api.patch(f"{SEGMENTS}/big", json={"add_keys": [f"more-{i:06d}" for i in range(40_000)]})
        assert grown.status_code == 200 and grown.json()["key_count"] == 100_000, grown.text
        assert api.delete(f"{SEGMENTS}/big").status_code == 204


def test_a_body_over_the_segment_limit_is_refused_before_it_is_read(server: Server) -> None:
    with server.client() as api:
        huge = api.post(SEGMENTS, json={"key": "huge", "keys": ["x" * 250] * 17_000})  # about 4.3 MB
        assert huge.status_code == 413, huge.text[:300]
        assert api.get(f"{SEGMENTS}/huge").status_code == 404


def test_segments_take_the_right_scope(server: Server) -> None:
    with server.client() as api:
        reader, sdk = new_token(api, "read", env=None), new_token(api, "sdk")
    with server.client(reader) as api:
        assert api.get(SEGMENTS).status_code == 200
        assert api.post(SEGMENTS, json={"key": "mine"}).status_code == 403
        assert api.patch(f"{SEGMENTS}/beta", json={"add_keys": ["me"]}).status_code == 403
        assert api.delete(f"{SEGMENTS}/beta").status_code == 403
    with server.client(sdk) as api:  # an SDK gets the segments its flags use in its configuration, not these
        assert api.get(f"{SEGMENTS}/beta").status_code == 403
    with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as anonymous:
        assert anonymous.get(SEGMENTS).status_code == 401

"""Browsers: OFREP answers CORS preflights for the configured origins only (none by default), and the change
stream it announces is at the configured public URL, whatever Host header a client sends."""

from collections.abc import Callable

import httpx
import pytest

from tests.support.api import new_token
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S

APP = "https://app.example.com"
BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    origins = {"RAMPUP_CORS_ORIGINS": f"{APP}, https://admin.example.com"}
    return module_server_factory(module_database_url("sqlite"), extra_env=origins)


@pytest.fixture(scope="module")
def sdk_token(server: Server) -> str:
    with server.client() as api:
        return new_token(api, "sdk")


def preflight(server: Server, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return httpx.options(server.url + BULK, headers=headers)


def test_a_configured_origin_may_call_ofrep_from_a_browser(server: Server, sdk_token: str) -> None:
    allowed = preflight(server, APP)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]

    evaluated = httpx.post(
        server.url + BULK,
        json={"context": {"targetingKey": "u1"}},
        headers={"Authorization": f"Bearer {sdk_token}", "Origin": APP},
        timeout=PATIENCE_S,
    )
    assert evaluated.status_code == 200
    assert evaluated.headers["access-control-allow-origin"] == APP
    assert evaluated.headers["access-control-expose-headers"] == "etag"


def test_any_other_origin_gets_no_cors_grant(server: Server, sdk_token: str) -> None:
    refused = preflight(server, "https://evil.example.com")
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert preflight(server, APP + ".evil.example.com").status_code == 403
    answered = httpx.post(
        server.url + BULK,
        json={"context": {"targetingKey": "u1"}},
        headers={"Authorization": f"Bearer {sdk_token}", "Origin": "https://evil.example.com"},
        timeout=PATIENCE_S,
    )
    assert answered.status_code == 200 and "access-control-allow-origin" not in answered.headers
    with server.client() as api:  # the admin API is never cross-origin
        assert "access-control-allow-origin" not in api.get("/api/v1/flags", headers={"Origin": APP}).headers


def test_no_origin_is_allowed_unless_configured(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    assert preflight(server_factory(make_database_url("sqlite")), APP).status_code == 403


def test_event_streams_point_at_the_public_url_not_the_host_header(server: Server, sdk_token: str) -> None:
    spoofed = httpx.post(
        server.url + BULK,
        json={"context": {"targetingKey": "u1"}},
        headers={"Authorization": f"Bearer {sdk_token}", "Host": "evil.example.com"},
        timeout=PATIENCE_S,
    )
    assert spoofed.status_code == 200
    (stream,) = spoofed.json()["eventStreams"]
    assert stream["url"].startswith(f"{server.url}/ofrep/v1/events/2?ticket=")

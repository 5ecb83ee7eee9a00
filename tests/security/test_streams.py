"""Server-sent event streams hold a socket each for as long as a client likes: none is anonymous, and each token
and the whole process have a limit (here 2 per token, 3 in all)."""

from collections.abc import Callable
from contextlib import ExitStack

import httpx
import pytest

from tests.support.api import new_token
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S, wait_until


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    limits = {"RAMPUP_STREAMS_PER_TOKEN": "2", "RAMPUP_MAX_STREAMS": "3"}
    return module_server_factory(module_database_url("sqlite"), extra_env=limits)


def sdk_token(server: Server) -> str:
    with server.client() as api:
        return new_token(api, "sdk")


def open_stream(stack: ExitStack, server: Server, token: str) -> httpx.Response:
    client = stack.enter_context(
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE_S)
    )
    return stack.enter_context(client.stream("GET", "/api/v1/sdk/stream"))


def test_anonymous_and_forged_ofrep_streams_are_refused(server: Server) -> None:
    token = sdk_token(server)
    bulk = httpx.post(
        f"{server.url}/ofrep/v1/evaluate/flags",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=PATIENCE_S,
    )
    (stream,) = bulk.json()["eventStreams"]
    ticket = stream["url"].split("ticket=")[1]
    assert token not in stream["url"]  # the URL names the token, never its secret
    assert httpx.get(f"{server.url}/ofrep/v1/events/2", timeout=PATIENCE_S).status_code == 401
    forged = ticket.split(".")[0] + "." + "0" * 32
    assert (
        httpx.get(
            f"{server.url}/ofrep/v1/events/2", params={"ticket": forged}, timeout=PATIENCE_S
        ).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{server.url}/ofrep/v1/events/1", params={"ticket": ticket}, timeout=PATIENCE_S
        ).status_code
        == 401
    )  # staging
    with httpx.stream("GET", stream["url"], timeout=PATIENCE_S) as opened:
        assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/event-stream")
    with server.client() as api:
        token_id = ticket.split(".")[0]
        assert api.delete(f"/api/v1/tokens/{token_id}").status_code in (200, 204)
    assert httpx.get(stream["url"], timeout=PATIENCE_S).status_code == 401  # revoked: its tickets go with it


def test_streams_are_limited_per_token_and_in_all(server: Server) -> None:
    first, second = sdk_token(server), sdk_token(server)
    with ExitStack() as stack:
        assert [open_stream(stack, server, first).status_code for _ in range(2)] == [200, 200]
        third = open_stream(stack, server, first)
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert open_stream(stack, server, second).status_code == 200  # another token: the third in all
        assert open_stream(stack, server, second).status_code == 429  # the process is full
    # Closed streams give their places back.
    with ExitStack() as stack:
        wait_until(
            lambda: open_stream(stack, server, second).status_code == 200, "a place after the others closed"
        )

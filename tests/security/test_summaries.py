"""POST /api/v1/summaries against an attacker holding an ingest token: a body over the limit is refused with 413
before anything parses it (declared on the wire, or once inflated), a summary of more than MAX_CELLS cells with
422 naming where; and none of them stores anything."""

import gzip
import json
import time
from collections.abc import Callable

import httpx
import pytest

from rampup.adapters.codecs.summaries import MAX_CELLS
from rampup.http.limits import INGEST_BODY
from rampup.http.routes.ingest import MAX_INFLATED
from tests.support.rawhttp import exchange
from tests.support.servers import Server
from tests.support.tokens import new_token

SUMMARIES = "/api/v1/summaries"


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    return module_server_factory(module_database_url("sqlite"))


@pytest.fixture(scope="module")
def ingest(server: Server) -> str:
    return new_token(server, "ingest", "attacker")


def requests_counted(server: Server) -> int:
    with server.client() as c:
        r = c.get(
            "/api/v1/metrics", params={"metric": "error_rate", "environment": "production", "window": "1h"}
        )
    assert r.status_code == 200, r.text
    return int(r.json()["variants"]["all"]["count"])


def cells(n: int) -> list[dict[str, object]]:
    now = int(time.time())
    return [
        {"flag": "", "variant": "all", "metric": "error_rate", "second": now - i, "count": 1, "failures": 0}
        for i in range(n)
    ]


def test_an_oversized_body_is_refused_before_it_is_parsed(server: Server, ingest: str) -> None:
    before = requests_counted(server)
    head = (
        f"POST {SUMMARIES} HTTP/1.1\r\nHost: rampup\r\nAuthorization: Bearer {ingest}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {INGEST_BODY + 1}\r\n\r\n"
    ).encode()
    declared = exchange(server.url, head)  # not a byte of the body sent: refused on what the head declares
    assert declared.status == 413 and b"too_large" in declared.body, declared
    bomb = gzip.compress(b'{"seconds": [' + b" " * (MAX_INFLATED + 1) + b"]}")  # small on the wire
    assert len(bomb) < INGEST_BODY
    with server.client(ingest) as attacker:
        inflated = attacker.post(SUMMARIES, content=bomb, headers={"Content-Encoding": "gzip"})
    assert inflated.status_code == 413 and inflated.json()["error"]["code"] == "too_large", inflated.text
    assert requests_counted(server) == before


def send_gzipped(attacker: httpx.Client, summary: object) -> httpx.Response:
    """A summary of this many cells fits the wire's limit only compressed."""
    body = gzip.compress(json.dumps(summary).encode())
    return attacker.post(SUMMARIES, content=body, headers={"Content-Encoding": "gzip"})


def test_more_than_max_cells_is_refused_where_it_is(server: Server, ingest: str) -> None:
    before = requests_counted(server)
    many = cells(MAX_CELLS + 1)
    day = int(time.time()) // 86400
    units = [
        {"flag": "checkout", "variant": "on", "day": day, "unit": f"u{i}", "events": 1}
        for i in range(MAX_CELLS + 1)
    ]
    with server.client(ingest) as attacker:
        for summary, where in (
            ({"seconds": many}, "seconds"),
            ({"seconds": many[:1], "units": units}, "units"),
        ):
            refused = send_gzipped(attacker, summary)
            assert refused.status_code == 422 and refused.json()["error"]["where"] == where, refused.text[
                :500
            ]
        assert requests_counted(server) == before
        within = send_gzipped(attacker, {"seconds": many[:MAX_CELLS]})
    assert within.status_code == 202, within.text[:500]  # the same cells, MAX_CELLS of them, are taken
    assert requests_counted(server) > before

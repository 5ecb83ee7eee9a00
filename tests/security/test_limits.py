"""Limits before work, tried from outside as an anonymous client would: oversized and slow bodies and heads
against a real server, with its resident memory watched."""

import json
from collections.abc import Callable, Iterator

import pytest

from tests.support.rawhttp import exchange, resident_bytes
from tests.support.servers import Server

MiB = 1024 * 1024
# What a server may grow by while it refuses 64 MiB: allocator noise, never the body.
GROWTH = 16 * MiB


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    """On the default time limits (30 s for a body, 10 s for a head): a large body is never cut short by its
    time on a busy machine."""
    return module_server_factory(module_database_url("sqlite"))


@pytest.fixture(scope="module")
def impatient(
    module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]
) -> Server:
    """Short time limits, for the requests that never end."""
    timeouts = {"RAMPUP_BODY_TIMEOUT_S": "2", "RAMPUP_HEADER_TIMEOUT_S": "2"}
    return module_server_factory(module_database_url("sqlite"), extra_env=timeouts)


def head(path: str, *lines: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: rampup", *lines]) + "\r\n\r\n").encode()


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"%x\r\n%s\r\n" % (size, b"x" * size)
    for _ in range(total // size):
        yield block
    yield b"0\r\n\r\n"


def plain(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/api/v1/flags", MiB),
        ("/api/v1/tokens", MiB),
        ("/ofrep/v1/evaluate/flags", MiB),  # OFREP's own 256 KiB applies after authentication
        ("/api/v1/events", 5 * MiB),
        ("/api/2/envelope/", 5 * MiB),
    ],
)
def test_an_anonymous_oversized_body_is_refused_before_the_server_holds_it(
    server: Server, path: str, limit: int
) -> None:
    warm = exchange(server.url, head(path, "Content-Length: 2", "Content-Type: application/json"), [b"{}"])
    assert warm.status == 401, warm  # anonymous
    before = resident_bytes(server.process.pid)

    declared = exchange(server.url, head(path, f"Content-Length: {64 * MiB}"))  # no body sent at all
    assert declared.status == 413 and b"too_large" in declared.body, declared
    assert f"over {limit} bytes".encode() in declared.body

    streamed = exchange(server.url, head(path, "Transfer-Encoding: chunked"), chunked(64 * MiB))
    assert streamed.status == 413 and b"too_large" in streamed.body, streamed

    exact = exchange(server.url, head(path, f"Content-Length: {limit}"), plain(limit))
    assert exact.status == 401, exact  # right at the limit: read, and only then refused for want of a token

    assert resident_bytes(server.process.pid) - before < GROWTH


def test_a_body_that_trickles_in_is_refused_after_the_body_timeout(impatient: Server) -> None:
    # The client sends 10 of the 100 bytes it declared, then nothing: the server gives up and answers.
    answer = exchange(impatient.url, head("/api/v1/flags", "Content-Length: 100") + b"x" * 10)
    assert answer.status == 408 and b"not received within 2 s" in answer.body, answer


def test_too_many_or_too_large_headers_are_refused_with_431(server: Server) -> None:
    before = resident_bytes(server.process.pid)
    many = exchange(server.url, head("/healthz", *(f"X-Filler-{i}: {i}" for i in range(101))))
    assert many.status == 431 and b"more than 100 header fields" in many.body, many

    big = exchange(server.url, head("/healthz", "X-Filler: " + "x" * 40_000))
    assert big.status == 431 and b"request head over 32768 bytes" in big.body, big

    # A head that never ends: 64 MiB of one header's value, sent while the server listens.
    endless = exchange(server.url, b"GET /healthz HTTP/1.1\r\nHost: rampup\r\nX-Filler: ", plain(64 * MiB))
    assert endless.status == 431, endless
    assert resident_bytes(server.process.pid) - before < GROWTH


def test_a_head_that_trickles_in_is_refused_after_the_header_timeout(impatient: Server) -> None:
    answer = exchange(impatient.url, b"GET /healthz HTTP/1.1\r\nHost: rampup\r\nX-Slow: ")
    assert answer.status == 408 and b"request head not received within 2 s" in answer.body, answer


def test_requests_within_the_limits_are_served(server: Server) -> None:
    filled = [f"X-Filler-{i}: {'x' * 100}" for i in range(90)]
    with server.client() as api:
        assert api.get("/healthz", headers=dict(h.split(": ") for h in filled)).status_code == 200
        padded = json.dumps({"key": "limits"}).encode().ljust(MiB)
        created = api.post("/api/v1/flags", content=padded, headers={"Content-Type": "application/json"})
        assert created.status_code == 201, created.text

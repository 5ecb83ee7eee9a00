"""Fixtures for the SDK tests: a shared server, tokens, flags, and a proxy that injects faults.

The proxy sits between a `Client` and a real server: it forwards everything (server-sent events
included, chunk by chunk), records the telemetry batches that pass, and can refuse chosen paths, so a test
can break the stream or the telemetry endpoint while the rest keeps working.
"""

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider

from rampup.sdk import Client
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S, wait_until

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Rampup:
    server: Server
    sdk_token: str
    ingest_token: str
    environment: str = "production"

    def api(self) -> httpx.Client:
        return self.server.client()

    def new_flag(self, *, prefix: str = "sdk", definition: dict[str, Any] | None = None, **state: Any) -> str:
        key = f"{prefix}-{uuid.uuid4().hex[:10]}"
        with self.api() as api:
            created = api.post("/api/v1/flags", json={"key": key, **(definition or {})})
            assert created.status_code == 201, created.text
            if state:
                self.set_state(key, api=api, **state)
        return key

    def set_state(self, key: str, *, api: httpx.Client | None = None, **state: Any) -> int:
        client = api or self.api()
        try:
            response = client.put(f"/api/v1/flags/{key}/environments/{self.environment}", json=state)
            assert response.status_code == 200, response.text
            return int(response.json()["version"])
        finally:
            if api is None:
                client.close()

    def new_segment(self, **segment: Any) -> str:
        """A segment of this environment (`keys`, `conditions`, …) under a fresh key."""
        key = f"segment-{uuid.uuid4().hex[:10]}"
        with self.api() as api:
            created = api.post(
                f"/api/v1/environments/{self.environment}/segments", json={"key": key, **segment}
            )
        assert created.status_code == 201, created.text
        return key

    def kill(self, key: str) -> None:
        with self.api() as api:
            response = api.post(
                f"/api/v1/flags/{key}/environments/{self.environment}/kill", json={"reason": "test"}
            )
            assert response.status_code == 200, response.text

    def caught_up(self, client: Client) -> None:
        """Waits until the client has the server's current configuration (new flags included)."""
        with httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.sdk_token}"},
            timeout=PATIENCE_S,
        ) as sdk:
            revision = int(sdk.get("/api/v1/sdk/flags").headers["etag"].strip('"'))
        wait_until(
            lambda: (client.stats().revision or 0) >= revision, "(client.stats().revision or 0) >= revision"
        )

    def metric(self, name: str, flag: str | None = None, window: str = "1h") -> dict[str, Any]:
        params = {
            "metric": name,
            "environment": self.environment,
            "window": window,
            **({"flag": flag} if flag else {}),
        }
        with self.api() as api:
            response = api.get("/api/v1/metrics", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())


def tokens(server: Server, environment: str = "production") -> tuple[str, str]:
    with server.client() as api:
        sdk = api.post(
            "/api/v1/tokens", json={"scope": "sdk", "environment": environment, "name": "sdk-test"}
        )
        ingest = api.post(
            "/api/v1/tokens", json={"scope": "ingest", "environment": environment, "name": "sdk-test"}
        )
    assert sdk.status_code == ingest.status_code == 201, (sdk.text, ingest.text)
    return sdk.json()["token"], ingest.json()["token"]


@pytest.fixture(scope="module")
def rampup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rampup]:
    """One SQLite server per module; tests isolate themselves by flag."""
    directory: Path = tmp_path_factory.mktemp("sdk")
    server = start_server(f"sqlite:///{directory / 'rampup.db'}", directory / "server.log")
    try:
        yield Rampup(server, *tokens(server))
    finally:
        server.stop()


@dataclass
class Refusal:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": {"code": "unavailable", "message": "refused by the test proxy"}}'


class FaultProxy:
    """An HTTP proxy in a thread. `refuse[path] = Refusal(...)` answers that path itself; `batches` holds
    every telemetry batch forwarded, with the server's status, and `summaries` every summary; `hits[path]`
    counts requests by status. `lose[path] = n` forwards the next n requests there and closes the connection
    instead of answering: the server did the work, the client never hears of it. `hold[path] = event` keeps
    requests there hanging (`holding[path]` counts them) until the event is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse: dict[str, Refusal] = {}
        self.lose: dict[str, int] = {}
        self.hold: dict[str, threading.Event] = {}
        self.holding: dict[str, int] = {}
        self.batches: list[tuple[int, list[dict[str, Any]]]] = []
        self.summaries: list[tuple[int, dict[str, Any]]] = []
        self.hits: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self._streams: set[httpx.Response] = set()
        self._http = httpx.Client(base_url=upstream, timeout=httpx.Timeout(PATIENCE_S, read=None))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a streamed body simply ends with the connection

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, path: str, status: int) -> None:
        with self.lock:
            self.hits.setdefault(path, []).append(status)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self._held(path)
        refusal = self.refuse.get(path)
        if refusal is not None:
            self._record(path, refusal.status)
            handler.send_response(refusal.status)
            for name, value in {"Content-Type": "application/json", **refusal.headers}.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(refusal.body)))
            handler.end_headers()
            handler.wfile.write(refusal.body)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        response: httpx.Response | None = None
        try:
            with self._http.stream(handler.command, handler.path, headers=headers, content=body) as response:
                self._record(path, response.status_code)
                with self.lock:
                    self._streams.add(response)
                if self._losing(path):
                    response.read()
                    return
                handler.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        handler.send_header(name, value)
                handler.end_headers()
                chunks = []
                for chunk in response.iter_raw():
                    chunks.append(chunk)
                    handler.wfile.write(chunk)
                    handler.wfile.flush()
        except (httpx.HTTPError, OSError):
            return
        finally:
            if response is not None:
                with self.lock:
                    self._streams.discard(response)
        if handler.command == "POST" and response is not None:
            self._keep(path, response.status_code, body)

    def _held(self, path: str) -> None:
        gate = self.hold.get(path)
        if gate is None:
            return
        with self.lock:
            self.holding[path] = self.holding.get(path, 0) + 1
        gate.wait(PATIENCE_S)
        with self.lock:
            self.holding[path] -= 1

    def _losing(self, path: str) -> bool:
        with self.lock:
            if self.lose.get(path, 0) <= 0:
                return False
            self.lose[path] -= 1
            return True

    def _keep(self, path: str, status: int, body: bytes) -> None:
        with self.lock:
            if path == "/api/v1/events":
                self.batches.append((status, json.loads(body)["events"]))
            elif path == "/api/v1/summaries":
                self.summaries.append((status, json.loads(body)))

    def events(self, accepted_only: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [e for status, batch in self.batches if status < 300 or not accepted_only for e in batch]

    def close(self) -> None:
        with self.lock:
            streams = list(self._streams)
        for response in streams:  # wake handler threads blocked reading a server-sent event stream
            sock = response.extensions["network_stream"].get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@pytest.fixture
def proxy_to() -> Iterator[Callable[[str], FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(upstream: str) -> FaultProxy:
        proxies.append(FaultProxy(upstream))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def client(rampup: Rampup) -> Iterator[Client]:
    with Client(rampup.server.url, rampup.sdk_token) as c:
        rampup.caught_up(c)
        yield c


@pytest.fixture
def ofrep_client(rampup: Rampup) -> Iterator[OpenFeatureClient]:
    domain = f"ofrep-{uuid.uuid4().hex}"
    token = rampup.sdk_token
    openfeature.set_provider_and_wait(
        OFREPProvider(rampup.server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}), domain
    )
    yield openfeature.get_client(domain)
    openfeature.shutdown()

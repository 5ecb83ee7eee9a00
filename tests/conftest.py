"""Shared fixtures: databases (SQLite always, PostgreSQL on CI or when it answers) and running servers.

Servers are real `rampup serve` processes on a free loopback port, driven over HTTP like a user would.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("RAMPUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ON_CI = os.environ.get("CI") == "true"
BACKENDS = ["sqlite", "postgres"]


def _postgres_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({type(exc).__name__})"


@pytest.fixture(scope="session")
def postgres_available() -> None:
    reason = _postgres_reason()
    if reason and ON_CI:
        pytest.fail(f"{reason}; on CI the PostgreSQL tests must run")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def make_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """backend → a fresh, empty database URL of that kind, dropped after the test."""
    created: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'rampup-{uuid.uuid4().hex[:8]}.db'}"
        request.getfixturevalue("postgres_available")
        name = f"rampup_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"

    yield make
    for name in created:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, make_database_url: Callable[[str], str]) -> str:
    return make_database_url(request.param)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    database_url: str
    admin_token: str
    process: subprocess.Popen[str] = field(repr=False)
    log: Path = field(repr=False)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {token or self.admin_token}"}
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=15)


def start_server(
    database_url: str,
    log: Path,
    *,
    admin_token: str | None = None,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = port or free_port()
    admin_token = admin_token or f"test-admin-{uuid.uuid4().hex}"
    env = {**os.environ, "RAMPUP_ADMIN_TOKEN": admin_token, **(extra_env or {})}
    out = log.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "rampup", "serve", "--db", database_url, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", database_url, admin_token, process, log)
    deadline = time.monotonic() + 180  # a loaded machine can take this long to import and migrate
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rampup serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop(kill=True)
    raise RuntimeError(f"rampup serve did not become ready:\n{log.read_text()}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(database_url: str, **kwargs: object) -> Server:
        server = start_server(database_url, tmp_path / f"server-{len(servers)}.log", **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(database_url: str, server_factory: Callable[..., Server]) -> Server:
    """A running server on a fresh database, once on SQLite and once on PostgreSQL."""
    return server_factory(database_url)


@pytest.fixture
def sqlite_server(make_database_url: Callable[[str], str], server_factory: Callable[..., Server]) -> Server:
    return server_factory(make_database_url("sqlite"))

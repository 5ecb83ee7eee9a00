"""Shared fixtures: databases (SQLite always, PostgreSQL on CI or when it answers) and running servers.

Servers are real `rampup serve` processes on a free loopback port, driven over HTTP like a user would; the
helpers themselves (servers, receivers, traffic, waiting, and how to drive time) are in tests/support/.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.servers import Server, start_server

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


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(database_url: str, **kwargs: Any) -> Server:
        """Starts a server (see `start_server` for the options), stopped after the test."""
        server = start_server(database_url, tmp_path / f"server-{len(servers)}.log", **kwargs)
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

"""Shared fixtures: databases (SQLite always, PostgreSQL on CI or when it answers) and running servers.

Servers are real `rampup serve` processes on a free loopback port, driven over HTTP like a user would; the
helpers themselves (servers, receivers, traffic, waiting, and how to drive time) are in tests/support/.
"""

import compileall
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import rampup
from rampup.adapters.storage import make_engine, migrate
from tests.support.servers import FAST, Server, start_server
from tests.support.waiting import PATIENCE_S

pytest_plugins = ["tests.support.schedule", "pytester"]  # pytester: the schedule plugin's own test

PG_ADMIN_URL = os.environ.get("RAMPUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ON_CI = os.environ.get("CI") == "true"
BACKENDS = ["sqlite", "postgres"]
ATTEMPTS_WHILE_TEMPLATE_BUSY = 5  # each waits up to 5 s in PostgreSQL itself for the other sessions to go


def pytest_configure(config: pytest.Config) -> None:
    """Every server and command a test starts imports rampup afresh. Where PYTHONDONTWRITEBYTECODE is set nothing
    caches its bytecode, and each of those hundreds of processes would compile every module again (about a tenth
    of a server's start-up CPU): compile it once here. xdist's workers find it done."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(rampup.__file__).parent, quiet=1)


def _postgres_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=int(PATIENCE_S)):
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


def _postgres_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def _create_postgres(name: str, template: str | None = None) -> None:
    """A copy of a template fails while anything is connected to the template; the template takes no new
    connections (see `_seal`), but a just-closed one may still be exiting on a loaded machine: try again."""
    statement = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    for attempt in range(ATTEMPTS_WHILE_TEMPLATE_BUSY):
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == ATTEMPTS_WHILE_TEMPLATE_BUSY - 1:
                raise


def _seal(template: str) -> None:
    """No connection to the template from now on (none of ours, nor autovacuum's), and none left open."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{template}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (template,))


def _drop_postgres(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrated(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()  # the last connection closed: SQLite folds its WAL into the file, PostgreSQL frees the template


class Templates:
    """Databases migrated once per test session (per xdist worker), copied for each test: a test's server then
    finds its schema current instead of running every migration again. Made on first use; the PostgreSQL one
    has a name of its own, so concurrent sessions (xdist workers, other checkouts) never share one."""

    def __init__(self, directory: Path, request: pytest.FixtureRequest) -> None:
        self._directory = directory
        self._request = request
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def sqlite(self, target: Path) -> str:
        if self._sqlite is None:
            self._sqlite = self._directory / "template.db"
            _migrated(f"sqlite:///{self._sqlite}")
        shutil.copyfile(self._sqlite, target)
        return f"sqlite:///{target}"

    def postgres(self, name: str) -> str:
        if self._postgres is None:
            self._request.getfixturevalue("postgres_available")
            self._postgres = f"rampup_template_{uuid.uuid4().hex[:12]}"
            _create_postgres(self._postgres)
            _migrated(_postgres_url(self._postgres))
            _seal(self._postgres)
        _create_postgres(name, template=self._postgres)
        return _postgres_url(name)

    def drop(self) -> None:
        if self._postgres is not None:
            _drop_postgres(self._postgres)


@pytest.fixture(scope="session")
def templates(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("templates"), request)
    yield made
    made.drop()


def _database_urls(
    directory: Path, request: pytest.FixtureRequest, templates: Templates | None
) -> Iterator[Callable[[str], str]]:
    created: list[str] = []

    def make(backend: str) -> str:
        unique = uuid.uuid4().hex[:12]
        if backend == "sqlite":
            path = directory / f"rampup-{unique}.db"
            return templates.sqlite(path) if templates else f"sqlite:///{path}"
        request.getfixturevalue("postgres_available")
        name = f"rampup_test_{unique}"
        created.append(name)
        if templates:
            return templates.postgres(name)
        _create_postgres(name)
        return _postgres_url(name)

    yield make
    for name in created:
        _drop_postgres(name)


@pytest.fixture
def make_database_url(
    tmp_path: Path, request: pytest.FixtureRequest, templates: Templates
) -> Iterator[Callable[[str], str]]:
    """backend → a fresh database URL of that kind, its schema already at the newest migration (copied from a
    template), dropped after the test."""
    yield from _database_urls(tmp_path, request, templates)


@pytest.fixture(scope="module")
def module_database_url(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, templates: Templates
) -> Iterator[Callable[[str], str]]:
    """As `make_database_url`, for the module's tests to share: dropped after the module."""
    yield from _database_urls(tmp_path_factory.mktemp("module"), request, templates)


@pytest.fixture
def make_empty_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """backend → a fresh, empty database URL of that kind (a server on it runs every migration), dropped after
    the test."""
    yield from _database_urls(tmp_path, request, None)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, make_database_url: Callable[[str], str]) -> str:
    return make_database_url(request.param)


def _server_factory(directory: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(database_url: str, **kwargs: Any) -> Server:
        """Starts a server (see `start_server` for the options)."""
        server = start_server(database_url, directory / f"server-{len(servers)}.log", **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers, stopped after the test."""
    yield from _server_factory(tmp_path)


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Starts servers for the module's tests to share (a start costs more CPU than most tests), stopped after the
    module. Only for tests that keep out of each other's way: each on flags of its own, or comparing before and
    after."""
    yield from _server_factory(tmp_path_factory.mktemp("servers"))


@pytest.fixture(scope="module")
def module_servers(
    module_database_url: Callable[[str], str], module_server_factory: Callable[..., Server]
) -> Callable[[str], Server]:
    """backend → the module's one plain server on a fresh database of that kind, started on first use."""
    return functools.cache(lambda backend: module_server_factory(module_database_url(backend)))


@pytest.fixture(scope="module")
def module_manual_servers(
    module_database_url: Callable[[str], str], module_server_factory: Callable[..., Server]
) -> Callable[[str], Server]:
    """As `module_servers`, on a manual clock with a fast outbox poll: for tests that each keep to flags and
    channels of their own and only move the clock forward, never back."""
    return functools.cache(
        lambda backend: module_server_factory(module_database_url(backend), extra_env=FAST, manual_clock=True)
    )


@pytest.fixture(params=BACKENDS)
def shared_server(request: pytest.FixtureRequest, module_servers: Callable[[str], Server]) -> Server:
    """The module's shared server (`module_servers`) on SQLite, then on PostgreSQL."""
    return module_servers(request.param)


@pytest.fixture
def shared_sqlite_server(module_servers: Callable[[str], Server]) -> Server:
    return module_servers("sqlite")


@pytest.fixture(params=BACKENDS)
def shared_manual_server(
    request: pytest.FixtureRequest, module_manual_servers: Callable[[str], Server]
) -> Server:
    """The module's manual-clock server (`module_manual_servers`) on SQLite, then on PostgreSQL."""
    return module_manual_servers(request.param)


@pytest.fixture
def server(database_url: str, server_factory: Callable[..., Server]) -> Server:
    """A running server on a fresh database, once on SQLite and once on PostgreSQL."""
    return server_factory(database_url)


@pytest.fixture
def sqlite_server(make_database_url: Callable[[str], str], server_factory: Callable[..., Server]) -> Server:
    return server_factory(make_database_url("sqlite"))

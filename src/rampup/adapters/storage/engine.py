"""Engines for SQLite and PostgreSQL, and running the Alembic migrations."""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

from rampup.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["make_engine", "migrate", "normalize_url", "taking_turns", "schema_revision", "newest_schema"]

MIGRATIONS = Path(__file__).with_name("migrations")
STARTUP_LOCK = 0x52414D50  # "RAMP": several instances starting at once migrate and set up one after another
SQLITE_BUSY_S = 30  # how long a statement waits for SQLite's lock before it fails
WRITE_POLL_S = 0.001  # how often a writer waiting for SQLite's write lock tries again


def normalize_url(url: str) -> str:
    """Accept the URLs people paste: postgres://, postgresql:// → the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """`pool_size` connections kept open to PostgreSQL, and up to `max_overflow` more under load."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql+psycopg"):
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path.db or postgresql+psycopg://…")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy own transactions (BEGIN IMMEDIATE above) instead of the sqlite3 module's implicit ones.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a 2xx promises the batch survives a power cut, not just a crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: aggregate and per-user tables outgrow the 2 MiB default
    cur.close()


def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
    # Writers take the lock up front so two writers never deadlock on a lock upgrade; readers don't.
    if conn.get_execution_options().get("read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        _begin_writing(conn.connection.dbapi_connection)


def _begin_writing(dbapi_conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, tried again every millisecond while another process writes. SQLite's own busy handler sleeps
    up to 100 ms between tries, so a writer that commits and begins again at once (the worker's compaction, chunk
    after chunk) kept the lock from the server's ingest for as long as it had work: ingest stalled for seconds."""
    deadline = time.monotonic() + SQLITE_BUSY_S
    dbapi_conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(WRITE_POLL_S)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_S * 1000}")


@contextmanager
def taking_turns(engine: Engine) -> Iterator[Connection]:
    """A connection holding PostgreSQL's start-up advisory lock: instances that start together on one database
    migrate and make the first environments and tokens one after another, never both (SQLite: no lock)."""
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK})
            conn.commit()
        try:
            yield conn
        finally:
            if postgres:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_LOCK})
                conn.commit()


def _config() -> "Config":
    # Alembic is imported only to migrate: loading it is a good part of a server's start-up on a current schema.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_revision(engine: Engine) -> str | None:
    """The migration the database's schema is at; None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def newest_schema() -> str:
    """The migration this version of Rampup needs: revisions are numbered like their files, in one line
    (tests/store/test_migrations.py keeps them so), so the newest is the highest number."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to call from several instances at once."""
    if schema_revision(engine) == newest_schema():
        return
    from alembic import command

    config = _config()
    with taking_turns(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()

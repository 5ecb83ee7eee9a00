"""Settings, read once at start-up from the command line and RAMPUP_* environment variables."""

import os
from datetime import datetime

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rampup.defaults import DEFAULT_DATABASE_URL

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAMPUP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    admin_token: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8400
    tick_s: float = 10.0  # how often the controller judges the gates of every live rollout
    outbox_poll_s: float = 1.0
    snapshot_poll_s: float = 0.25  # how soon another instance's flag change is served here
    # On PostgreSQL, hear of other instances' changes at once (LISTEN/NOTIFY); off behind a pooler in transaction
    # mode (PgBouncer), which cannot hold a LISTEN: the poll alone then carries them.
    listen: bool = True
    db_pool_size: int = 10  # PostgreSQL connections each process keeps open
    db_max_overflow: int = 20  # and opens beyond those under load
    retention_days: float = 14.0  # raw events older than this are dropped; rollups stay
    maintenance_interval_s: float = 3600.0
    compact_s: float = 2.0  # how often the leading worker merges the per-user days ingest appended
    usage_flush_s: float = 10.0  # how often each process adds the evaluations it counted to the store
    session_idle_s: float = 8 * 3600.0  # a dashboard session ends after this long unused
    session_max_s: float = 24 * 3600.0  # and after this long in any case
    live_check_s: float = 0.5  # how often the dashboard's live stream looks for changes
    # Limits applied before any work (docs/security.md): a request's body on every route but ingest (5 MiB),
    # the time its body may take, and its head (request line and headers: bytes, fields, time).
    # Ingest per token (a DSN's key is public): a burst at once, then this many requests a second, per process.
    ingest_rate: float = 200.0
    ingest_burst: int = 400
    # Where clients reach this server (https://flags.example.com): OFREP's eventStreams point there, never at the
    # Host header a client sent. Unset: no eventStreams are announced (clients poll).
    public_url: str | None = None
    cors_origins: str = ""  # web origins that may call OFREP from a browser, separated by commas or spaces
    max_streams: int = 2000  # server-sent event streams open in this process (SDKs, OFREP, dashboards)
    # Of them, on one token (browsers share an sdk token: raise it for a busy site).
    streams_per_token: int = 500
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 30.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    # Off unless set. When set (an RFC 3339 instant), the server's clock starts there and stands still until an
    # admin moves it with POST /api/v1/clock, which then runs the controller once: tests and demos drive a
    # rollout's hours in a few calls, and nothing moves between them. Never set it on a server people rely on.
    manual_clock: datetime | None = None
    # Host names, addresses and CIDR networks the server may call although they are internal (loopback,
    # private, link-local): receivers inside your network. Everything else internal is refused.
    allowed_hosts: str = ""
    # The only commands a plan's `hooks.command` may name: a JSON object {"name": ["/path/to/program", "arg", …]}
    # or the path of a file holding one. Plans refer to them by name; there is no shell.
    hook_commands: str | None = None
    hook_timeout_s: float = 60.0  # a hook command still running after this long is killed
    # The one variable of the server's environment a hook command gets: RAMPUP_HOOK_PATH, else the server's PATH.
    hook_path: str = Field(default=os.defpath, validation_alias=AliasChoices("RAMPUP_HOOK_PATH", "PATH"))

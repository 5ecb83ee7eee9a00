"""Changes pushed, not polled: PostgreSQL LISTEN on the channel every configuration commit notifies.

Every transaction that bumps the configuration revision (every audited change does) sends `NOTIFY
rampup_config, '<revision>'`, which PostgreSQL delivers at commit and only if it commits. Each process holds one extra
connection that listens and calls back at once. A notification can still be missed (the connection drops, the
database restarts): after every (re)connection the callback is told so (`None`), and the snapshot's poll stays
as the fallback.
"""

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

__all__ = ["CONFIG_CHANNEL", "ConfigListener"]

CONFIG_CHANNEL = "rampup_config"
RECONNECT_S = 1.0  # after a lost connection; the poll covers the gap meanwhile

log = logging.getLogger("rampup")


class ConfigListener:
    """A daemon thread with its own PostgreSQL connection: `on_change(revision)` for every notification, and
    `on_change(None)` after each (re)connection, when notifications may have been missed."""

    def __init__(self, engine: Engine, on_change: Callable[[int | None], object]) -> None:
        url = engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()  # for the tests and the server's metrics

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="rampup-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        import psycopg  # here, not above: a server on SQLite never loads it, a tenth of its start-up

        while not self._stopping.is_set():
            try:
                self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("listening for configuration changes: %s; polling until reconnected", exc)
            self.connected.clear()
            self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CONFIG_CHANNEL}")
            self.connected.set()
            self._tell(None)
            while not self._stopping.is_set():
                for notice in conn.notifies(timeout=0.5):
                    self._tell(_revision(notice.payload))

    def _tell(self, revision: int | None) -> None:
        try:
            self._on_change(revision)
        except Exception:  # a failed rebuild is retried by the poll; listening must go on
            log.exception("rebuilding the snapshot after a configuration change")


def _revision(payload: str) -> int | None:
    return int(payload) if payload.isdigit() else None

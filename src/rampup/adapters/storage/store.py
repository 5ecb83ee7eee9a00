"""The SQL store: one transaction per use case, a repository per aggregate on its connection."""

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from rampup.adapters.storage.access import SqlAuditLog, SqlTokens
from rampup.adapters.storage.feedback import SqlFeedback
from rampup.adapters.storage.flags import SqlCustomMetrics, SqlEnvironments, SqlFlags
from rampup.adapters.storage.lifecycle import SqlLifecycle
from rampup.adapters.storage.listen import CONFIG_CHANNEL
from rampup.adapters.storage.notifications import SqlAlertRules, SqlAlerts, SqlChannels, SqlSchedules
from rampup.adapters.storage.outbox import SqlLeases, SqlOutbox
from rampup.adapters.storage.rollouts import SqlRollouts
from rampup.adapters.storage.scheduled_changes import SqlScheduledChanges
from rampup.adapters.storage.segments import SqlSegments
from rampup.adapters.storage.sessions import SqlSessions
from rampup.adapters.storage.tables import config_revision
from rampup.adapters.storage.telemetry import SqlTelemetry
from rampup.errors import Conflict

__all__ = ["SqlStore", "SqlTransaction"]


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time. Threads that queue on this lock wake as soon as it is free; threads
        # left to SQLite's busy handler poll with sleeps of up to 100 ms, which starves concurrent ingest.
        self._writer = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @contextmanager
    def transaction(self) -> Iterator["SqlTransaction"]:
        try:
            with self._writer, self.engine.begin() as conn:
                tx = SqlTransaction(conn)
                yield tx
                if tx.audit.audited:
                    # Last statement before commit: the row lock is held only while committing, and the
                    # next transaction's bump waits for it, so revisions follow commit order.
                    revision = conn.execute(
                        update(config_revision)
                        .values(revision=config_revision.c.revision + 1)
                        .returning(config_revision.c.revision)
                    ).scalar_one()
                    if conn.dialect.name == "postgresql":  # delivered at commit, and only if it commits
                        conn.execute(select(func.pg_notify(CONFIG_CHANNEL, str(revision))))
        except IntegrityError as exc:
            raise Conflict(f"conflicting change: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator["SqlTransaction"]:
        with self.engine.connect() as conn:
            yield SqlTransaction(conn.execution_options(read_only=True))


class SqlTransaction:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.environments = SqlEnvironments(conn)
        self.flags = SqlFlags(conn)
        self.segments = SqlSegments(conn)
        self.tokens = SqlTokens(conn)
        self.audit = SqlAuditLog(conn)
        self.custom_metrics = SqlCustomMetrics(conn)
        self.telemetry = SqlTelemetry(conn)
        self.rollouts = SqlRollouts(conn)
        self.outbox = SqlOutbox(conn)
        self.leases = SqlLeases(conn)
        self.channels = SqlChannels(conn)
        self.alert_rules = SqlAlertRules(conn)
        self.alerts = SqlAlerts(conn)
        self.schedules = SqlSchedules(conn)
        self.scheduled_changes = SqlScheduledChanges(conn)
        self.sessions = SqlSessions(conn)
        self.feedback = SqlFeedback(conn)
        self.lifecycle = SqlLifecycle(conn)

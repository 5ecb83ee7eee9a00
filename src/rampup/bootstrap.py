"""The composition root: builds engine, store, snapshot and services from Settings."""

import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from rampup.adapters.clock import ManualClock, system_clock
from rampup.adapters.egress import Egress, guarded_client
from rampup.adapters.hooks import CommandHook, WebhookHook, load_commands
from rampup.adapters.notify import notifiers
from rampup.adapters.prometheus import ServerMetrics
from rampup.adapters.reports.render import JinjaRenderer
from rampup.adapters.storage import SqlStore, make_engine, migrate, taking_turns
from rampup.adapters.storage.listen import ConfigListener
from rampup.config import Settings
from rampup.core.egress import EgressPolicy
from rampup.core.model import DEFAULT_ENVIRONMENTS
from rampup.core.ports import Clock, Store
from rampup.core.sessions import SessionTimes
from rampup.core.tokens import Scope
from rampup.services.alerts import AlertService
from rampup.services.feedback import FeedbackService
from rampup.services.flags import FlagService
from rampup.services.ingest import COMPACT_CHUNK, COMPACT_CHUNK_BESIDE, IngestService
from rampup.services.leader import Leader
from rampup.services.lifecycle import LifecycleService
from rampup.services.metrics import MetricsService
from rampup.services.notifications import NOTIFY, NotificationService
from rampup.services.outbox import OutboxService, Sender
from rampup.services.reports import ReportService
from rampup.services.rollouts import RolloutService
from rampup.services.scheduled_changes import ScheduledChangeService
from rampup.services.segments import SegmentService
from rampup.services.sessions import SessionService
from rampup.services.snapshot import SnapshotCache
from rampup.services.tokens import ENV_ADMIN_TOKEN_ID, TokenService
from rampup.services.usage import EvaluationCounter
from rampup.services.worker import Job

__all__ = ["Container", "build_container", "FirstStart", "prepare", "instance_jobs", "leader_jobs"]

EXAMPLE_FLAG = {
    "key": "workstation",
    "description": "Example: the new workstation UI, for the example plan. Delete it when you are done.",
}


@dataclass
class Container:
    settings: Settings
    store: Store
    clock: Clock
    snapshots: SnapshotCache
    flags: FlagService
    segments: SegmentService
    tokens: TokenService
    ingest: IngestService
    metrics: MetricsService
    rollouts: RolloutService
    outbox: OutboxService
    notifications: NotificationService
    alerts: AlertService
    reports: ReportService
    sessions: SessionService
    leader: Leader
    feedback: FeedbackService
    usage: EvaluationCounter
    lifecycle: LifecycleService
    scheduled: ScheduledChangeService
    meters: ServerMetrics  # this process's own metrics (GET /metrics)
    manual_clock: ManualClock | None = None  # set when time moves only through POST /api/v1/clock
    listener: ConfigListener | None = None  # on PostgreSQL: configuration changes pushed to this process
    database: str = "memory"  # what the store is, to show (a URL without its password)
    close: Callable[[], object] = lambda: None
    # Instances that start together on one database set it up one after another (PostgreSQL's advisory lock).
    taking_turns: Callable[[], AbstractContextManager[object]] = nullcontext

    def revision(self) -> int:
        with self.store.read() as tx:
            return tx.audit.revision()


def build_container(settings: Settings, clock: Clock | None = None, store: Store | None = None) -> Container:
    """The services over `store`, or over the SQL store of `settings.database_url` (migrated) without one."""
    manual = ManualClock(settings.manual_clock) if clock is None and settings.manual_clock else None
    clock = manual or clock or system_clock
    engine = None
    if store is None:
        engine = make_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
        migrate(engine)
        store = SqlStore(engine)
    snapshots = SnapshotCache(store)
    listener = (
        ConfigListener(engine, snapshots.changed)
        if engine is not None and engine.dialect.name == "postgresql" and settings.listen
        else None
    )
    refresh = snapshots.refresh
    flags = FlagService(store, clock, refresh)
    egress = Egress(EgressPolicy.parse(settings.allowed_hosts))
    client = guarded_client(egress)
    notifications = NotificationService(store, clock, notifiers(client, egress), egress)
    commands = load_commands(settings.hook_commands)
    senders: dict[str, Sender] = {
        "hook.webhook": WebhookHook(client),
        "hook.command": CommandHook(commands, settings.hook_path, settings.hook_timeout_s),
        NOTIFY: notifications,
    }
    metrics = MetricsService(store, snapshots, clock, refresh)
    rollouts = RolloutService(store, clock, flags, notifications, egress, refresh, frozenset(commands))
    outbox = OutboxService(store, clock, senders)
    alerts = AlertService(store, snapshots, clock, metrics, notifications)
    reports = ReportService(store, clock, rollouts, metrics, notifications, JinjaRenderer())
    # A lease of three ticks: a dead leader's work is taken over soon, a slow tick does not lose it.
    lease = timedelta(seconds=max(3 * settings.tick_s, 5))
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    usage = EvaluationCounter(store, clock)
    meters = ServerMetrics(holder)
    retention = timedelta(days=settings.retention_days)
    postgres = engine is not None and engine.dialect.name == "postgresql"
    chunk = COMPACT_CHUNK_BESIDE if postgres else COMPACT_CHUNK
    ingest = IngestService(store, snapshots, clock, usage, meters.ingest, retention, chunk)
    lifecycle = LifecycleService(store, clock, notifications, refresh)
    scheduled = ScheduledChangeService(store, clock, flags, notifications, refresh)
    return Container(
        settings,
        store,
        clock,
        snapshots,
        flags,
        SegmentService(store, clock, refresh),
        TokenService(store, clock, refresh),
        ingest,
        metrics,
        rollouts,
        outbox,
        notifications,
        alerts,
        reports,
        SessionService(
            store,
            clock,
            snapshots,
            SessionTimes(
                idle=timedelta(seconds=settings.session_idle_s),
                max_age=timedelta(seconds=settings.session_max_s),
            ),
        ),
        Leader(holder, lease, outbox, rollouts, alerts, reports, ingest, retention, lifecycle, scheduled),
        FeedbackService(store, snapshots, clock),
        usage,
        lifecycle,
        scheduled,
        meters,
        manual,
        listener,
        engine.url.render_as_string() if engine is not None else "memory",
        engine.dispose if engine is not None else lambda: None,
        partial(taking_turns, engine) if engine is not None else nullcontext,
    )


def instance_jobs(c: Container) -> list[Job]:
    """What every process does for itself: keep its snapshot of the configuration current, and add the
    evaluations it counted to the store."""
    return [
        Job("snapshot", c.settings.snapshot_poll_s, c.snapshots.refresh),
        Job("usage", c.settings.usage_flush_s, c.usage.flush),
    ]


def leader_jobs(c: Container) -> list[Job]:
    """What one worker does for all, under the lease (`rampup worker`, or `rampup serve` without --no-worker)."""
    s = c.settings
    jobs = [
        Job("deliver", s.outbox_poll_s, c.leader.deliver),
        Job("compact", s.compact_s, c.leader.compact),
        Job("retention", s.maintenance_interval_s, c.leader.retain),
    ]
    if c.manual_clock is None:  # on a manual clock the controller runs each time the clock is moved
        jobs.insert(0, Job("control", s.tick_s, c.leader.control))
    return jobs


@dataclass(frozen=True)
class FirstStart:
    admin_secret: str | None  # a generated admin token, shown once
    example_flag: str | None
    admin_token_revoked: bool = False  # RAMPUP_ADMIN_TOKEN holds a secret that was revoked: it stays so


def prepare(c: Container) -> FirstStart:
    """Default environments; the admin token from RAMPUP_ADMIN_TOKEN, or a generated one on a fresh database.
    Instances starting together on one fresh database take turns: one makes them, the others find them."""
    with c.taking_turns():
        first = _first_start(c)
    c.snapshots.refresh()
    return first


def _first_start(c: Container) -> FirstStart:
    fresh = c.revision() == 0
    c.flags.ensure_environments(DEFAULT_ENVIRONMENTS)
    admin_secret = None
    revoked = False
    if c.settings.admin_token:
        revoked = not c.tokens.ensure(ENV_ADMIN_TOKEN_ID, "admin", Scope.ADMIN, c.settings.admin_token)
    elif not any(t.scope is Scope.ADMIN and t.revoked_at is None for t in c.tokens.tokens()):
        _, admin_secret = c.tokens.create(Scope.ADMIN, None, "admin", "system")
    example = None
    if fresh:
        example = c.flags.create_flag(EXAMPLE_FLAG, "system").record.definition.key
    return FirstStart(admin_secret, example, revoked)

"""The server's own metrics in the Prometheus text format (prometheus-client), one registry per process.

Counters and histograms are updated where things happen (OFREP, ingest, requests, jobs, streams); the state of
the process (snapshot, lease, outbox) is read when scraped. Every process (each `rampup serve`, each
`rampup worker`) is scraped on its own port, and `rampup_process_info` says which one it is. Labels carry only
environment keys, route templates, job and stream names: never a path as sent, a token or a payload.
"""

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rampup import __version__
from rampup.services.leader import Leader
from rampup.services.outbox import OutboxService
from rampup.services.snapshot import SnapshotCache

__all__ = ["ServerMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServerMetrics:
    def __init__(self, process: str) -> None:
        self.process = process
        self.registry = CollectorRegistry()
        r = self.registry
        self._info = Gauge(
            "rampup_process_info",
            "This process: its lease holder id and role",
            ["process", "role", "version"],
            registry=r,
        )
        self.evaluations = Counter(
            "rampup_evaluations", "Flags evaluated over OFREP, per environment", ["environment"], registry=r
        )
        self.ingested = Counter(
            "rampup_ingested_events",
            "Events stored (committed), per environment and source",
            ["environment", "source"],
            registry=r,
        )
        self.requests = Histogram(
            "rampup_http_request_duration_seconds",
            "Time to the response's first byte, per route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.streams = Gauge(
            "rampup_stream_clients", "Open server-sent event streams", ["stream"], registry=r
        )
        self.jobs = Histogram(
            "rampup_job_duration_seconds",
            "Background job runs (control is the controller's tick)",
            ["job"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.job_failures = Counter(
            "rampup_job_failures", "Background job runs that failed", ["job"], registry=r
        )

    def started(self, role: str) -> None:
        """`role`: serve, worker, or serve+worker."""
        self._info.labels(self.process, role, __version__).set(1)

    def ingest(self, environment: str, source: str, count: int) -> None:
        self.ingested.labels(environment, source).inc(count)

    def job_ran(self, job: str, seconds: float, ok: bool) -> None:
        self.jobs.labels(job).observe(seconds)
        if not ok:
            self.job_failures.labels(job).inc()

    def watch(self, snapshots: SnapshotCache, leader: Leader | None, outbox: OutboxService | None) -> None:
        """Read the process's state at each scrape; `leader` and `outbox` where a worker runs."""
        self.registry.register(_State(snapshots, leader, outbox))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _State(Collector):
    def __init__(self, snapshots: SnapshotCache, leader: Leader | None, outbox: OutboxService | None) -> None:
        self._snapshots = snapshots
        self._leader = leader
        self._outbox = outbox

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        yield _gauge(
            "rampup_snapshot_revision",
            "Configuration revision this process serves",
            self._snapshots.current.revision,
        )
        yield _gauge(
            "rampup_snapshot_age_seconds",
            "Since the database last confirmed this process's snapshot current (grows when it cannot be read)",
            now - self._snapshots.confirmed_at,
        )
        if self._leader is not None:
            yield _gauge(
                "rampup_leader", "1 while this worker holds the controller lease", int(self._leader.leading)
            )
            renewed = self._leader.renewed_at
            yield _gauge(
                "rampup_lease_renewed_age_seconds",
                "Since this worker last took or renewed the lease (absent: never held it)",
                None if renewed is None else now - renewed,
            )
        if self._outbox is not None:
            waiting = self._outbox.backlog()
            yield _gauge(
                "rampup_outbox_backlog", "Notifications and hooks waiting for delivery", waiting.count
            )
            yield _gauge(
                "rampup_outbox_oldest_pending_seconds",
                "How long the oldest undelivered item has waited",
                waiting.oldest_s or 0,
            )


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family

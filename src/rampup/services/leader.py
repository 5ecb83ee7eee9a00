"""The work one worker does for all: the controller pass, the outbox delivery, compaction and retention, under one
lease."""

import time
from datetime import timedelta

from rampup.services.alerts import AlertService
from rampup.services.ingest import IngestService
from rampup.services.lifecycle import LifecycleService
from rampup.services.outbox import OutboxService
from rampup.services.reports import ReportService
from rampup.services.rollouts import RolloutService
from rampup.services.scheduled_changes import ScheduledChangeService

__all__ = ["Leader"]


class Leader:
    """Each call first takes (or renews) the `controller` lease for `holder`; a worker that does not hold it does
    nothing, so several workers never both act on a rollout or both send a notification, and one that stands by
    takes over once a dead leader's lease has run out."""

    def __init__(
        self,
        holder: str,
        lease: timedelta,
        outbox: OutboxService,
        rollouts: RolloutService,
        alerts: AlertService,
        reports: ReportService,
        ingest: IngestService,
        retention: timedelta,
        lifecycle: LifecycleService,
        scheduled: ScheduledChangeService,
    ) -> None:
        self.holder = holder
        self._lease = lease
        self._outbox = outbox
        self._rollouts = rollouts
        self._alerts = alerts
        self._reports = reports
        self._ingest = ingest
        self._retention = retention
        self._lifecycle = lifecycle
        self._scheduled = scheduled
        self.leading = False  # as of the last call: for the server's metrics and the tests
        self.renewed_at: float | None = None  # when this holder last took or renewed the lease (monotonic)

    def control(self) -> bool:
        """One controller pass: make the scheduled changes due, judge every live rollout, evaluate the alert rules,
        queue the reports due, and announce the flags whose lifecycle status changed."""
        if not self._lead():
            return False
        self._scheduled.run_due(self.holder, self._lease)
        self._rollouts.tick_all()
        self._alerts.evaluate_all()
        self._reports.send_due()
        self._lifecycle.announce()
        return True

    def deliver(self) -> bool:
        if not self._lead():
            return False
        self._outbox.deliver_due()
        return True

    def retain(self) -> bool:
        """Drop raw events older than the retention (and fine aggregates): once for all, by the leader."""
        if not self._lead():
            return False
        self._ingest.purge(self._retention)
        return True

    def compact(self) -> bool:
        """Merge the per-user days ingest appended: once for all, by the leader."""
        if not self._lead():
            return False
        self._ingest.compact()
        return True

    def step_down(self) -> None:
        """Give the lease back (a clean stop, once this worker's jobs have ended): a standby worker takes over at
        its next tick instead of waiting for the lease to run out."""
        if self.leading:
            self._outbox.step_down(self.holder)
            self.leading = False

    def _lead(self) -> bool:
        self.leading = self._outbox.lead(self.holder, self._lease)
        if self.leading:
            self.renewed_at = time.monotonic()
        return self.leading

"""The work one instance does for all: the controller pass and the outbox delivery, under one lease."""

from datetime import timedelta

from rampup.services.alerts import AlertService
from rampup.services.outbox import OutboxService
from rampup.services.reports import ReportService
from rampup.services.rollouts import RolloutService

__all__ = ["Leader"]


class Leader:
    """Each call first takes (or renews) the `controller` lease for `holder`; an instance that does not hold it
    does nothing, so several instances never both act on a rollout or both send a notification."""

    def __init__(
        self,
        holder: str,
        lease: timedelta,
        outbox: OutboxService,
        rollouts: RolloutService,
        alerts: AlertService,
        reports: ReportService,
    ) -> None:
        self.holder = holder
        self._lease = lease
        self._outbox = outbox
        self._rollouts = rollouts
        self._alerts = alerts
        self._reports = reports

    def control(self) -> bool:
        """One controller pass: judge every live rollout, evaluate the alert rules, queue the reports due."""
        if not self._outbox.lead(self.holder, self._lease):
            return False
        self._rollouts.tick_all()
        self._alerts.evaluate_all()
        self._reports.send_due()
        return True

    def deliver(self) -> bool:
        if not self._outbox.lead(self.holder, self._lease):
            return False
        self._outbox.deliver_due()
        return True

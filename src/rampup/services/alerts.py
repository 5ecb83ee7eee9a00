"""Alert rules: evaluated by the leader every tick; firing, re-sent and resolved notifications go through the
outbox in the transaction that records the change."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rampup.core.alerts import Alert, AlertAction, AlertRule, AlertRuleRecord, step
from rampup.core.durations import format_duration
from rampup.core.notifications import Notification, Severity
from rampup.core.ports import Clock, Store, Transaction
from rampup.core.rollups import SECOND, Aggregate, UnitTotals, combine, fold
from rampup.core.telemetry import ALL_USERS, parse_metric_name
from rampup.errors import NotFound
from rampup.services.metrics import MetricsService, estimate
from rampup.services.notifications import NotificationService
from rampup.services.outbox import outbox_id
from rampup.services.snapshot import SnapshotCache

__all__ = ["AlertService", "AlertStatus", "RuleStatus"]


@dataclass(frozen=True, slots=True)
class RuleStatus:
    record: AlertRuleRecord
    firing: bool


@dataclass(frozen=True, slots=True)
class AlertStatus:
    alert: Alert
    rule: AlertRule | None  # None once the rule is deleted


class AlertService:
    def __init__(
        self,
        store: Store,
        snapshots: SnapshotCache,
        clock: Clock,
        metrics: MetricsService,
        notifications: NotificationService,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._clock = clock
        self._metrics = metrics
        self._notifications = notifications
        self._on_change = on_change

    # rules

    def create(
        self,
        body: Mapping[str, Any],
        actor: str,
        rollout_id: int | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> AlertRuleRecord:
        rule = AlertRule.parse(body, defaults)
        now = self._clock()
        with self._store.transaction() as tx:
            rule_id = self.create_in(tx, rule, rollout_id, now)
            tx.audit.record(
                actor,
                "alert_rule.create",
                f"alert_rule:{rule_id}",
                rule.environment,
                None,
                rule.to_dict(),
                "",
                now,
            )
        return AlertRuleRecord(rule_id, rule, rollout_id, None)

    def create_in(self, tx: Transaction, rule: AlertRule, rollout_id: int | None, now: datetime) -> int:
        if tx.environments.get(rule.environment) is None:
            raise NotFound(f"environment {rule.environment!r} not found")
        return tx.alert_rules.add(rule, rollout_id, now)

    def rules(self) -> list[RuleStatus]:
        with self._store.read() as tx:
            return [RuleStatus(r, tx.alerts.firing(r.id) is not None) for r in tx.alert_rules.all()]

    def delete(self, rule_id: int, actor: str) -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            if not tx.alert_rules.delete(rule_id):
                raise NotFound(f"alert rule {rule_id} not found")
            tx.audit.record(actor, "alert_rule.delete", f"alert_rule:{rule_id}", None, None, None, "", now)

    def alerts(self, state: str | None = None, limit: int = 100) -> list[AlertStatus]:
        """Alerts, newest first (`state`: only firing or only resolved ones), each with its rule if it still has one."""
        with self._store.read() as tx:
            rules = {r.id: r.rule for r in tx.alert_rules.all()}
            firing = None if state is None else state == "firing"
            return [AlertStatus(a, rules.get(a.rule_id)) for a in tx.alerts.all(limit, firing)]

    # evaluation

    def evaluate_all(self) -> int:
        now = self._clock()
        with self._store.read() as tx:
            rules = tx.alert_rules.all()
            live = {r.id for r in tx.rollouts.find(live=True, limit=1000)}
        changed = 0
        for r in rules:
            if r.rollout_id is not None and r.rollout_id not in live:
                continue  # a plan's alerts watch only while its rollout runs
            changed += self._evaluate(r.id, r.rule, r.breaching_since, now)
        return changed

    def _evaluate(self, rule_id: int, rule: AlertRule, since: datetime | None, now: datetime) -> bool:
        with self._store.read() as tx:
            value = self._value(tx, rule, now)
            firing = tx.alerts.firing(rule_id)
        result = step(
            rule,
            value,
            since,
            firing.started_at if firing else None,
            firing.last_notified_at if firing else None,
            now,
        )
        if result.breaching_since == since and result.action is None:
            return False
        with self._store.transaction() as tx:
            tx.alert_rules.set_breaching(rule_id, result.breaching_since)
            if result.action is AlertAction.FIRE:
                tx.alerts.open(rule_id, value, now)
            elif firing is not None and result.action is AlertAction.RENOTIFY:
                tx.alerts.renotified(firing.id, value, now)
            elif firing is not None and result.action is AlertAction.RESOLVE:
                tx.alerts.resolve(firing.id, value, now)
            if result.action is not None:
                self._notifications.enqueue(
                    tx,
                    rule.channels,
                    _notification(
                        rule_id, rule, result.action, value, now, firing.started_at if firing else now
                    ),
                )
        return True

    def _value(self, tx: Transaction, rule: AlertRule, now: datetime) -> float | None:
        env = tx.environments.get(rule.environment)
        if env is None:
            return None
        resolved = self._metrics.resolve(rule.metric)
        base, _ = parse_metric_name(rule.metric)
        until_ms = int(now.timestamp() * 1000)
        since_ms = until_ms - int(rule.window.total_seconds() * 1000)
        if rule.tags:
            aggregate = self._tagged(tx, env.id, rule, base, since_ms, until_ms)
        else:
            aggregate = tx.telemetry.gate_inputs(env.id, rule.flag or ALL_USERS).aggregate(
                base, rule.subject, since_ms, until_ms
            )
        return estimate(resolved, aggregate, Aggregate(), UnitTotals(0, 0, 0, 0)).estimate.value

    def _tagged(
        self, tx: Transaction, environment_id: int, rule: AlertRule, metric: str, since_ms: int, until_ms: int
    ) -> Aggregate:
        """Tag filters need the raw events: read the window's, filter, and fold them as ingest would."""
        snapshot = self._snapshots.current
        wanted = dict(rule.tags)
        events = [
            o
            for o in tx.telemetry.events(environment_id, since_ms, until_ms)
            if all((o.tags or {}).get(k) == v for k, v in wanted.items())
        ]
        folded = fold(
            events, snapshot.timelines.get(rule.environment, {}), tuple(snapshot.custom_metrics.values())
        )
        slot = rule.flag or ALL_USERS
        return combine(
            a
            for k, a in folded.rollups.items()
            if k.resolution == SECOND and k.flag == slot and k.variant == rule.subject and k.metric == metric
        )


def _notification(
    rule_id: int, rule: AlertRule, action: AlertAction, value: float | None, now: datetime, started: datetime
) -> Notification:
    shown = "no data" if value is None else (f"{value:.3%}" if "%" in rule.condition_text else f"{value:.4g}")
    resolved = action is AlertAction.RESOLVE
    state = "resolved" if resolved else "firing"
    lasted = f" after {format_duration(now - started, 'long')}" if resolved else ""
    return Notification(
        outbox_id(now),
        f"alert.{state}",
        now,
        f"[{state.upper()}] {rule.name}",
        f"{rule.metric} is {shown} over the last {format_duration(rule.window)}{lasted}: {rule.describe()}",
        Severity.INFO if resolved else rule.severity,
        (
            ("metric", rule.metric),
            ("value", shown),
            ("condition", rule.condition_text),
            ("environment", rule.environment),
            *((("flag", f"{rule.flag}={rule.subject}"),) if rule.flag else ()),
        ),
        f"alert-{rule_id}",
        resolved,
        {"rule_id": rule_id, "value": value, "rule": rule.to_dict()},
    )

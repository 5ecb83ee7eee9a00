"""Channels, alert rules and their alerts, report schedules."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import alert_rules, alerts, channels, report_schedules
from rampup.core.alerts import Alert, AlertRule, AlertRuleRecord
from rampup.core.notifications import Channel, ChannelType, Severity
from rampup.core.schedules import Schedule, ScheduleRecord

__all__ = ["SqlChannels", "SqlAlertRules", "SqlAlerts", "SqlSchedules"]


class SqlChannels:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[Channel]:
        return [_channel(r) for r in self.conn.execute(select(channels).order_by(channels.c.name))]

    def get(self, name: str) -> Channel | None:
        r = self.conn.execute(select(channels).where(channels.c.name == name)).first()
        return None if r is None else _channel(r)

    def add(self, channel: Channel, at: datetime) -> None:
        self.conn.execute(
            insert(channels).values(
                name=channel.name,
                type=channel.type.value,
                config=dict(channel.config),
                min_severity=channel.min_severity.value,
                created_at=at,
            )
        )

    def delete(self, name: str) -> bool:
        return bool(self.conn.execute(delete(channels).where(channels.c.name == name)).rowcount)


class SqlAlertRules:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[AlertRuleRecord]:
        query = select(alert_rules).order_by(alert_rules.c.id)
        return [
            AlertRuleRecord(r.id, AlertRule.parse(r.rule), r.rollout_id, utc(r.breaching_since))
            for r in self.conn.execute(query)
        ]

    def add(self, rule: AlertRule, rollout_id: int | None, at: datetime) -> int:
        return int(
            self.conn.execute(
                insert(alert_rules)
                .values(rule=rule.to_dict(), rollout_id=rollout_id, created_at=at)
                .returning(alert_rules.c.id)
            ).scalar_one()
        )

    def delete(self, rule_id: int) -> bool:
        return bool(self.conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount)

    def set_breaching(self, rule_id: int, since: datetime | None) -> None:
        self.conn.execute(
            update(alert_rules).where(alert_rules.c.id == rule_id).values(breaching_since=since)
        )


class SqlAlerts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def firing(self, rule_id: int) -> Alert | None:
        r = self.conn.execute(
            select(alerts).where(alerts.c.rule_id == rule_id, alerts.c.state == "firing")
        ).first()
        return None if r is None else _alert(r)

    def open(self, rule_id: int, value: float | None, at: datetime) -> int:
        return int(
            self.conn.execute(
                insert(alerts)
                .values(rule_id=rule_id, state="firing", value=value, started_at=at, last_notified_at=at)
                .returning(alerts.c.id)
            ).scalar_one()
        )

    def renotified(self, alert_id: int, value: float | None, at: datetime) -> None:
        self.conn.execute(
            update(alerts).where(alerts.c.id == alert_id).values(last_notified_at=at, value=value)
        )

    def resolve(self, alert_id: int, value: float | None, at: datetime) -> None:
        self.conn.execute(
            update(alerts)
            .where(alerts.c.id == alert_id)
            .values(state="resolved", resolved_at=at, value=value)
        )

    def all(self, limit: int = 100, firing: bool | None = None) -> list[Alert]:
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if firing is not None:
            query = query.where(alerts.c.state == ("firing" if firing else "resolved"))
        return [_alert(r) for r in self.conn.execute(query)]


class SqlSchedules:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[ScheduleRecord]:
        query = select(report_schedules).order_by(report_schedules.c.id)
        return [
            ScheduleRecord(r.id, Schedule.from_dict(r.schedule), r.last_period)
            for r in self.conn.execute(query)
        ]

    def add(self, schedule: Schedule) -> int:
        return int(
            self.conn.execute(
                insert(report_schedules)
                .values(schedule=schedule.to_dict(), created_at=schedule.created_at)
                .returning(report_schedules.c.id)
            ).scalar_one()
        )

    def delete(self, schedule_id: int) -> bool:
        return bool(
            self.conn.execute(delete(report_schedules).where(report_schedules.c.id == schedule_id)).rowcount
        )

    def mark_sent(self, schedule_id: int, period: str, expected: str | None) -> bool:
        """Compare-and-swap on the period last sent: a report goes out once per period, whoever sends it."""
        result = self.conn.execute(
            update(report_schedules)
            .where(
                report_schedules.c.id == schedule_id,
                report_schedules.c.last_period.is_(None)
                if expected is None
                else report_schedules.c.last_period == expected,
            )
            .values(last_period=period)
        )
        return result.rowcount == 1


def _channel(r: Any) -> Channel:
    return Channel(r.name, ChannelType(r.type), r.config, Severity(r.min_severity))


def _alert(r: Any) -> Alert:
    return Alert(r.id, r.rule_id, r.value, utc(r.started_at), utc(r.last_notified_at), utc(r.resolved_at))

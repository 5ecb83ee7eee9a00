"""Channels, alert rules and alerts, report schedules."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from rampup.adapters.storage._values import utc
from rampup.adapters.storage.tables import alert_rules, alerts, channels, report_schedules
from rampup.core.notifications import Channel, ChannelType, Severity

__all__ = ["SqlNotifications"]


class SqlNotifications:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # channels

    def channels(self) -> list[Channel]:
        return [
            Channel(r.name, ChannelType(r.type), r.config, Severity(r.min_severity))
            for r in self.conn.execute(select(channels).order_by(channels.c.name))
        ]

    def channel(self, name: str) -> Channel | None:
        r = self.conn.execute(select(channels).where(channels.c.name == name)).first()
        return None if r is None else Channel(r.name, ChannelType(r.type), r.config, Severity(r.min_severity))

    def add_channel(self, channel: Channel, at: datetime) -> None:
        self.conn.execute(
            insert(channels).values(
                name=channel.name,
                type=channel.type.value,
                config=dict(channel.config),
                min_severity=channel.min_severity.value,
                created_at=at,
            )
        )

    def delete_channel(self, name: str) -> bool:
        return bool(self.conn.execute(delete(channels).where(channels.c.name == name)).rowcount)

    # alert rules and alerts

    def alert_rules(self) -> list[tuple[int, dict[str, Any], int | None, datetime | None]]:
        """(id, rule as stored, rollout id, breaching since)."""
        query = select(alert_rules).order_by(alert_rules.c.id)
        return [(r.id, r.rule, r.rollout_id, utc(r.breaching_since)) for r in self.conn.execute(query)]

    def add_alert_rule(self, rule: dict[str, Any], rollout_id: int | None, at: datetime) -> int:
        return int(
            self.conn.execute(
                insert(alert_rules)
                .values(rule=rule, rollout_id=rollout_id, created_at=at)
                .returning(alert_rules.c.id)
            ).scalar_one()
        )

    def delete_alert_rule(self, rule_id: int) -> bool:
        return bool(self.conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount)

    def set_breaching(self, rule_id: int, since: datetime | None) -> None:
        self.conn.execute(
            update(alert_rules).where(alert_rules.c.id == rule_id).values(breaching_since=since)
        )

    def firing(self, rule_id: int) -> dict[str, Any] | None:
        r = self.conn.execute(
            select(alerts).where(alerts.c.rule_id == rule_id, alerts.c.state == "firing")
        ).first()
        return None if r is None else _alert(r)

    def open_alert(self, rule_id: int, value: float | None, at: datetime) -> int:
        return int(
            self.conn.execute(
                insert(alerts)
                .values(rule_id=rule_id, state="firing", value=value, started_at=at, last_notified_at=at)
                .returning(alerts.c.id)
            ).scalar_one()
        )

    def update_alert(self, alert_id: int, **values: Any) -> None:
        self.conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))

    def alerts(self, limit: int = 100, state: str | None = None) -> list[dict[str, Any]]:
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(alerts.c.state == state)
        return [_alert(r) for r in self.conn.execute(query)]

    # report schedules

    def schedules(self) -> list[tuple[int, dict[str, Any], str | None]]:
        query = select(report_schedules).order_by(report_schedules.c.id)
        return [(r.id, r.schedule, r.last_period) for r in self.conn.execute(query)]

    def add_schedule(self, schedule: dict[str, Any], at: datetime) -> int:
        return int(
            self.conn.execute(
                insert(report_schedules)
                .values(schedule=schedule, created_at=at)
                .returning(report_schedules.c.id)
            ).scalar_one()
        )

    def delete_schedule(self, schedule_id: int) -> bool:
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


def _alert(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "rule_id": r.rule_id,
        "state": r.state,
        "value": r.value,
        "started_at": utc(r.started_at),
        "resolved_at": utc(r.resolved_at),
        "last_notified_at": utc(r.last_notified_at),
    }

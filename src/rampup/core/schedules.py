"""Report schedules, pure: what to send, about which rollout, where, and when (local time of a time zone)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rampup.errors import InvalidInput

__all__ = [
    "KINDS",
    "REPORT_WINDOW",
    "ReportKind",
    "Schedule",
    "ScheduleRecord",
    "due_period",
    "next_send",
    "parse_schedule",
    "time_zone",
]


class ReportKind(StrEnum):
    DAILY = "daily"
    SUPPORT = "support"
    WEEKLY = "weekly"
    COMPLETION = "completion"


KINDS = tuple(k.value for k in ReportKind)
REPORT_WINDOW = {"daily": timedelta(days=1), "support": timedelta(days=1), "weekly": timedelta(days=7)}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_FIELDS = ("kind", "rollout_id", "flag", "environment", "channels", "hour", "minute", "timezone", "weekday")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A rollout is named by `rollout_id`, or by `flag` and `environment` (whichever rollout is live then).
    A completion report goes out when the rollout ends; the others at `hour:minute` in `timezone` (weekly: on
    `weekday`, 0 = Monday)."""

    kind: str
    channels: tuple[str, ...]
    created_by: str
    created_at: datetime  # only slots after this moment send
    rollout_id: int | None = None
    flag: str | None = None
    environment: str | None = None
    hour: int = 0
    minute: int = 0
    timezone: str = "UTC"
    weekday: int | None = None
    contact: str | None = None

    @property
    def timed(self) -> bool:
        return self.kind != "completion"

    def to_dict(self) -> dict[str, Any]:
        """The stored form: the fields given, with who made it and when."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.rollout_id is not None:
            out["rollout_id"] = self.rollout_id
        else:
            out.update(flag=self.flag, environment=self.environment)
        out["channels"] = list(self.channels)
        if self.contact is not None:
            out["contact"] = self.contact
        if self.timed:
            out.update(hour=self.hour, minute=self.minute, timezone=self.timezone)
        if self.weekday is not None:
            out["weekday"] = self.weekday
        return {**out, "created_by": self.created_by, "created_at": self.created_at.isoformat()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Schedule":
        """The stored form back; trusted (it was parsed before it was stored)."""
        return cls(
            d["kind"],
            tuple(d["channels"]),
            d.get("created_by", ""),
            datetime.fromisoformat(d["created_at"]),
            d.get("rollout_id"),
            d.get("flag"),
            d.get("environment"),
            d.get("hour", 0),
            d.get("minute", 0),
            d.get("timezone", "UTC"),
            d.get("weekday"),
            d.get("contact"),
        )


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    schedule: Schedule
    last_period: str | None  # the period last sent: a day (2026-11-27) or an ISO week (2026-W48)


def time_zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidInput("timezone is an IANA name such as Europe/Berlin", where="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin", where="timezone"
        ) from None


def _integer(body: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{key} is a whole number from {low} to {high}", where=key)
    return value


def _rollout(body: Mapping[str, Any]) -> dict[str, Any]:
    if body.get("rollout_id") is not None:
        if "flag" in body or "environment" in body:
            raise InvalidInput(
                "give rollout_id, or flag and environment (the rollout live then), not both",
                where="rollout_id",
            )
        return {"rollout_id": _integer(body, "rollout_id", 1, 2**31 - 1)}
    flag, environment = body.get("flag"), body.get("environment")
    if not isinstance(flag, str) or not flag or not isinstance(environment, str) or not environment:
        raise InvalidInput("name the rollout: rollout_id, or flag and environment", where="rollout_id")
    return {"flag": flag, "environment": environment}


def _contact(body: Mapping[str, Any]) -> str | None:
    contact = body.get("contact")
    if contact is not None and (not isinstance(contact, str) or not contact.strip() or len(contact) > 200):
        raise InvalidInput(
            "contact is who to ask, e.g. team@example.com (at most 200 characters)", where="contact"
        )
    return None if contact is None else contact.strip()


def _weekday(kind: str, weekday: Any) -> int | None:
    if kind != "weekly":
        if weekday is not None:
            raise InvalidInput("weekday is for weekly reports", where="weekday")
        return None
    if isinstance(weekday, str) and weekday.lower()[:3] in [d[:3] for d in _WEEKDAYS]:
        weekday = [d[:3] for d in _WEEKDAYS].index(weekday.lower()[:3])
    return _integer({"weekday": weekday}, "weekday", 0, 6)


def _timing(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "completion":
        timed = sorted({"hour", "minute", "timezone", "weekday"} & set(body))
        if timed:
            raise InvalidInput(
                "a completion report goes out when the rollout ends; it takes no " + ", ".join(timed),
                where=timed[0],
            )
        return {}
    return {
        "hour": _integer(body, "hour", 0, 23),
        "minute": _integer(body, "minute", 0, 59, 0),
        "timezone": time_zone(body.get("timezone", "UTC")).key,
        "weekday": _weekday(kind, body.get("weekday")),
    }


def parse_schedule(body: Mapping[str, Any], created_by: str, created_at: datetime) -> Schedule:
    if not isinstance(body, Mapping):
        raise InvalidInput(
            "a schedule is an object with kind, rollout_id (or flag and environment) and channels"
        )
    known = {*_FIELDS, "contact"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; a schedule has " + ", ".join(sorted(known)), where=unknown[0]
        )
    kind = body.get("kind")
    if kind not in KINDS:
        raise InvalidInput("kind is one of " + ", ".join(KINDS), where="kind")
    rollout = _rollout(body)
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise InvalidInput("channels is a list of channel names", where="channels")
    contact = _contact(body)
    return Schedule(
        kind,
        tuple(dict.fromkeys(channels)),
        created_by,
        created_at,
        contact=contact,
        **rollout,
        **_timing(kind, body),
    )


def _slot(schedule: Schedule, day: date) -> tuple[str, datetime]:
    """The period of a local day (daily: the date; weekly: the ISO week) and its send time, in UTC."""
    zone = ZoneInfo(schedule.timezone)
    if schedule.kind == "weekly":
        day -= timedelta(days=day.weekday() - (schedule.weekday or 0))  # this ISO week's report day
        year, week, _ = day.isocalendar()
        period = f"{year}-W{week:02d}"
    else:
        period = day.isoformat()
    # A local time skipped by a DST change reads as the same wall time before the change (an hour later in
    # real time); one that occurs twice is the first. Either way, one send per period.
    return period, datetime.combine(day, time(schedule.hour, schedule.minute), zone).astimezone(UTC)


def due_period(schedule: Schedule, last_period: str | None, now: datetime) -> str | None:
    """The period to send now: this day's (or ISO week's) slot has passed, after the schedule was created,
    and that period was not sent yet."""
    period, at = _slot(schedule, now.astimezone(ZoneInfo(schedule.timezone)).date())
    return period if period != last_period and schedule.created_at <= at <= now else None


def next_send(schedule: Schedule, last_period: str | None, now: datetime) -> datetime | None:
    """When the next report of a timed schedule goes out (a due one: now, at the next tick)."""
    if not schedule.timed:
        return None
    day = now.astimezone(ZoneInfo(schedule.timezone)).date()
    period, at = _slot(schedule, day)
    if period == last_period or at < schedule.created_at:
        period, at = _slot(schedule, day + timedelta(days=7 if schedule.kind == "weekly" else 1))
    return at

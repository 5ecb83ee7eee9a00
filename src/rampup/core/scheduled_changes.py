"""Scheduled changes, pure: a change to a flag's state in one environment, applied once at a moment given in
local time of a time zone ("set 25% on Monday 09:00 Europe/Berlin")."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from rampup.core.schedules import time_zone
from rampup.errors import InvalidInput

__all__ = [
    "MAX_AHEAD",
    "ChangeStatus",
    "ScheduledChange",
    "scheduled_instant",
]

MAX_AHEAD = timedelta(days=366)  # a change planned further out is more likely a typo than a plan
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# "22:00" (the next one) or "monday 09:00" (the next Monday's); anything else is read as an ISO date and time.
_NEXT = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+)?(\d{1,2}):(\d{2})\Z")


class ChangeStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # its time came and the change could not be made (the reason says why)
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    flag: str
    environment: str
    change: Mapping[str, Any]  # a flag state change as PUT /api/v1/flags/{key}/environments/{env} takes it
    at: datetime  # UTC
    timezone: str  # the zone `at` was given in, to show it back in local time
    created_by: str  # the token that scheduled it: the actor of the change when it is made
    created_at: datetime
    notify: tuple[str, ...] = ()  # channels told when it is made or fails, besides the flag's own
    reason: str = ""
    id: int = 0  # 0 until stored
    status: ChangeStatus = ChangeStatus.PENDING
    finished_at: datetime | None = None
    finished_by: str | None = None  # the worker that made it (or failed it), the token that cancelled it
    outcome: str = field(default="")  # why it failed or was cancelled

    @property
    def local_at(self) -> datetime:
        """When it is made, in the time zone it was scheduled in."""
        return self.at.astimezone(time_zone(self.timezone))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flag": self.flag,
            "environment": self.environment,
            "change": dict(self.change),
            "at": self.at,
            "local_at": self.local_at.isoformat(),
            "timezone": self.timezone,
            "notify": list(self.notify),
            "reason": self.reason,
            "status": self.status.value,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "finished_by": self.finished_by,
            "outcome": self.outcome,
        }


def scheduled_instant(value: Any, zone_name: Any, now: datetime) -> tuple[datetime, str]:
    """When a change given as `at` (an ISO date and time; HH:MM or "monday 09:00" for the next one) in `zone_name`
    happens, in UTC, and the zone's name. A local time the zone skips (the spring-forward hour) is refused; one
    it has twice (the autumn hour) is the first, unless `at` carries its UTC offset."""
    zone = time_zone(zone_name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput(
            "at is a date and time such as 2026-12-07 09:00 (or HH:MM, monday 09:00: the next one)",
            where="at",
        )
    local = _local(value.strip(), zone, now)
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
            raise InvalidInput(
                f"{value} does not exist in {zone.key}: the clocks skip it (daylight saving time)", where="at"
            )
    at = local.astimezone(UTC)
    if at <= now:
        raise InvalidInput(f"{at.isoformat()} is in the past (now is {now.isoformat()})", where="at")
    if at > now + MAX_AHEAD:
        raise InvalidInput(f"at is at most {MAX_AHEAD.days} days ahead", where="at")
    return at, zone.key


def _local(value: str, zone: Any, now: datetime) -> datetime:
    match = _NEXT.match(value.lower())
    if match is None:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(
                f"at {value!r} is not a date and time such as 2026-12-07 09:00 (or monday 09:00, or 22:00)",
                where="at",
            ) from None
    day, hour, minute = match[1], int(match[2]), int(match[3])
    if hour > 23 or minute > 59:
        raise InvalidInput(f"at {value!r} is not a time of day", where="at")
    today = now.astimezone(zone).replace(tzinfo=None)
    wanted = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if day is not None:  # this week's, or next week's when it has passed
        wanted += timedelta(days=(_WEEKDAYS.index(day[:3]) - today.weekday()) % 7)
        return wanted if wanted > today else wanted + timedelta(days=7)
    return wanted if wanted > today else wanted + timedelta(days=1)

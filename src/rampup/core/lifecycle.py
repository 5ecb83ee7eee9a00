"""A flag's life: what kind of flag it is, how long it should live, and when it is ready to go or stale.

- *ready for cleanup*: its rollout completed at least `ready_after` ago (3 days by default, the soak a team
  waits at 100 % before deleting the old path) and was not rolled back since;
- *stale*: unchanged for longer than its kind's lifetime, or not evaluated for `unused_after` (30 days) —
  evaluations counted from OFREP, the SDK's exposures and the server;
- kill-switch and permission flags live as long as the product: never ready, never stale;
- *archived*: removed from the code and retired; evaluations still answer its final value.

`assess` is pure: the service hands it what the store knows and the time, and notifies on a change.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rampup.errors import InvalidInput

__all__ = [
    "FlagKind",
    "Status",
    "Why",
    "Activity",
    "Lifecycle",
    "assess",
    "changed",
    "READY_AFTER",
    "UNUSED_AFTER",
]

READY_AFTER = timedelta(days=3)
UNUSED_AFTER = timedelta(days=30)


class FlagKind(StrEnum):
    RELEASE = "release"
    EXPERIMENT = "experiment"
    OPERATIONAL = "operational"
    KILL_SWITCH = "kill-switch"
    PERMISSION = "permission"

    @property
    def lifetime(self) -> timedelta | None:
        """How long a flag of this kind is expected to live unchanged; None: for good."""
        return _LIFETIMES[self]

    @classmethod
    def parse(cls, value: Any) -> "FlagKind":
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(
                f"unknown flag kind {value!r}; use one of: " + ", ".join(k.value for k in cls), where="kind"
            ) from None


_LIFETIMES = {
    FlagKind.RELEASE: timedelta(days=40),
    FlagKind.EXPERIMENT: timedelta(days=40),
    FlagKind.OPERATIONAL: timedelta(days=7),
    FlagKind.KILL_SWITCH: None,
    FlagKind.PERMISSION: None,
}


class Status(StrEnum):
    ACTIVE = "active"
    READY_FOR_CLEANUP = "ready_for_cleanup"
    STALE = "stale"
    ARCHIVED = "archived"


class Why(StrEnum):
    """The reason behind a status, for people (rendered by the edges) and for filters."""

    ROLLOUT_COMPLETED = "rollout_completed"  # completed `ready_after` ago, no rollback since
    PAST_LIFETIME = "past_lifetime"  # unchanged longer than the kind's lifetime
    NOT_EVALUATED = "not_evaluated"  # no evaluation for `unused_after`
    PERMANENT = "permanent"  # kill switch or permission: never stale
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Activity:
    """What is known about a flag's use, from the store."""

    kind: FlagKind
    created_at: datetime
    changed_at: datetime  # the last change of its definition or any environment's state
    completed_at: datetime | None = None  # its last rollout's completion
    rolled_back_since: bool = False  # a rollback or kill after that completion
    last_evaluated_at: datetime | None = None
    archived_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    status: Status
    reasons: tuple[Why, ...]
    since: datetime | None  # when the status's reason began to hold (None: it has no start)
    idle: timedelta | None = None  # how long unevaluated, when that is a reason
    unchanged: timedelta | None = None  # how long unchanged, when that is a reason


def assess(
    activity: Activity,
    now: datetime,
    *,
    ready_after: timedelta = READY_AFTER,
    unused_after: timedelta = UNUSED_AFTER,
) -> Lifecycle:
    if activity.archived_at is not None:
        return Lifecycle(Status.ARCHIVED, (Why.ARCHIVED,), activity.archived_at)
    lifetime = activity.kind.lifetime
    if lifetime is None:
        return Lifecycle(Status.ACTIVE, (Why.PERMANENT,), None)
    reasons: list[Why] = []
    since: list[datetime] = []
    unchanged = now - activity.changed_at
    if unchanged > lifetime:
        reasons.append(Why.PAST_LIFETIME)
        since.append(activity.changed_at + lifetime)
    last_use = activity.last_evaluated_at or activity.created_at
    idle = now - last_use
    if idle > unused_after:
        reasons.append(Why.NOT_EVALUATED)
        since.append(last_use + unused_after)
    if reasons:
        return Lifecycle(
            Status.STALE,
            tuple(reasons),
            min(since),
            idle if Why.NOT_EVALUATED in reasons else None,
            unchanged if Why.PAST_LIFETIME in reasons else None,
        )
    completed = activity.completed_at
    if completed is not None and not activity.rolled_back_since and now - completed >= ready_after:
        return Lifecycle(Status.READY_FOR_CLEANUP, (Why.ROLLOUT_COMPLETED,), completed + ready_after)
    return Lifecycle(Status.ACTIVE, (), None)


def changed(previous: Mapping[str, Status], current: Mapping[str, Lifecycle]) -> dict[str, Lifecycle]:
    """The flags whose status moved since it was last recorded: each is announced once per change.
    A flag seen for the first time is announced only when it is not simply active."""
    return {key: life for key, life in current.items() if previous.get(key, Status.ACTIVE) is not life.status}

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

from rampup.core.coderefs import RefKind
from rampup.errors import InvalidInput, TooLarge

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
    "Stewardship",
    "CodeReference",
    "parse_references",
    "parse_notify",
    "MAX_REFERENCES",
    "in_use",
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


MAX_REFERENCES = 5000  # a flag used in more places than this is a scan gone wrong, not a flag
_TEXT_LIMITS = {"file": 1000, "detail": 500, "scope": 300, "code": 1000}
MAX_NOTIFY = 20


@dataclass(frozen=True, slots=True)
class CodeReference:
    """One use of a flag in code, as `rampup refs --push` reported it."""

    file: str
    line: int
    kind: RefKind
    detail: str = ""
    scope: str = ""
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind.value,
            "detail": self.detail,
            "scope": self.scope,
            "code": self.code,
        }


def parse_references(raw: Any, where: str = "references") -> tuple[CodeReference, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("references must be a list", where=where)
    if len(raw) > MAX_REFERENCES:
        raise TooLarge(f"{len(raw)} references; at most {MAX_REFERENCES} are kept per flag", where=where)
    return tuple(_reference(item, f"{where}[{i}]") for i, item in enumerate(raw))


def _reference(item: Any, where: str) -> CodeReference:
    if not isinstance(item, Mapping):
        raise InvalidInput('a reference is {"file", "line", "kind", …}', where=where)
    unknown = set(item) - {"line", "kind", *_TEXT_LIMITS}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", where=f"{where}.{sorted(unknown)[0]}")
    line = item.get("line")
    if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= 10_000_000:
        raise InvalidInput("line must be a positive whole number", where=f"{where}.line")
    try:
        kind = RefKind(str(item.get("kind")))
    except ValueError:
        raise InvalidInput(
            f"unknown reference kind {item.get('kind')!r}; use one of: "
            + ", ".join(k.value for k in RefKind),
            where=f"{where}.kind",
        ) from None
    text: dict[str, str] = {}
    for name, limit in _TEXT_LIMITS.items():
        value = item.get(name, "")
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            raise InvalidInput(f"{name} must be text of at most {limit} characters", where=f"{where}.{name}")
        text[name] = value
    if not text["file"]:
        raise InvalidInput("file must name the file", where=f"{where}.file")
    return CodeReference(text["file"], line, kind, text["detail"], text["scope"], text["code"])


def in_use(references: tuple[CodeReference, ...]) -> tuple[CodeReference, ...]:
    """The references that are surely uses: a bare literal may be a coincidence (`className="workstation"`),
    so it is shown but neither blocks an archive nor fails `rampup refs --check`."""
    return tuple(r for r in references if r.kind is not RefKind.LITERAL)


def parse_notify(raw: Any) -> tuple[str, ...]:
    """The channels a flag's status changes go to, besides those of the plan that rolled it out."""
    if not isinstance(raw, list) or len(raw) > MAX_NOTIFY or not all(isinstance(n, str) and n for n in raw):
        raise InvalidInput(f"notify must be a list of at most {MAX_NOTIFY} channel names", where="notify")
    return tuple(dict.fromkeys(raw))


@dataclass(frozen=True, slots=True)
class Stewardship:
    """What a flag's owners said and what was found about its life: its kind, who hears about it, its last
    announced status, where the code uses it (the last push), and whether it is archived."""

    kind: FlagKind = FlagKind.RELEASE
    notify: tuple[str, ...] = ()
    status: Status = Status.ACTIVE
    status_since: datetime | None = None
    references: tuple[CodeReference, ...] = ()
    scanned_at: datetime | None = None  # None: never pushed
    archived_at: datetime | None = None

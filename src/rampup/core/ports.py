"""What the services need from the outside world, as Protocols. Adapters implement them.

A transaction exposes one repository per aggregate (`tx.flags`, `tx.rollouts`, …); each takes and returns
core values. `adapters/storage/` implements them over SQL, `adapters/storage/memory.py` in memory."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from rampup.core.alerts import Alert, AlertRule, AlertRuleRecord
from rampup.core.feedback import Entry, EventRef
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.gates import GateInputs
from rampup.core.lifecycle import Stewardship
from rampup.core.model import AuditEntry, AuditRecord, Environment
from rampup.core.notifications import Channel, Notification
from rampup.core.plans import Plan, RolloutState, Transition
from rampup.core.rollups import Aggregate, Exceedance, LatencyKey, RollupKey, UnitKey, UnitTotals
from rampup.core.scheduled_changes import ChangeStatus, ScheduledChange
from rampup.core.schedules import Schedule, ScheduleRecord
from rampup.core.segments import Segment
from rampup.core.sessions import Session
from rampup.core.switch_off import SwitchOff
from rampup.core.telemetry import CustomMetric, Observation
from rampup.core.tokens import Token

__all__ = [
    "Clock",
    "Notifier",
    "FlagRecord",
    "SegmentRecord",
    "RolloutRecord",
    "OutboxItem",
    "StateRecord",
    "PastState",
    "Backlog",
    "SessionRecord",
    "RollupRow",
    "EvaluationCount",
    "Environments",
    "Flags",
    "Segments",
    "Tokens",
    "AuditLog",
    "CustomMetrics",
    "GateData",
    "Telemetry",
    "Rollouts",
    "Outbox",
    "Leases",
    "Channels",
    "AlertRules",
    "Alerts",
    "Schedules",
    "ScheduledChanges",
    "Sessions",
    "Feedback",
    "Lifecycle",
    "Transaction",
    "Store",
]

Clock = Callable[[], datetime]  # always timezone-aware UTC


class Notifier(Protocol):
    """Sends a notification to one channel of its type (adapters/notify/); raises RampupError on failure."""

    def send(self, channel: Channel, n: Notification) -> None: ...


@dataclass(frozen=True, slots=True)
class FlagRecord:
    id: int
    definition: FlagDefinition
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    id: int
    environment_id: int
    segment: Segment  # its keys empty when read without them
    key_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    id: int
    plan_source: dict[str, Any]  # the plan as given, kept to show and to re-parse
    plan: Plan
    state: RolloutState
    version: int
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: str  # time-ordered: the queue order
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None  # of the last failed attempt


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A flag's state in one environment."""

    flag_id: int
    environment_id: int
    state: FlagState
    switched_off: SwitchOff | None = None  # while the flag stays off: who switched it off, when, why and how


@dataclass(frozen=True, slots=True)
class PastState:
    """A state a flag had in one environment from `at` on (without its rules: the history attributes traffic)."""

    flag_id: int
    environment_id: int
    at: datetime
    state: FlagState


@dataclass(frozen=True, slots=True)
class Backlog:
    count: int  # undelivered items
    oldest: datetime | None  # when the oldest of them was queued


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session: Session
    touched_at: datetime  # its expiry was last slid forward then


@dataclass(frozen=True, slots=True)
class RollupRow:
    variant: str
    resolution: int  # seconds: a second, a minute or an hour
    period: int  # unix seconds of its start
    aggregate: Aggregate


@dataclass(frozen=True, slots=True)
class EvaluationCount:
    """Evaluations of one flag in one environment on one epoch day, and the last one's time."""

    environment_id: int
    day: int  # days since 1970-01-01
    count: int
    last_at: datetime

    @property
    def calendar_day(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.day)


class Environments(Protocol):
    def all(self) -> list[Environment]: ...
    def get(self, key: str) -> Environment | None: ...
    def add(self, key: str, name: str, at: datetime) -> Environment: ...
    def update(self, environment_id: int, key: str, name: str) -> None: ...
    def delete(self, environment_id: int) -> None: ...  # with its flag states, their history, its tokens


class Flags(Protocol):
    """Flag definitions and their state in each environment (with every state each one had)."""

    def all(self) -> list[FlagRecord]: ...
    def get(self, key: str, *, for_update: bool = False) -> FlagRecord | None: ...
    def add(self, definition: FlagDefinition, at: datetime) -> FlagRecord: ...
    def update(self, flag_id: int, definition: FlagDefinition, at: datetime) -> None: ...
    def delete(self, flag_id: int) -> None: ...
    def states(self, flag_id: int | None = None) -> Iterator[StateRecord]: ...
    def state(self, flag_id: int, environment_id: int) -> FlagState | None: ...
    def put_state(self, flag_id: int, environment_id: int, state: FlagState, at: datetime) -> None: ...
    # Kept with the state until put again: set by what turns the flag off, None when a person turns it on.
    def put_switch_off(self, flag_id: int, environment_id: int, switch_off: SwitchOff | None) -> None: ...
    def history(self) -> Iterator[PastState]: ...  # per flag and environment, oldest first


class Segments(Protocol):
    """Segments per environment, with the targeting keys each lists (deleted with their environment)."""

    def all(self, environment_id: int | None = None, *, keys: bool = True) -> list[SegmentRecord]: ...
    def get(self, environment_id: int, key: str, *, for_update: bool = False) -> SegmentRecord | None: ...
    def add(self, environment_id: int, segment: Segment, at: datetime) -> SegmentRecord: ...
    # `before` as read (with its keys): only the keys that differ from its are written.
    def update(self, before: SegmentRecord, segment: Segment, at: datetime) -> None: ...
    def delete(self, segment_id: int) -> None: ...


class Tokens(Protocol):
    def all(self) -> list[Token]: ...
    def get(self, token_id: str) -> Token | None: ...
    def add(self, token: Token, environment_id: int | None) -> None: ...
    def set_secret(self, token_id: str, secret_hash: str) -> None: ...  # and un-revokes
    def revoke(self, token_id: str, at: datetime) -> None: ...


class AuditLog(Protocol):
    def record(
        self,
        actor: str,
        action: str,
        target: str,
        environment: str | None,
        before: AuditRecord,
        after: AuditRecord,
        reason: str,
        at: datetime,
        on_behalf_of: str | None = None,
    ) -> None: ...
    def entries(
        self,
        *,
        target: str | None = None,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,  # a prefix: "rollout." is the family
        limit: int = 100,
        before_id: int | None = None,
    ) -> Sequence[AuditEntry]: ...  # newest first
    def revision(self) -> int: ...  # the newest entry's id: moves with every change


class CustomMetrics(Protocol):
    def all(self) -> list[CustomMetric]: ...
    def add(self, metric: CustomMetric, at: datetime) -> None: ...
    def delete(self, name: str) -> bool: ...


class Rollouts(Protocol):
    def add(
        self, plan_source: dict[str, Any], plan: Plan, state: RolloutState, actor: str, at: datetime
    ) -> int: ...
    def get(self, rollout_id: int) -> RolloutRecord | None: ...
    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        live: bool | None = None,
        limit: int = 100,
    ) -> list[RolloutRecord]: ...
    def live_for(self, flag: str, environment: str) -> RolloutRecord | None: ...
    def save(self, rollout_id: int, expected_version: int, state: RolloutState, at: datetime) -> bool: ...
    def add_transitions(self, rollout_id: int, transitions: Sequence[Transition]) -> None: ...
    def transitions(self, rollout_id: int) -> list[Transition]: ...


class Outbox(Protocol):
    def enqueue(
        self, item_id: str, kind: str, destination: str, payload: dict[str, Any], at: datetime
    ) -> None: ...
    def heads(self, now: datetime, limit: int = 100) -> list[OutboxItem]: ...
    def delivered(self, item_id: str, at: datetime) -> None: ...
    def failed(self, item_id: str, error: str, retry_at: datetime) -> None: ...
    def items(self, limit: int = 100) -> list[OutboxItem]: ...  # newest first
    def backlog(self) -> Backlog: ...


class Leases(Protocol):
    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...  # only the holder's own lease


class Channels(Protocol):
    def all(self) -> list[Channel]: ...
    def get(self, name: str) -> Channel | None: ...
    def add(self, channel: Channel, at: datetime) -> None: ...
    def delete(self, name: str) -> bool: ...


class AlertRules(Protocol):
    def all(self) -> list[AlertRuleRecord]: ...
    def add(self, rule: AlertRule, rollout_id: int | None, at: datetime) -> int: ...
    def delete(self, rule_id: int) -> bool: ...
    def set_breaching(self, rule_id: int, since: datetime | None) -> None: ...


class Alerts(Protocol):
    def firing(self, rule_id: int) -> Alert | None: ...
    def open(self, rule_id: int, value: float | None, at: datetime) -> int: ...
    def renotified(self, alert_id: int, value: float | None, at: datetime) -> None: ...
    def resolve(self, alert_id: int, value: float | None, at: datetime) -> None: ...
    def all(self, limit: int = 100, firing: bool | None = None) -> list[Alert]: ...  # newest first


class Schedules(Protocol):
    def all(self) -> list[ScheduleRecord]: ...
    def add(self, schedule: Schedule) -> int: ...
    def delete(self, schedule_id: int) -> bool: ...
    def mark_sent(self, schedule_id: int, period: str, expected: str | None) -> bool: ...


class ScheduledChanges(Protocol):
    def add(self, change: ScheduledChange) -> int: ...
    def get(self, change_id: int) -> ScheduledChange | None: ...
    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        status: ChangeStatus | None = None,
        limit: int = 100,
    ) -> list[ScheduledChange]: ...  # soonest first
    def due(self, now: datetime, limit: int = 100) -> list[ScheduledChange]: ...  # pending, at <= now
    def pending(self, flag: str | None = None, environment: str | None = None) -> int: ...  # how many
    def finish(
        self, change_id: int, status: ChangeStatus, at: datetime, by: str, outcome: str = ""
    ) -> bool: ...  # compare-and-swap from pending: False when it is no longer pending
    def rename_environment(
        self, old: str, new: str
    ) -> None: ...  # the pending ones follow a renamed environment


class Sessions(Protocol):
    def add(self, session: Session, at: datetime) -> None: ...
    def get(self, session_id: str, now: datetime) -> SessionRecord | None: ...
    def touch(self, session_id: str, expires_at: datetime, at: datetime) -> None: ...
    def delete(self, session_id: str) -> bool: ...
    def purge(self, before: datetime) -> int: ...


class Lifecycle(Protocol):
    def get(self, flag_id: int) -> Stewardship: ...
    def all(self) -> dict[int, Stewardship]: ...
    def put(self, flag_id: int, s: Stewardship) -> None: ...
    def add_evaluations(self, counts: Mapping[tuple[int, int], int], day: int, at: datetime) -> None: ...
    def last_evaluated(self) -> dict[int, datetime]: ...
    def evaluations(self, flag_id: int, since_day: int) -> list[EvaluationCount]: ...  # by environment, day


class GateData(GateInputs, Protocol):
    """A tick's reader of one flag's telemetry in one environment; it keeps what it read until `forget`."""

    def forget(self) -> None: ...


class Telemetry(Protocol):
    def insert_events(self, environment_id: int, observations: Sequence[Observation]) -> None: ...
    def make_room(self, days: Iterable[int]) -> None:
        """Make ready to store raw events of these days (days since 1970-01-01) without waiting."""
        ...

    def add_rollups(self, environment_id: int, batch: Mapping[RollupKey, Aggregate]) -> None: ...
    def add_units(self, environment_id: int, units: Mapping[UnitKey, list[int]]) -> None: ...
    def add_latencies(self, environment_id: int, latencies: Mapping[LatencyKey, int]) -> None:
        """Adds each user's latency values per day and octave (`core.rollups.LatencyKey`)."""
        ...

    def exceedance(
        self, environment_id: int, flag: str, metric: str, first_day: int, last_day: int
    ) -> dict[str, dict[int, Exceedance]]:
        """Per variant, and per octave holding values: the sums over users (each user's days together) of
        their values and of those at or above the octave."""
        ...

    def compact_units(self, limit: int) -> int:
        """Merge up to `limit` of what `add_units` appended into one row per user and day; returns how many were
        merged (0: nothing left). `unit_totals` answers alike before and after."""
        ...

    def pending_units(self, limit: int) -> object | None:
        """The oldest of what `add_units` and `add_latencies` appended, until `limit` users, each user's summed; read
        outside a write transaction, for `collapse_units` to put in its place before a merge. None where the merge
        sums them itself."""
        ...

    def collapse_units(self, pending: object) -> None:
        """Replace what `pending_units` read (of this store) with its sums, unless another compactor took some of it
        meanwhile. Every answer stays the same."""
        ...

    def rollup_rows(
        self, environment_id: int, flag: str, metric: str, spans: Iterable[tuple[int, int, int]]
    ) -> list[RollupRow]: ...
    def unit_totals(
        self, environment_id: int, flag: str, first_day: int, last_day: int
    ) -> dict[str, UnitTotals]: ...
    def events(self, environment_id: int, since_ms: int, until_ms: int) -> list[Observation]: ...
    def purge_events(self, before_ms: int) -> int: ...
    def purge_rollups(self, resolution: int, before_period: int) -> int: ...
    def gate_inputs(self, environment_id: int, flag: str) -> GateData: ...
    def claim_summary(self, environment_id: int, summary_id: str, at_ms: int) -> bool:
        """Records that the summary with this id is stored; False when it was already (a retry)."""
        ...

    def purge_summary_ids(self, before_ms: int) -> int: ...


class Feedback(Protocol):
    def add(self, environment_id: int, entries: Sequence[Entry]) -> None: ...
    def page(
        self,
        environment_id: int,
        *,
        flag: str = "",
        variant: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        commented: bool = False,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Entry]: ...
    def purge_user(self, targeting_key: str, environment_id: int | None) -> int: ...
    def purge_before(self, before_ms: int) -> int: ...
    def add_event_refs(
        self, environment_id: int, refs: Iterable[EventRef]
    ) -> None: ...  # a repeat is ignored
    def event_refs(self, environment_id: int, event_ids: Sequence[str]) -> dict[str, EventRef]: ...


class Transaction(Protocol):
    """One unit of work: everything done through it commits together or not at all."""

    @property
    def environments(self) -> Environments: ...
    @property
    def flags(self) -> Flags: ...
    @property
    def segments(self) -> Segments: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def custom_metrics(self) -> CustomMetrics: ...
    @property
    def telemetry(self) -> Telemetry: ...
    @property
    def rollouts(self) -> Rollouts: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def leases(self) -> Leases: ...
    @property
    def channels(self) -> Channels: ...
    @property
    def alert_rules(self) -> AlertRules: ...
    @property
    def alerts(self) -> Alerts: ...
    @property
    def schedules(self) -> Schedules: ...
    @property
    def scheduled_changes(self) -> ScheduledChanges: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def feedback(self) -> Feedback: ...
    @property
    def lifecycle(self) -> Lifecycle: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def read(self) -> AbstractContextManager[Transaction]: ...

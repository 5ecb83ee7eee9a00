"""Scheduled changes: stored and cancelled through the API; made once, when their time comes, by the leading worker.

Making one is a single transaction: renew the leader's lease (the fence: a worker that lost it changes nothing),
move the change from pending to done (the claim: a second worker finds it done), change the flag with its audit
entry, and queue the notifications. A change that cannot be made then (its flag is gone, a rollout runs on it, it
would switch on a flag killed after it was scheduled, it no longer validates) is rolled back and marked failed,
with the reason, in a transaction of its own."""

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.lifecycle import parse_notify
from rampup.core.notifications import Notification, Severity
from rampup.core.ports import Clock, Store, Transaction
from rampup.core.scheduled_changes import ChangeStatus, ScheduledChange, scheduled_instant
from rampup.core.switch_off import OffHow
from rampup.errors import Conflict, InvalidInput, NotFound, RampupError
from rampup.services.flags import STATE_FIELDS, FlagService, apply_changes, known_channels
from rampup.services.notifications import NotificationService
from rampup.services.outbox import LEASE, outbox_id

__all__ = ["ScheduledChangeService", "MAX_PENDING", "MAX_PENDING_PER_FLAG"]

MAX_PENDING_PER_FLAG = 50  # in one environment
MAX_PENDING = 1000  # in all
# The version is the one at execution time, unknown when scheduling.
CHANGE_FIELDS = STATE_FIELDS - {"version"}
_FIELDS = frozenset({"flag", "environment", "at", "timezone", "change", "notify", "reason"})


class ScheduledChangeService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        flags: FlagService,
        notifications: NotificationService,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._flags = flags
        self._notifications = notifications
        self._on_change = on_change

    def create(self, body: Mapping[str, Any], actor: str) -> ScheduledChange:
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise InvalidInput(
                f"unknown field {unknown[0]!r}; a scheduled change has " + ", ".join(sorted(_FIELDS)),
                where=unknown[0],
            )
        now = self._clock()
        at, zone = scheduled_instant(body.get("at"), body.get("timezone", "UTC"), now)
        change = _change(body.get("change"))
        notify = parse_notify(body.get("notify", []))
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 10_000:
            raise InvalidInput("reason is a string of at most 10,000 characters", where="reason")
        flag, environment = body.get("flag"), body.get("environment")
        if not isinstance(flag, str) or not isinstance(environment, str):
            raise InvalidInput("name the flag and the environment", where="flag")
        with self._store.transaction() as tx:
            try:  # valid now; checked again when it is made
                self._flags.check_change_in(tx, flag, environment, _applying(change))
            except InvalidInput as exc:
                raise InvalidInput(
                    exc.message, where=f"change.{exc.where}" if exc.where else "change"
                ) from None
            known_channels(tx, notify)
            _within_limits(tx, flag, environment)
            scheduled = ScheduledChange(flag, environment, change, at, zone, actor, now, notify, reason)
            scheduled = replace(scheduled, id=tx.scheduled_changes.add(scheduled))
            tx.audit.record(
                actor, "schedule.create", f"flag:{flag}", environment, None, scheduled.to_dict(), reason, now
            )
        return scheduled

    def changes(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[ScheduledChange]:
        wanted = None if status is None else _status(status)
        with self._store.read() as tx:
            return tx.scheduled_changes.find(flag=flag, environment=environment, status=wanted, limit=limit)

    def change(self, change_id: int) -> ScheduledChange:
        with self._store.read() as tx:
            return _get(tx, change_id)

    def cancel(self, change_id: int, actor: str, reason: str = "") -> ScheduledChange:
        now = self._clock()
        with self._store.transaction() as tx:
            before = _get(tx, change_id)
            if not tx.scheduled_changes.finish(change_id, ChangeStatus.CANCELLED, now, actor, reason):
                raise Conflict(
                    f"scheduled change {change_id} is {before.status.value}: only a pending one is cancelled"
                )
            after = _get(tx, change_id)
            tx.audit.record(
                actor,
                "schedule.cancel",
                f"flag:{before.flag}",
                before.environment,
                before.to_dict(),
                after.to_dict(),
                reason,
                now,
            )
        return after

    def run_due(self, holder: str, lease: timedelta) -> int:
        """Make every change whose time has come (the leader's controller pass); how many were made."""
        now = self._clock()
        with self._store.read() as tx:
            due = tx.scheduled_changes.due(now)
        made = 0
        for scheduled in due:
            try:
                made += self._make(scheduled, holder, lease, now)
            except (InvalidInput, Conflict, NotFound) as exc:
                self._fail(scheduled, holder, lease, now, exc)
        if made:
            self._on_change()
        return made

    def _make(self, s: ScheduledChange, holder: str, lease: timedelta, now: datetime) -> bool:
        with self._store.transaction() as tx:
            if not _claim(tx, s, ChangeStatus.DONE, holder, lease, now):
                return False
            live = tx.rollouts.live_for(s.flag, s.environment)
            if live is not None:
                raise Conflict(
                    f"rollout {live.id} runs on {s.flag!r} in {s.environment!r}: its plan sets the flag"
                )
            off = self._flags.switched_off(tx, s.flag, s.environment) if s.change.get("enabled") else None
            # A change scheduled before the kill must not undo it; one scheduled after it is the deliberate undoing.
            if off is not None and off.at > s.created_at:
                raise off.refusal(f"scheduled change {s.id}, made before that,")
            said = f": {s.reason}" if s.reason else ""
            self._flags.change_state_in(
                tx,
                s.flag,
                s.environment,
                s.created_by,
                f"scheduled change {s.id}, made by {holder}{said}",
                "flag.scheduled",
                _applying(s.change),
                now,
                how=OffHow.SCHEDULED,
                source_id=s.id,
            )
            self._announce(tx, s, now, "schedule.done", Severity.INFO, f"made by {holder}")
        return True

    def _fail(
        self, s: ScheduledChange, holder: str, lease: timedelta, now: datetime, error: RampupError
    ) -> None:
        with self._store.transaction() as tx:
            if not _claim(tx, s, ChangeStatus.FAILED, holder, lease, now, error.message):
                return
            tx.audit.record(
                s.created_by,
                "schedule.fail",
                f"flag:{s.flag}",
                s.environment,
                s.to_dict(),
                _get(tx, s.id).to_dict(),
                f"scheduled change {s.id} not made by {holder}: {error.message}",
                now,
            )
            self._announce(tx, s, now, "schedule.failed", Severity.WARNING, f"not made: {error.message}")

    def _announce(
        self, tx: Transaction, s: ScheduledChange, now: datetime, kind: str, severity: Severity, outcome: str
    ) -> None:
        record = tx.flags.get(s.flag)
        own = tx.lifecycle.get(record.id).notify if record is not None else ()
        what = _describe(s.change)
        n = Notification(
            outbox_id(now),
            kind,
            now,
            f"{s.flag} in {s.environment}: {what}" + ("" if kind == "schedule.done" else " failed"),
            f"Scheduled by {s.created_by} for {s.local_at.isoformat()} ({s.timezone}); {outcome}.",
            severity,
            (
                ("flag", s.flag),
                ("environment", s.environment),
                ("change", what),
                ("scheduled by", s.created_by),
            ),
            details={"scheduled_change": s.id},
        )
        self._notifications.enqueue(tx, dict.fromkeys((*own, *s.notify)), n)


def _claim(
    tx: Transaction,
    s: ScheduledChange,
    status: ChangeStatus,
    holder: str,
    lease: timedelta,
    now: datetime,
    outcome: str = "",
) -> bool:
    """The fence and the claim, in the caller's transaction: this holder still leads, and the change was pending."""
    return tx.leases.acquire(LEASE, holder, now, now + lease) and tx.scheduled_changes.finish(
        s.id, status, now, holder, outcome
    )


def _within_limits(tx: Transaction, flag: str, environment: str) -> None:
    if tx.scheduled_changes.pending(flag, environment) >= MAX_PENDING_PER_FLAG:
        raise Conflict(
            f"{flag!r} has {MAX_PENDING_PER_FLAG} pending changes in {environment!r}: cancel one first"
        )
    if tx.scheduled_changes.pending() >= MAX_PENDING:
        raise Conflict(f"{MAX_PENDING} changes are pending: cancel some first")


def _applying(change: Mapping[str, Any]) -> Callable[[FlagDefinition, FlagState], FlagState]:
    return lambda definition, state: apply_changes(definition, state, change)


def _change(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(
            "change is an object of the state fields to set: " + ", ".join(sorted(CHANGE_FIELDS)),
            where="change",
        )
    unknown = sorted(set(raw) - CHANGE_FIELDS)
    if unknown:
        raise InvalidInput(
            f"a scheduled change sets {', '.join(sorted(CHANGE_FIELDS))}, not {unknown[0]!r}",
            where=f"change.{unknown[0]}",
        )
    return dict(raw)


def _status(raw: str) -> ChangeStatus:
    try:
        return ChangeStatus(raw)
    except ValueError:
        raise InvalidInput(
            "status is one of " + ", ".join(s.value for s in ChangeStatus), where="status"
        ) from None


def _get(tx: Transaction, change_id: int) -> ScheduledChange:
    found = tx.scheduled_changes.get(change_id)
    if found is None:
        raise NotFound(f"scheduled change {change_id} not found")
    return found


def _describe(change: Mapping[str, Any]) -> str:
    """What a change sets, in a few words: 'enabled, rollout 25%, 2 rules'."""
    words = []
    for name, value in change.items():
        if name == "enabled":
            words.append("enabled" if value else "disabled")
        elif name == "rollout":
            words.append(f"rollout {value:g}%")
        elif isinstance(value, list):
            words.append(f"{len(value)} {name}")
        else:
            words.append(f"{name} {value}")
    return ", ".join(words)

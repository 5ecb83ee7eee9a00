"""A flag's life: its status (active, ready for cleanup, stale, archived) with the reason, announced once per
change to its channels; where the code uses it; its evaluation counts; and its archive.

`core/lifecycle.assess` decides; this service gathers what it needs from the store (kinds, last changes from
the flag history, completed rollouts and what happened after them, the evaluation counts) and acts on it.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rampup.core.bucketing import BUCKETS
from rampup.core.flags import final_variant
from rampup.core.lifecycle import (
    READY_AFTER,
    UNUSED_AFTER,
    Activity,
    Lifecycle,
    Status,
    Stewardship,
    Why,
    assess,
    changed,
    in_use,
    parse_references,
)
from rampup.core.notifications import Notification, Severity
from rampup.core.plans import Phase
from rampup.core.ports import Clock, EvaluationCount, FlagRecord, RolloutRecord, Store, Transaction
from rampup.errors import Conflict, InvalidInput, NotFound
from rampup.services.notifications import NotificationService
from rampup.services.outbox import outbox_id
from rampup.services.usage import epoch_day

__all__ = ["Evaluations", "FlagLife", "LifecycleService", "ANNOUNCE_EVERY"]

ANNOUNCE_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Evaluations:
    """A flag's evaluations over its last `days` days: per environment key, each day's count, oldest first."""

    flag: str
    days: int
    counts: Mapping[str, tuple[EvaluationCount, ...]]


@dataclass(frozen=True, slots=True)
class FlagLife:
    key: str
    stewardship: Stewardship
    life: Lifecycle
    last_evaluated_at: datetime | None
    completed_at: datetime | None
    channels: tuple[str, ...]  # who hears of its status changes


def describe(life: Lifecycle, s: Stewardship) -> str:
    """The reason in words, for people: the CLI, the dashboard and the notifications."""
    parts = []
    for why in life.reasons:
        match why:
            case Why.ROLLOUT_COMPLETED:
                parts.append(
                    "its rollout completed and has not been rolled back since: remove it from the code"
                )
            case Why.PAST_LIFETIME:
                days = life.unchanged.days if life.unchanged else 0
                lifetime = s.kind.lifetime.days if s.kind.lifetime else 0
                parts.append(f"unchanged for {days} days, past a {s.kind.value} flag's {lifetime}")
            case Why.NOT_EVALUATED:
                days = life.idle.days if life.idle else 0
                parts.append(f"not evaluated for {days} days")
            case Why.PERMANENT:
                parts.append(f"a {s.kind.value} flag lives for good: never stale")
            case Why.ARCHIVED:
                parts.append("archived: evaluations answer its final value with reason ARCHIVED")
    return "; ".join(parts) or "in use"


class LifecycleService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifications: NotificationService,
        on_change: Callable[[], object] = lambda: None,
        *,
        ready_after: timedelta = READY_AFTER,
        unused_after: timedelta = UNUSED_AFTER,
    ) -> None:
        self._store = store
        self._clock = clock
        self._notifications = notifications
        self._on_change = on_change
        self._ready_after = ready_after
        self._unused_after = unused_after
        self._announced_at: datetime | None = None

    # status

    def lives(self, status: Status | None = None) -> list[FlagLife]:
        with self._store.read() as tx:
            lives = self._lives(tx, self._clock())
        return [life for life in lives if status is None or life.life.status is status]

    def announce(self) -> int:
        """The leader's periodic pass: store each flag's status, and tell its channels of each change once.
        Status and notifications are written in one transaction, so a change is announced exactly when it is
        recorded (and delivered at least once by the outbox)."""
        now = self._clock()
        # Statuses move by days: a pass a minute is plenty, whatever the controller's tick.
        if self._announced_at is not None and now - self._announced_at < ANNOUNCE_EVERY:
            return 0
        self._announced_at = now
        with self._store.transaction() as tx:
            lives = {flag.key: flag for flag in self._lives(tx, now)}
            recorded = {key: flag.stewardship.status for key, flag in lives.items()}
            moved = changed(recorded, {key: flag.life for key, flag in lives.items()})
            for key, life in moved.items():
                flag = lives[key]
                record = tx.flags.get(key)
                assert record is not None  # read in this very transaction
                status = replace(flag.stewardship, status=life.status, status_since=life.since or now)
                tx.lifecycle.put(record.id, status)
                self._notifications.enqueue(tx, flag.channels, _notification(flag, recorded[key], now))
        return len(moved)

    def _lives(self, tx: Transaction, now: datetime) -> list[FlagLife]:
        stewardships = tx.lifecycle.all()
        last_evaluated = tx.lifecycle.last_evaluated()
        changed: dict[int, datetime] = {}
        history: dict[tuple[int, int], list[tuple[datetime, bool]]] = {}
        for past in tx.flags.history():
            changed[past.flag_id] = max(past.at, changed.get(past.flag_id, past.at))
            full = past.state.enabled and past.state.rollout_bp >= BUCKETS
            history.setdefault((past.flag_id, past.environment_id), []).append((past.at, full))
        env_ids = {e.key: e.id for e in tx.environments.all()}
        completions = _completions(tx, tx.rollouts.find(live=False, limit=10_000))
        lives = []
        for record in tx.flags.all():
            s = stewardships.get(record.id, Stewardship())
            completion = completions.get(record.definition.key)
            completed_at, rolled_back, channels = None, False, s.notify
            if completion is not None:
                rollout, completed_at = completion
                states = history.get((record.id, env_ids.get(rollout.plan.environment, -1)), [])
                rolled_back = any(at > completed_at and not full for at, full in states)
                channels = tuple(dict.fromkeys((*rollout.plan.notify, *s.notify)))
            activity = Activity(
                s.kind,
                record.created_at,
                max(record.updated_at, changed.get(record.id, record.updated_at)),
                completed_at,
                rolled_back,
                last_evaluated.get(record.id),
                s.archived_at,
            )
            life = assess(activity, now, ready_after=self._ready_after, unused_after=self._unused_after)
            lives.append(
                FlagLife(
                    record.definition.key, s, life, last_evaluated.get(record.id), completed_at, channels
                )
            )
        return lives

    # code references

    def push_references(self, key: str, body: Any, actor: str) -> Stewardship:
        """Replace the flag's code references with what a scan found (`rampup refs --push`)."""
        if not isinstance(body, dict) or set(body) - {"references", "root"}:
            raise InvalidInput('send {"references": [...], "root": "…"}', where="references")
        references = parse_references(body.get("references"))
        root = body.get("root", "")
        if not isinstance(root, str) or len(root) > 1000:
            raise InvalidInput("root must be text of at most 1000 characters", where="root")
        now = self._clock()
        with self._store.transaction() as tx:
            record = _record(tx, key, for_update=True)
            before = tx.lifecycle.get(record.id)
            after = replace(before, references=references, scanned_at=now)
            tx.lifecycle.put(record.id, after)
            tx.audit.record(
                actor,
                "flag.references",
                f"flag:{key}",
                None,
                {"references": len(before.references), "scanned_at": before.scanned_at},
                {"references": len(references), "root": root},
                "",
                now,
            )
        self._on_change()
        return after

    # archive

    def archive(self, key: str, actor: str, *, force: bool = False, reason: str = "") -> Stewardship:
        """Retire a flag the code no longer uses: from now on every evaluation answers the value everyone got,
        with reason ARCHIVED, and is counted (so a forgotten caller shows up). Refused while the last pushed
        scan found the flag in code, or when no scan was pushed, unless forced; refused while any environment
        still tells users apart, since there would be no one final value."""
        return self._archive(key, actor, reason, archiving=True, force=force)

    def restore(self, key: str, actor: str, reason: str = "") -> Stewardship:
        """Take the flag out of the archive: it evaluates by its state again."""
        return self._archive(key, actor, reason, archiving=False)

    def _archive(
        self, key: str, actor: str, reason: str, *, archiving: bool, force: bool = False
    ) -> Stewardship:
        now = self._clock()
        with self._store.transaction() as tx:
            record = _record(tx, key, for_update=True)
            before = tx.lifecycle.get(record.id)
            if (before.archived_at is not None) is archiving:
                raise Conflict(f"flag {key!r} is {'already' if archiving else 'not'} archived")
            if archiving:
                if not force:
                    _refuse_while_referenced(key, before)
                audited: tuple[Any, Any] = (None, {"final": _final_variants(tx, record), "forced": force})
            else:
                audited = ({"archived_at": before.archived_at}, None)
            after = replace(before, archived_at=now if archiving else None)
            tx.lifecycle.put(record.id, after)
            action = "flag.archive" if archiving else "flag.restore"
            tx.audit.record(actor, action, f"flag:{key}", None, *audited, reason, now)
        self._on_change()
        return after

    # evaluations

    def evaluations(self, key: str, days: int = 30) -> Evaluations:
        """Evaluations of a flag per environment and day over the last `days` days."""
        now = self._clock()
        with self._store.read() as tx:
            record = _record(tx, key)
            names = {e.id: e.key for e in tx.environments.all()}
            rows = tx.lifecycle.evaluations(record.id, epoch_day(now) - days + 1)
        counts: dict[str, list[EvaluationCount]] = {}
        for row in rows:
            counts.setdefault(names[row.environment_id], []).append(row)
        return Evaluations(key, days, {env: tuple(each) for env, each in counts.items()})


def _record(tx: Transaction, key: str, *, for_update: bool = False) -> FlagRecord:
    record = tx.flags.get(key, for_update=for_update)
    if record is None:
        raise NotFound(f"flag {key!r} not found")
    return record


def _refuse_while_referenced(key: str, s: Stewardship) -> None:
    if s.scanned_at is None:
        raise Conflict(
            f"no code scan of {key!r} was pushed: run `rampup refs PATH --push` on the code first (or --force)"
        )
    used = in_use(s.references)
    if used:
        places = ", ".join(f"{r.file}:{r.line}" for r in used[:3]) + (" …" if len(used) > 3 else "")
        raise Conflict(
            f"{key!r} is still used in {len(used)} places of the code scanned {s.scanned_at.isoformat()} "
            f"({places}): remove it (rampup cleanup) and push again, or --force"
        )


def _final_variants(tx: Transaction, record: FlagRecord) -> dict[str, str]:
    """Each environment's one answer; refused while an environment still splits its users."""
    names = {e.id: e.key for e in tx.environments.all()}
    finals = {}
    for s in tx.flags.states(record.id):
        env_id, state = s.environment_id, s.state
        variant = final_variant(record.definition, state)
        if variant is None:
            raise Conflict(
                f"{record.definition.key!r} still tells users apart in {names[env_id]} "
                f"(rollout {state.rollout:g}%, {len(state.rules)} rules): finish or roll it back first",
                where=names[env_id],
            )
        finals[names[env_id]] = variant
    return finals


def _completions(
    tx: Transaction, rollouts: Iterable[RolloutRecord]
) -> Mapping[str, tuple[RolloutRecord, datetime]]:
    """Each flag's most recent completed rollout, and when it completed."""
    found: dict[str, tuple[RolloutRecord, datetime]] = {}
    for rollout in rollouts:
        if rollout.state.phase is not Phase.COMPLETED:
            continue
        at = max(
            (t.at for t in tx.rollouts.transitions(rollout.id) if t.to_phase is Phase.COMPLETED), default=None
        )
        flag = rollout.plan.flag
        if at is not None and (flag not in found or found[flag][1] < at):
            found[flag] = (rollout, at)
    return found


_TITLES = {
    Status.ACTIVE: "{key} is active again",
    Status.READY_FOR_CLEANUP: "{key} is ready for cleanup",
    Status.STALE: "{key} is stale",
    Status.ARCHIVED: "{key} is archived",
}


def _notification(flag: FlagLife, before: Status, now: datetime) -> Notification:
    life = flag.life
    reason = describe(life, flag.stewardship)
    return Notification(
        outbox_id(now),
        f"flag.{life.status.value}",
        now,
        _TITLES[life.status].format(key=flag.key),
        f"{flag.key} ({flag.stewardship.kind.value}) is now {life.status.value.replace('_', ' ')}, "
        f"was {before.value.replace('_', ' ')}: {reason}.",
        Severity.INFO,
        (("flag", flag.key), ("status", life.status.value), ("reason", reason)),
        details={
            "flag": flag.key,
            "status": life.status.value,
            "previous": before.value,
            "reasons": [why.value for why in life.reasons],
            "since": life.since.astimezone(UTC).isoformat() if life.since else None,
        },
    )

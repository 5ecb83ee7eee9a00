"""The store in memory: every port of `core/ports.py` over plain dictionaries, for tests of the services (and
anything else that wants the product without a database). It keeps the SQL store's promises, which the
contract suite in tests/store/contract checks on both: a transaction commits all or nothing, unique names
conflict, compare-and-swaps refuse a stale writer, listings come back in the same order."""

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rampup.adapters.storage._values import jsonable
from rampup.adapters.storage.gate_inputs import TelemetryGateInputs
from rampup.core.alerts import Alert, AlertRule, AlertRuleRecord
from rampup.core.feedback import Entry, EventRef
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.lifecycle import Stewardship
from rampup.core.model import AuditEntry, AuditRecord, Environment
from rampup.core.notifications import Channel
from rampup.core.plans import Plan, RolloutState, Transition
from rampup.core.ports import (
    Backlog,
    EvaluationCount,
    FlagRecord,
    OutboxItem,
    PastState,
    RolloutRecord,
    RollupRow,
    SegmentRecord,
    SessionRecord,
    StateRecord,
)
from rampup.core.rollups import (
    Aggregate,
    Exceedance,
    LatencyKey,
    RollupKey,
    UnitKey,
    UnitTotals,
    suffix_sums,
)
from rampup.core.scheduled_changes import ChangeStatus, ScheduledChange
from rampup.core.schedules import Schedule, ScheduleRecord
from rampup.core.segments import Segment
from rampup.core.sessions import Session
from rampup.core.switch_off import SwitchOff
from rampup.core.telemetry import CustomMetric, Observation
from rampup.core.tokens import Token
from rampup.errors import Conflict

__all__ = ["MemoryStore", "MemoryTransaction"]


@dataclass
class _Queued:
    item: OutboxItem
    destination: str
    next_attempt_at: datetime


@dataclass
class _Tables:
    """Everything stored; a transaction works on a copy and swaps it in on commit."""

    ids: dict[str, int] = field(default_factory=dict)
    environments: dict[int, Environment] = field(default_factory=dict)
    flags: dict[int, FlagRecord] = field(default_factory=dict)
    states: dict[tuple[int, int], FlagState] = field(default_factory=dict)
    switch_offs: dict[tuple[int, int], SwitchOff] = field(default_factory=dict)  # kept beside their states
    history: list[PastState] = field(default_factory=list)
    segments: dict[int, SegmentRecord] = field(default_factory=dict)
    tokens: dict[str, tuple[Token, int | None]] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    custom_metrics: dict[str, CustomMetric] = field(default_factory=dict)
    event_batches: list[tuple[int, int, int, tuple[Observation, ...]]] = field(default_factory=list)
    rollups: dict[tuple[int, RollupKey], Aggregate] = field(default_factory=dict)
    units: dict[tuple[int, UnitKey], list[int]] = field(default_factory=dict)
    latencies: dict[tuple[int, LatencyKey], int] = field(default_factory=dict)
    rollouts: dict[int, RolloutRecord] = field(default_factory=dict)
    transitions: dict[int, list[Transition]] = field(default_factory=dict)
    outbox: dict[str, _Queued] = field(default_factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    alert_rules: dict[int, AlertRuleRecord] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    schedules: dict[int, ScheduleRecord] = field(default_factory=dict)
    scheduled_changes: dict[int, ScheduledChange] = field(default_factory=dict)
    sessions: dict[str, tuple[Session, datetime]] = field(default_factory=dict)
    stewardships: dict[int, Stewardship] = field(default_factory=dict)
    evaluations: dict[tuple[int, int, int], tuple[int, datetime]] = field(default_factory=dict)
    feedback: dict[int, tuple[int, Entry]] = field(default_factory=dict)  # id → (environment id, entry)
    event_refs: dict[tuple[int, str], EventRef] = field(default_factory=dict)
    summary_ids: dict[tuple[int, str], int] = field(default_factory=dict)  # → when it was stored, ms

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]


class MemoryStore:
    def __init__(self) -> None:
        self._tables = _Tables()
        self._writer = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator["MemoryTransaction"]:
        with self._writer:
            working = copy.deepcopy(self._tables)
            yield MemoryTransaction(working)
            self._tables = working  # only reached when the block did not raise

    @contextmanager
    def read(self) -> Iterator["MemoryTransaction"]:
        yield MemoryTransaction(copy.deepcopy(self._tables))


class MemoryTransaction:
    def __init__(self, t: _Tables) -> None:
        self.environments = _Environments(t)
        self.flags = _Flags(t)
        self.segments = _Segments(t)
        self.tokens = _Tokens(t)
        self.audit = _AuditLog(t)
        self.custom_metrics = _CustomMetrics(t)
        self.telemetry = _Telemetry(t)
        self.rollouts = _Rollouts(t)
        self.outbox = _Outbox(t)
        self.leases = _Leases(t)
        self.channels = _Channels(t)
        self.alert_rules = _AlertRules(t)
        self.alerts = _Alerts(t)
        self.schedules = _Schedules(t)
        self.scheduled_changes = _ScheduledChanges(t)
        self.sessions = _Sessions(t)
        self.feedback = _Feedback(t)
        self.lifecycle = _Lifecycle(t)


class _Repository:
    def __init__(self, t: _Tables) -> None:
        self.t = t


class _Environments(_Repository):
    def all(self) -> list[Environment]:
        return sorted(self.t.environments.values(), key=lambda e: e.id)

    def get(self, key: str) -> Environment | None:
        return next((e for e in self.t.environments.values() if e.key == key), None)

    def add(self, key: str, name: str, at: datetime) -> Environment:
        if self.get(key) is not None:
            raise Conflict(f"conflicting change: environment {key!r} exists")
        env = Environment(self.t.next_id("environments"), key, name)
        self.t.environments[env.id] = env
        return env

    def update(self, environment_id: int, key: str, name: str) -> None:
        self.t.environments[environment_id] = Environment(environment_id, key, name)
        # a token names its environment by key, as the SQL store's join reads it
        self.t.tokens = {
            i: (replace(t, environment=key) if env == environment_id else t, env)
            for i, (t, env) in self.t.tokens.items()
        }

    def delete(self, environment_id: int) -> None:
        del self.t.environments[environment_id]
        self.t.states = {k: s for k, s in self.t.states.items() if k[1] != environment_id}
        self.t.switch_offs = {k: s for k, s in self.t.switch_offs.items() if k[1] != environment_id}
        self.t.history = [h for h in self.t.history if h.environment_id != environment_id]
        self.t.tokens = {i: (t, env) for i, (t, env) in self.t.tokens.items() if env != environment_id}
        self.t.segments = {i: r for i, r in self.t.segments.items() if r.environment_id != environment_id}


class _Flags(_Repository):
    def all(self) -> list[FlagRecord]:
        return sorted(self.t.flags.values(), key=lambda f: f.definition.key)

    def get(self, key: str, *, for_update: bool = False) -> FlagRecord | None:
        return next((f for f in self.t.flags.values() if f.definition.key == key), None)

    def add(self, definition: FlagDefinition, at: datetime) -> FlagRecord:
        if self.get(definition.key) is not None:
            raise Conflict(f"conflicting change: flag {definition.key!r} exists")
        record = FlagRecord(self.t.next_id("flags"), definition, at, at)
        self.t.flags[record.id] = record
        return record

    def update(self, flag_id: int, definition: FlagDefinition, at: datetime) -> None:
        if flag_id in self.t.flags:
            self.t.flags[flag_id] = replace(self.t.flags[flag_id], definition=definition, updated_at=at)

    def delete(self, flag_id: int) -> None:
        self.t.flags.pop(flag_id, None)
        for key in [k for k in self.t.states if k[0] == flag_id]:
            del self.t.states[key]
            self.t.switch_offs.pop(key, None)
        # as the tables' ON DELETE CASCADE does
        self.t.history = [h for h in self.t.history if h.flag_id != flag_id]
        self.t.stewardships.pop(flag_id, None)
        self.t.evaluations = {k: v for k, v in self.t.evaluations.items() if k[0] != flag_id}

    def states(self, flag_id: int | None = None) -> Iterator[StateRecord]:
        for (f, env), state in list(self.t.states.items()):
            if flag_id is None or f == flag_id:
                yield StateRecord(f, env, state, self.t.switch_offs.get((f, env)))

    def state(self, flag_id: int, environment_id: int) -> FlagState | None:
        return self.t.states.get((flag_id, environment_id))

    def put_state(self, flag_id: int, environment_id: int, state: FlagState, at: datetime) -> None:
        self.t.states[(flag_id, environment_id)] = state
        self.t.history.append(PastState(flag_id, environment_id, at, replace(state, rules=())))

    def put_switch_off(self, flag_id: int, environment_id: int, switch_off: SwitchOff | None) -> None:
        if switch_off is None:
            self.t.switch_offs.pop((flag_id, environment_id), None)
        elif (flag_id, environment_id) in self.t.states:  # as the SQL store updates the state's row
            self.t.switch_offs[(flag_id, environment_id)] = switch_off

    def history(self) -> Iterator[PastState]:
        order = sorted(
            enumerate(self.t.history), key=lambda e: (e[1].flag_id, e[1].environment_id, e[1].at, e[0])
        )
        yield from (entry for _, entry in order)


class _Segments(_Repository):
    def all(self, environment_id: int | None = None, *, keys: bool = True) -> list[SegmentRecord]:
        found = sorted(
            (r for r in self.t.segments.values() if environment_id in (None, r.environment_id)),
            key=lambda r: (r.environment_id, r.segment.key),
        )
        return found if keys else [replace(r, segment=replace(r.segment, keys=frozenset())) for r in found]

    def get(self, environment_id: int, key: str, *, for_update: bool = False) -> SegmentRecord | None:
        return next(
            (
                r
                for r in self.t.segments.values()
                if (r.environment_id, r.segment.key) == (environment_id, key)
            ),
            None,
        )

    def add(self, environment_id: int, segment: Segment, at: datetime) -> SegmentRecord:
        if self.get(environment_id, segment.key) is not None:
            raise Conflict(f"conflicting change: segment {segment.key!r} exists")
        record = SegmentRecord(self.t.next_id("segments"), environment_id, segment, len(segment.keys), at, at)
        self.t.segments[record.id] = record
        return record

    def update(self, before: SegmentRecord, segment: Segment, at: datetime) -> None:
        self.t.segments[before.id] = replace(
            before, segment=segment, key_count=len(segment.keys), updated_at=at
        )

    def delete(self, segment_id: int) -> None:
        del self.t.segments[segment_id]


class _Tokens(_Repository):
    def all(self) -> list[Token]:
        return sorted((token for token, _ in self.t.tokens.values()), key=lambda t: t.created_at)

    def get(self, token_id: str) -> Token | None:
        found = self.t.tokens.get(token_id)
        return None if found is None else found[0]

    def add(self, token: Token, environment_id: int | None) -> None:
        if token.id in self.t.tokens:
            raise Conflict(f"conflicting change: token {token.id!r} exists")
        env = self.t.environments.get(environment_id) if environment_id is not None else None
        stored = replace(token, environment=env.key if env else None, revoked_at=None)
        self.t.tokens[token.id] = (stored, environment_id)

    def set_secret(self, token_id: str, secret_hash: str) -> None:
        if token_id in self.t.tokens:
            token, env = self.t.tokens[token_id]
            self.t.tokens[token_id] = (replace(token, secret_hash=secret_hash, revoked_at=None), env)

    def revoke(self, token_id: str, at: datetime) -> None:
        if token_id in self.t.tokens:
            token, env = self.t.tokens[token_id]
            self.t.tokens[token_id] = (replace(token, revoked_at=at), env)


class _AuditLog(_Repository):
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
    ) -> None:
        entry_id = self.t.next_id("audit")
        before, after = jsonable(before), jsonable(after)
        entry = AuditEntry(
            entry_id, at, actor, action, target, environment, before, after, reason, on_behalf_of
        )
        self.t.audit.append(entry)

    def entries(
        self,
        *,
        target: str | None = None,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> Sequence[AuditEntry]:
        def wanted(e: AuditEntry) -> bool:
            return (
                (target is None or e.target == target)
                and (environment is None or e.environment == environment)
                and (actor is None or e.actor == actor)
                and (action is None or e.action.startswith(action))
                and (before_id is None or e.id < before_id)
            )

        return [e for e in reversed(self.t.audit) if wanted(e)][:limit]

    def revision(self) -> int:
        return self.t.audit[-1].id if self.t.audit else 0  # one writer at a time: ids follow commit order


class _CustomMetrics(_Repository):
    def all(self) -> list[CustomMetric]:
        return [self.t.custom_metrics[name] for name in sorted(self.t.custom_metrics)]

    def add(self, metric: CustomMetric, at: datetime) -> None:
        if metric.name in self.t.custom_metrics:
            raise Conflict(f"conflicting change: metric {metric.name!r} exists")
        self.t.custom_metrics[metric.name] = metric

    def delete(self, name: str) -> bool:
        return self.t.custom_metrics.pop(name, None) is not None


class _Telemetry(_Repository):
    def gate_inputs(self, environment_id: int, flag: str) -> TelemetryGateInputs:
        return TelemetryGateInputs(self, environment_id, flag)

    def insert_events(self, environment_id: int, observations: Sequence[Observation]) -> None:
        if observations:
            times = [o.at_ms for o in observations]
            self.t.event_batches.append((environment_id, min(times), max(times), tuple(observations)))

    def make_room(self, days: Iterable[int]) -> None:
        """Nothing to prepare: a list takes any day."""

    def add_rollups(self, environment_id: int, batch: Mapping[RollupKey, Aggregate]) -> None:
        for key, aggregate in batch.items():
            stored = self.t.rollups.setdefault((environment_id, key), Aggregate())
            stored.merge(copy.deepcopy(aggregate))

    def add_units(self, environment_id: int, units: Mapping[UnitKey, list[int]]) -> None:
        for key, counts in units.items():
            # events, engaged, failures, exposures
            stored = self.t.units.setdefault((environment_id, key), [0, 0, 0, 0])
            for i, count in enumerate(counts):
                stored[i] += count

    def add_latencies(self, environment_id: int, latencies: Mapping[LatencyKey, int]) -> None:
        for key, count in latencies.items():
            self.t.latencies[(environment_id, key)] = self.t.latencies.get((environment_id, key), 0) + count

    def exceedance(
        self, environment_id: int, flag: str, metric: str, first_day: int, last_day: int
    ) -> dict[str, dict[int, Exceedance]]:
        per_user: dict[tuple[str, str], dict[int, int]] = {}
        for (env, key), count in self.t.latencies.items():
            if (
                env == environment_id
                and (key.flag, key.metric) == (flag, metric)
                and first_day <= key.day <= last_day
            ):
                octaves = per_user.setdefault((key.variant, key.targeting_key), {})
                octaves[key.level] = octaves.get(key.level, 0) + count
        shares: dict[str, dict[int, tuple[int, int, int]]] = {}
        for (variant, _), octaves in per_user.items():
            n, e = sum(octaves.values()), 0
            rows = shares.setdefault(variant, {})
            for level in sorted(octaves, reverse=True):
                c = octaves[level]
                e += c
                c0, sq0, en0 = rows.get(level, (0, 0, 0))
                rows[level] = (c0 + c, sq0 + e * e - (e - c) * (e - c), en0 + c * n)
        return {variant: suffix_sums(rows) for variant, rows in shares.items()}

    def compact_units(self, limit: int) -> int:
        """Nothing to merge: `add_units` adds in place."""
        return 0

    def pending_units(self, limit: int) -> None:
        """Nothing to sum: `add_units` adds in place."""

    def collapse_units(self, pending: object) -> None:
        """Nothing to sum: `add_units` adds in place."""

    def rollup_rows(
        self, environment_id: int, flag: str, metric: str, spans: Iterable[tuple[int, int, int]]
    ) -> list[RollupRow]:
        return [
            RollupRow(key.variant, key.resolution, key.period, copy.deepcopy(aggregate))
            for resolution, first, last in spans
            for (env, key), aggregate in self.t.rollups.items()
            if env == environment_id
            and key.flag == flag
            and key.metric == metric
            and key.resolution == resolution
            and first <= key.period <= last
        ]

    def unit_totals(
        self, environment_id: int, flag: str, first_day: int, last_day: int
    ) -> dict[str, UnitTotals]:
        per_user: dict[tuple[str, str], list[int]] = {}
        for (env, key), counts in self.t.units.items():
            if env == environment_id and key.flag == flag and first_day <= key.day <= last_day:
                user = per_user.setdefault((key.variant, key.targeting_key), [0, 0, 0, 0])
                for i, count in enumerate(counts):
                    user[i] += count
        totals: dict[str, UnitTotals] = {}
        for (variant, _), (events, engaged, failures, exposures) in per_user.items():
            t = totals.get(variant, UnitTotals(0, 0, 0, 0))
            totals[variant] = UnitTotals(
                t.users + 1,
                t.events + events,
                t.engaged + engaged,
                t.engaged_sq + engaged * engaged,
                t.failures + failures,
                t.failures_sq + failures * failures,
                t.exposed + (exposures > 0),
                t.silent + (0 < exposures == events),
            )
        return totals

    def events(self, environment_id: int, since_ms: int, until_ms: int) -> list[Observation]:
        return [
            o
            for env, first, last, batch in self.t.event_batches
            if env == environment_id and last >= since_ms and first < until_ms
            for o in batch
            if since_ms <= o.at_ms < until_ms
        ]

    def claim_summary(self, environment_id: int, summary_id: str, at_ms: int) -> bool:
        if (environment_id, summary_id) in self.t.summary_ids:
            return False
        self.t.summary_ids[(environment_id, summary_id)] = at_ms
        return True

    def purge_summary_ids(self, before_ms: int) -> int:
        old = [key for key, at_ms in self.t.summary_ids.items() if at_ms < before_ms]
        for key in old:
            del self.t.summary_ids[key]
        return len(old)

    def purge_events(self, before_ms: int) -> int:
        kept = [b for b in self.t.event_batches if b[2] >= before_ms]
        gone = sum(len(b[3]) for b in self.t.event_batches) - sum(len(b[3]) for b in kept)
        self.t.event_batches = kept
        return gone

    def purge_rollups(self, resolution: int, before_period: int) -> int:
        old = [k for k in self.t.rollups if k[1].resolution == resolution and k[1].period < before_period]
        for k in old:
            del self.t.rollups[k]
        return len(old)


class _Rollouts(_Repository):
    def add(
        self, plan_source: dict[str, Any], plan: Plan, state: RolloutState, actor: str, at: datetime
    ) -> int:
        rollout_id = self.t.next_id("rollouts")
        self.t.rollouts[rollout_id] = RolloutRecord(
            rollout_id, copy.deepcopy(plan_source), plan, state, 1, actor, at
        )
        return rollout_id

    def get(self, rollout_id: int) -> RolloutRecord | None:
        return self.t.rollouts.get(rollout_id)

    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        live: bool | None = None,
        limit: int = 100,
    ) -> list[RolloutRecord]:
        found = [
            r
            for _, r in sorted(self.t.rollouts.items(), reverse=True)
            if (flag is None or r.plan.flag == flag)
            and (environment is None or r.plan.environment == environment)
            and (live is None or (not r.state.phase.is_terminal) == live)
        ]
        return found[:limit]

    def live_for(self, flag: str, environment: str) -> RolloutRecord | None:
        found = self.find(flag=flag, environment=environment, live=True, limit=1)
        return found[0] if found else None

    def save(self, rollout_id: int, expected_version: int, state: RolloutState, at: datetime) -> bool:
        record = self.t.rollouts.get(rollout_id)
        if record is None or record.version != expected_version:
            return False
        self.t.rollouts[rollout_id] = replace(record, state=state, version=expected_version + 1)
        return True

    def add_transitions(self, rollout_id: int, transitions: Sequence[Transition]) -> None:
        self.t.transitions.setdefault(rollout_id, []).extend(
            replace(t, evidence=tuple(jsonable(list(t.evidence)))) for t in transitions
        )

    def transitions(self, rollout_id: int) -> list[Transition]:
        return list(self.t.transitions.get(rollout_id, []))


class _Outbox(_Repository):
    def enqueue(
        self, item_id: str, kind: str, destination: str, payload: dict[str, Any], at: datetime
    ) -> None:
        if item_id in self.t.outbox:
            raise Conflict(f"conflicting change: outbox item {item_id!r} exists")
        item = OutboxItem(item_id, kind, jsonable(payload), 0, at)
        self.t.outbox[item_id] = _Queued(item, destination[:500], at)

    def heads(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        heads: dict[str, _Queued] = {}
        for item_id in sorted(self.t.outbox):
            queued = self.t.outbox[item_id]
            if queued.item.delivered_at is None:
                heads.setdefault(queued.destination, queued)
        due = sorted((q.item for q in heads.values() if q.next_attempt_at <= now), key=lambda i: i.id)
        return due[:limit]

    def delivered(self, item_id: str, at: datetime) -> None:
        q = self.t.outbox.get(item_id)
        if q is not None:
            q.item = replace(q.item, attempts=q.item.attempts + 1, delivered_at=at, last_error=None)

    def failed(self, item_id: str, error: str, retry_at: datetime) -> None:
        q = self.t.outbox.get(item_id)
        if q is not None:
            q.item = replace(q.item, attempts=q.item.attempts + 1, last_error=error[:2000])
            q.next_attempt_at = retry_at

    def backlog(self) -> Backlog:
        waiting = [q.item.created_at for q in self.t.outbox.values() if q.item.delivered_at is None]
        return Backlog(len(waiting), min(waiting, default=None))

    def items(self, limit: int = 100) -> list[OutboxItem]:
        newest = sorted(self.t.outbox.values(), key=lambda q: (q.item.created_at, q.item.id), reverse=True)
        return [q.item for q in newest[:limit]]


class _Leases(_Repository):
    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        current = self.t.leases.get(name)
        if current is not None and current[0] != holder and current[1] >= now:
            return False
        self.t.leases[name] = (holder, until)
        return True

    def release(self, name: str, holder: str) -> None:
        if self.t.leases.get(name, ("", None))[0] == holder:
            del self.t.leases[name]


class _Channels(_Repository):
    def all(self) -> list[Channel]:
        return [self.t.channels[name] for name in sorted(self.t.channels)]

    def get(self, name: str) -> Channel | None:
        return self.t.channels.get(name)

    def add(self, channel: Channel, at: datetime) -> None:
        if channel.name in self.t.channels:
            raise Conflict(f"conflicting change: channel {channel.name!r} exists")
        self.t.channels[channel.name] = channel

    def delete(self, name: str) -> bool:
        return self.t.channels.pop(name, None) is not None


class _AlertRules(_Repository):
    def all(self) -> list[AlertRuleRecord]:
        return [self.t.alert_rules[i] for i in sorted(self.t.alert_rules)]

    def add(self, rule: AlertRule, rollout_id: int | None, at: datetime) -> int:
        rule_id = self.t.next_id("alert_rules")
        self.t.alert_rules[rule_id] = AlertRuleRecord(rule_id, rule, rollout_id, None)
        return rule_id

    def delete(self, rule_id: int) -> bool:
        if self.t.alert_rules.pop(rule_id, None) is None:
            return False
        for alert_id in [a.id for a in self.t.alerts.values() if a.rule_id == rule_id]:
            del self.t.alerts[alert_id]  # as the table's ON DELETE CASCADE does
        return True

    def set_breaching(self, rule_id: int, since: datetime | None) -> None:
        if rule_id in self.t.alert_rules:
            self.t.alert_rules[rule_id] = replace(self.t.alert_rules[rule_id], breaching_since=since)


class _Alerts(_Repository):
    def firing(self, rule_id: int) -> Alert | None:
        return next(
            (a for a in self.t.alerts.values() if a.rule_id == rule_id and a.resolved_at is None), None
        )

    def open(self, rule_id: int, value: float | None, at: datetime) -> int:
        alert_id = self.t.next_id("alerts")
        self.t.alerts[alert_id] = Alert(alert_id, rule_id, value, at, at)
        return alert_id

    def renotified(self, alert_id: int, value: float | None, at: datetime) -> None:
        if alert_id in self.t.alerts:
            self.t.alerts[alert_id] = replace(self.t.alerts[alert_id], value=value, last_notified_at=at)

    def resolve(self, alert_id: int, value: float | None, at: datetime) -> None:
        if alert_id in self.t.alerts:
            self.t.alerts[alert_id] = replace(self.t.alerts[alert_id], value=value, resolved_at=at)

    def all(self, limit: int = 100, firing: bool | None = None) -> list[Alert]:
        newest = [self.t.alerts[i] for i in sorted(self.t.alerts, reverse=True)]
        return [a for a in newest if firing is None or (a.resolved_at is None) == firing][:limit]


class _ScheduledChanges(_Repository):
    def add(self, change: ScheduledChange) -> int:
        change_id = self.t.next_id("scheduled_changes")
        self.t.scheduled_changes[change_id] = replace(
            change, id=change_id, change=jsonable(dict(change.change))
        )
        return change_id

    def get(self, change_id: int) -> ScheduledChange | None:
        return self.t.scheduled_changes.get(change_id)

    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        status: ChangeStatus | None = None,
        limit: int = 100,
    ) -> list[ScheduledChange]:
        found = [
            c
            for c in self.t.scheduled_changes.values()
            if (flag is None or c.flag == flag)
            and (environment is None or c.environment == environment)
            and (status is None or c.status is status)
        ]
        return sorted(found, key=lambda c: (c.at, c.id))[:limit]

    def due(self, now: datetime, limit: int = 100) -> list[ScheduledChange]:
        return [
            c
            for c in self.find(status=ChangeStatus.PENDING, limit=len(self.t.scheduled_changes))
            if c.at <= now
        ][:limit]

    def pending(self, flag: str | None = None, environment: str | None = None) -> int:
        return len(
            self.find(
                flag=flag,
                environment=environment,
                status=ChangeStatus.PENDING,
                limit=len(self.t.scheduled_changes),
            )
        )

    def finish(self, change_id: int, status: ChangeStatus, at: datetime, by: str, outcome: str = "") -> bool:
        change = self.t.scheduled_changes.get(change_id)
        if change is None or change.status is not ChangeStatus.PENDING:
            return False
        self.t.scheduled_changes[change_id] = replace(
            change, status=status, finished_at=at, finished_by=by[:200], outcome=outcome[:2000]
        )
        return True

    def rename_environment(self, old: str, new: str) -> None:
        for change in self.find(
            environment=old, status=ChangeStatus.PENDING, limit=len(self.t.scheduled_changes)
        ):
            self.t.scheduled_changes[change.id] = replace(change, environment=new)


class _Schedules(_Repository):
    def all(self) -> list[ScheduleRecord]:
        return [self.t.schedules[i] for i in sorted(self.t.schedules)]

    def add(self, schedule: Schedule) -> int:
        schedule_id = self.t.next_id("schedules")
        self.t.schedules[schedule_id] = ScheduleRecord(schedule_id, schedule, None)
        return schedule_id

    def delete(self, schedule_id: int) -> bool:
        return self.t.schedules.pop(schedule_id, None) is not None

    def mark_sent(self, schedule_id: int, period: str, expected: str | None) -> bool:
        record = self.t.schedules.get(schedule_id)
        if record is None or record.last_period != expected:
            return False
        self.t.schedules[schedule_id] = replace(record, last_period=period)
        return True


class _Sessions(_Repository):
    def add(self, session: Session, at: datetime) -> None:
        if session.id in self.t.sessions:
            raise Conflict("conflicting change: session exists")
        self.t.sessions[session.id] = (session, at)

    def get(self, session_id: str, now: datetime) -> SessionRecord | None:
        found = self.t.sessions.get(session_id)
        if found is None or found[0].expires_at <= now:
            return None
        session, touched = found
        token = self.t.tokens.get(session.token.id)
        if (
            token is None
            or token[0].revoked_at is not None
            or token[0].secret_hash != session.token.secret_hash
        ):
            return None
        return SessionRecord(replace(session, token=token[0]), touched)

    def touch(self, session_id: str, expires_at: datetime, at: datetime) -> None:
        if session_id in self.t.sessions:
            session, _ = self.t.sessions[session_id]
            self.t.sessions[session_id] = (replace(session, expires_at=expires_at), at)

    def delete(self, session_id: str) -> bool:
        return self.t.sessions.pop(session_id, None) is not None

    def purge(self, before: datetime) -> int:
        old = [i for i, (s, _) in self.t.sessions.items() if s.expires_at <= before]
        for i in old:
            del self.t.sessions[i]
        return len(old)


class _Feedback(_Repository):
    def add(self, environment_id: int, entries: Sequence[Entry]) -> None:
        for e in entries:
            feedback_id = self.t.next_id("feedback")
            self.t.feedback[feedback_id] = (environment_id, replace(e, id=feedback_id))

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
    ) -> list[Entry]:
        def wanted(env: int, e: Entry) -> bool:
            variants = {"": "", **e.variants}
            return (
                env == environment_id
                and flag in variants
                and (variant is None or variants[flag] == variant)
                and (since_ms is None or e.at_ms >= since_ms)
                and (until_ms is None or e.at_ms < until_ms)
                and (not commented or e.comment is not None)
                and (before_id is None or (e.id or 0) < before_id)
            )

        newest = [self.t.feedback[i] for i in sorted(self.t.feedback, reverse=True)]
        return [e for env, e in newest if wanted(env, e)][:limit]

    def purge_user(self, targeting_key: str, environment_id: int | None) -> int:
        gone = [
            i
            for i, (env, e) in self.t.feedback.items()
            if e.targeting_key == targeting_key and environment_id in (None, env)
        ]
        for i in gone:
            del self.t.feedback[i]
        return len(gone)

    def purge_before(self, before_ms: int) -> int:
        self.t.event_refs = {k: v for k, v in self.t.event_refs.items() if v.at_ms >= before_ms}
        gone = [i for i, (_, e) in self.t.feedback.items() if e.at_ms < before_ms]
        for i in gone:
            del self.t.feedback[i]
        return len(gone)

    def add_event_refs(self, environment_id: int, refs: Iterable[EventRef]) -> None:
        for ref in refs:
            flags = dict(ref.flags) if ref.flags else None
            self.t.event_refs.setdefault((environment_id, ref.event_id), replace(ref, flags=flags))

    def event_refs(self, environment_id: int, event_ids: Sequence[str]) -> dict[str, EventRef]:
        found = {i: self.t.event_refs.get((environment_id, i)) for i in event_ids}
        return {i: ref for i, ref in found.items() if ref is not None}


class _Lifecycle(_Repository):
    def get(self, flag_id: int) -> Stewardship:
        return self.t.stewardships.get(flag_id, Stewardship())

    def all(self) -> dict[int, Stewardship]:
        return dict(self.t.stewardships)

    def put(self, flag_id: int, s: Stewardship) -> None:
        self.t.stewardships[flag_id] = s

    def add_evaluations(self, counts: Mapping[tuple[int, int], int], day: int, at: datetime) -> None:
        for (flag_id, environment_id), count in counts.items():
            total, last = self.t.evaluations.get((flag_id, environment_id, day), (0, at))
            self.t.evaluations[(flag_id, environment_id, day)] = (total + count, max(last, at))

    def last_evaluated(self) -> dict[int, datetime]:
        last: dict[int, datetime] = {}
        for (flag_id, _, _), (_, at) in self.t.evaluations.items():
            last[flag_id] = max(at, last.get(flag_id, at))
        return last

    def evaluations(self, flag_id: int, since_day: int) -> list[EvaluationCount]:
        return [
            EvaluationCount(env, day, count, at)
            for (f, env, day), (count, at) in sorted(self.t.evaluations.items())
            if f == flag_id and day >= since_day
        ]

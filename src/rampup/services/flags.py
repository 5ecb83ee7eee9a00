"""Flags and environments: create, change, kill — each change audited in the same transaction."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rampup.core.flags import (
    FLAG_KEY,
    FlagDefinition,
    FlagState,
    Prerequisite,
    check_prerequisites,
    parse_bucket_by,
    parse_prerequisites,
    parse_rollout,
    parse_weights,
)
from rampup.core.lifecycle import FlagKind, Stewardship, parse_notify
from rampup.core.masking import mask_urls
from rampup.core.model import AuditEntry, Environment
from rampup.core.ports import Clock, FlagRecord, Store, Transaction
from rampup.core.segments import check_segment_references
from rampup.core.switch_off import OffHow, SwitchOff
from rampup.core.targeting import Rule
from rampup.errors import Conflict, InvalidInput, NotFound

__all__ = ["FlagView", "FlagService", "STATE_FIELDS", "SwitchedOff", "apply_changes", "known_channels"]

FLAG_FIELDS = frozenset({"description", "kind", "notify", "tags", "owner"})  # what can change after creation


@dataclass(frozen=True, slots=True)
class FlagView:
    record: FlagRecord
    states: Mapping[str, FlagState]  # environment key → state
    stewardship: Stewardship = Stewardship()
    # environment key → its kill switch, where one is pulled
    switched_off: Mapping[str, SwitchOff] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """What the audit trail records of a change to the flag itself."""
        return {
            **self.record.definition.to_dict(),
            "kind": self.stewardship.kind.value,
            "notify": list(self.stewardship.notify),
        }

    def audit_record(self) -> dict[str, Any]:
        """What the audit trail records of a flag created or deleted: its settings and its state in each
        environment (not what is derived from them, such as its status or references)."""
        return {**self.settings(), "environments": {env: st.to_dict() for env, st in self.states.items()}}


@dataclass(frozen=True, slots=True)
class SwitchedOff:
    """A flag's kill switch, pulled in one environment and not put back: who turned the flag off, when and why
    (`rampup flag kill`, `flag set --disable`, a rollout's `disable`, a scheduled change)."""

    flag: str
    environment: str
    switch_off: SwitchOff

    @property
    def at(self) -> datetime:
        return self.switch_off.at

    def said(self) -> str:
        """When, by whom and why, in a sentence's words."""
        off = self.switch_off
        by = f"{off.actor} on behalf of {off.on_behalf_of}" if off.on_behalf_of else off.actor
        why = f" ({off.reason})" if off.reason else ""
        return (
            f"flag {self.flag!r} was switched off in {self.environment!r} "
            f"at {off.at:%Y-%m-%d %H:%M:%S} UTC by {by}{why}"
        )

    def refusal(self, what: str) -> Conflict:
        """The answer to `what` (something that would turn the flag on again): it does not; a person does."""
        return Conflict(
            f"{self.said()}: {what} does not turn it back on. Turn it on yourself first if you mean to: "
            f"rampup flag set {self.flag} --env {self.environment} --enable --rollout 0"
        )


class FlagService:
    def __init__(self, store: Store, clock: Clock, on_change: Callable[[], object] = lambda: None) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change  # refreshes this instance's evaluation snapshot right away

    # environments

    def environments(self) -> list[Environment]:
        with self._store.read() as tx:
            return tx.environments.all()

    def create_environment(self, key: Any, name: Any, actor: str) -> Environment:
        key, name = _environment_fields(key, key if name is None else name)
        now = self._clock()
        with self._store.transaction() as tx:
            if tx.environments.get(key) is not None:
                raise Conflict(f"environment {key!r} exists")
            env = tx.environments.add(key, name, now)
            for record in tx.flags.all():
                tx.flags.put_state(record.id, env.id, FlagState(salt=record.definition.key, version=1), now)
            tx.audit.record(
                actor, "environment.create", f"environment:{key}", key, None, env.to_dict(), "", now
            )
        self._on_change()
        return env

    def update_environment(self, key: str, body: Mapping[str, Any], actor: str) -> Environment:
        """Rename an environment (its key, its name or both); refused while a rollout runs there. Tokens and
        flag states follow it (they refer to it by id), and so do pending scheduled changes; past rollouts, audit entries
        and finished scheduled changes keep the key they had."""
        unknown = sorted(set(body) - {"key", "name"})
        if unknown:
            raise InvalidInput(f"an environment has 'key' and 'name', not {unknown[0]!r}", where=unknown[0])
        now = self._clock()
        with self._store.transaction() as tx:
            env = self.environment(tx, key)
            new_key, name = _environment_fields(body.get("key", env.key), body.get("name", env.name))
            if new_key != key and tx.environments.get(new_key) is not None:
                raise Conflict(f"environment {new_key!r} exists")
            self._no_rollout_running(tx, key, "renamed")
            tx.environments.update(env.id, new_key, name)
            tx.scheduled_changes.rename_environment(key, new_key)
            renamed = Environment(env.id, new_key, name)
            tx.audit.record(
                actor,
                "environment.update",
                f"environment:{key}",
                key,
                env.to_dict(),
                renamed.to_dict(),
                "",
                now,
            )
        self._on_change()
        return renamed

    def delete_environment(self, key: str, actor: str, reason: str = "") -> None:
        """Delete an environment with its flag states and the tokens bound to it; refused while a rollout runs."""
        now = self._clock()
        with self._store.transaction() as tx:
            env = self.environment(tx, key)
            self._no_rollout_running(tx, key, "deleted")
            tx.environments.delete(env.id)
            tx.audit.record(
                actor, "environment.delete", f"environment:{key}", key, env.to_dict(), None, reason, now
            )
        self._on_change()

    def _no_rollout_running(self, tx: Transaction, key: str, done: str) -> None:
        live = tx.rollouts.find(environment=key, live=True, limit=1)
        if live:
            raise Conflict(
                f"rollout {live[0].id} of {live[0].plan.flag!r} runs in {key!r}: "
                f"finish or abort it before the environment is {done}"
            )

    def ensure_environments(self, keys: tuple[str, ...]) -> None:
        with self._store.read() as tx:
            existing = {e.key for e in tx.environments.all()}
        for key in keys:
            if key not in existing:
                self.create_environment(key, key.capitalize(), "system")

    def environment(self, tx: Transaction, key: str) -> Environment:
        env = tx.environments.get(key)
        if env is None:
            raise NotFound(f"environment {key!r} not found")
        return env

    # flags

    def _view(self, tx: Transaction, record: FlagRecord, stewardship: Stewardship | None = None) -> FlagView:
        names = {e.id: e.key for e in tx.environments.all()}
        states = list(tx.flags.states(record.id))
        return FlagView(
            record,
            {names[s.environment_id]: s.state for s in states},
            tx.lifecycle.get(record.id) if stewardship is None else stewardship,
            {names[s.environment_id]: s.switched_off for s in states if s.switched_off is not None},
        )

    def _record(self, tx: Transaction, key: str, *, for_update: bool = False) -> FlagRecord:
        record = tx.flags.get(key, for_update=for_update)
        if record is None:
            raise NotFound(f"flag {key!r} not found")
        return record

    def create_flag(self, body: Mapping[str, Any], actor: str) -> FlagView:
        definition = FlagDefinition.parse(
            body.get("key"),
            body.get("type", "boolean"),
            body.get("description", ""),
            body.get("variants"),
            body.get("off_variant"),
        ).labelled(body.get("tags"), body.get("owner"))
        stewardship = _stewardship(Stewardship(), body)
        now = self._clock()
        with self._store.transaction() as tx:
            if tx.flags.get(definition.key) is not None:
                raise Conflict(f"flag {definition.key!r} exists")
            record = tx.flags.add(definition, now)
            for env in tx.environments.all():
                tx.flags.put_state(record.id, env.id, FlagState(salt=definition.key, version=1), now)
            if stewardship != Stewardship():
                known_channels(tx, stewardship.notify)
                tx.lifecycle.put(record.id, stewardship)
            view = self._view(tx, record, stewardship)
            tx.audit.record(
                actor, "flag.create", f"flag:{definition.key}", None, None, view.audit_record(), "", now
            )
        self._on_change()
        return view

    def flags(self, *, tag: str | None = None, owner: str | None = None) -> list[FlagView]:
        """Every flag, or those with this tag and/or this owner."""
        with self._store.read() as tx:
            stewardships = tx.lifecycle.all()
            return [
                self._view(tx, record, stewardships.get(record.id, Stewardship()))
                for record in tx.flags.all()
                if (tag is None or tag in record.definition.tags)
                and (owner is None or record.definition.owner == owner)
            ]

    def flag(self, key: str) -> FlagView:
        with self._store.read() as tx:
            return self._view(tx, self._record(tx, key))

    def update_flag(self, key: str, body: Mapping[str, Any], actor: str) -> FlagView:
        unknown = set(body) - FLAG_FIELDS
        if unknown:
            raise InvalidInput(
                f"only {', '.join(sorted(FLAG_FIELDS))} can change after creation, not {sorted(unknown)}",
                where=sorted(unknown)[0],
            )
        now = self._clock()
        with self._store.transaction() as tx:
            record = self._record(tx, key, for_update=True)
            before = self._view(tx, record)
            description = body.get("description", record.definition.description)
            if not isinstance(description, str):
                raise InvalidInput("description must be a string", where="description")
            definition = replace(record.definition, description=description).labelled(
                body.get("tags"), body.get("owner")
            )
            stewardship = _stewardship(before.stewardship, body)
            known_channels(tx, stewardship.notify)
            tx.flags.update(record.id, definition, now)
            tx.lifecycle.put(record.id, stewardship)
            view = self._view(tx, replace(record, definition=definition, updated_at=now), stewardship)
            tx.audit.record(
                actor, "flag.update", f"flag:{key}", None, before.settings(), view.settings(), "", now
            )
        self._on_change()
        return view

    def _environment_graph(
        self, tx: Transaction, environment_id: int | None = None
    ) -> dict[str, tuple[FlagDefinition, tuple[Prerequisite, ...]]]:
        records = {r.id: r.definition for r in tx.flags.all()}
        return {
            records[s.flag_id].key: (records[s.flag_id], s.state.prerequisites)
            for s in tx.flags.states()
            if environment_id is None or s.environment_id == environment_id
        }

    def delete_flag(self, key: str, actor: str, reason: str = "") -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            record = self._record(tx, key, for_update=True)
            dependents = sorted(
                {k for k, (_, prs) in self._environment_graph(tx).items() if any(p.flag == key for p in prs)}
            )
            if dependents:
                raise Conflict(
                    f"flag {key!r} is a prerequisite of {', '.join(dependents)}: remove that first"
                )
            before = self._view(tx, record).audit_record()
            tx.flags.delete(record.id)
            tx.audit.record(actor, "flag.delete", f"flag:{key}", None, before, None, reason, now)
        self._on_change()

    def set_state(
        self, key: str, environment: str, body: Mapping[str, Any], actor: str, reason: str = ""
    ) -> FlagState:
        unknown = set(body) - STATE_FIELDS - {"reason"}
        if unknown:
            raise InvalidInput(
                f"unknown field {sorted(unknown)[0]!r}; a flag's environment state has "
                + ", ".join(sorted(STATE_FIELDS)),
                where=sorted(unknown)[0],
            )
        reason = body.get("reason", reason)
        if not isinstance(reason, str):
            raise InvalidInput("reason must be a string", where="reason")
        return self._change_state(
            key,
            environment,
            actor,
            reason,
            "flag.update",
            lambda definition, state: apply_changes(definition, state, body),
            OffHow.DISABLE,
        )

    def kill(self, key: str, environment: str, actor: str, reason: str) -> FlagState:
        if not isinstance(reason, str):
            raise InvalidInput("reason must be a string", where="reason")
        return self._change_state(
            key,
            environment,
            actor,
            reason,
            "flag.kill",
            lambda _definition, state: replace(state, enabled=False),
            OffHow.KILL,
        )

    def _change_state(
        self,
        key: str,
        environment: str,
        actor: str,
        reason: str,
        action: str,
        change: Callable[[FlagDefinition, FlagState], FlagState],
        how: OffHow,
    ) -> FlagState:
        with self._store.transaction() as tx:
            now = self._clock()
            after = self.change_state_in(tx, key, environment, actor, reason, action, change, now, how=how)
        self._on_change()
        return after

    def change_state_in(
        self,
        tx: Transaction,
        key: str,
        environment: str,
        actor: str,
        reason: str,
        action: str,
        change: Callable[[FlagDefinition, FlagState], FlagState],
        now: datetime,
        on_behalf_of: str | None = None,
        *,
        how: OffHow,
        source_id: int | None = None,
    ) -> FlagState:
        """Change a flag's state inside the caller's transaction (a rollout decision), audited there too. A change
        that switches the flag off pulls its kill switch (`how` it was done, by the rollout or scheduled change
        `source_id`); one that switches it on puts it back."""
        env = self.environment(tx, environment)
        record = self._record(tx, key, for_update=True)
        before, after = self._changed(tx, env, record, change)
        tx.flags.put_state(record.id, env.id, after, now)
        if before.enabled != after.enabled:
            off = SwitchOff(now, actor, on_behalf_of, reason, how, source_id) if before.enabled else None
            tx.flags.put_switch_off(record.id, env.id, off)
        tx.audit.record(
            actor,
            action,
            f"flag:{key}",
            environment,
            before.to_dict(),
            after.to_dict(),
            reason,
            now,
            on_behalf_of,
        )
        return after

    def check_change_in(
        self,
        tx: Transaction,
        key: str,
        environment: str,
        change: Callable[[FlagDefinition, FlagState], FlagState],
    ) -> None:
        """Refuse, as `change_state_in` would, a change that cannot be made now; write nothing."""
        self._changed(tx, self.environment(tx, environment), self._record(tx, key), change)

    def _changed(
        self,
        tx: Transaction,
        env: Environment,
        record: FlagRecord,
        change: Callable[[FlagDefinition, FlagState], FlagState],
    ) -> tuple[FlagState, FlagState]:
        key = record.definition.key
        if tx.lifecycle.get(record.id).archived_at is not None:
            raise Conflict(
                f"flag {key!r} is archived: its answer is fixed; restore it first (rampup flag archive {key} --undo)"
            )
        before = tx.flags.state(record.id, env.id) or FlagState(salt=key)
        after = replace(change(record.definition, before), version=before.version + 1)
        if after.prerequisites != before.prerequisites:
            check_prerequisites(key, after.prerequisites, self._environment_graph(tx, env.id))
        if after.rules != before.rules:
            known = (r.segment.key for r in tx.segments.all(env.id, keys=False))
            check_segment_references(after.rules, known, env.key)
        return before, after

    def switched_off(self, tx: Transaction, key: str, environment: str) -> SwitchedOff | None:
        """Who switched the flag off in the environment, while it is still off; None when it is on, or has not
        been on since it was made (off is where a flag starts, not a kill switch someone pulled). Kept with the
        state, so it follows a renamed environment and goes with a deleted flag or environment."""
        record, env = tx.flags.get(key), tx.environments.get(environment)
        if record is None or env is None:
            return None
        found = next((s for s in tx.flags.states(record.id) if s.environment_id == env.id), None)
        if found is None or found.switched_off is None:
            return None
        return SwitchedOff(key, environment, found.switched_off)

    def audit(
        self,
        *,
        target: str | None = None,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        with self._store.read() as tx:
            entries = tx.audit.entries(
                target=target,
                environment=environment,
                actor=actor,
                action=action,
                limit=limit,
                before_id=before_id,
            )
        # Channel entries are written masked; masking them on the way out covers those written before that too.
        return [
            replace(e, before=mask_urls(e.before), after=mask_urls(e.after))
            if e.target.startswith("channel:")
            else e
            for e in entries
        ]


def _stewardship(current: Stewardship, body: Mapping[str, Any]) -> Stewardship:
    """The kind and channels a create or update asks for, over what the flag had."""
    kind = FlagKind.parse(body["kind"]) if body.get("kind") is not None else current.kind
    notify = parse_notify(body["notify"]) if body.get("notify") is not None else current.notify
    return replace(current, kind=kind, notify=notify)


def known_channels(tx: Transaction, names: tuple[str, ...]) -> None:
    for i, name in enumerate(names):
        if tx.channels.get(name) is None:
            raise InvalidInput(f"no channel named {name!r} (rampup channel list)", where=f"notify[{i}]")


def apply_changes(definition: FlagDefinition, state: FlagState, body: Mapping[str, Any]) -> FlagState:
    expected = body.get("version")
    if expected is not None and expected != state.version:
        raise Conflict(f"the state changed meanwhile: version is {state.version}, not {expected}")
    changes = {
        attribute: parse(body[field], definition)
        for field, (attribute, parse) in _STATE_PARSERS.items()
        if field in body
    }
    return replace(state, **changes)


def _enabled(value: Any, _definition: FlagDefinition) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("enabled must be true or false", where="enabled")
    return value


def _rules(value: Any, definition: FlagDefinition) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise InvalidInput("rules must be a list", where="rules")
    return tuple(Rule.parse(r, f"rules[{i}]", definition.variant_names) for i, r in enumerate(value))


def _salt(value: Any, _definition: FlagDefinition) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidInput("salt must be a non-empty string of at most 200 characters", where="salt")
    return value


# A state field as the API takes it → the FlagState attribute it sets, and how it is read.
_STATE_PARSERS: dict[str, tuple[str, Callable[[Any, FlagDefinition], Any]]] = {
    "enabled": ("enabled", _enabled),
    "rollout": ("rollout_bp", lambda value, _definition: parse_rollout(value)),
    "rules": ("rules", _rules),
    "salt": ("salt", _salt),
    "weights": ("weights", parse_weights),
    "bucket_by": ("bucket_by", lambda value, _definition: parse_bucket_by(value)),
    "prerequisites": ("prerequisites", lambda value, definition: parse_prerequisites(value, definition.key)),
}
STATE_FIELDS = frozenset({*_STATE_PARSERS, "version"})


def _environment_fields(key: Any, name: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not FLAG_KEY.match(key):
        raise InvalidInput(f"environment key {key!r} must match {FLAG_KEY.pattern}", where="key")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("name must be a non-empty string of at most 200 characters", where="name")
    return key, name

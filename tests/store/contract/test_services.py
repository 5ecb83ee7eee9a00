"""The services over every store alike — in memory, SQLite, PostgreSQL: what a change keeps, what it audits,
what a refused change leaves, what another instance sees."""

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rampup.adapters.codecs.native import decode_batch
from rampup.adapters.storage.memory import MemoryStore
from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.ports import Store
from rampup.core.rollups import DAY, Aggregate, Exceedance, UnitTotals
from rampup.core.switch_off import OffHow
from rampup.core.telemetry import Kind, Observation
from rampup.core.tokens import Scope
from rampup.errors import Conflict, InvalidInput, NotFound


class StepClock:
    """Injected time: each reading is one second after the previous one."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def container(store: Store) -> Container:
    c = build_container(Settings(admin_token="t0ken"), clock=StepClock(), store=store)
    prepare(c)
    return c


def test_fresh_database_has_staging_and_production_with_ids(container: Container) -> None:
    assert [(e.id, e.key) for e in container.flags.environments()] == [(1, "staging"), (2, "production")]


def test_flag_state_round_trips_with_rules_weights_and_versions(container: Container) -> None:
    container.flags.create_flag(
        {
            "key": "colors",
            "type": "string",
            "variants": [
                {"name": "grey", "value": "grey"},
                {"name": "blue", "value": "blue"},
                {"name": "red", "value": "red"},
            ],
        },
        "dana",
    )
    state = container.flags.set_state(
        "colors",
        "production",
        {
            "enabled": True,
            "rollout": 33.33,
            "weights": {"blue": 60, "red": 40},
            "rules": [
                {
                    "conditions": [
                        {"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}
                    ],
                    "variant": "red",
                }
            ],
        },
        "dana",
        "first customers",
    )
    view = container.flags.flag("colors")
    stored = view.states["production"]
    assert stored == state
    assert (stored.rollout, stored.version, dict(stored.weights)) == (33.33, 2, {"blue": 6000, "red": 4000})
    assert stored.rules[0].to_dict()["conditions"][0]["values"] == ["@example.com"]
    assert view.states["staging"].enabled is False
    assert view.record.definition.off_variant == "grey"


def test_every_change_is_audited_with_actor_before_after_and_reason(container: Container) -> None:
    container.flags.create_flag({"key": "ws"}, "dana")
    container.flags.set_state("ws", "production", {"enabled": True, "rollout": 10}, "dana", "stage 1")
    container.flags.kill("ws", "production", "lee", "error rate 0.8%")
    entries = container.flags.audit(target="flag:ws")
    assert [e.action for e in entries] == ["flag.kill", "flag.update", "flag.create"]
    kill = entries[0]
    assert (kill.actor, kill.environment, kill.reason) == ("lee", "production", "error rate 0.8%")
    created = entries[2].after
    assert kill.before is not None and kill.after is not None and created is not None
    assert kill.before["enabled"] is True and kill.after["enabled"] is False
    assert kill.after["rollout"] == 10 and kill.at > entries[1].at
    assert created["key"] == "ws" and created["environments"]["production"]["enabled"] is False


def test_a_rejected_change_changes_nothing_and_audits_nothing(container: Container) -> None:
    container.flags.create_flag({"key": "ws"}, "dana")
    before = container.flags.flag("ws")
    revision = container.revision()
    with pytest.raises(InvalidInput):
        container.flags.set_state("ws", "production", {"enabled": True, "rollout": 250}, "dana")
    with pytest.raises(Conflict):
        container.flags.set_state("ws", "production", {"enabled": True, "version": 99}, "dana")
    with pytest.raises(Conflict):
        container.flags.create_flag({"key": "ws"}, "dana")
    assert container.flags.flag("ws") == before
    assert container.revision() == revision


def test_audit_entry_is_written_in_the_same_transaction_as_the_change(container: Container) -> None:
    container.flags.create_flag({"key": "ws"}, "dana")
    revision = container.revision()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), container.store.transaction() as tx:
        tx.audit.record("dana", "flag.update", "flag:ws", "production", None, {"x": 1}, "", datetime.now(UTC))
        raise Boom
    assert container.revision() == revision


def test_tokens_are_stored_hashed_and_can_be_revoked(container: Container) -> None:
    token, secret = container.tokens.create("sdk", "production", "web", "dana")
    with container.store.read() as tx:
        stored = tx.tokens.get(token.id)
    assert stored is not None and secret not in repr(stored) and stored.secret_hash != secret
    container.snapshots.refresh()
    assert container.snapshots.current.authenticate(secret) == stored
    container.tokens.revoke(token.id, "dana")
    container.snapshots.refresh()
    assert container.snapshots.current.authenticate(secret) is None
    assert [e.action for e in container.flags.audit(target=f"token:{token.id}")] == [
        "token.revoke",
        "token.create",
    ]


@pytest.mark.parametrize(
    ("scope", "environment", "error"),
    [
        ("root", None, InvalidInput),
        ("sdk", None, InvalidInput),
        ("admin", "production", InvalidInput),
        ("ingest", "nowhere", NotFound),
    ],
)
def test_bad_token_requests_are_rejected(
    container: Container, scope: str, environment: str | None, error: type[Exception]
) -> None:
    count = len(container.tokens.tokens())
    with pytest.raises(error):
        container.tokens.create(scope, environment, None, "dana")
    assert len(container.tokens.tokens()) == count


def test_new_environment_gets_every_flag_off(container: Container) -> None:
    container.flags.create_flag({"key": "ws"}, "dana")
    env = container.flags.create_environment("qa", "QA", "dana")
    assert env.id == 3
    assert container.flags.flag("ws").states["qa"].enabled is False


def test_snapshot_follows_changes_made_by_another_instance(store: Store) -> None:
    first = build_container(Settings(admin_token="a"), store=store)
    prepare(first)
    second = build_container(Settings(admin_token="a"), store=store)
    second.snapshots.refresh()
    first.flags.create_flag({"key": "shared"}, "dana")
    first.flags.set_state("shared", "production", {"enabled": True, "rollout": 100}, "dana")
    assert "shared" not in second.snapshots.current.flags["production"]
    assert second.snapshots.refresh() is True
    assert second.snapshots.current.flags["production"]["shared"].state.rollout == 100
    assert second.snapshots.refresh() is False


def test_a_kill_committed_after_a_later_change_is_still_picked_up_on_postgres(
    make_database_url: Callable[[str], str],
) -> None:
    """Two connections: the kill takes the earlier audit id but commits after another change; every
    instance that already saw that other change must still see the kill."""
    url = make_database_url("postgres")
    first = build_container(Settings(database_url=url, admin_token="a"), clock=StepClock())
    prepare(first)
    for key in ("checkout", "banner"):
        first.flags.create_flag({"key": key}, "dana")
    first.flags.set_state("checkout", "production", {"enabled": True, "rollout": 100}, "dana")
    second = build_container(Settings(database_url=url, admin_token="a"), clock=StepClock())
    with first.store.transaction() as slow:
        first.flags.change_state_in(
            slow,
            "checkout",
            "production",
            "lee",
            "errors",
            "flag.kill",
            _kill,
            first.clock(),
            how=OffHow.KILL,
        )
        second.flags.set_state("banner", "production", {"enabled": True}, "dana")
        assert second.snapshots.current.flags["production"]["banner"].state.enabled
        assert second.snapshots.current.flags["production"]["checkout"].state.enabled
    kill, banner = first.flags.audit(action="flag.kill")[0], first.flags.audit(target="flag:banner")[0]
    assert kill.id < banner.id  # the ids are out of commit order: the revision must not be the newest id
    assert second.snapshots.refresh() is True
    assert not second.snapshots.current.flags["production"]["checkout"].state.enabled


def _kill(_definition: FlagDefinition, state: FlagState) -> FlagState:
    return replace(state, enabled=False)


def test_admin_token_from_the_environment_is_replaced_when_it_changes(store: Store) -> None:
    c = build_container(Settings(admin_token="first"), store=store)
    prepare(c)
    c2 = build_container(Settings(admin_token="second"), store=store)
    prepare(c2)
    assert c2.snapshots.current.authenticate("first") is None
    token = c2.snapshots.current.authenticate("second")
    assert token is not None and token.scope is Scope.ADMIN


def test_channel_urls_in_the_audit_log_are_masked_even_in_entries_written_unmasked(
    container: Container,
) -> None:
    raw = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/writtenBeforeMasking"
    with container.store.transaction() as tx:  # as a server before masking existed wrote it
        tx.audit.record(
            "admin", "channel.create", "channel:old", None, None, {"url": raw}, "", container.clock()
        )
    [entry] = container.flags.audit(target="channel:old")
    assert entry.after == {"url": "https://hooks.slack.com/services/T0…/***"}


def test_events_in_many_batches_or_one_give_the_same_gate_inputs_before_and_after_compaction(
    container: Container, store: Store
) -> None:
    container.flags.create_flag({"key": "ws", "type": "boolean"}, "dana")
    envs = container.snapshots.current.environments
    for env in envs:
        container.flags.set_state("ws", env, {"enabled": True, "rollout": 50}, "dana")
    start_ms = int(container.clock().timestamp() * 1000)
    events = [  # durations in whole milliseconds: their sums are exact in any order
        Observation(
            Kind.REQUEST, start_ms + 700 * i, f"u{i % 7}", {"ws": i % 3 == 0}, float(i % 11), i % 5 == 0
        )
        for i in range(60)
    ]
    # Exposures of two of those users, and of two (u7, u8) with no other telemetry: exposed 2 and silent 1 a side.
    events += [
        Observation(Kind.EXPOSURE, start_ms + 500 * i, user, {"ws": variant}, name="ws", variant=variant)
        for i, (user, variant) in enumerate([("u0", "on"), ("u1", "off"), ("u7", "on"), ("u8", "off")])
    ]
    events.sort(key=lambda o: o.at_ms)
    for i in range(0, len(events), 4):  # staging: sixteen batches of four
        container.ingest.ingest("staging", events[i : i + 4])
    container.ingest.ingest("production", events)  # production: one batch

    def readings(env: str) -> dict[str, tuple[UnitTotals, Aggregate, Aggregate, Mapping[int, Exceedance]]]:
        since, until = start_ms, start_ms + 60_000
        with store.read() as tx:
            inputs = tx.telemetry.gate_inputs(envs[env].id, "ws")
            return {
                variant: (
                    inputs.units(variant, since, until),
                    inputs.aggregate("error_rate", variant, since, until),
                    inputs.aggregate("api_latency", variant, since, until),
                    inputs.exceedance("api_latency", variant, since, until),
                )
                for variant in ("on", "off", "all")
            }

    before = readings("production")
    assert before["on"][0].users > 0 and before["off"][3]
    assert [(before[v][0].exposed, before[v][0].silent) for v in ("on", "off")] == [(2, 1), (2, 1)]
    assert readings("staging") == before
    merged = container.ingest.compact()
    assert (merged > 0) != isinstance(store, MemoryStore)  # the memory store adds in place
    assert readings("staging") == readings("production") == before
    assert container.ingest.compact() == 0


def test_ingested_exposures_make_users_exposed_and_those_with_no_other_telemetry_silent(
    container: Container, store: Store
) -> None:
    """Real events, decoded as the native endpoint decodes them: a user is exposed to a flag by an exposure of that
    flag (not of another flag reporting it, not by a custom event named like it), and silent while every event of
    theirs over the days read was one; a day later, their telemetry arriving, no longer."""
    for flag in ("ws", "other"):
        container.flags.create_flag({"key": flag, "type": "boolean"}, "dana")
        container.flags.set_state(flag, "production", {"enabled": True}, "dana")
    today = container.clock()
    yesterday = today - timedelta(days=1)

    def event(at: datetime, user: str, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "timestamp": at.isoformat(), "targeting_key": user, **fields}

    def exposure(at: datetime, user: str, flag: str = "ws", **fields: Any) -> dict[str, Any]:
        return event(at, user, "exposure", flag=flag, variant="on", **fields)

    def request(at: datetime, user: str) -> dict[str, Any]:
        return event(at, user, "request", flags={"ws": True}, duration_ms=12)

    body = [
        exposure(yesterday, "u1"),
        request(today, "u1"),  # u1's own telemetry comes the next day
        exposure(yesterday, "u2"),
        exposure(yesterday, "u2"),
        exposure(yesterday, "u3"),
        request(yesterday, "u3"),
        exposure(yesterday, "u4", "other", flags={"ws": True}),  # an event of ws, an exposure of other
        request(yesterday, "u5"),
        event(yesterday, "u6", "custom", name="ws", flags={"ws": True}),
    ]
    observations = decode_batch(json.dumps({"events": body}).encode(), int(today.timestamp() * 1000))
    container.ingest.ingest("production", observations)
    env_id = container.snapshots.current.environments["production"].id
    first, last = int(yesterday.timestamp()) // DAY, int(today.timestamp()) // DAY

    def read() -> list[tuple[int, int, int]]:
        with store.read() as tx:
            totals = [
                tx.telemetry.unit_totals(env_id, flag, a, b)["on"]
                for flag, a, b in (
                    ("ws", first, first),
                    ("ws", first, last),
                    ("ws", last, last),
                    ("other", first, last),
                )
            ]
        return [(t.users, t.exposed, t.silent) for t in totals]

    expected = [
        (6, 3, 2),  # yesterday: u1, u2, u3 exposed; u1 and u2 nothing but exposures
        (6, 3, 1),  # over both days u1's request counts: u2 alone silent
        (1, 0, 0),  # today: u1's request only
        (1, 1, 1),  # other: u4, its one event an exposure of it
    ]
    assert read() == expected
    container.ingest.compact()
    assert read() == expected

"""The ports' promises, repository by repository, on every store: all or nothing, compare-and-swap, queue
order, leases, the sums the statistics read."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rampup.core.alerts import AlertRule
from rampup.core.flags import FlagDefinition
from rampup.core.plans import Plan, RolloutState
from rampup.core.ports import Backlog, Store, Transaction
from rampup.core.rollups import (
    DAY,
    Aggregate,
    Exceedance,
    LatencyKey,
    RollupKey,
    UnitKey,
    UnitTotals,
    exceedance_at,
)
from rampup.core.scheduled_changes import ChangeStatus, ScheduledChange
from rampup.core.schedules import parse_schedule
from rampup.core.telemetry import Kind, Observation
from rampup.errors import Conflict
from rampup.services.outbox import outbox_id

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLAN = {
    "name": "ws-rollout",
    "flag": "ws",
    "environment": "production",
    "stages": [{"name": "Early", "percentage": 10, "min_duration": "1h"}],
}


def test_a_transaction_that_raises_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.environments.add("production", "Production", AT)
        tx.audit.record("dana", "environment.create", "environment:production", None, None, None, "", AT)
        raise RuntimeError
    with store.read() as tx:
        assert tx.environments.all() == [] and tx.audit.revision() == 0


def test_a_second_flag_or_channel_of_the_same_name_conflicts(store: Store) -> None:
    with store.transaction() as tx:
        tx.flags.add(FlagDefinition("ws"), AT)
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.flags.add(FlagDefinition("ws"), AT)
    with store.read() as tx:
        assert [f.definition.key for f in tx.flags.all()] == ["ws"]


def test_a_rollout_saved_on_a_stale_version_is_refused(store: Store) -> None:
    with store.transaction() as tx:
        rid = tx.rollouts.add(PLAN, Plan.parse(PLAN), RolloutState(), "dana", AT)
        assert tx.rollouts.save(rid, 1, RolloutState(stage=1), AT)
        assert not tx.rollouts.save(rid, 1, RolloutState(stage=2), AT)
    with store.read() as tx:
        record = tx.rollouts.get(rid)
        assert record is not None and (record.version, record.state.stage) == (2, 1)
        assert tx.rollouts.live_for("ws", "production") == record


def test_the_outbox_serves_the_oldest_item_of_each_destination_once_its_retry_time_comes(
    store: Store,
) -> None:
    with store.transaction() as tx:
        for item_id, destination in (("01", "a"), ("02", "a"), ("03", "b")):
            tx.outbox.enqueue(item_id, "notify", destination, {"id": item_id}, AT)
    with store.transaction() as tx:
        assert [i.id for i in tx.outbox.heads(AT)] == ["01", "03"]
        tx.outbox.failed("01", "refused", AT + timedelta(seconds=2))
        tx.outbox.delivered("03", AT)
    with store.read() as tx:
        assert [i.id for i in tx.outbox.heads(AT + timedelta(seconds=1))] == []  # a's head waits; b is done
        assert [i.id for i in tx.outbox.heads(AT + timedelta(seconds=2))] == ["01"]
        assert tx.outbox.backlog() == Backlog(2, AT)
        failed = next(i for i in tx.outbox.items() if i.id == "01")
        assert (failed.attempts, failed.last_error, failed.delivered_at) == (1, "refused", None)


def test_a_lease_is_held_until_it_runs_out(store: Store) -> None:
    until = AT + timedelta(seconds=30)
    with store.transaction() as tx:
        assert tx.leases.acquire("controller", "one", AT, until)
        assert not tx.leases.acquire("controller", "two", AT + timedelta(seconds=29), until)
        assert tx.leases.acquire("controller", "one", AT + timedelta(seconds=10), until)
        assert tx.leases.acquire("controller", "two", AT + timedelta(seconds=31), AT + timedelta(minutes=1))


def test_a_schedule_period_is_marked_sent_once(store: Store) -> None:
    body = {"kind": "daily", "rollout_id": 1, "channels": ["ops"], "hour": 8}
    schedule = parse_schedule(body, "dana", AT)
    with store.transaction() as tx:
        sid = tx.schedules.add(schedule)
        assert tx.schedules.mark_sent(sid, "2026-03-02", None)
        assert not tx.schedules.mark_sent(sid, "2026-03-02", None)  # another instance got there first
    with store.read() as tx:
        [record] = tx.schedules.all()
        assert (record.schedule, record.last_period) == (schedule, "2026-03-02")


def test_a_scheduled_change_is_stored_found_by_time_and_leaves_pending_once(store: Store) -> None:
    def change(flag: str, hours: int) -> ScheduledChange:
        rules = [
            {"conditions": [{"attribute": "country", "operator": "in", "values": ["DE"]}], "rollout": 50}
        ]
        return ScheduledChange(
            flag,
            "production",
            {"rollout": 25.5, "rules": rules},
            AT + timedelta(hours=hours),
            "Europe/Berlin",
            "deploy-bot",
            AT,
            ("ops",),
            "Monday's ramp",
        )

    with store.transaction() as tx:
        later, sooner, other = (
            tx.scheduled_changes.add(change(f, h)) for f, h in (("ws", 2), ("ws", 1), ("x", 3))
        )
    with store.read() as tx:
        assert [c.id for c in tx.scheduled_changes.find()] == [sooner, later, other]  # soonest first
        assert [c.id for c in tx.scheduled_changes.due(AT + timedelta(hours=2))] == [sooner, later]
        assert (tx.scheduled_changes.pending(), tx.scheduled_changes.pending("ws", "production")) == (3, 2)
        assert tx.scheduled_changes.pending("ws", "staging") == 0
        assert tx.scheduled_changes.get(sooner) == replace(change("ws", 1), id=sooner)
        assert tx.scheduled_changes.get(other + 1) is None
    done_at = AT + timedelta(hours=1)
    with store.transaction() as tx:
        assert tx.scheduled_changes.finish(sooner, ChangeStatus.DONE, done_at, "worker-a")
        assert not tx.scheduled_changes.finish(
            sooner, ChangeStatus.DONE, done_at, "worker-b"
        )  # the second is late
        assert not tx.scheduled_changes.finish(sooner, ChangeStatus.CANCELLED, done_at, "dana")
        assert tx.scheduled_changes.finish(later, ChangeStatus.FAILED, done_at, "worker-a", "x" * 3000)
    with store.read() as tx:
        made = tx.scheduled_changes.get(sooner)
        assert made is not None and (made.status, made.finished_at, made.finished_by) == (
            ChangeStatus.DONE,
            done_at,
            "worker-a",
        )
        assert [c.id for c in tx.scheduled_changes.find(status=ChangeStatus.FAILED)] == [later]
        assert len(tx.scheduled_changes.find(flag="ws")[1].outcome) == 2000
        assert [c.id for c in tx.scheduled_changes.due(AT + timedelta(days=1))] == [other]
        assert [c.id for c in tx.scheduled_changes.find(flag="x", environment="production", limit=1)] == [
            other
        ]
    with store.transaction() as tx:
        tx.scheduled_changes.rename_environment("production", "prod")
    with store.read() as tx:
        assert [c.id for c in tx.scheduled_changes.find(environment="prod")] == [
            other
        ]  # the pending one follows
        assert [c.id for c in tx.scheduled_changes.find(environment="production")] == [sooner, later]


def test_an_alert_fires_is_renotified_and_resolves(store: Store) -> None:
    rule = AlertRule.parse({"environment": "production", "metric": "error_rate", "condition": "> 1%"})
    with store.transaction() as tx:
        rule_id = tx.alert_rules.add(rule, None, AT)
        tx.alert_rules.set_breaching(rule_id, AT)
        alert_id = tx.alerts.open(rule_id, 0.02, AT)
        tx.alerts.renotified(alert_id, 0.03, AT + timedelta(hours=1))
    with store.transaction() as tx:
        [stored] = tx.alert_rules.all()
        assert (stored.rule, stored.breaching_since) == (rule, AT)
        firing = tx.alerts.firing(rule_id)
        assert firing is not None and (firing.value, firing.last_notified_at) == (
            0.03,
            AT + timedelta(hours=1),
        )
        tx.alerts.resolve(alert_id, 0.001, AT + timedelta(hours=2))
    with store.read() as tx:
        assert tx.alerts.firing(rule_id) is None and tx.alerts.all(firing=True) == []
        [resolved] = tx.alerts.all()
        assert (resolved.state, resolved.resolved_at) == ("resolved", AT + timedelta(hours=2))


def test_rollups_merge_and_unit_totals_sum_per_user(store: Store) -> None:
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    key = RollupKey("ws", "on", "error_rate", 60, 1_000_020)
    day = 1_000_020 // DAY
    for _ in range(2):
        with store.transaction() as tx:
            tx.telemetry.add_rollups(env.id, {key: Aggregate(count=10, failures=1)})
            tx.telemetry.add_units(env.id, {UnitKey("ws", "on", day, "u1"): [3, 1, 1, 1]})
            tx.telemetry.add_units(env.id, {UnitKey("ws", "on", day, "u2"): [1, 0, 0, 1]})
    with store.read() as tx:
        [row] = tx.telemetry.rollup_rows(env.id, "ws", "error_rate", [(60, 0, 2_000_000)])
        assert (row.variant, row.aggregate.count, row.aggregate.failures) == ("on", 20, 2)
        totals = tx.telemetry.unit_totals(env.id, "ws", day, day)["on"]
        # u1: 6 events, 2 engaged, 2 failures, 2 exposures; u2: 2 events, both exposures.
        assert (totals.users, totals.events, totals.engaged, totals.engaged_sq) == (2, 8, 2, 4)
        assert (totals.failures, totals.failures_sq) == (2, 4)
        assert (totals.exposed, totals.silent) == (2, 1)
    compacted_part_by_part(store, lambda tx: tx.telemetry.unit_totals(env.id, "ws", day, day))


def test_exposed_and_silent_users_are_counted_per_user_over_the_days_asked(store: Store) -> None:
    """A user is exposed with an exposure of the flag on any of the days asked, and silent if every one of their
    events over those days was one: read from merged rows and packs together, after SQLite's collapse and through
    compaction alike. Exposures of another flag are that flag's."""
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    day = 1_000_020 // DAY
    with store.transaction() as tx:  # [events, engaged, failures, exposures]
        tx.telemetry.add_units(
            env.id,
            {
                UnitKey("ws", "on", day, "u1"): [2, 0, 0, 2],  # only exposures on the first day
                UnitKey("ws", "on", day, "u3"): [4, 0, 1, 1],
                UnitKey("ws", "on", day, "u4"): [3, 0, 0, 0],
                UnitKey("ws", "off", day, "u5"): [1, 0, 0, 1],
                UnitKey("other", "on", day, "u4"): [1, 0, 0, 1],  # exposed to the other flag, not to ws
            },
        )
    with store.transaction() as tx:
        tx.telemetry.compact_units(1_000_000)
    for _ in range(3):  # packs on top of the merged rows, the same users in each
        with store.transaction() as tx:
            tx.telemetry.add_units(
                env.id,
                {
                    UnitKey("ws", "on", day, "u2"): [1, 0, 0, 1],
                    UnitKey("ws", "on", day + 1, "u1"): [1, 1, 0, 0],  # u1's own telemetry the next day
                    UnitKey("other", "on", day + 1, "u1"): [1, 0, 0, 1],
                },
            )

    def read(tx: Transaction) -> object:
        return [
            tx.telemetry.unit_totals(env.id, flag, first, last)
            for flag, first, last in (("ws", day, day), ("ws", day, day + 1), ("ws", day + 1, day + 1))
        ] + [tx.telemetry.unit_totals(env.id, "other", day, day + 1)]

    u5 = UnitTotals(1, 1, 0, 0, exposed=1, silent=1)
    expected = [
        # u1 (2 events, 2 exposures) and u2 (3, 3) silent; u3 exposed once in 4 events; u4 not exposed
        {"on": UnitTotals(4, 12, 0, 0, 1, 1, exposed=3, silent=2), "off": u5},
        # u1's 3 events of the next day count with their 2 exposures: exposed, no longer silent
        {"on": UnitTotals(4, 15, 3, 9, 1, 1, exposed=3, silent=1), "off": u5},
        {"on": UnitTotals(1, 3, 3, 9)},
        {"on": UnitTotals(2, 4, 0, 0, exposed=2, silent=2)},  # u4 and u1: exposures of the other flag only
    ]
    with store.read() as tx:
        assert read(tx) == expected
    collapse(store, pending_sums(store))
    with store.read() as tx:
        assert read(tx) == expected
    compacted_part_by_part(store, read)


def compacted_part_by_part(store: Store, read: Callable[[Transaction], object]) -> None:
    """Compaction merges what was appended, one part at a time here: every reading between is the first one."""
    with store.read() as tx:
        first = read(tx)
    while True:
        with store.transaction() as tx:
            merged = tx.telemetry.compact_units(1)
        with store.read() as tx:
            assert read(tx) == first
        if not merged:
            return


def test_a_user_in_many_parts_of_a_day_compacts_at_once_to_the_same_answers(store: Store) -> None:
    """One compaction takes many batches' parts of the same users (PostgreSQL sums each user's before its one upsert),
    some merged into rows an earlier compaction left: the answers are those of the parts alone."""
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    day = 1_000_020 // DAY
    for i in range(12):
        with store.transaction() as tx:
            tx.telemetry.add_units(
                env.id,
                {
                    UnitKey("ws", "on", day, "u1"): [1, i % 2, 0, int(i < 6)],
                    UnitKey("ws", "off", day, f"u{i % 3}"): [2, 0, 1, 2 if i % 3 == 0 else 0],
                },
            )
            tx.telemetry.add_latencies(
                env.id, {LatencyKey("ws", "on", day, "u1", "api_latency", 5 + i % 3): 1}
            )
        if i == 5:  # the second half's parts meet rows already merged
            with store.transaction() as tx:
                tx.telemetry.compact_units(1_000_000)

    def read(tx: Transaction) -> object:
        return (
            tx.telemetry.unit_totals(env.id, "ws", day, day),
            tx.telemetry.exceedance(env.id, "ws", "api_latency", day, day),
        )

    expected = (
        # on: u1 exposed in 6 of 12 events; off: u0 in all of its 8, u1 and u2 never
        {
            "on": UnitTotals(1, 12, 6, 36, exposed=1),
            "off": UnitTotals(3, 24, 0, 0, 12, 48, exposed=1, silent=1),
        },
        # u1's twelve values, four in each of octaves 5, 6 and 7
        {
            "on": {
                level: Exceedance(12, 144, above, above * above, above * 12)
                for level, above in ((5, 12), (6, 8), (7, 4))
            }
        },
    )
    with store.read() as tx:
        assert read(tx) == expected
    collapse(
        store, pending_sums(store)
    )  # each user's parts summed first (SQLite), as the worker's compaction does
    with store.read() as tx:
        assert read(tx) == expected
    with store.transaction() as tx:
        tx.telemetry.compact_units(1_000_000)
    with store.read() as tx:
        assert read(tx) == expected


def test_sums_read_before_another_compactor_merged_the_parts_are_not_put_back(store: Store) -> None:
    """A compactor that lost the lease sums the parts; the new leader merges them before it writes its sums: they
    are dropped, not counted twice. Parts appended after they were read are kept either way."""
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    day = 1_000_020 // DAY

    def append(user: str) -> None:
        with store.transaction() as tx:
            tx.telemetry.add_units(env.id, {UnitKey("ws", "on", day, user): [1, 0, 0, 0]})
            tx.telemetry.add_latencies(env.id, {LatencyKey("ws", "on", day, user, "api_latency", 7): 1})

    for _ in range(3):
        append("u1")
    pending = pending_sums(store)
    with store.transaction() as tx:
        tx.telemetry.compact_units(1_000_000)
    append("u2")
    collapse(store, pending)
    with store.read() as tx:
        assert tx.telemetry.unit_totals(env.id, "ws", day, day) == {"on": UnitTotals(2, 4, 0, 0)}
        assert tx.telemetry.exceedance(env.id, "ws", "api_latency", day, day) == {
            "on": {7: Exceedance(4, 10, 4, 10, 10)}  # u1's three values and u2's one: Σn 4, Σn² 9 + 1
        }


def pending_sums(store: Store) -> object | None:
    with store.read() as tx:
        return tx.telemetry.pending_units(1_000_000)


def collapse(store: Store, pending: object | None) -> None:
    """As the worker's compaction does: where the store summed something, in a write transaction."""
    if pending is not None:
        with store.transaction() as tx:
            tx.telemetry.collapse_units(pending)


def test_every_user_is_counted_apart_whatever_their_key_before_and_after_compaction(store: Store) -> None:
    """A batch's users with the same counts are stored together (their keys in one JSON array on SQL stores):
    keys that JSON escapes, or that read like numbers, still count as the users they name."""
    keys = [
        'say "hi"',
        "back\\slash",
        "tab\there",
        "new\nline",
        "ünïcødé ✓",
        "007",
        "7",
        "x" * 256,
        "[1]",
        "null",
    ]
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    day = 1_000_020 // DAY
    for _ in range(2):
        with store.transaction() as tx:
            tx.telemetry.add_units(env.id, {UnitKey("ws", "on", day, k): [1, 0, 0, 0] for k in keys})
            tx.telemetry.add_latencies(
                env.id, {LatencyKey("ws", "on", day, k, "api_latency", 7): 1 for k in keys}
            )
    with store.transaction() as tx:  # one user once more, engaged: in a pack of its own
        tx.telemetry.add_units(env.id, {UnitKey("ws", "on", day, "007"): [1, 1, 0, 0]})

    def read(tx: Transaction) -> object:
        return (
            tx.telemetry.unit_totals(env.id, "ws", day, day),
            tx.telemetry.exceedance(env.id, "ws", "api_latency", day, day),
        )

    with store.read() as tx:
        assert read(tx) == (
            {"on": UnitTotals(users=10, events=21, engaged=1, engaged_sq=1)},
            {"on": {7: Exceedance(20, 40, 20, 40, 40)}},  # ten users with two values each, all in octave 7
        )
    compacted_part_by_part(store, read)


def test_a_batch_whose_users_all_count_differently_is_stored_whole(store: Store) -> None:
    """Each user a pack of their own, more of them than one statement takes on PostgreSQL."""
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
    day = 1_000_020 // DAY
    with store.transaction() as tx:
        tx.telemetry.add_units(
            env.id, {UnitKey("ws", "on", day, f"u{n}"): [n, 0, 0, n % 2] for n in range(1, 2501)}
        )
    with store.read() as tx:
        totals = tx.telemetry.unit_totals(env.id, "ws", day, day)
    assert (totals["on"].users, totals["on"].events) == (2500, 2500 * 2501 // 2)
    assert (totals["on"].exposed, totals["on"].silent) == (
        1250,
        1,
    )  # u1 the one whose events are all exposures


def test_latency_octaves_sum_per_user_over_days_and_split_at_a_level(store: Store) -> None:
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
        other = tx.environments.add("qa", "QA", AT)
    day = 1_000_020 // DAY

    def octave(user: str, level: int, on_day: int = day, metric: str = "api_latency") -> LatencyKey:
        return LatencyKey("ws", "on", on_day, user, metric, level)

    for _ in range(2):  # written twice: counts add up
        with store.transaction() as tx:
            tx.telemetry.add_latencies(env.id, {octave("u1", 6): 2, octave("u1", 8): 1, octave("u2", 7): 1})
            tx.telemetry.add_latencies(
                env.id, {octave("u1", 9, day + 1): 1, LatencyKey("ws", "off", day, "u3", "api_latency", 5): 4}
            )
            tx.telemetry.add_latencies(
                env.id, {octave("u1", 9, day + 2): 5, octave("u2", 11, metric="lcp"): 3}
            )
            tx.telemetry.add_latencies(other.id, {octave("u9", 9): 7})
    with store.read() as tx:
        on, off = (
            tx.telemetry.exceedance(env.id, "ws", "api_latency", day, day + 1)[v] for v in ("on", "off")
        )
        lcp = tx.telemetry.exceedance(env.id, "ws", "lcp", day, day)
        nothing = tx.telemetry.exceedance(env.id, "ws", "api_latency", day + 3, day + 9)
    # on: u1 has 4 values in octave 6, 2 in 8 and 2 in 9 (the next day), u2 has 2 in 7; off: u3, 8 in 5.
    n, n_sq = 10, 8 * 8 + 2 * 2
    assert on == {
        9: Exceedance(n, n_sq, above=2, above_sq=4, cross=2 * 8),
        8: Exceedance(n, n_sq, above=4, above_sq=16, cross=4 * 8),
        7: Exceedance(n, n_sq, above=6, above_sq=16 + 4, cross=4 * 8 + 2 * 2),
        6: Exceedance(n, n_sq, above=10, above_sq=64 + 4, cross=8 * 8 + 2 * 2),
    }
    assert off == {5: Exceedance(8, 64, 8, 64, 64)}
    assert lcp == {"on": {11: Exceedance(6, 36, 6, 36, 36)}} and nothing == {}
    assert exceedance_at(on, 10) == Exceedance(n, n_sq) and exceedance_at(on, -3) == on[6]
    compacted_part_by_part(
        store,
        lambda tx: [tx.telemetry.exceedance(env.id, "ws", m, day, day + 1) for m in ("api_latency", "lcp")],
    )


def test_raw_events_come_back_by_time_and_go_with_their_batch(store: Store) -> None:
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
        tx.telemetry.insert_events(env.id, [Observation(Kind.REQUEST, ms, "u1") for ms in (1000, 2000)])
        tx.telemetry.insert_events(env.id, [Observation(Kind.SESSION, 5000, "u2", count=10**9)])
    with store.transaction() as tx:
        assert [(o.at_ms, o.count) for o in tx.telemetry.events(env.id, 1500, 6000)] == [
            (2000, 1),
            (5000, 10**9),
        ]
        assert tx.telemetry.purge_events(3000) == 2
    with store.read() as tx:
        assert [o.targeting_key for o in tx.telemetry.events(env.id, 0, 10_000)] == ["u2"]


def test_ids_made_while_the_clock_stands_still_are_stored_and_served_in_order(store: Store) -> None:
    ids = [outbox_id(AT) for _ in range(3)]
    with store.transaction() as tx:
        for item_id in reversed(ids):  # inserted out of order: the id, not the insert, is the queue order
            tx.outbox.enqueue(item_id, "notify", "channel:ops", {}, AT)
    with store.transaction() as tx:
        served = []
        while heads := tx.outbox.heads(AT):
            served.append(heads[0].id)
            tx.outbox.delivered(heads[0].id, AT)
    assert served == ids

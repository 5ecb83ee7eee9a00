"""Every repository method on every store: what one writes, the others read back the same, and deletes take
what the tables' cascades take. (test_repositories.py holds the promises about concurrency and order.)"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rampup.core.alerts import AlertRule
from rampup.core.feedback import Entry, EventRef
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.lifecycle import FlagKind, Stewardship
from rampup.core.notifications import Channel, ChannelType
from rampup.core.plans import Phase, Plan, RolloutState, Transition, TransitionKind
from rampup.core.ports import EvaluationCount, PastState, SessionRecord, StateRecord, Store, Transaction
from rampup.core.rollups import SECOND, Aggregate, RollupKey
from rampup.core.schedules import parse_schedule
from rampup.core.sessions import Session
from rampup.core.switch_off import OffHow, SwitchOff
from rampup.core.telemetry import Aggregation, CustomMetric
from rampup.core.tokens import Scope, Token
from rampup.errors import Conflict
from tests.store.contract.test_repositories import AT, PLAN

DAY = 20_514  # AT's epoch day
LATER = AT + timedelta(hours=1)


def _token(token_id: str = "t1", secret: str = "hash-1") -> Token:
    return Token(token_id, "dana", Scope.WRITE, None, secret, AT)


def test_environments_are_renamed_and_deleted_with_their_states_and_tokens(store: Store) -> None:
    with store.transaction() as tx:
        env = tx.environments.add("qa", "QA", AT)
        flag = tx.flags.add(FlagDefinition("ws"), AT)
        tx.flags.put_state(flag.id, env.id, FlagState(enabled=True), AT)
        tx.tokens.add(Token("sdk", "sdk", Scope.SDK, "qa", "h", AT), env.id)
        tx.environments.update(env.id, "test", "Test")
    with store.read() as tx:
        assert tx.environments.get("qa") is None
        renamed = tx.environments.get("test")
        assert renamed is not None and (renamed.id, renamed.name) == (env.id, "Test")
        token = tx.tokens.get("sdk")
        assert token is not None and token.environment == "test"
    with store.transaction() as tx:
        tx.environments.delete(env.id)
    with store.read() as tx:
        assert tx.environments.all() == [] and tx.tokens.get("sdk") is None
        assert list(tx.flags.states()) == [] and list(tx.flags.history()) == []


def test_a_flag_keeps_its_states_and_history_and_takes_them_when_deleted(store: Store) -> None:
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
        flag = tx.flags.add(FlagDefinition("ws"), AT)
        tx.flags.update(flag.id, FlagDefinition("ws", description="the workstation"), LATER)
        tx.flags.put_state(flag.id, env.id, FlagState(enabled=True, rollout_bp=1000, version=1), AT)
        tx.flags.put_state(flag.id, env.id, FlagState(enabled=True, rollout_bp=5000, version=2), LATER)
        tx.lifecycle.put(flag.id, Stewardship(FlagKind.OPERATIONAL))
        tx.lifecycle.add_evaluations({(flag.id, env.id): 3}, DAY, AT)
    with store.read() as tx:
        record = tx.flags.get("ws")
        assert record is not None and record.definition.description == "the workstation"
        assert (record.created_at, record.updated_at) == (AT, LATER)
        now = FlagState(enabled=True, rollout_bp=5000, version=2)
        assert (
            list(tx.flags.states()) == list(tx.flags.states(flag.id)) == [StateRecord(flag.id, env.id, now)]
        )
        assert tx.flags.state(flag.id, env.id) == now and tx.flags.state(flag.id, env.id + 1) is None
        assert [(h.at, h.state.rollout_bp) for h in tx.flags.history()] == [(AT, 1000), (LATER, 5000)]
        assert all(isinstance(h, PastState) and h.environment_id == env.id for h in tx.flags.history())
    with store.transaction() as tx:
        tx.flags.delete(flag.id)
    with store.read() as tx:
        assert tx.flags.all() == [] and list(tx.flags.states()) == [] and list(tx.flags.history()) == []
        assert tx.lifecycle.all() == {} and tx.lifecycle.evaluations(flag.id, 0) == []


def test_a_switch_off_is_kept_with_its_state_through_changes_and_renames_until_cleared(store: Store) -> None:
    off = SwitchOff(LATER, "oncall", "dana", "error rate 0.8%", OffHow.ROLLOUT, 7)
    with store.transaction() as tx:
        env, other = tx.environments.add("production", "Production", AT), tx.environments.add("qa", "QA", AT)
        flag = tx.flags.add(FlagDefinition("ws"), AT)
        for e in (env, other):
            tx.flags.put_state(flag.id, e.id, FlagState(enabled=True, version=1), AT)
        tx.flags.put_state(flag.id, env.id, FlagState(enabled=False, version=2), LATER)
        tx.flags.put_switch_off(flag.id, env.id, off)
        tx.flags.put_switch_off(flag.id, env.id + other.id, off)  # no such state: nothing to keep it with
    with store.transaction() as tx:
        tx.environments.update(env.id, "prod", "Production")
        tx.flags.put_state(flag.id, env.id, FlagState(enabled=False, rollout_bp=100, version=3), LATER)
    with store.read() as tx:
        assert {s.environment_id: s.switched_off for s in tx.flags.states()} == {env.id: off, other.id: None}
        assert [s.switched_off for s in tx.flags.states(flag.id) if s.environment_id == env.id] == [off]
    with store.transaction() as tx:
        tx.flags.put_switch_off(flag.id, env.id, None)
        tx.flags.put_switch_off(
            flag.id, other.id, replace(off, on_behalf_of=None, how=OffHow.KILL, source_id=None)
        )
    with store.read() as tx:
        kill = SwitchOff(LATER, "oncall", None, "error rate 0.8%", OffHow.KILL)
        assert {s.environment_id: s.switched_off for s in tx.flags.states()} == {env.id: None, other.id: kill}
    with store.transaction() as tx:
        tx.flags.delete(flag.id)
        tx.flags.add(FlagDefinition("ws"), AT)  # made anew: its states start without one
        made = tx.flags.get("ws")
        assert made is not None
        tx.flags.put_state(made.id, other.id, FlagState(), AT)
    with store.read() as tx:
        assert [s.switched_off for s in tx.flags.states()] == [None]


def test_a_token_is_revoked_and_a_new_secret_brings_it_back(store: Store) -> None:
    with store.transaction() as tx:
        tx.tokens.add(_token(), None)
        tx.tokens.revoke("t1", LATER)
    with store.read() as tx:
        assert [t.revoked_at for t in tx.tokens.all()] == [LATER]
    with store.transaction() as tx:
        tx.tokens.set_secret("t1", "hash-2")
    with store.read() as tx:
        assert tx.tokens.get("t1") == _token(secret="hash-2")


def test_custom_metrics_are_added_listed_and_deleted(store: Store) -> None:
    metric = CustomMetric("checkouts", "checkout", Aggregation.COUNT, (("plan", "pro"),), None, "", "paid")
    with store.transaction() as tx:
        tx.custom_metrics.add(metric, AT)
    with store.read() as tx:
        assert tx.custom_metrics.all() == [metric]
    with store.transaction() as tx:
        assert tx.custom_metrics.delete("checkouts") and not tx.custom_metrics.delete("checkouts")
    with store.read() as tx:
        assert tx.custom_metrics.all() == []


def test_gate_inputs_read_the_rollups_and_old_seconds_are_purged(store: Store) -> None:
    second = int(AT.timestamp())
    with store.transaction() as tx:
        env = tx.environments.add("production", "Production", AT)
        batch = {
            RollupKey("ws", "on", "error_rate", SECOND, second + i): Aggregate(count=10, failures=i)
            for i in range(3)
        }
        tx.telemetry.add_rollups(env.id, batch)
    since, until = second * 1000, (second + 3) * 1000
    with store.read() as tx:
        seen = tx.telemetry.gate_inputs(env.id, "ws").aggregate("error_rate", "on", since, until)
        assert (seen.count, seen.failures) == (30, 3)
    with store.transaction() as tx:
        assert tx.telemetry.purge_rollups(SECOND, second + 2) == 2
    with store.read() as tx:
        rows = tx.telemetry.rollup_rows(env.id, "ws", "error_rate", [(SECOND, second, second + 3)])
        assert [(r.variant, r.resolution, r.period, r.aggregate.failures) for r in rows] == [
            ("on", SECOND, second + 2, 2)
        ]


def test_transitions_are_kept_in_order_and_rollouts_found_by_flag_environment_and_liveness(
    store: Store,
) -> None:
    moves = [
        Transition(AT, Phase.PENDING, Phase.RUNNING, 0, 1, "dana", "go", kind=TransitionKind.STARTED),
        Transition(LATER, Phase.RUNNING, Phase.COMPLETED, 1, 1, "controller", "done", ({"metric": "x"},)),
    ]
    with store.transaction() as tx:
        first = tx.rollouts.add(PLAN, Plan.parse(PLAN), RolloutState(), "dana", AT)
        tx.rollouts.add_transitions(first, moves)
        tx.rollouts.save(first, 1, RolloutState(Phase.COMPLETED, 1), LATER)
        second = tx.rollouts.add(PLAN, Plan.parse(PLAN), RolloutState(Phase.RUNNING, 1), "dana", LATER)
    with store.read() as tx:
        assert tx.rollouts.transitions(first) == moves and tx.rollouts.transitions(second) == []
        assert [r.id for r in tx.rollouts.find(flag="ws", environment="production")] == [second, first]
        assert [r.id for r in tx.rollouts.find(live=True)] == [second]
        assert [r.id for r in tx.rollouts.find(live=False)] == [first]
        assert tx.rollouts.find(flag="other") == [] and len(tx.rollouts.find(limit=1)) == 1


def test_a_lease_is_released_only_by_its_holder(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.leases.acquire("controller", "a", AT, LATER)
        tx.leases.release("controller", "b")
        assert not tx.leases.acquire("controller", "b", AT, LATER)
        tx.leases.release("controller", "a")
        assert tx.leases.acquire("controller", "b", AT, LATER)


def test_channels_alert_rules_and_schedules_are_deleted_by_name_or_id(store: Store) -> None:
    hook = Channel("ops", ChannelType.WEBHOOK, {"url": "https://hooks.example.com/x", "secret": "s" * 8})
    schedule = parse_schedule({"kind": "completion", "rollout_id": 1, "channels": ["ops"]}, "dana", AT)
    with store.transaction() as tx:
        tx.channels.add(hook, AT)
        tx.environments.add("production", "Production", AT)
        rule_id = tx.alert_rules.add(AlertRule("r", "production", "error_rate", ">", 0.01, "> 1%"), None, AT)
        tx.alerts.open(rule_id, 0.02, AT)
        schedule_id = tx.schedules.add(schedule)
    with store.read() as tx:
        assert tx.channels.all() == [hook] and tx.channels.get("ops") == hook and tx.channels.get("x") is None
    with store.transaction() as tx:
        assert tx.channels.delete("ops") and not tx.channels.delete("ops")
        assert tx.alert_rules.delete(rule_id) and not tx.alert_rules.delete(rule_id)
        assert tx.schedules.delete(schedule_id) and not tx.schedules.delete(schedule_id)
    with store.read() as tx:
        assert tx.channels.all() == [] and tx.alert_rules.all() == [] and tx.schedules.all() == []
        assert tx.alerts.all() == []  # a rule's alerts go with it


def test_a_second_one_of_the_same_id_or_name_conflicts(store: Store) -> None:
    hook = Channel("ops", ChannelType.SLACK, {"url": "https://hooks.example.com/x"})
    metric = CustomMetric("checkouts", "checkout", Aggregation.COUNT)
    adds: list[Callable[[Transaction], object]] = [
        lambda tx: tx.environments.add("qa", "QA", AT),
        lambda tx: tx.tokens.add(_token(), None),
        lambda tx: tx.sessions.add(Session("s1", _token(), "csrf", AT, LATER), AT),
        lambda tx: tx.custom_metrics.add(metric, AT),
        lambda tx: tx.channels.add(hook, AT),
        lambda tx: tx.outbox.enqueue("01", "notify", "channel:ops", {}, AT),
    ]
    for add in adds:
        with store.transaction() as tx:
            add(tx)
        with pytest.raises(Conflict), store.transaction() as tx:
            add(tx)
    with store.read() as tx:
        assert len(tx.environments.all()) == 1 and len(tx.tokens.all()) == 1 and len(tx.outbox.items()) == 1
        assert tx.channels.all() == [hook] and tx.custom_metrics.all() == [metric]


def test_a_session_lives_until_it_expires_or_its_token_changes(store: Store) -> None:
    session = Session("s1", _token(), "csrf", AT, AT + timedelta(hours=8))
    with store.transaction() as tx:
        tx.tokens.add(_token(), None)
        tx.sessions.add(session, AT)
        tx.sessions.add(replace_id(session, "s2", AT + timedelta(minutes=5)), AT)
    with store.read() as tx:
        assert tx.sessions.get("s1", LATER) == SessionRecord(session, AT)
        assert tx.sessions.get("s1", AT + timedelta(hours=8)) is None  # expired
        assert tx.sessions.get("nope", AT) is None
    with store.transaction() as tx:
        tx.sessions.touch("s1", AT + timedelta(hours=9), LATER)
        assert tx.sessions.purge(AT + timedelta(minutes=5)) == 1  # s2
        assert not tx.sessions.delete("s2")
    with store.read() as tx:
        found = tx.sessions.get("s1", AT + timedelta(hours=8))
        assert found is not None and (found.touched_at, found.session.expires_at) == (
            LATER,
            AT + timedelta(hours=9),
        )
    with store.transaction() as tx:
        tx.tokens.set_secret("t1", "hash-2")
    with store.read() as tx:
        assert tx.sessions.get("s1", LATER) is None  # the token's secret changed
    with store.transaction() as tx:
        assert tx.sessions.delete("s1")


def replace_id(session: Session, session_id: str, expires_at: datetime) -> Session:
    return Session(session_id, session.token, session.csrf, session.created_at, expires_at)


def _entry(at_ms: int, key: str, comment: str | None, variant: str = "on") -> Entry:
    return Entry(at_ms, key, 4.0, "1-5", comment, None, {"ws": variant}, "native")


def test_feedback_is_paged_newest_first_and_purged_per_user_and_by_age(store: Store) -> None:
    with store.transaction() as tx:
        prod = tx.environments.add("production", "Production", AT).id
        qa = tx.environments.add("qa", "QA", AT).id
        tx.feedback.add(
            prod, [_entry(1000, "u1", "slow"), _entry(2000, "u2", None), _entry(3000, "u1", "ok", "off")]
        )
        tx.feedback.add(qa, [_entry(1500, "u1", "qa")])
        tx.feedback.add_event_refs(
            prod, [EventRef("e1", 1000, "u1", {"ws": "on"}), EventRef("e2", 3000, None, None)]
        )
        tx.feedback.add_event_refs(prod, [EventRef("e1", 1000, "u9", None)])  # a repeat is ignored
    with store.read() as tx:
        assert [e.at_ms for e in tx.feedback.page(prod)] == [3000, 2000, 1000]
        assert [e.comment for e in tx.feedback.page(prod, flag="ws", variant="on", commented=True)] == [
            "slow"
        ]
        assert [e.at_ms for e in tx.feedback.page(prod, since_ms=1500, until_ms=3000)] == [2000]
        newest = tx.feedback.page(prod, limit=1)[0]
        assert [e.at_ms for e in tx.feedback.page(prod, before_id=newest.id)] == [2000, 1000]
        assert tx.feedback.event_refs(prod, ["e1", "e2", "e3"]) == {
            "e1": EventRef("e1", 1000, "u1", {"ws": "on"}),
            "e2": EventRef("e2", 3000, None, None),
        }
        assert tx.feedback.event_refs(qa, ["e1"]) == {}
    with store.transaction() as tx:
        assert tx.feedback.purge_user("u1", prod) == 2
        assert tx.feedback.purge_before(2500) == 2  # u2's in production, u1's in qa; and the events before
    with store.read() as tx:
        assert tx.feedback.page(prod) == [] and tx.feedback.page(qa) == []
        assert list(tx.feedback.event_refs(prod, ["e1", "e2"])) == ["e2"]


def test_stewardship_and_evaluation_counts_per_flag_environment_and_day(store: Store) -> None:
    with store.transaction() as tx:
        prod = tx.environments.add("production", "Production", AT).id
        qa = tx.environments.add("qa", "QA", AT).id
        ws = tx.flags.add(FlagDefinition("ws"), AT).id
        other = tx.flags.add(FlagDefinition("other"), AT).id
        tx.lifecycle.put(ws, Stewardship(FlagKind.KILL_SWITCH, ("ops",)))
        tx.lifecycle.add_evaluations({(ws, prod): 2, (ws, qa): 1, (other, prod): 7}, DAY, AT)
        tx.lifecycle.add_evaluations({(ws, prod): 3}, DAY, LATER)
        tx.lifecycle.add_evaluations({(ws, prod): 1}, DAY + 1, LATER + timedelta(days=1))
    with store.read() as tx:
        assert tx.lifecycle.get(ws) == Stewardship(FlagKind.KILL_SWITCH, ("ops",))
        assert tx.lifecycle.get(other) == Stewardship() and tx.lifecycle.all() == {ws: tx.lifecycle.get(ws)}
        assert tx.lifecycle.last_evaluated() == {ws: LATER + timedelta(days=1), other: AT}
        assert tx.lifecycle.evaluations(ws, DAY) == [
            EvaluationCount(prod, DAY, 5, LATER),
            EvaluationCount(prod, DAY + 1, 1, LATER + timedelta(days=1)),
            EvaluationCount(qa, DAY, 1, AT),
        ]
        assert tx.lifecycle.evaluations(ws, DAY + 1) == [
            EvaluationCount(prod, DAY + 1, 1, LATER + timedelta(days=1))
        ]


def test_outbox_backlog_counts_what_waits(store: Store) -> None:
    with store.transaction() as tx:
        assert (tx.outbox.backlog().count, tx.outbox.backlog().oldest) == (0, None)
        tx.outbox.enqueue("01", "notify", "channel:a", {}, AT)
        tx.outbox.enqueue("02", "notify", "channel:b", {}, LATER)
        tx.outbox.delivered("01", LATER)
        assert (tx.outbox.backlog().count, tx.outbox.backlog().oldest) == (1, LATER)


def test_a_summary_id_is_claimed_once_per_environment_until_purged(store: Store) -> None:
    with store.transaction() as tx:
        prod = tx.environments.add("production", "Production", AT).id
        qa = tx.environments.add("qa", "QA", AT).id
        assert tx.telemetry.claim_summary(prod, "a-1", 1000)
        assert not tx.telemetry.claim_summary(prod, "a-1", 2000)  # a retry
        assert tx.telemetry.claim_summary(qa, "a-1", 1000)  # another environment's
        assert tx.telemetry.claim_summary(prod, "a-2", 3000)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.telemetry.claim_summary(prod, "b-1", 1000)
        raise RuntimeError("rolled back")  # a summary not stored leaves its id free
    with store.transaction() as tx:
        assert tx.telemetry.claim_summary(prod, "b-1", 1000)
    with store.transaction() as tx:
        assert not tx.telemetry.claim_summary(prod, "a-2", 4000)
        assert tx.telemetry.purge_summary_ids(2500) == 3  # a-1 in each environment, b-1
    with store.transaction() as tx:
        assert tx.telemetry.claim_summary(prod, "a-1", 5000) and not tx.telemetry.claim_summary(
            prod, "a-2", 5000
        )

"""Scheduled changes over the in-memory store, on a manual clock: made once at their time by whoever holds the
lease, audited as the token that scheduled them, told to the channels; failed (not made) when they no longer
fit; cancelled; limited."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rampup.adapters.clock import ManualClock
from rampup.bootstrap import Container
from rampup.core.plans import Plan
from rampup.core.scheduled_changes import ChangeStatus
from rampup.errors import Conflict, InvalidInput
from rampup.services import scheduled_changes
from rampup.services.scheduled_changes import MAX_PENDING_PER_FLAG

FLAG, ENV = "workstation", "production"  # the example flag a fresh store has
LEASE = timedelta(seconds=5)
MONDAY_9_BERLIN = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def c(with_channels: Callable[..., Container], clock: ManualClock) -> Container:
    return with_channels(clock, "owners", "release-room")


def schedule(c: Container, **fields: Any) -> int:
    body = {
        "flag": FLAG,
        "environment": ENV,
        "at": "2026-03-09 09:00",
        "timezone": "Europe/Berlin",
        "change": {"enabled": True, "rollout": 25},
        "notify": ["release-room"],
        **fields,
    }
    return c.scheduled.create(body, "deploy-bot").id


def told(c: Container, kind: str) -> list[str]:
    return sorted(d.channel or "" for d in c.notifications.deliveries() if d.type == kind)


def test_a_change_is_made_once_at_its_local_time_by_the_lease_holder_as_the_token_that_scheduled_it(
    c: Container, clock: ManualClock
) -> None:
    change_id = schedule(c, reason="Monday's ramp")
    second = f"{c.leader.holder}-other"
    clock.set_to(MONDAY_9_BERLIN - timedelta(seconds=1))
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0
    assert c.flags.flag(FLAG).states[ENV].rollout_bp == 0

    clock.set_to(MONDAY_9_BERLIN)
    assert c.scheduled.run_due(second, LEASE) == 1  # takes the free lease and makes it
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0, "another holds the lease"
    clock.advance(LEASE * 2)
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0, "the lease is free again, but it was made"

    state = c.flags.flag(FLAG).states[ENV]
    assert (state.enabled, state.rollout_bp) == (True, 2500)
    made = c.scheduled.change(change_id)
    assert (made.status, made.finished_by, made.finished_at) == (ChangeStatus.DONE, second, MONDAY_9_BERLIN)
    [entry] = c.flags.audit(target=f"flag:{FLAG}", action="flag.scheduled")
    assert entry.actor == "deploy-bot" and entry.at == MONDAY_9_BERLIN
    assert entry.reason == f"scheduled change {change_id}, made by {second}: Monday's ramp"
    assert told(c, "schedule.done") == ["owners", "release-room"]


PLAN = {
    "name": "ramp",
    "flag": FLAG,
    "environment": ENV,
    "stages": [{"name": "Half", "percentage": 50, "min_duration": "1h"}],
    "gates": [],
}


def test_a_change_that_no_longer_fits_then_fails_with_the_reason_is_told_and_changes_nothing(
    c: Container, clock: ManualClock
) -> None:
    c.flags.create_flag({"key": "doomed"}, "dana")
    gone = schedule(c, flag="doomed", change={"enabled": True})
    contested = schedule(c, change={"rollout": 100}, at="2026-03-09 10:00")
    c.flags.delete_flag("doomed", "dana")
    c.rollouts.create(PLAN, Plan.parse(PLAN), "dana")
    before = c.flags.flag(FLAG).states[ENV]

    clock.set_to(MONDAY_9_BERLIN + timedelta(hours=1))
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0
    failed = {i: c.scheduled.change(i) for i in (gone, contested)}
    assert {s.status for s in failed.values()} == {ChangeStatus.FAILED}
    assert failed[gone].outcome == "flag 'doomed' not found"
    assert failed[contested].outcome.startswith("rollout 1 runs on 'workstation' in 'production'")
    assert c.flags.flag(FLAG).states[ENV] == before
    assert told(c, "schedule.failed") == [
        "owners",
        "release-room",
        "release-room",
    ]  # the gone flag's own: gone
    assert [e.actor for e in c.flags.audit(action="schedule.fail")] == ["deploy-bot", "deploy-bot"]
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0 and len(told(c, "schedule.failed")) == 3


def test_a_cancelled_change_is_never_made_and_is_cancelled_once(c: Container, clock: ManualClock) -> None:
    change_id = schedule(c)
    cancelled = c.scheduled.cancel(change_id, "dana", "not this week")
    assert (cancelled.status, cancelled.finished_by, cancelled.outcome) == (
        ChangeStatus.CANCELLED,
        "dana",
        "not this week",
    )
    with pytest.raises(Conflict, match="is cancelled"):
        c.scheduled.cancel(change_id, "dana")
    clock.set_to(MONDAY_9_BERLIN)
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 0
    assert c.flags.flag(FLAG).states[ENV].rollout_bp == 0
    assert [s.id for s in c.scheduled.changes(status="cancelled")] == [change_id]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"change": {"rollout": 150}}, "change.rollout"),
        ({"change": {"version": 3}}, "change.version"),
        ({"change": {}}, "change"),
        (
            {
                "change": {
                    "rules": [
                        {
                            "conditions": [{"attribute": "country", "operator": "in", "values": ["DE"]}],
                            "variant": "purple",
                        }
                    ]
                }
            },
            "change.rules[0].variant",
        ),
        ({"change": {"prerequisites": ["nowhere"]}}, "change.prerequisites[0].flag"),
        ({"notify": ["nobody"]}, "notify[0]"),
        ({"at": "2026-03-01 09:00"}, "at"),
        ({"timezone": "Berlin"}, "timezone"),
        ({"every": "monday"}, "every"),
        ({"reason": 7}, "reason"),
    ],
)
def test_a_change_that_cannot_be_made_is_refused_when_scheduled_saying_where(
    c: Container, fields: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        schedule(c, **fields)
    assert refused.value.where == where
    assert c.scheduled.changes() == []


def test_a_pending_change_follows_its_environment_renamed(c: Container, clock: ManualClock) -> None:
    change_id = schedule(c)
    c.flags.update_environment(ENV, {"key": "live"}, "dana")
    assert c.scheduled.change(change_id).environment == "live"
    clock.set_to(MONDAY_9_BERLIN)
    assert c.scheduled.run_due(c.leader.holder, LEASE) == 1
    assert c.flags.flag(FLAG).states["live"].rollout_bp == 2500


def test_pending_changes_are_limited_per_flag_and_environment(c: Container) -> None:
    for minute in range(MAX_PENDING_PER_FLAG):
        schedule(c, at=f"2026-03-09 09:{minute:02d}")
    with pytest.raises(Conflict, match="pending changes"):
        schedule(c)
    assert len(c.scheduled.changes(status="pending", limit=1000)) == MAX_PENDING_PER_FLAG
    schedule(c, environment="staging")  # another environment has its own


def test_pending_changes_are_limited_in_all(c: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduled_changes, "MAX_PENDING", 2)
    schedule(c)
    schedule(c, environment="staging")
    with pytest.raises(Conflict, match="2 changes are pending"):
        schedule(c, at="2026-03-09 10:00")

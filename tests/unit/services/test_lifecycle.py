"""The lifecycle pass over the in-memory store: ready for cleanup three days after a rollout completes, not when
something rolled it back since, and each change of status queued once for the plan's and the flag's channels."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rampup.bootstrap import Container
from rampup.core.lifecycle import Status
from rampup.core.plans import Phase, Plan

FLAG = "workstation"  # the example flag a fresh store has
PLAN = {
    "name": "to-everyone",
    "flag": FLAG,
    "environment": "production",
    "stages": [
        {"name": "Half", "percentage": 50, "min_duration": "1h"},
        {"name": "Everyone", "percentage": 100, "min_duration": "1h"},
    ],
    "gates": [],
    "notify": ["rollout-channel"],
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def c(with_channels: Callable[..., Container], clock: Clock) -> Container:
    return with_channels(clock, "rollout-channel", "owners")


def told(c: Container) -> list[tuple[str, str]]:
    """(channel, notification type) of the flag notifications queued, oldest first."""
    with c.store.read() as tx:
        items = tx.outbox.items(1000)
    notes: list[dict[str, Any]] = [
        dict(i.payload["notification"], channel=i.payload["channel"]) for i in items
    ]
    return sorted((n["channel"], n["type"]) for n in notes if n["type"].startswith("flag."))


def complete(c: Container, clock: Clock) -> None:
    rid = c.rollouts.create(PLAN, Plan.parse(PLAN), "dana")
    for _ in range(10):
        clock.now += timedelta(minutes=61)
        c.leader.control()
        if c.rollouts.rollout(rid).record.state.phase is Phase.COMPLETED:
            return
    pytest.fail(f"the rollout did not complete: {c.rollouts.rollout(rid).record.state.phase}")


def status(c: Container) -> Status:
    (life,) = [f for f in c.lifecycle.lives() if f.key == FLAG]
    return life.life.status


def test_ready_three_days_after_completion_and_told_once_to_plan_and_flag_channels(
    c: Container, clock: Clock
) -> None:
    complete(c, clock)
    clock.now += timedelta(days=2, hours=23)
    c.leader.control()
    assert status(c) is Status.ACTIVE and told(c) == []
    clock.now += timedelta(hours=1)
    for _ in range(3):
        c.leader.control()
        clock.now += timedelta(minutes=5)
    assert status(c) is Status.READY_FOR_CLEANUP
    assert told(c) == [("owners", "flag.ready_for_cleanup"), ("rollout-channel", "flag.ready_for_cleanup")]


def test_a_rollback_after_completion_keeps_it_active_and_says_so_once(c: Container, clock: Clock) -> None:
    complete(c, clock)
    clock.now += timedelta(days=4)
    c.leader.control()
    assert status(c) is Status.READY_FOR_CLEANUP
    c.flags.set_state(FLAG, "production", {"rollout": 50}, "dana", "errors again")
    clock.now += timedelta(minutes=2)
    c.leader.control()
    clock.now += timedelta(days=5)
    c.leader.control()
    assert status(c) is Status.ACTIVE  # rolled back since it completed: not ready, however long it waits
    assert [t for ch, t in told(c) if ch == "owners"] == ["flag.active", "flag.ready_for_cleanup"]

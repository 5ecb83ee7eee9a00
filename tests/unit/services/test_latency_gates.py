"""p95 latency against control through the services, over the in-memory store: events in, per-user octaves
kept, the controller's tick judging them. A user is slow in all they do, so a few heavy users do not make a
variant slower however many requests they send; every user being slower does."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from rampup.bootstrap import Container
from rampup.core.gates import Verdict
from rampup.core.plans import Phase, Plan
from rampup.core.telemetry import Kind, Observation
from tests.support.clock import SetClock

FLAG, ENV = "workstation", "production"
PLAN = {
    "name": "latency",
    "flag": FLAG,
    "environment": ENV,
    "stages": [
        {"name": "Half", "percentage": 50, "min_duration": "48h"},
        {"name": "Full", "percentage": 100, "min_duration": "1h"},
    ],
    "gates": [{"metric": "api_latency_p95", "compare": "control", "rollback": "> +10%"}],
}
START = datetime(2026, 3, 23, 6, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SetClock:
    return SetClock(START)


def requests(users: range, on: bool, slower: float = 1.0, each: int = 5) -> list[Observation]:
    """`each` requests from every user, at the user's own latency (40–239 ms by user) times `slower`."""
    at_ms = int((START + timedelta(minutes=30)).timestamp() * 1000)
    return [
        Observation(Kind.REQUEST, at_ms + k, f"user-{i}", {FLAG: on}, (40.0 + i * 37 % 200) * slower)
        for i in users
        for k in range(each)
    ]


def verdict_after_an_hour(
    c: Container, clock: SetClock, *batches: list[Observation]
) -> tuple[Phase, Verdict]:
    rid = c.rollouts.create(PLAN, Plan.parse(PLAN), "dana")
    for batch in batches:
        c.ingest.ingest(ENV, batch)
    clock.now = START + timedelta(hours=1)
    c.rollouts.tick(rid)
    status = c.rollouts.rollout(rid)
    verdict = status.gates[0].verdict if status.gates else Verdict.FAIL
    return status.record.state.phase, verdict


def test_every_user_30_percent_slower_rolls_back(container: Container, clock: SetClock) -> None:
    phase, _ = verdict_after_an_hour(
        container, clock, requests(range(0, 1000), True, slower=1.3), requests(range(1000, 2000), False)
    )
    assert phase is Phase.ROLLED_BACK


def test_three_heavy_slow_users_count_as_three_users(container: Container, clock: SetClock) -> None:
    """Per request the treatment's p95 is far above control's (900 of its 5,900 requests are from three slow
    users); per user it is three users of a thousand."""
    heavy = [
        Observation(o.kind, o.at_ms, o.targeting_key, o.flags, 600.0)
        for o in requests(range(5000, 5003), True, each=300)
    ]
    phase, verdict = verdict_after_an_hour(
        container, clock, requests(range(0, 1000), True), heavy, requests(range(1000, 2000), False)
    )
    assert phase is Phase.RUNNING and verdict is not Verdict.FAIL


def test_the_forecast_counts_users_for_a_percentile_target(
    memory_container: Callable[..., Container], clock: SetClock
) -> None:
    """A p95 target's expected time to a decision: longer when each user's latencies are alike (the evidence
    is the users') than when the same latencies are spread over users at random."""
    plan = {
        **PLAN,
        "stages": [{"name": "Half", "percentage": 50, "min_duration": "1m"}],
        "gates": [{"metric": "api_latency_p95", "target": "< 235ms"}],  # 2% over it
    }
    expected = []
    for alike in (True, False):
        c = memory_container(clock)
        c.ingest.ingest(ENV, requests(range(0, 1000), False, each=20) if alike else shuffled())
        clock.now = START + timedelta(hours=1)
        rid = c.rollouts.create(plan, Plan.parse(plan), "dana")
        expected.append(c.rollouts.rollout(rid).forecast[0].decision_s)
        c.close()
        clock.now = START
    assert expected[0] > 3 * expected[1], expected


def shuffled() -> list[Observation]:
    """The latencies of `requests(range(0, 1000), False, each=20)`, each given to another user."""
    alike = requests(range(0, 1000), False, each=20)
    return [
        Observation(o.kind, o.at_ms, f"user-{n % 1000}", o.flags, o.value)
        for n, o in enumerate(sorted(alike, key=lambda o: o.value or 0))
    ]

"""An error-rate target through the services, over the in-memory store: events in, each user's failures kept
per day, the controller's tick judging them. A treatment that has seen no failure yet is judged with the
clustering control shows: runs of failures from one user are the service's, not the feature's."""

from datetime import UTC, datetime, timedelta

import pytest

from rampup.bootstrap import Container
from rampup.core.plans import Phase, Plan
from rampup.core.telemetry import Kind, Observation
from tests.support.clock import SetClock

FLAG, ENV = "workstation", "production"
PLAN = {
    "name": "errors",
    "flag": FLAG,
    "environment": ENV,
    "stages": [
        {"name": "Half", "percentage": 50, "min_duration": "1h"},
        {"name": "Full", "percentage": 100, "min_duration": "1h"},
    ],
    "gates": [{"metric": "error_rate", "target": "< 1%"}],
}
START = datetime(2026, 3, 23, 6, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SetClock:
    return SetClock(START)


def requests(users: range, on: bool, failing: range = range(0), run: int = 0) -> list[Observation]:
    """Five requests from every user; the first `run` of each failing user's fail."""
    at_ms = int((START + timedelta(minutes=30)).timestamp() * 1000)
    return [
        Observation(Kind.REQUEST, at_ms + k, f"user-{i}", {FLAG: on}, 100.0, failed=i in failing and k < run)
        for i in users
        for k in range(5)
    ]


def after_the_soak(c: Container, clock: SetClock, *batches: list[Observation]) -> tuple[int, Phase, str]:
    """The stage and phase after the first stage's soak, and what the rollout said last."""
    rid = c.rollouts.create(PLAN, Plan.parse(PLAN), "dana")
    for batch in batches:
        c.ingest.ingest(ENV, batch)
    clock.now = START + timedelta(hours=1, seconds=10)
    c.rollouts.tick(rid)
    status = c.rollouts.rollout(rid)
    return status.record.state.stage, status.record.state.phase, status.timeline[-1].reason


@pytest.mark.parametrize(
    ("failing", "run", "passes"),
    [
        (range(1000, 1010), 1, True),  # control's 10 failures from 10 users: no clustering to fear
        (range(1000, 1002), 5, False),  # control's 10 failures in runs of 5 from 2 users
    ],
)
def test_no_failure_in_the_treatment_passes_only_if_control_s_failures_do_not_come_in_runs(
    container: Container, clock: SetClock, failing: range, run: int, passes: bool
) -> None:
    """The treatment's 1,500 requests without a failure: 1,500 independent chances show it under 1%; where
    failures come in runs of five from one user they are about 300 chances of a run, which do not."""
    treatment = requests(range(0, 300), True)
    control = requests(range(1000, 1300), False, failing, run)
    stage, phase, said = after_the_soak(container, clock, treatment, control)
    if passes:
        assert (stage, phase) == (2, Phase.RUNNING), said
    else:
        assert (stage, phase) == (1, Phase.WAITING_FOR_DATA), said
        assert "error_rate needs about" in said

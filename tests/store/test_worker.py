"""The worker: periodic jobs on their own threads, and the leader's jobs shared by several workers under one lease."""

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rampup.adapters.clock import ManualClock
from rampup.bootstrap import Container, build_container, leader_jobs, prepare
from rampup.config import Settings
from rampup.services.worker import Job, Worker
from tests.support.waiting import wait_until


def test_each_job_runs_on_its_own_and_a_failing_one_is_logged_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = {"steady": 0, "broken": 0}
    stuck, release = threading.Event(), threading.Event()

    def steady() -> None:
        runs["steady"] += 1

    def broken() -> None:
        runs["broken"] += 1
        raise OSError("the database went away")

    def slow() -> None:  # a delivery waiting on a slow webhook
        stuck.set()
        release.wait()

    worker = Worker([Job("steady", 0.01, steady), Job("broken", 0.01, broken), Job("slow", 0.01, slow)])
    with caplog.at_level(logging.ERROR, logger="rampup"):
        worker.start()
        try:
            wait_until(stuck.is_set, "the slow job to start")
            wait_until(
                lambda: runs["steady"] >= 5 and runs["broken"] >= 3, "both other jobs, again and again"
            )
        finally:
            release.set()
            worker.stop()
    assert not worker.running
    after_stop = dict(runs)
    assert worker.stats["broken"].failures == worker.stats["broken"].runs >= 3
    assert worker.stats["steady"].failures == 0
    assert "background job 'broken' failed" in caplog.text and "the database went away" in caplog.text
    assert runs == after_stop, "nothing runs once stopped"
    with pytest.raises(ValueError, match="unique"):
        Worker([Job("a", 1, steady), Job("a", 1, steady)])


@pytest.fixture
def workers(database_url: str) -> Iterator[list[tuple[Container, Worker]]]:
    """Three workers on one database and one manual clock, ticking every 10 ms of real time."""
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    settings = Settings(database_url=database_url, admin_token="t0ken", tick_s=0.01, outbox_poll_s=0.01)
    made = []
    for _ in range(3):
        c = build_container(settings, clock=clock)
        prepare(c)
        made.append((c, Worker(leader_jobs(c))))
    yield made
    for c, w in made:
        w.stop()
        c.close()


def test_one_worker_leads_the_others_stand_by_and_one_takes_over_when_it_dies(
    workers: list[tuple[Container, Worker]],
) -> None:
    for _, w in workers:
        w.start()
    wait_until(lambda: sum(c.leader.leading for c, _ in workers) == 1, "one worker to lead")
    leader = next(i for i, (c, _) in enumerate(workers) if c.leader.leading)
    standby = [pair for i, pair in enumerate(workers) if i != leader]
    dead_container, dead_worker = workers[leader]
    dead_worker.stop()  # as good as dead: its lease is not given back

    # While the dead leader's lease runs (time stands still), the others keep trying and do not act.
    runs = [w.stats["control"].runs for _, w in standby]
    wait_until(
        lambda: all(w.stats["control"].runs >= n + 3 for (_, w), n in zip(standby, runs, strict=True)),
        "the standby workers to try a few times",
    )
    assert not any(c.leader.leading for c, _ in standby)

    # Once it has run out, exactly one of the others takes over.
    clock = dead_container.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(seconds=6))
    wait_until(lambda: sum(c.leader.leading for c, _ in standby) == 1, "a standby worker to take over")
    taken_by = next(c for c, _ in standby if c.leader.leading)
    assert taken_by.leader.holder != dead_container.leader.holder

    # A clean stop gives the lease back: the last standby takes over without waiting for it to run out.
    stopping, stopped_worker = next((c, w) for c, w in standby if c.leader.leading)
    last = next(c for c, _ in standby if c is not stopping)
    stopped_worker.stop()
    stopping.leader.step_down()
    wait_until(lambda: last.leader.leading, "the last worker to take over at once")


def test_scheduled_changes_are_each_made_once_by_three_workers_on_one_database(
    workers: list[tuple[Container, Worker]],
) -> None:
    first = workers[0][0]
    clock = first.clock
    assert isinstance(clock, ManualClock)
    due = clock() + timedelta(minutes=1)
    keys = [f"scheduled-{i}" for i in range(12)]
    for key in keys:
        first.flags.create_flag({"key": key}, "dana")
        change = {"flag": key, "environment": "production", "at": due.isoformat(), "change": {"rollout": 10}}
        first.scheduled.create(change, "deploy-bot")
    for _, w in workers:
        w.start()
    clock.set_to(due)
    wait_until(lambda: not first.scheduled.changes(status="pending"), "every change made")

    holders = {c.leader.holder for c, _ in workers}
    made = first.scheduled.changes(status="done")
    assert len(made) == len(keys) and {s.finished_by for s in made} <= holders
    entries = first.flags.audit(action="flag.scheduled", limit=1000)
    assert sorted(e.target for e in entries) == sorted(f"flag:{k}" for k in keys), "each made once"
    assert {first.flags.flag(k).states["production"].version for k in keys} == {2}

"""Ingest's group commit: batches that come while another commits go in one transaction together; each caller is
answered only after the transaction holding its batch committed, and a batch the store refuses fails alone."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rampup.adapters.storage.memory import MemoryStore, MemoryTransaction
from rampup.bootstrap import Container
from rampup.core.telemetry import Kind, Observation
from rampup.errors import InvalidInput
from tests.support.waiting import wait_until

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


class HeldStore(MemoryStore):
    """A memory store that can hold a transaction writing raw events just before it commits, records the users of
    each committed one, and refuses any batch with a user named `refused`."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.open.set()
        self.held = 0
        self.committed: list[list[str]] = []  # per transaction: the first user of each batch in it

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        with super().transaction() as tx:
            batches: list[str] = []
            insert = tx.telemetry.insert_events

            def insert_events(environment_id: int, observations: Any) -> None:
                if any(o.targeting_key == "refused" for o in observations):
                    raise InvalidInput("refused by the store")
                batches.append(observations[0].targeting_key)
                insert(environment_id, observations)

            tx.telemetry.insert_events = insert_events  # type: ignore[method-assign]
            yield tx
            if batches:
                self.held += 1
                self.open.wait()
                self.committed.append(batches)


def send(c: Container, user: str, answers: dict[str, object]) -> threading.Thread:
    """Ingests two request events of `user` from a thread of its own, as the server's threadpool does."""

    def run() -> None:
        events = [Observation(Kind.REQUEST, NOW_MS, user, value=10.0) for _ in range(2)]
        try:
            answers[user] = c.ingest.ingest("production", events)
        except InvalidInput as refused:
            answers[user] = refused.message

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def queued(c: Container) -> int:
    return len(c.ingest._group._line)


def stored_users(c: Container) -> list[str]:
    env = c.snapshots.current.environments["production"]
    with c.store.read() as tx:
        return sorted({o.targeting_key or "" for o in tx.telemetry.events(env.id, 0, NOW_MS + 1)})


def sent_while_the_first_commits(
    c: Container, store: HeldStore, later: list[str]
) -> tuple[dict[str, object], list[threading.Thread]]:
    """ "first" sent and held just before its commit, then `later` sent and waiting in line behind it."""
    store.open.clear()
    answers: dict[str, object] = {}
    threads = [send(c, "first", answers)]
    wait_until(lambda: store.held == 1, "the first batch's transaction about to commit")
    threads += [send(c, user, answers) for user in later]
    wait_until(lambda: queued(c) == 1 + len(later), "the next batches waiting for the first's commit")
    return answers, threads


def release(store: HeldStore, threads: list[threading.Thread]) -> None:
    store.open.set()
    for thread in threads:
        thread.join()


def test_batches_that_come_during_a_commit_go_together_and_each_is_answered_after_it(
    memory_container: Callable[..., Container],
) -> None:
    store = HeldStore()
    c = memory_container(lambda: NOW, store)
    answers, threads = sent_while_the_first_commits(c, store, ["second", "third"])
    assert answers == {} and stored_users(c) == []  # nobody answered before a commit
    release(store, threads)
    assert answers == {"first": 2, "second": 2, "third": 2}
    assert store.committed == [["first"], ["second", "third"]]  # the two that waited: one transaction
    assert stored_users(c) == ["first", "second", "third"]


def test_a_batch_the_store_refuses_fails_alone_in_its_group(
    memory_container: Callable[..., Container],
) -> None:
    store = HeldStore()
    c = memory_container(lambda: NOW, store)
    answers, threads = sent_while_the_first_commits(c, store, ["second", "refused", "fourth"])
    release(store, threads)
    assert answers == {"first": 2, "second": 2, "refused": "refused by the store", "fourth": 2}
    assert store.committed == [["first"], ["second"], ["fourth"]]  # the group failed, then each alone
    assert stored_users(c) == ["first", "fourth", "second"]
    with c.store.read() as tx:  # what the metrics read: the refused batch's requests are not counted
        env = c.snapshots.current.environments["production"]
        aggregate = tx.telemetry.gate_inputs(env.id, "").aggregate("error_rate", "all", 0, NOW_MS + 1)
    assert aggregate.count == 6

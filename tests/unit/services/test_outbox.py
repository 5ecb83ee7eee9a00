"""The outbox's order on a clock that stands still, and what delivery does with it."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rampup.adapters.storage.memory import MemoryStore
from rampup.services.outbox import OutboxService, outbox_id

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        self.sent.append(payload["n"])


def test_ids_made_at_one_moment_keep_the_order_they_were_made_in() -> None:
    ids = [outbox_id(AT) for _ in range(500)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {36}  # the outbox's id column
    assert (
        outbox_id(AT - timedelta(microseconds=1))
        < ids[0]
        < ids[-1]
        < outbox_id(AT + timedelta(microseconds=1))
    )


def test_items_queued_while_the_clock_stands_still_go_out_in_the_order_they_were_queued() -> None:
    store, recorder = MemoryStore(), Recorder()
    with store.transaction() as tx:
        for n in ("first", "second", "third"):
            tx.outbox.enqueue(outbox_id(AT), "test", "channel:ops", {"n": n}, AT)
    outbox = OutboxService(store, lambda: AT, {"test": recorder})
    while outbox.deliver_due():  # one item per destination per pass: the head of its queue
        pass
    assert recorder.sent == ["first", "second", "third"]

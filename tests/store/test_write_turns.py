"""SQLite has one writer at a time, shared by every process on the database file: the worker's compaction, merging
chunk after chunk, lets a server's ingest commit between its chunks instead of after the last one."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from rampup.adapters.storage import SqlStore, make_engine
from rampup.core.rollups import UnitKey
from rampup.services.ingest import IngestService
from rampup.services.snapshot import SnapshotCache
from tests.support.waiting import wait_until

CHUNKS = 40
USERS = 500  # a chunk's users


def merged(store: SqlStore) -> bool:
    with store.read() as tx:
        return bool(tx.telemetry.conn.exec_driver_sql("SELECT count(*) FROM unit_days").scalar_one())


def test_a_server_commits_between_the_chunks_of_another_process_compaction(
    make_database_url: Callable[[str], str],
) -> None:
    url = make_database_url("sqlite")
    # Two engines: as two processes, sharing no lock in Python.
    worker, server = make_engine(url), make_engine(url)
    try:
        store = SqlStore(worker)
        for chunk in range(CHUNKS):  # a pack per transaction, so one chunk each
            with store.transaction() as tx:
                units = {UnitKey("ws", "on", 20_000, f"u{chunk}-{i}"): [1, 0, 0, 0] for i in range(USERS)}
                tx.telemetry.add_units(1, units)
        ingest = IngestService(store, SnapshotCache(store), lambda: datetime.now(UTC), compact_chunk=USERS)
        compacted: list[float] = []  # when the compaction returned

        def compact() -> None:
            ingest.compact()
            compacted.append(time.monotonic())

        compaction = threading.Thread(target=compact)
        compaction.start()
        wait_until(lambda: merged(SqlStore(server)), "the compaction's first chunk", interval=0.001)
        with SqlStore(server).transaction() as tx:
            tx.telemetry.add_units(1, {UnitKey("ws", "on", 20_000, "late"): [1, 0, 0, 0]})
        committed = time.monotonic()
        compaction.join()

        assert compacted and committed < compacted[0]
        with store.read() as tx:
            assert tx.telemetry.unit_totals(1, "ws", 20_000, 20_000)["on"].users == CHUNKS * USERS + 1
    finally:
        worker.dispose()
        server.dispose()

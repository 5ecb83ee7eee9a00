"""Per-user days and latency octaves are appended by ingest and merged by the worker: what is appended is committed
with its batch, so a server that stops before the merge loses nothing, and changing versions merges what is left, so
an upgrade or a downgrade loses no user's counts."""

from collections.abc import Callable

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from rampup.adapters.storage import SqlStore, make_engine, migrate
from rampup.adapters.storage.engine import MIGRATIONS
from rampup.core.rollups import Exceedance, LatencyKey, UnitKey, UnitTotals


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_downgrade_merges_the_parts_not_yet_compacted(
    backend: str, make_database_url: Callable[[str], str]
) -> None:
    engine = make_engine(make_database_url(backend))
    store = SqlStore(engine)
    try:
        with store.transaction() as tx:
            tx.telemetry.add_units(1, {UnitKey("ws", "on", 20_000, "u1"): [3, 1, 1, 1]})
        with store.transaction() as tx:
            tx.telemetry.compact_units(100)
        for counts in ([2, 0, 1, 1], [1, 1, 0, 0]):  # exposures too: a downgrade past 0024 drops them
            with store.transaction() as tx:
                tx.telemetry.add_units(
                    1, {UnitKey("ws", "on", 20_000, "u1"): counts, UnitKey("ws", "off", 20_000, "u2"): counts}
                )
                tx.telemetry.add_latencies(
                    1, {LatencyKey("ws", "on", 20_000, "u1", "api_latency", 7): counts[0]}
                )
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0018")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT variant, targeting_key, events, engaged, failures FROM unit_days ORDER BY variant"
            ).all()
            octaves = conn.exec_driver_sql("SELECT targeting_key, level, count FROM unit_latency_days").all()
        assert [tuple(r) for r in rows] == [("off", "u2", 3, 1, 1), ("on", "u1", 6, 2, 2)]
        assert [tuple(r) for r in octaves] == [("u1", 7, 3)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_what_a_stopped_server_appended_is_read_and_merged_by_the_next(
    backend: str, make_database_url: Callable[[str], str]
) -> None:
    url = make_database_url(backend)
    first = make_engine(url)
    with SqlStore(first).transaction() as tx:
        tx.telemetry.add_units(1, {UnitKey("ws", "on", 20_000, "u1"): [3, 1, 1, 1]})
        tx.telemetry.add_latencies(1, {LatencyKey("ws", "on", 20_000, "u1", "api_latency", 7): 3})
    first.dispose()  # gone before any compaction
    engine = make_engine(url)
    store = SqlStore(engine)
    try:
        for compactions in range(2):  # what the next server reads, before and after it compacts
            with store.read() as tx:
                assert tx.telemetry.unit_totals(1, "ws", 20_000, 20_000) == {
                    "on": UnitTotals(1, 3, 1, 1, 1, 1, exposed=1)
                }
                assert tx.telemetry.exceedance(1, "ws", "api_latency", 20_000, 20_000) == {
                    "on": {7: Exceedance(3, 9, 3, 9, 9)}
                }
            with store.transaction() as tx:
                assert tx.telemetry.compact_units(100) == (2 if compactions == 0 else 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_upgrade_merges_the_parts_appended_before_it(
    backend: str, make_empty_database_url: Callable[[str], str]
) -> None:
    engine = make_engine(make_empty_database_url(backend))
    try:
        upgraded_to(  # a row per user and batch, as 0019 and 0020 appended them
            engine,
            "0020",
            *(
                f"INSERT INTO unit_day_parts VALUES (1, 'ws', 'on', 20000, 'u1', {events}, 1, 0)"
                for events in (3, 2)
            ),
            "INSERT INTO unit_latency_parts VALUES (1, 'ws', 'on', 20000, 'u1', 'lcp', 7, 5)",
        )
        migrate(engine)
        with SqlStore(engine).read() as tx:
            assert tx.telemetry.unit_totals(1, "ws", 20_000, 20_000) == {"on": UnitTotals(1, 5, 2, 4)}
            assert tx.telemetry.exceedance(1, "ws", "lcp", 20_000, 20_000) == {
                "on": {7: Exceedance(5, 25, 5, 25, 25)}
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_upgrade_to_exposures_keeps_the_counts_and_counts_no_exposure_before_it(
    backend: str, make_empty_database_url: Callable[[str], str]
) -> None:
    """0024 adds `exposures` to per-user days and packs: the rows and packs written before it keep their counts
    and count no exposure (nobody exposed, so nobody silent), and what is written after it counts them."""
    engine = make_engine(make_empty_database_url(backend))
    try:
        upgraded_to(
            engine,
            "0023",
            "INSERT INTO unit_days VALUES (1, 'ws', 'on', 20000, 'u1', 3, 1, 1)",
            "INSERT INTO unit_day_packs VALUES (1, 'ws', 'on', 20000, 2, 0, 0, 2, '[\"u1\", \"u2\"]')",
        )
        migrate(engine)
        store = SqlStore(engine)
        with store.read() as tx:
            assert tx.telemetry.unit_totals(1, "ws", 20_000, 20_000) == {"on": UnitTotals(2, 7, 1, 1, 1, 1)}
        with store.transaction() as tx:
            tx.telemetry.add_units(1, {UnitKey("ws", "on", 20_000, "u3"): [1, 0, 0, 1]})
        for _ in range(2):  # before and after compaction
            with store.read() as tx:
                assert tx.telemetry.unit_totals(1, "ws", 20_000, 20_000) == {
                    "on": UnitTotals(3, 8, 1, 1, 1, 1, exposed=1, silent=1)
                }
            with store.transaction() as tx:
                tx.telemetry.compact_units(100)
    finally:
        engine.dispose()


def upgraded_to(engine: Engine, revision: str, *statements: str) -> None:
    """The engine's new database migrated up to `revision`, and what `statements` write there as a server of that
    revision would have."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        for statement in statements:
            conn.exec_driver_sql(statement)

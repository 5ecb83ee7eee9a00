"""Per-user days and latency octaves are appended by ingest and merged by the worker: going back a version merges
what is left, so a downgrade loses no user's counts."""

from collections.abc import Callable

import pytest
from alembic import command
from alembic.config import Config

from rampup.adapters.storage import SqlStore, make_engine
from rampup.adapters.storage.engine import MIGRATIONS
from rampup.core.rollups import LatencyKey, UnitKey


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_downgrade_merges_the_parts_not_yet_compacted(
    backend: str, make_database_url: Callable[[str], str]
) -> None:
    engine = make_engine(make_database_url(backend))
    store = SqlStore(engine)
    try:
        with store.transaction() as tx:
            tx.telemetry.add_units(1, {UnitKey("ws", "on", 20_000, "u1"): [3, 1, 1]})
        with store.transaction() as tx:
            tx.telemetry.compact_units(100)
        for counts in ([2, 0, 1], [1, 1, 0]):
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

"""Raw events on PostgreSQL live in one partition per day: a day without one gets it when its first event comes,
the retention job creates the next days' ahead and drops whole days that are past it (rows are deleted one by one
only in the day the boundary falls in)."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from rampup.adapters.storage import SqlStore, make_engine
from rampup.adapters.storage.engine import MIGRATIONS
from rampup.bootstrap import build_container, prepare
from rampup.config import Settings
from rampup.core.rollups import DAY
from rampup.core.telemetry import Kind, Observation

DAY_MS = DAY * 1000
FIRST = 20_000  # 2024-10-04


@pytest.fixture
def postgres_url(make_database_url: Callable[[str], str]) -> str:
    return make_database_url("postgres")


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    engine = make_engine(postgres_url)
    yield SqlStore(engine)
    engine.dispose()


def partitions(url: str) -> list[str]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'event_batches'::regclass ORDER BY c.relname"
        ).fetchall()
    return [name for (name,) in rows]


def request(at_ms: int, user: str) -> Observation:
    return Observation(Kind.REQUEST, at_ms, user)


def test_an_event_for_a_day_without_a_partition_gets_one(store: SqlStore, postgres_url: str) -> None:
    before = partitions(postgres_url)
    with store.transaction() as tx:
        env = tx.environments.add("partitioned", "Partitioned", datetime(2026, 3, 2, tzinfo=UTC))
        # One batch over two days that have no partition (and one before 1970): a row in each day's partition.
        tx.telemetry.insert_events(
            env.id,
            [
                request(FIRST * DAY_MS + 5, "a"),
                request((FIRST + 1) * DAY_MS + 7, "b"),
                request(-DAY_MS + 1, "c"),
            ],
        )
    assert set(partitions(postgres_url)) - set(before) == {
        f"event_batches_d{FIRST}",
        f"event_batches_d{FIRST + 1}",
        "event_batches_m1",
    }
    with store.read() as tx:
        stored = tx.telemetry.events(env.id, -DAY_MS, (FIRST + 2) * DAY_MS)
    assert sorted((o.at_ms, o.targeting_key) for o in stored) == [
        (-DAY_MS + 1, "c"),
        (FIRST * DAY_MS + 5, "a"),
        ((FIRST + 1) * DAY_MS + 7, "b"),
    ]


def test_retention_drops_past_days_whole_and_creates_the_next_days_ahead(postgres_url: str) -> None:
    now = datetime.fromtimestamp((FIRST + 3) * DAY + 3600, UTC)  # an hour into the fourth day
    c = build_container(Settings(database_url=postgres_url, admin_token="t0ken"), clock=lambda: now)
    prepare(c)
    try:
        for day in range(FIRST, FIRST + 4):  # a batch at 00:30 and one at 23:00 each day
            for at_ms in (day * DAY_MS + 1_800_000, day * DAY_MS + 82_800_000):
                assert c.ingest.ingest("production", [request(at_ms, "u")]) == 1
        # A day's retention from 01:00 on the fourth day: days one and two are wholly past (dropped as
        # partitions); on day three only the batch of 00:30 is (deleted as a row).
        assert c.ingest.purge(timedelta(days=1)) == 5
        kept = partitions(postgres_url)
        assert [d for d in range(FIRST, FIRST + 6) if f"event_batches_d{d}" in kept] == [
            FIRST + 2,
            FIRST + 3,
            FIRST + 4,
            FIRST + 5,
        ]
        with c.store.read() as tx:
            left = tx.telemetry.events(
                c.snapshots.current.environments["production"].id, 0, (FIRST + 9) * DAY_MS
            )
        assert sorted(o.at_ms - FIRST * DAY_MS for o in left) == [
            2 * DAY_MS + 82_800_000,
            3 * DAY_MS + 1_800_000,
            3 * DAY_MS + 82_800_000,
        ]
    finally:
        c.close()


def test_the_migration_moves_stored_batches_into_day_partitions_and_back(
    make_empty_database_url: Callable[[str], str],
) -> None:
    """Batches stored before 0015 span any days: each goes with its last event's day, so dropping a day never drops
    a newer event; the downgrade gives the plain table back with every batch."""
    url = make_empty_database_url("postgres")
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def to(revision: str, step: Callable[[Config, str], None] = command.upgrade) -> None:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            step(config, revision)

    try:
        to("0014")
        spans = [(FIRST * DAY_MS + 1, FIRST * DAY_MS + 2), (FIRST * DAY_MS + 3, (FIRST + 2) * DAY_MS + 4)]
        with engine.begin() as conn:
            for first_ms, last_ms in spans:
                conn.exec_driver_sql(
                    "INSERT INTO event_batches (environment_id, first_ms, last_ms, events, body) "
                    "VALUES (1, %s, %s, 1, '\\x90')",
                    (first_ms, last_ms),
                )
        to("0015")
        assert partitions(url) == [f"event_batches_d{FIRST}", f"event_batches_d{FIRST + 2}"]
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT day, first_ms, last_ms FROM event_batches ORDER BY id").all()
        assert [tuple(r) for r in rows] == [(FIRST, *spans[0]), (FIRST + 2, *spans[1])]
        to("0014", command.downgrade)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT first_ms, last_ms FROM event_batches ORDER BY id").all()
            assert [tuple(r) for r in rows] == spans
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_inherits").scalar_one() == 0
    finally:
        engine.dispose()


def test_a_batch_reaching_back_years_counts_but_makes_no_partition_for_days_past_the_retention(
    postgres_url: str,
) -> None:
    """An attacker's batch (or a client's backfill): 10,000 events on 10,000 past days would otherwise create as
    many tables. They count in the aggregates; only the events inside the retention are kept raw."""
    now = datetime.fromtimestamp((FIRST + 1) * DAY, UTC)
    c = build_container(
        Settings(database_url=postgres_url, admin_token="t0ken", retention_days=14), clock=lambda: now
    )
    prepare(c)
    try:
        before = partitions(postgres_url)
        events = [request((FIRST - day) * DAY_MS, f"u{day}") for day in range(10_000)]
        assert c.ingest.ingest("production", events) == 10_000
        assert sorted(set(partitions(postgres_url)) - set(before)) == sorted(
            f"event_batches_d{FIRST - day}"
            for day in range(14)
            if f"event_batches_d{FIRST - day}" not in before
        )
        with c.store.read() as tx:
            env = c.snapshots.current.environments["production"].id
            assert len(tx.telemetry.events(env, (FIRST - 20_000) * DAY_MS, (FIRST + 1) * DAY_MS)) == 14
            totals = tx.telemetry.rollup_rows(
                env, "", "error_rate", [(3600, (FIRST - 10_000) * DAY, FIRST * DAY)]
            )
        assert sum(row.aggregate.count for row in totals) == 10_000
    finally:
        c.close()

"""Configuration changes pushed over PostgreSQL LISTEN/NOTIFY: a commit through one process rebuilds another's
snapshot without any poll, and a lost connection is followed by a rebuild once listening again."""

from collections.abc import Callable, Iterator

import psycopg
import pytest

from rampup.adapters.storage import SqlStore
from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from tests.support.waiting import PATIENCE_S, wait_until


@pytest.fixture
def pair(make_database_url: Callable[[str], str]) -> Iterator[tuple[Container, Container]]:
    """Two processes' containers on one PostgreSQL database; only the second listens (nothing polls here)."""
    settings = Settings(database_url=make_database_url("postgres"), admin_token="t0ken")
    a, b = build_container(settings), build_container(settings)
    prepare(a)
    prepare(b)
    assert b.listener is not None
    b.listener.start()
    wait_until(b.listener.connected.is_set, "the listener to connect")
    yield a, b
    b.listener.stop()
    for c in (a, b):
        c.close()


def test_a_change_committed_through_one_process_rebuilds_the_others_snapshot(
    pair: tuple[Container, Container],
) -> None:
    a, b = pair
    seen: list[int] = []
    b.snapshots.watch(lambda snapshot: seen.append(snapshot.revision))
    a.flags.create_flag({"key": "pushed", "type": "boolean"}, "dana")
    a.flags.set_state("pushed", "production", {"enabled": True}, "dana")
    wait_until(lambda: b.snapshots.current.revision == a.snapshots.current.revision, "B to follow A")
    assert b.snapshots.current.flags["production"]["pushed"].state.enabled
    assert seen[-1] == a.revision()

    # Told a revision it already has (its own change, or an old notification), it does not rebuild.
    assert b.snapshots.changed(a.revision()) is False


def test_after_a_lost_connection_it_listens_again_and_catches_up(pair: tuple[Container, Container]) -> None:
    a, b = pair
    assert b.listener is not None and isinstance(b.store, SqlStore)
    dsn = b.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:  # the database drops the listening connection
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
    wait_until(lambda: not b.listener.connected.is_set(), "the listener to notice")  # type: ignore[union-attr]
    a.flags.create_flag({"key": "while-away", "type": "boolean"}, "dana")  # its notification is lost
    wait_until(b.listener.connected.is_set, "the listener to reconnect")
    wait_until(lambda: "while-away" in b.snapshots.current.flags["production"], "B to catch up")


def test_a_rolled_back_change_notifies_nothing(make_database_url: Callable[[str], str]) -> None:
    url = make_database_url("postgres")
    c = build_container(Settings(database_url=url, admin_token="t0ken"))
    prepare(c)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as listening:
        listening.execute("LISTEN rampup_config")
        with pytest.raises(RuntimeError), c.store.transaction() as tx:
            tx.audit.record("dana", "flag.update", "flag:x", None, None, None, "", c.clock())
            raise RuntimeError("the change fails after its audit entry")
        c.flags.create_flag({"key": "kept", "type": "boolean"}, "dana")
        payloads = [n.payload for n in listening.notifies(timeout=PATIENCE_S, stop_after=1)]
    assert payloads == [str(c.revision())], "only the committed change is announced, with its revision"
    c.close()

"""One store per backend — in memory, SQLite, PostgreSQL — for the contract every store keeps."""

from collections.abc import Callable, Iterator

import pytest

from rampup.adapters.storage import SqlStore, make_engine, migrate
from rampup.adapters.storage.memory import MemoryStore
from rampup.core.ports import Store

STORES = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, make_database_url: Callable[[str], str]) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = make_engine(make_database_url(request.param))
    migrate(engine)
    yield SqlStore(engine)
    engine.dispose()

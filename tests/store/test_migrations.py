"""Migrations landed from parallel branches must still form one line: two files taking the same number, or one
pointing at a revision that is gone, stop every server from starting. And a server on an empty database brings
it to the newest schema itself."""

import re
from collections.abc import Callable

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from rampup.adapters.storage.engine import MIGRATIONS, make_engine, newest_schema, schema_revision
from tests.support.servers import Server


def test_the_migrations_form_one_line_numbered_like_their_files() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)

    assert scripts.get_heads() == [max(s.revision for s in scripts.walk_revisions())]
    assert scripts.get_heads() == [newest_schema()]  # what a server compares with to skip loading Alembic
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    for script in scripts.walk_revisions():
        assert script.path is not None
        assert re.match(rf".*/{script.revision}_\w+\.py$", script.path), script.path


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_server_on_an_empty_database_migrates_it_to_the_newest_schema(
    backend: str, make_empty_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    # Other tests' databases are copied from one migrated per session; this one runs every migration on start.
    url = make_empty_database_url(backend)
    engine = make_engine(url)
    try:
        assert schema_revision(engine) is None
        server = server_factory(url)
        with server.client() as c:
            assert c.get("/readyz").json()["status"] == "ready"
        assert schema_revision(engine) == newest_schema()
    finally:
        engine.dispose()

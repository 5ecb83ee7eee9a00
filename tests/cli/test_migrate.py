"""rampup migrate: the schema brought to this version's before any instance starts, and nothing done twice."""

from pathlib import Path

from tests.cli.test_cli import ok, one_line_error, rampup
from tests.support.servers import start_server


def test_migrate_brings_an_empty_database_up_once_and_a_server_starts_on_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rampup.db'}"
    first = ok(rampup("migrate", "--db", url))
    assert first.startswith("Schema migrated from an empty database to ")
    head = first.split()[-1]
    assert ok(rampup("migrate", "--db", url)) == f"Schema already at {head}: nothing to do\n"
    server = start_server(url, tmp_path / "server.log")
    try:
        with server.client() as c:
            assert c.get("/readyz").json()["status"] == "ready"
    finally:
        server.stop()


def test_migrate_names_a_database_it_cannot_use() -> None:
    assert "mysql" in one_line_error(rampup("migrate", "--db", "mysql://db.internal/rampup"))

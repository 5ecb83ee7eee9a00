"""The manual clock: only on a server started with RAMPUP_MANUAL_CLOCK, only for an admin, only forward."""

from collections.abc import Callable
from datetime import datetime, timedelta

from tests.support.servers import Server


def test_a_server_on_the_system_clock_has_no_clock_to_move(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"))
    with server.client() as admin:
        assert admin.post("/api/v1/clock", json={"advance": "48h"}).status_code == 404
        assert admin.get("/api/v1/clock").status_code == 404


def test_only_an_admin_moves_a_manual_clock_and_only_forward(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    start = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    server = server_factory(make_database_url("sqlite"), manual_clock=start)
    with server.client() as admin:
        created = admin.post("/api/v1/tokens", json={"scope": "write", "name": "writer"})
        assert created.status_code == 201, created.text
        with server.client(created.json()["token"]) as writer:
            refused = writer.post("/api/v1/clock", json={"advance": "48h"})
            assert refused.status_code == 403, refused.text
        with server.client("not-a-token") as stranger:
            assert stranger.post("/api/v1/clock", json={"advance": "48h"}).status_code == 401
        assert server.now() == start, "a refused move moves nothing"

        moved = server.advance("90m")
        assert datetime.fromisoformat(moved["now"]) == start + timedelta(minutes=90)
        assert moved["manual"] is True and moved["leader"] is True
        for body, where in (
            ({"advance": "-5s"}, "advance"),
            ({"advance": "soon"}, "advance"),
            ({"to": "2029-12-31T23:00:00+00:00"}, "to"),
            ({"advance": "1s", "to": "2031-01-01T00:00:00+00:00"}, None),
        ):
            r = admin.post("/api/v1/clock", json=body)
            assert r.status_code == 422, (body, r.text)
            assert where is None or r.json()["error"]["where"] == where, r.json()
        assert server.now() == start + timedelta(minutes=90), "a refused move moves nothing"
        later = server.advance_to(start + timedelta(days=2))
        assert datetime.fromisoformat(later["now"]) == start + timedelta(days=2)
    assert "manual clock moved to" in server.output()

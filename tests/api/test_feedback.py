"""User feedback through the native API and raw Sentry envelopes, read back per variant (metrics, the
feedback list), refused when malformed, and purged per user — against a running server.

Ratings per variant and the list run on SQLite and PostgreSQL; the rest share one SQLite server per module,
each test on a flag of its own.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rampup.core.bucketing import in_rollout
from tests.cli.test_cli import ok, rampup
from tests.support.api import new_flag, new_token, variants_of
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S

PRODUCTION_ID = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("feedback")
    s = start_server(f"sqlite:///{tmp / 'rampup.db'}", tmp / "server.log")
    yield s
    s.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def send(server: Server, token: str, *events: dict[str, Any]) -> httpx.Response:
    with server.client(token) as c:
        return c.post("/api/v1/events", json={"events": list(events)})


def feedback_page(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/feedback", params={"environment": "production", **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def envelope(header: dict[str, Any], *items: tuple[str, dict[str, Any]]) -> bytes:
    lines = [json.dumps(header)]
    for kind, payload in items:
        lines += [json.dumps({"type": kind}), json.dumps(payload)]
    return ("\n".join(lines) + "\n").encode()


def post_envelope(server: Server, key: str, body: bytes) -> None:
    response = httpx.post(
        f"{server.url}/api/{PRODUCTION_ID}/envelope/",
        content=body,
        headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}"},
        timeout=PATIENCE_S,
    )
    assert response.status_code == 200, response.text


def test_ratings_and_comments_are_read_back_per_variant(
    database_url: str, server_factory: Callable[..., Server]
) -> None:
    server = server_factory(database_url)
    with server.client() as api:
        flag = new_flag(api, rollout=50)
        token = new_token(api)
        users = [f"user-{i}" for i in range(60)]
        treated = [u for u in users if in_rollout(flag, u, 50)]
        control = [u for u in users if not in_rollout(flag, u, 50)]
        events: list[dict[str, Any]] = []
        for u in treated:  # attributed from the targeting key alone: 2 of 5 stars
            events.append({"type": "feedback", "targeting_key": u, "rating": 2, "comment": f"meh from {u}"})
        for u in control:  # the flags the client saw, on another scale: 9 of 0–10
            events.append(
                {"type": "feedback", "targeting_key": u, "flags": {flag: False}, "rating": 9, "scale": "0-10"}
            )
        events.append({"type": "feedback", "targeting_key": treated[0], "rating": "up", "scale": "thumbs"})
        assert send(server, token, *events).json() == {"accepted": len(users) + 1}

        satisfaction = variants_of(api, "satisfaction", flag=flag)
        assert satisfaction["on"]["count"] == len(treated) + 1
        assert satisfaction["on"]["value"] == pytest.approx((2 * len(treated) + 5) / (len(treated) + 1))
        assert satisfaction["off"]["value"] == pytest.approx(1 + 4 * 0.9)
        assert satisfaction["off"]["lower"] <= satisfaction["off"]["value"] <= satisfaction["off"]["upper"]
        positive = variants_of(api, "satisfaction_positive", flag=flag)
        assert positive["on"]["positive"] == 1 and positive["off"]["positive"] == len(control)
        assert positive["off"]["value"] == 1.0
        assert variants_of(api, "feedback", flag=flag)["on"]["count"] == len(treated) + 1

        seen: list[dict[str, Any]] = []
        before = None
        while True:  # page through the treatment's feedback, five at a time
            page = feedback_page(
                api, flag=flag, variant="on", limit=5, **({"before": before} if before else {})
            )
            seen += page["feedback"]
            if page["next_before"] is None:
                break
            before = page["next_before"]
        assert len(seen) == len(treated) + 1 and len({e["id"] for e in seen}) == len(seen)
        assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
        assert {e["targeting_key"] for e in seen} == set(treated)
        assert all(e["variants"] == {flag: "on"} for e in seen)
        thumbs = seen[0]
        assert (thumbs["rating"], thumbs["scale"], thumbs["score"], thumbs["positive"]) == (
            1,
            "thumbs",
            5,
            True,
        )
        assert {e["comment"] for e in seen[1:]} == {f"meh from {u}" for u in treated}
        rated_off = feedback_page(api, flag=flag, variant="off", limit=1)["feedback"][0]
        assert (rated_off["rating"], rated_off["scale"], rated_off["comment"]) == (9, "0-10", None)


@pytest.mark.parametrize(
    ("event", "where", "message"),
    [
        ({"rating": 6}, "events[1].rating", "outside the scale 1-5"),
        ({"rating": 1, "scale": "5-1"}, "events[1].scale", "not a scale"),
        ({"rating": "lots"}, "events[1].rating", "not a number"),
        ({}, "events[1].rating", "needs a rating, a comment or both"),
        ({"comment": "x" * 5001}, "events[1].comment", "5000"),
    ],
)
def test_bad_feedback_is_refused_with_its_place_and_stores_nothing(
    server: Server, api: httpx.Client, event: dict[str, Any], where: str, message: str
) -> None:
    token = new_token(api)
    before = variants_of(api, "feedback")["all"]["count"]
    good = {"type": "feedback", "targeting_key": "u1", "rating": 5}
    response = send(server, token, good, {"type": "feedback", "targeting_key": "u2", **event})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["where"] == where and message in error["message"]
    assert variants_of(api, "feedback")["all"]["count"] == before


def test_a_user_s_feedback_is_purged_by_a_write_token_only_and_audited(
    server: Server, api: httpx.Client
) -> None:
    token = new_token(api)
    gone, kept = f"gone-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex[:6]}"
    send(
        server,
        token,
        {"type": "feedback", "targeting_key": gone, "rating": 1, "comment": "call me at gone@example.com"},
        {"type": "feedback", "targeting_key": gone, "comment": "still broken"},
        {"type": "feedback", "targeting_key": kept, "rating": 4, "comment": "fine"},
    )
    for scope in ("read", "ingest"):
        with server.client(new_token(api, scope, None if scope == "read" else "production")) as weak:
            refused = weak.delete("/api/v1/feedback", params={"user": gone})
        assert refused.status_code == 403, refused.text
    assert {gone, kept} <= {e["targeting_key"] for e in feedback_page(api)["feedback"]}

    with server.client(new_token(api, "write", None)) as writer:
        purged = writer.delete("/api/v1/feedback", params={"user": gone, "environment": "production"})
    assert purged.status_code == 200 and purged.json() == {"deleted": 2}
    remaining = {e["targeting_key"] for e in feedback_page(api)["feedback"]}
    assert kept in remaining and gone not in remaining
    audit = api.get("/api/v1/audit", params={"action": "feedback.purge", "target": f"user:{gone}"}).json()
    assert [(a["target"], a["after"]) for a in audit] == [(f"user:{gone}", {"deleted": 2})]


def test_sentry_feedback_is_attributed_through_its_user_flags_or_the_event_it_names(
    server: Server, api: httpx.Client
) -> None:
    flag = new_flag(api, rollout=50)
    key = new_token(api)
    on_user = next(f"u{i}" for i in range(100) if in_rollout(flag, f"u{i}", 50))
    error_id, other_error_id = uuid.uuid4().hex, uuid.uuid4().hex
    post_envelope(
        server,
        key,
        envelope(
            {"event_id": error_id},
            (
                "event",
                {"event_id": error_id, "user": {"id": on_user}, "exception": {"values": [{"type": "E"}]}},
            ),
        ),
    )
    post_envelope(
        server,
        key,
        envelope(
            {"event_id": other_error_id},
            ("event", {"event_id": other_error_id, "tags": {f"{flag}_enabled": "false"}, "message": "boom"}),
        ),
    )
    feedback_id = uuid.uuid4().hex
    widget = {  # what captureFeedback sends: the comment in contexts.feedback, the rating as a tag
        "event_id": feedback_id,
        "type": "feedback",
        "level": "info",
        "tags": {"rating": "1"},
        "contexts": {
            "feedback": {
                "message": "The new editor <b>lost</b> my draft",
                "contact_email": "ada@example.com",
                "name": "Ada",
                "associated_event_id": error_id,
            }
        },
    }
    post_envelope(server, key, envelope({"event_id": feedback_id}, ("feedback", widget)))
    legacy = {"event_id": other_error_id, "name": "Bob", "email": "bob@example.com", "comments": "crashed"}
    post_envelope(server, key, envelope({"event_id": other_error_id}, ("user_report", legacy)))
    thumbs = {
        "tags": {"rating": "down", "rating_scale": "thumbs"},
        "user": {"id": on_user},
        "contexts": {"feedback": {"message": "no"}},
    }
    post_envelope(server, key, envelope({}, ("feedback", thumbs)))

    on = feedback_page(api, flag=flag, variant="on")["feedback"]
    assert [(e["comment"], e["targeting_key"], e["score"], e["source"]) for e in on] == [
        ("no", on_user, 1.0, "sentry"),
        ("The new editor <b>lost</b> my draft", on_user, 1.0, "sentry"),
    ]
    off = feedback_page(api, flag=flag, variant="off")["feedback"]
    assert [(e["comment"], e["score"]) for e in off] == [("crashed", None)]
    assert "ada@example.com" not in json.dumps(on) and "Bob" not in json.dumps(off)
    assert variants_of(api, "satisfaction", flag=flag)["on"]["count"] == 2


def test_the_cli_lists_and_purges_feedback_as_plain_text(server: Server, api: httpx.Client) -> None:
    flag = new_flag(api, rollout=50)
    comment = "[bold red]x[/] <script>alert(1)</script>"
    send(
        server,
        new_token(api),
        {
            "type": "feedback",
            "targeting_key": "cli-user",
            "flags": {flag: True},
            "rating": 3,
            "comment": comment,
        },
    )
    listed = ok(
        rampup(
            "feedback", "list", "--env", "production", "--flag", flag, server=server, env={"COLUMNS": "250"}
        )
    )
    assert comment in listed and "cli-user" in listed and "3 (1-5)" in listed
    as_json = json.loads(
        ok(rampup("feedback", "list", "--env", "production", "--flag", flag, "--json", server=server))
    )
    assert [e["comment"] for e in as_json["feedback"]] == [comment]
    purged = ok(rampup("feedback", "purge", "--user", "cli-user", server=server))
    assert "deleted 1 feedback" in purged
    assert feedback_page(api, flag=flag)["feedback"] == []


@pytest.mark.parametrize(
    ("params", "status", "where"),
    [
        ({"variant": "on"}, 422, "variant"),
        ({"limit": 501}, 422, "limit"),
        ({"before": 0}, 422, "before"),
        ({"flag": "no-such-flag"}, 404, None),
        ({"environment": "nowhere"}, 404, None),
    ],
)
def test_bad_feedback_queries_say_what_is_wrong(
    api: httpx.Client, params: dict[str, Any], status: int, where: str | None
) -> None:
    response = api.get("/api/v1/feedback", params={"environment": "production", **params})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and (where is None or where in (error.get("where") or ""))


def test_an_ingest_token_sends_feedback_but_cannot_read_it_back(server: Server, api: httpx.Client) -> None:
    token = new_token(api)
    assert (
        send(server, token, {"type": "feedback", "targeting_key": "u", "comment": "private"}).status_code
        == 202
    )
    with server.client(token) as ingest:
        refused = ingest.get("/api/v1/feedback", params={"environment": "production"})
    assert refused.status_code == 403 and "private" not in refused.text

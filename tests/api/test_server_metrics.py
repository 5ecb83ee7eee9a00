"""GET /metrics: the server's own figures in the Prometheus text format, for a `read` token only, with labels
that never carry a secret or a path as sent."""

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from rampup.sdk import Client
from tests.support.servers import Server
from tests.support.tokens import new_token
from tests.support.waiting import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Server, token: str) -> tuple[str, Samples]:
    with server.client(token) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    return r.text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_an_operator_sees_evaluations_ingest_streams_and_the_leader(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"))
    reader, sdk = new_token(server, "read", "prometheus"), new_token(server, "sdk", "checkout")
    with server.client() as admin:
        for key in ("metered-a", "metered-b"):
            assert admin.post("/api/v1/flags", json={"key": key, "type": "boolean"}).status_code == 201
        flags_in_production = len(admin.get("/api/v1/flags").json())
        events = [
            {"type": "request", "targeting_key": f"u{i}", "ok": True, "duration_ms": 5} for i in range(25)
        ]
        assert admin.post("/api/v1/events?environment=production", json={"events": events}).status_code == 202
        assert admin.get("/api/v1/flags/no-such-flag-s3cr3t").status_code == 404
        assert admin.request("PROPFIND", "/api/v1/flags").status_code == 405
    with server.client(sdk) as app:
        assert (
            app.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u1"}}).status_code == 200
        )
        assert (
            app.post(
                "/ofrep/v1/evaluate/flags/metered-a", json={"context": {"targetingKey": "u1"}}
            ).status_code
            == 200
        )

    with Client(server.url, sdk) as streaming:
        assert streaming.ready
        wait_until(
            lambda: value(scrape(server, reader)[1], "rampup_stream_clients", stream="sdk") == 1,
            "the stream counted",
        )
        text, samples = scrape(server, reader)

    assert value(samples, "rampup_evaluations_total", environment="production") == flags_in_production + 1
    assert value(samples, "rampup_ingested_events_total", environment="production", source="native") == 25
    with server.client() as admin:
        revision = admin.get("/readyz").json()["revision"]
    assert value(samples, "rampup_snapshot_revision") == revision
    assert value(samples, "rampup_leader") == 1
    assert value(samples, "rampup_outbox_backlog") == 0
    assert value(samples, "rampup_job_duration_seconds_count", job="control") >= 1  # type: ignore[operator]
    info = [labels for (name, labels), v in samples.items() if name == "rampup_process_info" and v == 1]
    assert len(info) == 1 and ("role", "serve+worker") in info[0]
    timed = {
        dict(labels)["route"]
        for (name, labels) in samples
        if name == "rampup_http_request_duration_seconds_count"
    }
    assert {"/api/v1/flags/{key}", "/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/{key}"} <= timed
    methods = {
        dict(labels)["method"]
        for (name, labels) in samples
        if name == "rampup_http_request_duration_seconds_count"
    }
    assert "PROPFIND" not in methods and "other" in methods

    # Nothing a caller sent or holds ends up in the figures.
    for secret in (server.admin_token, sdk, reader, "no-such-flag-s3cr3t"):
        assert secret not in text


def test_only_a_read_token_scrapes(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"))
    with server.client("not-a-token") as stranger:
        assert stranger.get("/metrics").status_code == 401
    with server.client(new_token(server, "sdk", "app")) as app:
        assert app.get("/metrics").status_code == 403
    with server.client(new_token(server, "read", "prometheus")) as reader:
        assert reader.get("/metrics").status_code == 200

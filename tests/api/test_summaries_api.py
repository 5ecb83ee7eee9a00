"""POST /api/v1/summaries over HTTP: an ingest token stores a summary as the events it stands for; anyone else, or
a malformed summary, or one dated more than a day ahead, changes nothing."""

import json
import time

from rampup.adapters.codecs.native import decode_batch
from rampup.adapters.codecs.summaries import encode_summary
from rampup.core.rollups import fold_seconds
from tests.support.servers import Server
from tests.support.tokens import new_token


def error_rate(server: Server) -> tuple[int, int]:
    with server.client() as c:
        r = c.get(
            "/api/v1/metrics", params={"metric": "error_rate", "environment": "production", "window": "1h"}
        )
    assert r.status_code == 200, r.text
    everyone = r.json()["variants"]["all"]
    return everyone["count"], everyone.get("failures", 0)


def test_an_ingest_token_sends_a_summary_and_the_metrics_count_its_events(sqlite_server: Server) -> None:
    server = sqlite_server
    events = [
        {"type": "request", "targeting_key": f"u{i}", "ok": i % 4 != 0, "duration_ms": 20} for i in range(40)
    ]
    observations = decode_batch(json.dumps({"events": events}).encode(), int(time.time() * 1000))
    body = encode_summary(*fold_seconds(observations, {}))
    ingest, sdk = new_token(server, "ingest", "service"), new_token(server, "sdk", "app")
    before = error_rate(server)
    with server.client(sdk) as app:
        assert app.post("/api/v1/summaries", content=body).status_code == 403
    with server.client("not-a-token") as stranger:
        assert stranger.post("/api/v1/summaries", content=body).status_code == 401
    with server.client(ingest) as sender:
        bad = sender.post("/api/v1/summaries", content=body.replace(b'"failures":10', b'"failures":99', 1))
        assert bad.status_code == 422 and bad.json()["error"]["where"] == "seconds[0].failures", bad.text
        assert sender.post("/api/v1/summaries", content=b"{not json").status_code == 400
        # Raw events may be a day ahead at most; so may a summary's seconds and unit days.
        later = json.loads(body)
        later["seconds"][0]["second"] += 2 * 86400
        day = later["seconds"][1]["second"] // 86400 + 2
        unit = {"flag": "workstation", "variant": "on", "day": day, "unit": "u1", "events": 1}
        octaves = {**unit, "day": day - 2, "metric": "api_latency", "octaves": {"4": 1}}
        del octaves["events"]
        for summary, where in (
            (later, "seconds[0].second"),
            ({"seconds": [], "units": [unit]}, "units[0].day"),
            ({"seconds": [], "latencies": [octaves]}, "version"),  # users' latencies came with version 2
            ({"seconds": [], "version": 2, "latencies": [{**octaves, "day": day}]}, "latencies[0].day"),
            ({"seconds": [], "version": 2, "latencies": [{**octaves, "flag": "gone"}]}, "latencies[0].flag"),
            (
                {"seconds": [], "version": 2, "latencies": [{**octaves, "metric": "nah"}]},
                "latencies[0].metric",
            ),
            ({"seconds": [], "id": "not/an id"}, "id"),
            ({"seconds": [], "id": "x" * 65}, "id"),
        ):
            far = sender.post("/api/v1/summaries", content=json.dumps(summary))
            assert far.status_code == 422 and far.json()["error"]["where"] == where, far.text
        assert error_rate(server) == before, "refused summaries store nothing"
        ok = sender.post("/api/v1/summaries", content=body)
        named = encode_summary(*fold_seconds(observations, {}), "c0ffee-1")
        first, again = (sender.post("/api/v1/summaries", content=named) for _ in range(2))
    assert ok.status_code == 202 and ok.json() == {"accepted": 40}, ok.text
    # The same id again (a retry after a lost answer): answered alike, stored once.
    assert first.json() == again.json() == {"accepted": 40} and again.status_code == 202, again.text
    assert error_rate(server) == (before[0] + 80, before[1] + 20)

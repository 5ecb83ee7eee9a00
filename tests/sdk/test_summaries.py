"""The SDK's summaries: one per flush interval in place of its requests, errors and exposures, giving the server's
metric answers exactly as the events would; a summary endpoint that refuses never blocks the application, and
what is dropped past the bound is counted — checked against the server."""

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rampup.adapters.codecs.sdk_config import decode_config
from rampup.core.bucketing import in_rollout
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState, compile_flags
from rampup.sdk import Client
from rampup.sdk.summaries import Attribution, Chunk, Request, _event_of
from rampup.sdk.tracking import Tracker
from tests.sdk.conftest import FaultProxy, Rampup, Refusal, tokens
from tests.support.waiting import PATIENCE_S, wait_until

METRICS = ("error_rate", "api_latency_p50", "api_latency_p95", "errors", "unhandled_exceptions", "exposures")


def traffic(key: str, n: int, now: float, seed: int = 15) -> list[tuple[dict[str, Any], float]]:
    """What a service's middleware and client record: requests with the flag they evaluated (or only their
    user, for the server to attribute), unhandled errors, exposures; durations in whole ms, so sums are exact
    in any order."""
    rng = random.Random(seed)
    recorded: list[tuple[dict[str, Any], float]] = []
    for _ in range(n):
        user = f"user-{rng.randrange(300)}"
        on = in_rollout(key, user, 50)
        at = now + rng.uniform(
            0, 2
        )  # after `now`: the flag's state in force then is the one the client holds
        ok = rng.random() > (0.08 if on else 0.02)
        request: dict[str, Any] = {
            "type": "request",
            "targeting_key": user,
            "ok": ok,
            "status": 200 if ok else 503,
        }
        request["duration_ms"] = float(rng.randrange(20, 400 if on else 250))
        if rng.random() < 0.8:  # the rest carry no flags: the server recomputes the variant from the user
            request["flags"] = {key: on}
        request["tags"] = {"method": "GET", "route": "/checkout"}
        recorded.append((request, at))
        if not ok and rng.random() < 0.5:
            error = {"type": "error", "unhandled": True, "message": "boom", "targeting_key": user}
            recorded.append(({**error, "flags": {key: on}}, at))
        if rng.random() < 0.1:
            exposure = {
                "type": "exposure",
                "targeting_key": user,
                "flag": key,
                "variant": "on" if on else "off",
            }
            recorded.append((exposure, at))
    recorded.append(
        ({"type": "request", "ok": True, "duration_ms": 5.0}, now)
    )  # nobody's: environment-wide only
    return recorded


@pytest.fixture
def environments(rampup: Rampup) -> Iterator[Callable[[], tuple[str, str, str]]]:
    """New environments, each with its sdk and ingest tokens."""

    def make() -> tuple[str, str, str]:
        name = f"env-{uuid.uuid4().hex[:8]}"
        with rampup.api() as api:
            made = api.post("/api/v1/environments", json={"key": name, "name": name})
        assert made.status_code == 201, made.text
        return (name, *tokens(rampup.server, name))

    yield make


def flags_of(rampup: Rampup, sdk_token: str) -> dict[str, CompiledFlag]:
    """The configuration an SDK of that environment evaluates with."""
    with httpx.Client(
        base_url=rampup.server.url, headers={"Authorization": f"Bearer {sdk_token}"}, timeout=PATIENCE_S
    ) as sdk:
        return decode_config(sdk.get("/api/v1/sdk/flags").content)[2]


def tracker(rampup: Rampup, ingest_token: str, **options: Any) -> Tracker:
    http = httpx.Client(
        base_url=rampup.server.url, headers={"Authorization": f"Bearer {ingest_token}"}, timeout=PATIENCE_S
    )
    return Tracker(http, "/api/v1/events", flush_interval=60, **options)


def answers(rampup: Rampup, environment: str, key: str, end: str) -> list[Any]:
    found = []
    with rampup.api() as api:
        for metric in METRICS:
            for flag in (key, None):
                params = {"metric": metric, "environment": environment, "window": "1h", "end": end}
                r = api.get("/api/v1/metrics", params={**params, **({"flag": flag} if flag else {})})
                assert r.status_code == 200, r.text
                found.append({k: v for k, v in r.json().items() if k != "environment"})
    return found


def test_summaries_give_the_metric_answers_of_the_events_they_stand_for(
    rampup: Rampup, environments: Callable[[], tuple[str, str, str]]
) -> None:
    key = rampup.new_flag()
    (raw_env, _, raw_ingest), (summary_env, summary_sdk, summary_ingest) = environments(), environments()
    with rampup.api() as api:
        for env in (raw_env, summary_env):
            on = api.put(f"/api/v1/flags/{key}/environments/{env}", json={"enabled": True, "rollout": 50})
            assert on.status_code == 200, on.text
    flags = flags_of(rampup, summary_sdk)
    now = time.time()
    recorded = traffic(key, 3000, now)
    events = tracker(rampup, raw_ingest, mode="events")
    summaries = tracker(rampup, summary_ingest, flags=lambda: flags)
    try:
        for event, at in recorded:
            events.add(event, at)
            summaries.add(event, at)
        assert events.flush(PATIENCE_S) and summaries.flush(PATIENCE_S)
        assert events.stats().sent == summaries.stats().sent == len(recorded)
    finally:
        events.close(1)
        summaries.close(1)

    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60))
    expected = answers(rampup, raw_env, key, end)
    assert answers(rampup, summary_env, key, end) == expected
    error_rate = expected[0]["variants"]
    assert error_rate["on"]["failures"] > 0 and error_rate["off"]["count"] > 0, error_rate


def test_a_summary_endpoint_that_refuses_for_a_while(
    rampup: Rampup, proxy_to: Callable[[str], FaultProxy]
) -> None:
    """Nothing blocks while it refuses; what waits is bounded (the oldest summaries dropped and counted), and
    afterwards the server holds exactly what was recorded minus what the client says it dropped."""
    proxy = proxy_to(rampup.server.url)
    proxy.refuse["/api/v1/summaries"] = Refusal(503)
    proxy.hold["/api/v1/summaries"] = release = threading.Event()
    key = rampup.new_flag(enabled=True, rollout=50)
    with Client(
        proxy.url,
        rampup.sdk_token,
        ingest_token=rampup.ingest_token,
        batch_size=100,
        flush_interval=0.05,
        summary_capacity=60,  # a few dozen users' worth: 2,000 new users cannot all wait
    ) as client:
        rampup.caught_up(client)
        for i in range(2000):
            if i == 1:  # the first half while a send hangs in the network
                wait_until(lambda: proxy.holding.get("/api/v1/summaries"), "the first send to hang")
            if i == 1000:  # the second half while the sender is being refused and backing off
                assert proxy.holding["/api/v1/summaries"] == 1, "an evaluation waited for the network"
                release.set()
                wait_until(lambda: len(proxy.hits.get("/api/v1/summaries", [])) >= 2, "two refused sends")
            client.is_enabled(key, f"user-{i}")  # a new user each time: an exposure, folded
        assert set(proxy.hits["/api/v1/summaries"]) == {503}
        del proxy.refuse["/api/v1/summaries"]
        assert client.flush(PATIENCE_S)
        stats = client.stats().events
    assert stats is not None
    assert stats.dropped > 0 and stats.sent + stats.dropped == 2000 and stats.rejected == 0, stats
    stored = rampup.metric("exposures", key)["variants"]
    assert stored["on"]["count"] + stored["off"]["count"] == stats.sent


def test_a_summary_sent_again_after_its_answer_was_lost_is_counted_once(
    rampup: Rampup, proxy_to: Callable[[str], FaultProxy]
) -> None:
    proxy = proxy_to(rampup.server.url)
    proxy.lose["/api/v1/summaries"] = 1  # the server stores the first summary; its answer never arrives
    key = rampup.new_flag(enabled=True, rollout=50)
    with Client(proxy.url, rampup.sdk_token, ingest_token=rampup.ingest_token, flush_interval=0.05) as client:
        rampup.caught_up(client)
        for i in range(200):
            client.is_enabled(key, f"user-{i}")  # a new user each time: an exposure, folded
        assert client.flush(PATIENCE_S)
        stats = client.stats().events
    assert stats is not None and (stats.sent, stats.dropped, stats.rejected) == (200, 0, 0), stats
    assert stats.retries >= 1 and proxy.lose["/api/v1/summaries"] == 0
    stored = rampup.metric("exposures", key)["variants"]
    assert stored["on"]["count"] + stored["off"]["count"] == 200


def test_what_the_server_would_refuse_is_left_out_and_counted() -> None:
    """An event the server would refuse is left out of the summary (counted as rejected); a cell the server
    refuses (a flag deleted meanwhile) is left out and the rest sent again at once; any other refusal is final."""
    bodies: list[dict[str, Any]] = []
    answers = [
        httpx.Response(
            422, json={"error": {"code": "invalid", "message": "no flag", "where": "seconds[0].flag"}}
        ),
        httpx.Response(202, json={}),
        httpx.Response(403, json={"error": {"code": "forbidden", "message": "wrong token"}}),
    ]

    def endpoint(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return answers.pop(0)

    http = httpx.Client(
        base_url="http://rampup.test", transport=httpx.MockTransport(endpoint), timeout=PATIENCE_S
    )
    tracker = Tracker(http, "/api/v1/events", flush_interval=60)
    try:
        tracker.add({"type": "request", "duration_ms": 5.0})
        tracker.add({"type": "request", "duration_ms": "slow"})
        tracker.add({"type": "request", "targeting_key": "nul\x00"})  # no database stores it
        assert tracker.flush(PATIENCE_S)
        tracker.add({"type": "error", "unhandled": True})
        assert tracker.flush(PATIENCE_S)
        stats = tracker.stats()
    finally:
        tracker.close(1)
    assert (stats.sent, stats.rejected, stats.dropped, stats.buffered) == (1, 3, 0, 0), stats
    assert stats.last_error == "HTTP 403: wrong token"
    first, again, refused = bodies
    assert again["seconds"] == first["seconds"][1:] and len(first["seconds"]) == 2
    assert {cell["metric"] for cell in refused["seconds"]} == {"errors", "unhandled_exceptions"}


def test_a_mode_that_does_not_exist_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="summaries, events"):
        Client("http://127.0.0.1:9", "token", ingest_token="ingest", telemetry="sampled", start_timeout=0)


def test_a_request_recorded_as_a_tuple_folds_as_its_event_would() -> None:
    """The middleware's requests skip the event and the server's decoding, but fold into the same cells, and
    what the server would refuse (a NUL in a user or a tag, a flag value no database stores) is refused alike."""
    flags = compile_flags(
        [(FlagDefinition("checkout"), FlagState(enabled=True, rollout_bp=5000, salt="checkout"))]
    )
    now = time.time_ns() // 1_000_000
    rng = random.Random(3)
    requests: list[Request] = [
        (
            now + rng.randrange(2000),
            f"user-{rng.randrange(40)}" if rng.random() < 0.9 else None,
            {"checkout": rng.random() < 0.5} if rng.random() < 0.8 else {},
            float(rng.randrange(1, 300)),
            rng.random() > 0.1,
            {"method": "GET", "route": "/checkout"},
        )
        for _ in range(500)
    ]
    requests += [
        (now, "nul\x00", {}, 1.0, True, {"method": "GET"}),
        (now, "u", {}, 1.0, True, {"method": "G\x00T"}),
        (now, "u", {"other": float("nan")}, 1.0, True, {"method": "GET"}),
    ]
    as_tuples, as_events = Chunk("tuples"), Chunk("events")
    refused = as_tuples.fold(requests, Attribution(), flags)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    events = [
        (0.0, {**event, "timestamp": (epoch + timedelta(milliseconds=at_ms)).isoformat()})
        for at_ms, event in map(_event_of, requests)
    ]
    refused_events = as_events.fold(events, Attribution(), flags)
    assert (as_tuples.seconds, as_tuples.units, as_tuples.events) == (
        as_events.seconds,
        as_events.units,
        as_events.events,
    )
    assert [exc.message for _, exc in refused] == [exc.message for _, exc in refused_events]
    assert len(refused) == 3 and as_tuples.events == 500 and len(as_tuples.units) > 40

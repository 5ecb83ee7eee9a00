"""Telemetry from the SDK: events reach the server and count per variant; a telemetry endpoint that refuses
never blocks the application, and whatever is dropped is counted — exactly, checked against the server."""

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rampup.sdk import Client
from rampup.sdk.tracking import Tracker
from tests.sdk.conftest import FaultProxy, Rampup, Refusal
from tests.support.waiting import PATIENCE_S, wait_until


class Endpoint:
    """A scripted telemetry endpoint (httpx.MockTransport): answers from `script`, then 202."""

    def __init__(self, *script: httpx.Response) -> None:
        self.script = list(script)
        self.received: list[tuple[float, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.received.append((time.monotonic(), json.loads(request.content)["events"]))
            return self.script.pop(0) if self.script else httpx.Response(202, json={"accepted": 1})


@pytest.fixture
def tracker_for() -> Iterator[Callable[..., Tracker]]:
    trackers: list[Tracker] = []

    def make(endpoint: Callable[[httpx.Request], httpx.Response], **options: Any) -> Tracker:
        """A tracker sending every event as it is (summaries: tests/sdk/test_summaries.py)."""
        http = httpx.Client(
            base_url="http://rampup.test", transport=httpx.MockTransport(endpoint), timeout=PATIENCE_S
        )
        trackers.append(Tracker(http, "/api/v1/events", **{"mode": "events", **options}))
        return trackers[-1]

    yield make
    for tracker in trackers:
        tracker.close(1.0)


def custom(i: int) -> dict[str, Any]:
    return {"type": "custom", "name": "n", "value": float(i)}


# ------------------------------------------------------------------------------ the buffer and the sender


def test_a_full_buffer_drops_the_oldest_counts_them_and_never_blocks(
    tracker_for: Callable[..., Tracker],
) -> None:
    refusing = threading.Event()
    refusing.set()
    seen: list[list[dict[str, Any]]] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        if refusing.is_set():
            return httpx.Response(503)
        seen.append(json.loads(request.content)["events"])
        return httpx.Response(202, json={})

    tracker = tracker_for(endpoint, capacity=100, batch_size=20, flush_interval=0.05)
    slowest = 0.0
    for i in range(250):
        started = time.perf_counter()
        tracker.add(custom(i))
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.001)
    assert slowest < 0.25, (
        "adding an event never waits for the network (seconds); 0.25 s allows a busy CI box"
    )
    assert tracker.stats().dropped == 150 and tracker.stats().retries >= 1

    refusing.clear()
    assert tracker.flush(10)
    delivered = [e["value"] for batch in seen for e in batch]
    assert sorted(delivered) == [float(i) for i in range(150, 250)], "the newest 100 survive, each once"
    stats = tracker.stats()
    assert (stats.sent, stats.dropped, stats.buffered) == (100, 150, 0)


def test_retry_after_is_honoured(tracker_for: Callable[..., Tracker]) -> None:
    endpoint = Endpoint(httpx.Response(429, headers={"Retry-After": "1"}))
    tracker = tracker_for(endpoint, flush_interval=0.05)
    tracker.add(custom(1))
    wait_until(lambda: len(endpoint.received) == 2, "len(endpoint.received) == 2")
    (first, batch1), (second, batch2) = endpoint.received
    assert second - first >= 0.95
    assert batch1 == batch2, "the same events, sent again"
    assert tracker.stats().sent == 1


def test_failures_back_off_exponentially(tracker_for: Callable[..., Tracker]) -> None:
    endpoint = Endpoint(*[httpx.Response(503)] * 3)
    tracker = tracker_for(endpoint, flush_interval=0.05)
    tracker.add(custom(1))
    wait_until(lambda: len(endpoint.received) == 4, "len(endpoint.received) == 4")
    times = [at for at, _ in endpoint.received]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 0.5, 1, 2 s, each with up to 25% jitter taken off; a busy machine may only make a gap longer
    for gap, nominal in zip(gaps, [0.5, 1, 2], strict=True):
        assert 0.7 * nominal <= gap, gaps
    assert tracker.stats().sent == 1 and tracker.stats().retries == 3


def test_errors_that_retrying_cannot_fix_are_counted_as_rejected(tracker_for: Callable[..., Tracker]) -> None:
    endpoint = Endpoint(httpx.Response(403, json={"error": {"code": "forbidden", "message": "wrong token"}}))
    tracker = tracker_for(endpoint, flush_interval=0.05)
    for i in range(3):
        tracker.add(custom(i))
    assert tracker.flush(5)
    stats = tracker.stats()
    assert (stats.sent, stats.rejected, stats.retries) == (0, 3, 0)
    assert stats.last_error == "HTTP 403: wrong token"


def test_a_batch_too_large_is_sent_again_in_halves(tracker_for: Callable[..., Tracker]) -> None:
    endpoint = Endpoint(httpx.Response(413, json={"error": {"code": "too_large", "message": "too large"}}))
    tracker = tracker_for(endpoint, batch_size=10, flush_interval=0.05)
    for i in range(10):
        tracker.add(custom(i))
    assert tracker.flush(5)
    sizes = [len(batch) for _, batch in endpoint.received]
    assert sizes == [10, 5, 5]
    assert sorted(e["value"] for _, batch in endpoint.received[1:] for e in batch) == [
        float(i) for i in range(10)
    ]
    assert (tracker.stats().sent, tracker.stats().rejected) == (10, 0)


def test_exposures_once_per_user_flag_and_variant_per_interval(tracker_for: Callable[..., Tracker]) -> None:
    endpoint = Endpoint()
    tracker = tracker_for(endpoint, flush_interval=0.05, exposure_interval=0.5)
    for _ in range(50):
        tracker.expose("checkout", "user-1", "on")
        tracker.expose("checkout", "user-2", "on")
    tracker.expose("checkout", "user-1", "off")  # the variant changed (a kill switch): a new exposure
    tracker.expose("search", "user-1", "on")
    assert tracker.flush(5)
    first = [(e["flag"], e["targeting_key"], e["variant"]) for _, b in endpoint.received for e in b]
    assert sorted(first) == [
        ("checkout", "user-1", "off"),
        ("checkout", "user-1", "on"),
        ("checkout", "user-2", "on"),
        ("search", "user-1", "on"),
    ]
    time.sleep(0.6)
    tracker.flush(1)  # lets the sender start the next interval
    tracker.expose("checkout", "user-1", "on")
    assert tracker.flush(5)
    assert sum(len(b) for _, b in endpoint.received) == 5, "the next interval counts the user again"


# ------------------------------------------------------------------------------ against the server


def test_one_invalid_event_does_not_sink_its_batch(rampup: Rampup) -> None:
    name = f"evt-{uuid.uuid4().hex[:8]}"
    http = httpx.Client(
        base_url=rampup.server.url,
        headers={"Authorization": f"Bearer {rampup.ingest_token}"},
        timeout=PATIENCE_S,
    )
    tracker = Tracker(http, "/api/v1/events", flush_interval=0.05)
    try:
        for i in range(10):
            tracker.add({"type": "custom", "name": name, "value": float(i)})
            if i == 4:
                tracker.add({"type": "custom", "name": name, "value": "not a number"})
        assert tracker.flush(5)
        stats = tracker.stats()
        assert (stats.sent, stats.rejected) == (10, 1)
        assert stats.last_error is not None and "events[5].value" in stats.last_error
    finally:
        tracker.close(1)
    assert rampup.metric(f"event:{name}")["variants"]["all"]["count"] == 10


def test_exposures_and_custom_events_count_per_variant(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    name = f"evt-{uuid.uuid4().hex[:8]}"
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as client:
        seen = {}
        for i in range(300):
            user = f"user-{i}"
            for _ in range(3):
                seen[user] = client.is_enabled(key, user)
            if i % 2 == 0:
                client.track(name, user, value=1, engagement=True)
        assert client.flush(10)
    on = sum(seen.values())
    exposures = rampup.metric("exposures", key)["variants"]
    assert (exposures["on"]["count"], exposures["off"]["count"]) == (on, 300 - on), "one exposure per user"
    per_variant = rampup.metric(f"event:{name}", key)["variants"]
    assert per_variant["on"]["count"] == sum(1 for u, v in seen.items() if v and int(u[5:]) % 2 == 0)
    assert per_variant["on"]["count"] + per_variant["off"]["count"] == 150


def test_a_telemetry_endpoint_that_refuses_for_a_while(
    rampup: Rampup, proxy_to: Callable[[str], FaultProxy]
) -> None:
    """Nothing blocks while it refuses; afterwards the server holds exactly what was tracked minus what
    the client says it dropped."""
    proxy = proxy_to(rampup.server.url)
    proxy.refuse["/api/v1/events"] = Refusal(503)
    key = rampup.new_flag(enabled=True, rollout=50)
    name = f"evt-{uuid.uuid4().hex[:8]}"
    with Client(
        proxy.url,
        rampup.sdk_token,
        ingest_token=rampup.ingest_token,
        exposures=False,
        buffer_size=500,
        batch_size=100,
        flush_interval=0.05,
    ) as client:
        slowest = 0.0
        for i in range(2000):
            started = time.perf_counter()
            client.is_enabled(key, f"user-{i}")
            client.track(name, f"user-{i}")
            slowest = max(slowest, time.perf_counter() - started)
            if i == 999:  # the second half while the sender is being refused and backing off
                wait_until(
                    lambda: len(proxy.hits.get("/api/v1/events", [])) >= 2,
                    "len(proxy.hits.get('/api/v1/events', [])) >= 2",
                )
        # Blocking would mean waiting on the network (seconds); a busy 2-core CI box can stall a call for tens of ms.
        assert slowest < 0.25, (
            f"an evaluation and a track took {slowest * 1000:.1f} ms while the endpoint refused"
        )
        assert set(proxy.hits["/api/v1/events"]) == {503}
        del proxy.refuse["/api/v1/events"]
        assert client.flush(15)
        stats = client.stats().events
    assert stats is not None
    assert stats.dropped >= 1500 and stats.sent + stats.dropped == 2000 and stats.rejected == 0
    assert rampup.metric(f"event:{name}")["variants"]["all"]["count"] == stats.sent


def test_close_sends_what_is_buffered(rampup: Rampup) -> None:
    name = f"evt-{uuid.uuid4().hex[:8]}"
    with Client(
        rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token, flush_interval=60
    ) as client:
        for i in range(25):
            client.track(name, f"user-{i}")
        client.track_error(ValueError("boom"), "user-1", unhandled=True)
    assert rampup.metric(f"event:{name}")["variants"]["all"]["count"] == 25
    events = client.stats().events
    assert events is not None and events.sent == 26


def test_track_never_raises_and_counts_what_it_discards(rampup: Rampup) -> None:
    with Client(rampup.server.url, rampup.sdk_token) as no_telemetry:
        no_telemetry.track("clicked", "user-1")
        assert no_telemetry.stats().errors == {"EVENT_DISCARDED": 1}
        assert no_telemetry.stats().events is None
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as client:
        client.track("", "user-1")
        client.track("x" * 201, "user-1")
        client.track("ok", "user-1", value=float("nan"))
        client.track("ok", "user-1", value="3")  # type: ignore[arg-type]
        client.track(None, "user-1")  # type: ignore[arg-type]
        client.track("ok", 42, tags={"good": "yes", "bad": object(), "": "x"})  # type: ignore[arg-type, dict-item]
        assert client.flush(5)
        assert client.stats().errors == {"EVENT_DISCARDED": 5}
        events = client.stats().events
        assert events is not None and (events.sent, events.rejected) == (1, 0)


def test_feedback_is_attributed_to_what_each_user_saw(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as client:
        seen = {f"user-{i}": client.is_enabled(key, f"user-{i}") for i in range(80)}
        for user, treated in seen.items():
            if treated:
                client.feedback("down", user, scale="thumbs", comment="I miss the old page")
            else:
                client.feedback(9, user, scale="0-10")
        client.feedback(6, "user-1")  # off the 1–5 scale
        client.feedback(None, "user-1")  # neither a rating nor a comment
        client.feedback(3, "user-1", scale="stars")
        assert client.flush(10)
        assert client.stats().errors == {"EVENT_DISCARDED": 3}
    on = sum(seen.values())
    satisfaction = rampup.metric("satisfaction", key)["variants"]
    assert (satisfaction["on"]["count"], satisfaction["off"]["count"]) == (on, 80 - on)
    assert satisfaction["on"]["value"] == 1.0 and satisfaction["off"]["value"] == pytest.approx(4.6)
    with rampup.api() as api:
        page = api.get(
            "/api/v1/feedback",
            params={"environment": "production", "flag": key, "variant": "on", "limit": 500},
        ).json()
    assert {e["targeting_key"] for e in page["feedback"]} == {u for u, v in seen.items() if v}
    assert {e["comment"] for e in page["feedback"]} == {"I miss the old page"}

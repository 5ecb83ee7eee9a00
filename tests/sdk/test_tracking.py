"""Telemetry from the SDK: events reach the server and count per variant; a telemetry endpoint that refuses
never blocks the application, and whatever is dropped is counted — exactly, checked against the server."""

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rampup.sdk import Client
from rampup.sdk.tracking import Tracker
from tests.sdk.conftest import FaultProxy, Rampup, Refusal
from tests.support.clock import ManualClock
from tests.support.waiting import PATIENCE_S, wait_until


class Endpoint:
    """A scripted telemetry endpoint (httpx.MockTransport): answers from `script`, then 202; `received` holds
    each request's events and when it came, on `clock` (the tracker's)."""

    def __init__(self, clock: ManualClock, *script: httpx.Response) -> None:
        self.clock = clock
        self.script = list(script)
        self.received: list[tuple[float, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.received.append((self.clock.monotonic(), json.loads(request.content)["events"]))
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
    held, release, gave_up = threading.Event(), threading.Event(), threading.Event()
    seen: list[list[dict[str, Any]]] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        if (
            not held.is_set()
        ):  # the first send hangs in the network until the test lets it go, then is refused
            held.set()
            if not release.wait(PATIENCE_S):
                gave_up.set()
            return httpx.Response(503)
        seen.append(json.loads(request.content)["events"])
        return httpx.Response(202, json={})

    tracker = tracker_for(endpoint, capacity=100, batch_size=20, flush_interval=0.05)
    tracker.add(custom(0))
    wait_until(held.is_set, "the first send to hang")
    for i in range(1, 250):
        tracker.add(custom(i))
    assert not gave_up.is_set(), "adding an event waited for the send hanging in the network"
    release.set()
    wait_until(lambda: tracker.stats().dropped == 150, "the refused send back in line, the oldest dropped")

    assert tracker.flush(PATIENCE_S)
    delivered = [e["value"] for batch in seen for e in batch]
    assert sorted(delivered) == [float(i) for i in range(150, 250)], "the newest 100 survive, each once"
    stats = tracker.stats()
    assert (stats.sent, stats.dropped, stats.buffered) == (100, 150, 0) and stats.retries >= 1


def test_retry_after_is_honoured(tracker_for: Callable[..., Tracker]) -> None:
    clock = ManualClock()
    endpoint = Endpoint(clock, httpx.Response(429, headers={"Retry-After": "1"}))
    tracker = tracker_for(endpoint, flush_interval=0.25, clock=clock)
    tracker.add(custom(1))
    clock.advance_until(lambda: len(endpoint.received) == 2, "sent twice", step=0.25, limit=60)
    (first, batch1), (second, batch2) = endpoint.received
    assert second - first == 1.0, (
        "sent again as soon as Retry-After allows, not before (backoff alone: 0.5 s)"
    )
    assert batch1 == batch2, "the same events, sent again"
    assert tracker.stats().sent == 1


def test_failures_back_off_exponentially(tracker_for: Callable[..., Tracker]) -> None:
    clock = ManualClock()
    endpoint = Endpoint(clock, *[httpx.Response(503)] * 3)
    tracker = tracker_for(endpoint, flush_interval=0.25, clock=clock)
    tracker.add(custom(1))
    clock.advance_until(lambda: len(endpoint.received) == 4, "sent four times", step=0.125, limit=60)
    times = [at for at, _ in endpoint.received]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 0.5, 1, 2 s, each with up to 25% jitter taken off, and sent at the first step of the clock after it
    for gap, nominal in zip(gaps, [0.5, 1, 2], strict=True):
        assert 0.75 * nominal <= gap <= nominal, gaps
    assert tracker.stats().sent == 1 and tracker.stats().retries == 3


def test_errors_that_retrying_cannot_fix_are_counted_as_rejected(tracker_for: Callable[..., Tracker]) -> None:
    clock = ManualClock()
    endpoint = Endpoint(
        clock, httpx.Response(403, json={"error": {"code": "forbidden", "message": "wrong token"}})
    )
    tracker = tracker_for(endpoint, clock=clock)
    for i in range(3):
        tracker.add(custom(i))
    assert tracker.flush(PATIENCE_S)
    stats = tracker.stats()
    assert (stats.sent, stats.rejected, stats.retries) == (0, 3, 0)
    assert stats.last_error == "HTTP 403: wrong token"


def test_a_batch_too_large_is_sent_again_in_halves(tracker_for: Callable[..., Tracker]) -> None:
    clock = ManualClock()
    endpoint = Endpoint(
        clock, httpx.Response(413, json={"error": {"code": "too_large", "message": "too large"}})
    )
    tracker = tracker_for(endpoint, batch_size=10, clock=clock)
    for i in range(10):
        tracker.add(custom(i))
    assert tracker.flush(PATIENCE_S)
    sizes = [len(batch) for _, batch in endpoint.received]
    assert sizes == [10, 5, 5]
    assert sorted(e["value"] for _, batch in endpoint.received[1:] for e in batch) == [
        float(i) for i in range(10)
    ]
    assert (tracker.stats().sent, tracker.stats().rejected) == (10, 0)


def test_exposures_once_per_user_flag_and_variant_per_interval(tracker_for: Callable[..., Tracker]) -> None:
    clock = ManualClock()
    endpoint = Endpoint(clock)
    tracker = tracker_for(endpoint, flush_interval=0.25, exposure_interval=60, clock=clock)
    for _ in range(50):
        tracker.expose("checkout", "user-1", "on")
        tracker.expose("checkout", "user-2", "on")
    tracker.expose("checkout", "user-1", "off")  # the variant changed (a kill switch): a new exposure
    tracker.expose("search", "user-1", "on")
    assert tracker.flush(PATIENCE_S)
    first = [(e["flag"], e["targeting_key"], e["variant"]) for _, b in endpoint.received for e in b]
    assert sorted(first) == [
        ("checkout", "user-1", "off"),
        ("checkout", "user-1", "on"),
        ("checkout", "user-2", "on"),
        ("search", "user-1", "on"),
    ]

    def exposed_again() -> int:
        tracker.expose("checkout", "user-1", "on")
        assert tracker.flush(PATIENCE_S)
        return sum(len(b) for _, b in endpoint.received) - len(first)

    clock.advance(59.75)
    assert exposed_again() == 0, "within the interval the user counts once"
    clock.advance(0.25)
    assert exposed_again() == 1, "the next interval counts the user again"


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
        assert tracker.flush(PATIENCE_S)
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
        rampup.caught_up(client)
        seen = {}
        for i in range(300):
            user = f"user-{i}"
            for _ in range(3):
                seen[user] = client.is_enabled(key, user)
            if i % 2 == 0:
                client.track(name, user, value=1, engagement=True)
        assert client.flush(PATIENCE_S)
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
    proxy.hold["/api/v1/events"] = release = threading.Event()
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
        for i in range(2000):
            if i == 1:  # the first half while a send hangs in the network
                wait_until(lambda: proxy.holding.get("/api/v1/events"), "the first send to hang")
            if i == 1000:  # the second half while the sender is being refused and backing off
                assert proxy.holding["/api/v1/events"] == 1, "an evaluation or a track waited for the network"
                release.set()
                wait_until(lambda: len(proxy.hits.get("/api/v1/events", [])) >= 2, "two refused sends")
            client.is_enabled(key, f"user-{i}")
            client.track(name, f"user-{i}")
        assert set(proxy.hits["/api/v1/events"]) == {503}
        del proxy.refuse["/api/v1/events"]
        assert client.flush(PATIENCE_S)
        stats = client.stats().events
    assert stats is not None
    assert stats.dropped >= 1500 and stats.sent + stats.dropped == 2000 and stats.rejected == 0
    assert rampup.metric(f"event:{name}")["variants"]["all"]["count"] == stats.sent


def test_close_sends_what_is_buffered(rampup: Rampup) -> None:
    name = f"evt-{uuid.uuid4().hex[:8]}"
    # On a clock that stands still no flush interval ends: only close sends.
    client = Client(
        rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token, clock=ManualClock()
    )
    for i in range(25):
        client.track(name, f"user-{i}")
    client.track_error(ValueError("boom"), "user-1", unhandled=True)
    client.close(PATIENCE_S)
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
        assert client.flush(PATIENCE_S)
        assert client.stats().errors == {"EVENT_DISCARDED": 5}
        events = client.stats().events
        assert events is not None and (events.sent, events.rejected) == (1, 0)


def test_feedback_is_attributed_to_what_each_user_saw(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as client:
        rampup.caught_up(client)
        seen = {f"user-{i}": client.is_enabled(key, f"user-{i}") for i in range(80)}
        for user, treated in seen.items():
            if treated:
                client.feedback("down", user, scale="thumbs", comment="I miss the old page")
            else:
                client.feedback(9, user, scale="0-10")
        client.feedback(6, "user-1")  # off the 1–5 scale
        client.feedback(None, "user-1")  # neither a rating nor a comment
        client.feedback(3, "user-1", scale="stars")
        assert client.flush(PATIENCE_S)
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

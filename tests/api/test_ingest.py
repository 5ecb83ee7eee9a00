"""Native telemetry ingest (POST /api/v1/events) and metric queries, against a running server.

The core promises (exact rates, counts and percentiles per variant; every acknowledged event survives a
SIGKILL) run on SQLite and PostgreSQL. The rest share one SQLite server per module (a server takes a
couple of seconds to start); each of those tests works on its own flag, or compares before and after.
"""

import gzip
import json
import math
import random
import sqlite3
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import httpx
import psycopg
import pytest

from rampup.core.bucketing import in_rollout
from tests.support.api import in_force_from, new_flag, new_token
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S, wait_until

MAX_BODY = 5 * 1024 * 1024
REL = 0.01  # the sketch's relative accuracy


# ---------------------------------------------------------------------------------------------- helpers


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def whole_second_ago(seconds: int) -> float:
    """A timestamp half-way through a second, `seconds` ago: exact in binary, far from minute edges."""
    return math.floor(time.time()) - seconds + 0.5


def exact_quantile(values: list[float], q: float) -> float:
    """The sample at rank floor(q·(n−1)) of the sorted values (the rule the server documents)."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert body["error"]["message"], body
    return dict(body["error"])


def metric(
    api: httpx.Client, name: str, *, flag: str | None = None, env: str = "production", window: str = "1h"
) -> dict[str, Any]:
    params = {"metric": name, "environment": env, "window": window}
    if flag is not None:
        params["flag"] = flag
    response = api.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def counts(api: httpx.Client, name: str = "error_rate", **kwargs: Any) -> dict[str, tuple[int, int]]:
    """variant → (count, failures) of a metric; variants with nothing in them left out."""
    variants = metric(api, name, **kwargs)["variants"]
    return {v: (e["count"], e.get("failures", 0)) for v, e in variants.items() if e["count"]}


def env_totals(api: httpx.Client, env: str = "production") -> dict[str, Any]:
    """Everything the environment holds, environment-wide: to show that a refused request stored nothing."""
    return {
        name: metric(api, name, env=env)["variants"]["all"]
        for name in (
            "error_rate",
            "errors",
            "unhandled_exceptions",
            "lcp_p50",
            "api_latency_p50",
            "exposures",
            "data_loss",
        )
    }


def post_events(client: httpx.Client, events: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
    return client.post("/api/v1/events", json={"events": events}, **kwargs)


def ingest_client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=PATIENCE_S, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite server for the tests that isolate themselves by flag or by before/after comparison."""
    directory: Path = tmp_path_factory.mktemp("ingest")
    server = start_server(f"sqlite:///{directory / 'rampup.db'}", directory / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_token(shared: Server) -> str:
    with shared.client() as api:
        return new_token(api)


def small_batch(n: int = 10, *, failed_every: int = 3, at: float | None = None) -> list[dict[str, Any]]:
    stamp = iso(at if at is not None else time.time())
    return [
        {
            "type": "request",
            "timestamp": stamp,
            "targeting_key": f"user-{i}",
            "duration_ms": 10.0 + i,
            "ok": i % failed_every != 0,
        }
        for i in range(n)
    ]


# ------------------------------------------------------------------ exact numbers, both database backends


def mixed_events(
    rng: random.Random, key: str, other: str
) -> tuple[
    list[dict[str, Any]],
    dict[str, list[tuple[bool, float, float]]],
    dict[str, list[bool]],
    dict[str, list[float]],
]:
    """Requests, errors and page loads per variant of `key`, shuffled; and what was sent, to check against."""
    requests: dict[str, list[tuple[bool, float, float]]] = {"on": [], "off": []}  # (failed, duration, at)
    errors: dict[str, list[bool]] = {"on": [], "off": []}
    lcps: dict[str, list[float]] = {"on": [], "off": []}
    events: list[dict[str, Any]] = []
    reported = {"on": [True, "on", "true"], "off": [False, "off", "false"]}
    for _ in range(3000):
        variant = "on" if rng.random() < 0.45 else "off"
        failed = rng.random() < (0.09 if variant == "on" else 0.03)
        duration = round(rng.lognormvariate(5.0, 0.7) * (1.3 if variant == "on" else 1.0), 3)
        at = whole_second_ago(rng.randrange(30, 50 * 60))
        requests[variant].append((failed, duration, at))
        events.append(
            {
                "type": "request",
                "timestamp": iso(at),
                "targeting_key": f"user-{rng.randrange(800)}",
                "flags": {key: rng.choice(reported[variant]), other: True},
                "duration_ms": duration,
                "ok": not failed,
                "status": 500 if failed else 200,
                "tags": {"route": "/api/x"},
            }
        )
    for _ in range(400):
        variant = rng.choice(["on", "off"])
        unhandled = rng.random() < 0.3
        errors[variant].append(unhandled)
        events.append(
            {
                "type": "error",
                "timestamp": iso(whole_second_ago(rng.randrange(30, 3000))),
                "flags": {key: variant == "on"},
                "unhandled": unhandled,
                "message": "TypeError: x",
            }
        )
    for _ in range(600):
        variant = rng.choice(["on", "off"])
        lcp = round(rng.uniform(400, 6000), 1)
        lcps[variant].append(lcp)
        events.append(
            {
                "type": "page_load",
                "timestamp": iso(whole_second_ago(rng.randrange(30, 3000))),
                "flags": {key: variant == "on"},
                "lcp_ms": lcp,
            }
        )
    rng.shuffle(events)
    return events, requests, errors, lcps


def test_error_rate_counts_and_percentiles_per_variant_are_exact(server: Server) -> None:
    rng = random.Random(20240611)
    with server.client() as api:
        key = new_flag(api, rollout=40)  # reported flags win over bucketing: attribution follows the map
        other = new_flag(api)
        token = new_token(api)
    events, requests, errors, lcps = mixed_events(rng, key, other)

    with ingest_client(server, token) as client:
        for start in range(0, len(events), 1000):
            response = post_events(client, events[start : start + 1000])
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": len(events[start : start + 1000])}

    with server.client() as api:
        # error rate: exact counts and value, bounds around it
        rate = metric(api, "error_rate", flag=key)
        assert set(rate["variants"]) == {"on", "off"}
        for variant, rows in requests.items():
            got = rate["variants"][variant]
            n, failures = len(rows), sum(r[0] for r in rows)
            assert (got["count"], got["failures"], got["samples"]) == (n, failures, n), (variant, got)
            assert got["value"] == pytest.approx(failures / n, abs=1e-12)
            assert 0 <= got["lower"] < got["value"] < got["upper"] <= 1
        rate_all = metric(api, "error_rate")["variants"]
        assert set(rate_all) == {"all"}
        assert rate_all["all"]["count"] == 3000
        assert rate_all["all"]["failures"] == sum(r[0] for rows in requests.values() for r in rows)

        # the series: one point a minute, each the exact rate of that minute
        expected_series: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for variant, rows in requests.items():
            for failed, _duration, at in rows:
                minute = int(at) - int(at) % 60
                expected_series[minute][variant][0] += 1
                expected_series[minute][variant][1] += failed
        got_series = {
            int(datetime.fromisoformat(p["at"].replace("Z", "+00:00")).timestamp()): p["values"]
            for p in rate["series"]
        }
        assert set(got_series) == set(expected_series)
        for minute, per_variant in expected_series.items():
            assert got_series[minute] == pytest.approx({v: f / n for v, (n, f) in per_variant.items()}), (
                minute
            )

        # latency percentiles within the sketch's 1% of the exact sample at rank floor(q(n-1))
        for name, q in (("api_latency_p95", 0.95), ("api_latency_p50", 0.5), ("api_latency_p99", 0.99)):
            variants = metric(api, name, flag=key)["variants"]
            for variant, rows in requests.items():
                durations = [r[1] for r in rows]
                exact = exact_quantile(durations, q)
                got = variants[variant]
                assert got["samples"] == len(durations)
                assert got["value"] == pytest.approx(exact, rel=REL), (name, variant)
                assert got["lower"] <= got["value"] <= got["upper"]
            all_durations = [r[1] for rows in requests.values() for r in rows]
            assert metric(api, name)["variants"]["all"]["value"] == pytest.approx(
                exact_quantile(all_durations, q), rel=REL
            )

        lcp = metric(api, "lcp_p75", flag=key)["variants"]
        for variant, values in lcps.items():
            assert lcp[variant]["samples"] == len(values)
            assert lcp[variant]["value"] == pytest.approx(exact_quantile(values, 0.75), rel=REL)

        unhandled = metric(api, "unhandled_exceptions", flag=key)["variants"]
        all_errors = metric(api, "errors", flag=key)["variants"]
        for variant, flags in errors.items():
            assert unhandled[variant]["value"] == unhandled[variant]["count"] == sum(flags)
            assert all_errors[variant]["count"] == len(flags)
        # the other flag was reported as on everywhere
        assert counts(api, flag=other) == {"on": (3000, rate_all["all"]["failures"])}


def test_every_acknowledged_event_survives_sigkill(
    server: Server, server_factory: Callable[..., Server]
) -> None:
    with server.client() as api:
        key = new_flag(api)
        token = new_token(api)
    acknowledged, failures, on = 0, 0, 0
    with ingest_client(server, token) as client:
        for b in range(25):
            events: list[dict[str, Any]] = [
                {
                    "type": "request",
                    "targeting_key": f"user-{b}-{i}",
                    "duration_ms": 5.0 + i,
                    "ok": i % 7 != 0,
                    "flags": {key: i % 2 == 0},
                }
                for i in range(40)
            ]
            response = post_events(client, events)
            assert response.status_code == 202, response.text
            acknowledged += response.json()["accepted"]
            failures += sum(not e["ok"] for e in events)
            on += sum(e["flags"][key] for e in events)
    server.stop(kill=True)  # right after the last acknowledgement
    assert server.process.returncode == -9

    restarted = server_factory(server.database_url, admin_token=server.admin_token)
    with restarted.client() as api:
        assert acknowledged == 1000
        assert counts(api) == {"all": (acknowledged, failures)}
        by_variant = counts(api, flag=key)
        assert by_variant["on"][0] == on and by_variant["off"][0] == acknowledged - on
        assert metric(api, "api_latency_p50")["variants"]["all"]["samples"] == acknowledged
    with ingest_client(restarted, token) as client:  # the token survived as well
        assert post_events(client, small_batch(3)).status_code == 202
    with restarted.client() as api:
        assert counts(api)["all"][0] == acknowledged + 3


def days_pending(database_url: str) -> int:
    """Users' days appended by ingest (in packs of users) and not yet merged by the worker."""
    query = "SELECT coalesce(sum(users), 0) FROM unit_day_packs"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return int(db.execute(query).fetchone()[0])
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        row = pg.execute(query).fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_per_user_days_not_yet_merged_survive_a_sigkill_and_read_alike_once_merged(
    backend: str, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """Ingest appends each user's day and the worker merges them later: a server killed in between loses none of
    them, and engagement per user reads the same before the merge and after it."""
    # A 1 s tick makes the killed server's lease 5 s, not 30: the restarted one takes over and merges soon.
    server = server_factory(
        make_database_url(backend), extra_env={"RAMPUP_COMPACT_S": "3600", "RAMPUP_TICK_S": "1"}
    )
    with server.client() as api:
        key = new_flag(api)
        token = new_token(api)
    clicks = [  # users 0, 3 and 6 on (20 clicks), the six others off (40)
        {
            "type": "custom",
            "name": "click",
            "engagement": True,
            "targeting_key": f"user-{i % 9}",
            "flags": {key: i % 3 == 0},
        }
        for i in range(60)
    ]
    with ingest_client(server, token) as client:
        for i in range(0, 60, 6):
            assert post_events(client, clicks[i : i + 6]).status_code == 202
    with server.client() as api:
        before = metric(api, "engagement", flag=key)["variants"]
    assert (before["on"]["users"], before["on"]["value"], before["off"]["users"]) == (3, 20 / 3, 6)
    assert days_pending(server.database_url) == 60  # a day per user and batch: none merged yet
    server.stop(kill=True)

    restarted = server_factory(server.database_url, admin_token=server.admin_token)
    wait_until(lambda: days_pending(restarted.database_url) == 0, "the restarted worker merges the days left")
    with restarted.client() as api:
        assert metric(api, "engagement", flag=key)["variants"] == before


def test_sigkill_in_the_middle_of_concurrent_batches_loses_no_acknowledged_batch(
    server: Server, server_factory: Callable[..., Server]
) -> None:
    with server.client() as api:
        token = new_token(api)
    size, failed_per_batch = 100, 7
    batch = [
        {"type": "request", "targeting_key": f"u{i}", "duration_ms": 1.0 + i, "ok": i >= failed_per_batch}
        for i in range(size)
    ]
    lock = threading.Lock()
    acknowledged, attempted = [0], [0]
    stop = threading.Event()

    def send() -> None:
        with ingest_client(server, token) as client:
            while not stop.is_set():
                with lock:
                    attempted[0] += 1
                try:
                    response = post_events(client, batch)
                except httpx.HTTPError:
                    return
                if response.status_code == 202:
                    with lock:
                        acknowledged[0] += 1
                elif response.status_code != 429:
                    return

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: acknowledged[0] >= 30, "30 batches acknowledged", detail=server.output)
    server.stop(kill=True)  # while batches are in flight
    stop.set()
    for t in threads:
        t.join(timeout=PATIENCE_S)
    assert acknowledged[0] >= 30

    restarted = server_factory(server.database_url, admin_token=server.admin_token)
    with restarted.client() as api:
        count, failures = counts(api).get("all", (0, 0))
    assert count % size == 0, "a batch was stored in part"
    assert failures == count // size * failed_per_batch
    assert acknowledged[0] * size <= count <= attempted[0] * size


# ------------------------------------------------------------------------------ refusals store nothing


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"type": "request", "duration_ms": -5}, "events[3].duration_ms"),
        ({"type": "request", "duration_ms": "slow"}, "events[3].duration_ms"),
        ({"type": "request", "ok": "yes"}, "events[3].ok"),
        ({"type": "request", "timestamp": "yesterday"}, "events[3].timestamp"),
        ({"type": "request", "timestamp": "2999-01-01T00:00:00Z"}, "events[3].timestamp"),
        ({"type": "teleport"}, "events[3].type"),
        ({"duration_ms": 5}, "events[3]"),
        ({"type": "page_load"}, "events[3]"),
        ({"type": "exposure", "flag": "x"}, "events[3]"),
        ({"type": "request", "colour": "red"}, "events[3]"),
        ({"type": "request", "targeting_key": ""}, "events[3].targeting_key"),
        ("not an event", "events[3]"),
    ],
)
def test_a_batch_with_one_bad_event_is_refused_whole(
    shared: Server, shared_token: str, bad: Any, where: str
) -> None:
    with shared.client() as api:
        key = new_flag(api)
        before = env_totals(api)
    good = [
        {"type": "request", "flags": {key: True}, "duration_ms": 12.5, "ok": False},
        {"type": "error", "flags": {key: True}, "unhandled": True},
        {"type": "page_load", "flags": {key: False}, "lcp_ms": 1800},
    ]
    events = [*good, bad, *good, {"type": "data_loss", "message": "lost"}]
    with ingest_client(shared, shared_token) as client:
        response = post_events(client, events)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid"
    assert error["where"] == where or error["where"].startswith(where + "."), error
    with shared.client() as api:
        assert env_totals(api) == before
        assert counts(api, flag=key) == {}
        assert counts(api, "errors", flag=key) == {}


def test_size_limits_10000_events_and_5_mib(shared: Server, shared_token: str) -> None:
    with shared.client() as api:
        before = env_totals(api)
    with ingest_client(shared, shared_token) as client:
        too_many = post_events(client, [{"type": "request"}] * 10_001)
        assert too_many.status_code == 413, too_many.text
        assert error_of(too_many)["code"] == "too_large"

        padded_body = json.dumps({"events": [{"type": "request", "ok": False}]}).encode()
        over = padded_body + b" " * (MAX_BODY + 1 - len(padded_body))
        response = client.post("/api/v1/events", content=over, headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert error_of(response)["code"] == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
            yield padded_body
            for _ in range(12):
                yield b" " * (512 * 1024)

        try:
            streamed = client.post(
                "/api/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert streamed.status_code == 413, streamed.text
        except httpx.HTTPError:
            pass  # the server may hang up before the client is done sending; what matters is nothing stored

        bomb = gzip.compress(padded_body + b" " * (25 * 1024 * 1024))  # 25 KiB on the wire, 25 MiB inflated
        response = client.post(
            "/api/v1/events",
            content=bomb,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 413, response.text
    with shared.client() as api:
        assert env_totals(api) == before

    with ingest_client(shared, shared_token) as client:  # right at the limits: accepted
        response = post_events(client, [{"type": "request", "ok": i % 2 == 0} for i in range(10_000)])
        assert response.status_code == 202 and response.json() == {"accepted": 10_000}
        exact = padded_body + b" " * (MAX_BODY - len(padded_body))
        response = client.post("/api/v1/events", content=exact, headers={"Content-Type": "application/json"})
        assert response.status_code == 202 and response.json() == {"accepted": 1}
    with shared.client() as api:
        count, failures = before["error_rate"]["count"], before["error_rate"]["failures"]
        assert counts(api)["all"] == (count + 10_001, failures + 5_001)


def test_compressed_bodies_are_accepted(shared: Server, shared_token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    events = [{**e, "flags": {key: True}} for e in small_batch(9, failed_every=3)]
    body = json.dumps({"events": events}).encode()
    raw = zlib.compressobj(wbits=-15)
    encodings = {
        "gzip": gzip.compress(body),
        "x-gzip": gzip.compress(body),
        "deflate": zlib.compress(body),  # the zlib format, as HTTP says
        "Deflate": raw.compress(body) + raw.flush(),  # raw deflate, as some clients send it
        "br": brotli.compress(body),
        "identity": body,
    }
    with ingest_client(shared, shared_token) as client:
        for encoding, content in encodings.items():
            response = client.post(
                "/api/v1/events",
                content=content,
                headers={"Content-Type": "application/json", "Content-Encoding": encoding},
            )
            assert response.status_code == 202, (encoding, response.text)
            assert response.json() == {"accepted": 9}
    with shared.client() as api:
        assert counts(api, flag=key) == {"on": (9 * len(encodings), 3 * len(encodings))}


# no timestamps (the server's now), so that anything stored by mistake shows in the last hour's totals
_GOOD_BODY = json.dumps(
    {"events": [{k: v for k, v in e.items() if k != "timestamp"} for e in small_batch(50)]}
).encode()


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        pytest.param(gzip.compress(_GOOD_BODY, mtime=0)[:-12], "gzip", id="gzip-without-its-end"),
        pytest.param(gzip.compress(_GOOD_BODY, mtime=0)[:40], "gzip", id="gzip-cut-short"),
        pytest.param(b"\x1f\x8b\x08\x00garbage, not a gzip stream at all", "gzip", id="gzip-garbage"),
        pytest.param(b"definitely not deflate", "deflate", id="deflate-garbage"),
        pytest.param(brotli.compress(_GOOD_BODY)[:-5], "br", id="br-cut-short"),
        pytest.param(_GOOD_BODY, "zstd", id="unsupported-encoding"),
        pytest.param(b'{"events": [{"type": "request"}, ', None, id="json-cut-short"),
        pytest.param(b"\xff\xfe not json", None, id="not-json"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b'{"events": {"type": "request"}}', None, id="events-not-a-list"),
        pytest.param(b'[{"type": "request"}]', None, id="a-bare-list"),
        pytest.param(b'{"events": [], "extra": 1}', None, id="unknown-top-level-field"),
    ],
)
def test_garbage_gets_a_4xx_and_stores_nothing(
    shared: Server, shared_token: str, content: bytes, encoding: str | None
) -> None:
    with shared.client() as api:
        before = env_totals(api)
    headers = {"Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    with ingest_client(shared, shared_token) as client:
        response = client.post("/api/v1/events", content=content, headers=headers)
    assert 400 <= response.status_code < 500 and response.status_code not in (401, 403, 404), response.text
    error_of(response)
    with shared.client() as api:
        assert env_totals(api) == before


def test_wrong_tokens_are_refused_and_store_nothing(shared: Server) -> None:
    with shared.client() as api:
        sdk = new_token(api, scope="sdk")
        read = new_token(api, scope="read", env=None)
        before = env_totals(api)
    batch = small_batch(4)
    for token, status in (("rp_nope", 401), ("rp_" + "A" * 43, 401), (sdk, 403), (read, 403)):
        with ingest_client(shared, token) as client:
            response = post_events(client, batch)
        assert response.status_code == status, (token, response.text)
        assert error_of(response)["code"] == ("unauthorized" if status == 401 else "forbidden")
    with httpx.Client(base_url=shared.url, timeout=PATIENCE_S) as anonymous:
        assert post_events(anonymous, batch).status_code == 401
    with shared.client() as api:
        assert env_totals(api) == before


@pytest.mark.parametrize(("token_env", "asked"), [("staging", "production"), ("production", "staging")])
def test_an_ingest_token_cannot_send_to_another_environment(
    shared: Server, token_env: str, asked: str
) -> None:
    with shared.client() as api:
        token = new_token(api, env=token_env)
        before = {env: env_totals(api, env=env) for env in ("staging", "production")}
    with ingest_client(shared, token) as client:
        response = post_events(client, small_batch(4), params={"environment": asked})
    with shared.client() as api:
        after = {env: env_totals(api, env=env) for env in ("staging", "production")}
    assert response.status_code == 403, (response.status_code, response.text, after == before)
    assert error_of(response)["code"] == "forbidden"
    assert after == before


def test_each_ingest_token_lands_in_its_own_environment(shared: Server, shared_token: str) -> None:
    with shared.client() as api:
        staging_ingest = new_token(api, env="staging")
        before = {env: env_totals(api, env=env)["error_rate"]["count"] for env in ("staging", "production")}
    with ingest_client(shared, staging_ingest) as client:
        assert post_events(client, small_batch(4)).status_code == 202
    with ingest_client(shared, shared_token) as client:
        assert post_events(client, small_batch(6), params={"environment": "production"}).status_code == 202
    with shared.client() as api:
        after = {env: env_totals(api, env=env)["error_rate"]["count"] for env in ("staging", "production")}
    assert after == {"staging": before["staging"] + 4, "production": before["production"] + 6}


def test_events_without_flags_use_the_rollout_in_force_at_their_timestamp(
    shared: Server, shared_token: str
) -> None:
    users = [f"user-{i}" for i in range(300)]

    def batch(at: float, prefix: str) -> list[dict[str, Any]]:
        return [
            {"type": "request", "timestamp": iso(at), "targeting_key": f"{prefix}{u}", "ok": True}
            for u in users
        ]

    with shared.client() as api, ingest_client(shared, shared_token) as client:
        before_flag = time.time() - 5
        key = new_flag(api)  # disabled: nobody is split
        while_disabled = in_force_from(api, key)
        assert (
            api.put(
                f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": 25}
            ).status_code
            == 200
        )
        at_25 = in_force_from(api, key)
        assert post_events(client, batch(at_25, "a-")).status_code == 202  # sent while 25% is in force
        assert (
            api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 50}).status_code == 200
        )
        at_50 = in_force_from(api, key)
        assert (
            api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 100}).status_code == 200
        )
        at_100 = in_force_from(api, key)
        # sent late, all in one batch: each event is judged by the state at its own timestamp
        late = [
            *batch(at_25, "b-"),
            *batch(at_50, "c-"),
            *batch(at_100, "d-"),
            *batch(before_flag, "e-"),
            *batch(while_disabled, "f-"),
            {"type": "request", "timestamp": iso(at_50), "targeting_key": "x", "flags": {key: False}},
        ]
        assert post_events(client, late).status_code == 202

        on = sum(in_rollout(key, f"{p}{u}", 25) for p in ("a-", "b-") for u in users) + sum(
            in_rollout(key, f"c-{u}", 50) for u in users
        )
        off = 3 * len(users) - on + 1  # the one that reported its variant
        assert counts(api, flag=key) == {"on": (on, 0), "off": (off, 0)}
        assert 0.3 * len(users) < sum(in_rollout(key, f"c-{u}", 50) for u in users) < 0.7 * len(users)


def test_counters_and_gauges_posted_from_outside(shared: Server, shared_token: str) -> None:
    now = time.time()
    with ingest_client(shared, shared_token) as client:
        for value in (3, 2, 5):
            response = client.post(
                "/api/v1/metrics",
                json={"metric": "support_tickets", "environment": "production", "value": value},
            )
            assert response.status_code == 202 and response.json() == {"accepted": 1}, response.text
        for value, ago in ((80, 600), (92, 300), (70, 1200)):  # the oldest reading arrives last
            response = client.post(
                "/api/v1/metrics",
                json={
                    "metric": "lighthouse",
                    "environment": "production",
                    "value": value,
                    "at": iso(now - ago),
                },
            )
            assert response.status_code == 202, response.text
    with shared.client() as api:
        tickets = metric(api, "support_tickets")["variants"]["all"]
        assert tickets["value"] == 10 and tickets["count"] == 3
        assert tickets["lower"] <= 10 <= tickets["upper"]
        lighthouse = metric(api, "lighthouse")["variants"]["all"]
        assert lighthouse["value"] == 92 and lighthouse["count"] == 3
        assert lighthouse["mean"] == pytest.approx((80 + 92 + 70) / 3)
        assert metric(api, "support_tickets", env="staging")["variants"]["all"]["count"] == 0

        staging_ingest = new_token(api, env="staging")
        sdk = new_token(api, scope="sdk")
    for token, body, status, where in (
        (shared_token, {"metric": "error_rate", "environment": "production", "value": 1}, 422, "metric"),
        (shared_token, {"metric": "nope", "environment": "production", "value": 1}, 422, "metric"),
        (
            shared_token,
            {"metric": "support_tickets", "environment": "production", "value": "many"},
            422,
            "value",
        ),
        (shared_token, {"metric": "support_tickets", "environment": "production"}, 422, "value"),
        (staging_ingest, {"metric": "support_tickets", "environment": "production", "value": 1}, 403, None),
        (sdk, {"metric": "support_tickets", "environment": "production", "value": 1}, 403, None),
        ("rp_wrong", {"metric": "support_tickets", "environment": "production", "value": 1}, 401, None),
    ):
        with ingest_client(shared, token) as client:
            response = client.post("/api/v1/metrics", json=body)
        assert response.status_code == status, (body, response.text)
        if where:
            assert error_of(response)["where"] == where
    with shared.client() as api:
        assert metric(api, "support_tickets")["variants"]["all"]["count"] == 3


@pytest.mark.parametrize(
    ("params", "status", "where"),
    [
        ({"metric": "nope"}, 422, "metric"),
        ({"metric": "api_latency"}, 422, "metric"),
        ({"metric": "error_rate_p95"}, 422, "metric"),
        ({"metric": "error_rate", "window": "30s"}, 422, "window"),
        ({"metric": "error_rate", "window": "soon"}, 422, "window"),
        ({"metric": "error_rate", "window": "500d"}, 422, "window"),
        ({"metric": "error_rate", "window": "-1h"}, 422, "window"),
        ({"metric": "error_rate", "environment": "mars"}, 404, None),
        ({"metric": "error_rate", "flag": "no-such-flag"}, 404, None),
    ],
)
def test_bad_metric_queries_say_where(
    shared: Server, params: dict[str, str], status: int, where: str | None
) -> None:
    with shared.client() as api:
        response = api.get("/api/v1/metrics", params={"environment": "production", **params})
    assert response.status_code == status, response.text
    error = error_of(response)
    if where:
        assert error["where"] == where, error


def test_a_batch_whose_commit_fails_gets_no_2xx_and_stores_nothing(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """A 2xx means committed: a check PostgreSQL makes only at COMMIT refuses the batch, after every statement
    of it went through, and the sender is told so and finds nothing of it stored."""
    url = make_database_url("postgres")
    server = server_factory(url)
    with server.client() as api:
        token = new_token(api)
        flag = new_flag(api, rollout=50)
    events = [{**e, "flags": {flag: i % 2 == 0}} for i, e in enumerate(small_batch(20))]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
        )
        db.execute(
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT OR UPDATE ON unit_day_packs "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        with ingest_client(server, token) as client:  # the server closes a connection after a 500
            assert post_events(client, events).status_code >= 500
        stored = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()
            for table in ("event_batches", "rollups", "unit_day_packs", "unit_days")
        }
        assert stored == {"event_batches": (0,), "rollups": (0,), "unit_day_packs": (0,), "unit_days": (0,)}
        db.execute("DROP TRIGGER refuse_at_commit ON unit_day_packs")
        with ingest_client(server, token) as client:
            assert post_events(client, events).status_code == 202
    with server.client() as api:
        assert counts(api) == {"all": (20, 7)}

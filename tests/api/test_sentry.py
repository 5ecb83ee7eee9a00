"""Sentry-compatible ingest: the real PyPI sentry-sdk pointed at a running server, and raw envelopes.

Each SDK scenario runs in its own interpreter (the SDK keeps global state, and an uncaught exception has to
really go uncaught). One SQLite server serves the module; each test works on flags of its own, or compares
the environment's totals before and after.
"""

import gzip
import json
import math
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest

from rampup.core.bucketing import in_rollout
from tests.support.api import in_force_from, new_flag, new_token
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S

PRODUCTION_ID, STAGING_ID = 2, 1
REL = 0.01


# ---------------------------------------------------------------------------------------------- helpers


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def metric(
    api: httpx.Client, name: str, *, flag: str | None = None, env: str = "production"
) -> dict[str, Any]:
    params = {"metric": name, "environment": env, "window": "1h"}
    if flag is not None:
        params["flag"] = flag
    response = api.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json()["variants"])


def counts(
    api: httpx.Client, name: str, *, flag: str | None = None, env: str = "production"
) -> dict[str, Any]:
    """variant → count (or (count, failures) for error_rate); empty variants left out."""
    out: dict[str, Any] = {}
    for variant, e in metric(api, name, flag=flag, env=env).items():
        if e["count"]:
            out[variant] = (e["count"], e["failures"]) if name == "error_rate" else e["count"]
    return out


def env_totals(api: httpx.Client, env: str = "production") -> dict[str, Any]:
    return {
        name: metric(api, name, env=env)["all"]
        for name in ("error_rate", "errors", "unhandled_exceptions", "lcp_p50", "api_latency_p50")
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return dict(body["error"])


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("sentry")
    server = start_server(f"sqlite:///{directory / 'rampup.db'}", directory / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(shared: Server) -> str:
    with shared.client() as api:
        return new_token(api)


@pytest.fixture(scope="module")
def dsn(shared: Server, token: str) -> str:
    return f"http://{token}@{shared.url.removeprefix('http://')}/{PRODUCTION_ID}"


PRELUDE = f"""
import json, sys, time
from datetime import datetime, timedelta, timezone
import sentry_sdk
P = json.loads(sys.argv[2])
sentry_sdk.init(dsn=sys.argv[1], traces_sample_rate=1.0, debug=True, shutdown_timeout={PATIENCE_S}, **P.get("init", {{}}))
"""


def run_sdk(dsn: str, body: str, params: dict[str, Any] | None = None, *, uncaught: bool = False) -> str:
    """Run `body` with a fresh sentry_sdk in its own interpreter; the SDK's debug log comes back."""
    script = PRELUDE + textwrap.dedent(body) + f"\nsentry_sdk.flush(timeout={PATIENCE_S})\n"
    if uncaught:
        script += "raise RuntimeError('nobody caught this')\n"
    done = subprocess.run(
        [sys.executable, "-c", script, dsn, json.dumps(params or {})],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    log = done.stdout + done.stderr
    if uncaught:
        assert done.returncode == 1 and "RuntimeError: nobody caught this" in log, log
    else:
        assert done.returncode == 0, log
    assert "Sending envelope" in log, log
    assert "Unexpected status code" not in log and "HTTP 413" not in log and "Rate-limited" not in log, log
    return log


# ------------------------------------------------------------------------------------ the real sentry-sdk


def test_sdk_handled_exceptions_tagged_with_the_flag(shared: Server, dsn: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        before = env_totals(api)
    run_sdk(
        dsn,
        """
        for tag, n in (("true", 6), ("false", 4), (None, 3)):
            for i in range(n):
                with sentry_sdk.new_scope() as scope:
                    if tag is not None:
                        scope.set_tag(P["key"] + "_enabled", tag)
                    try:
                        raise ValueError(f"handled {tag} {i}")
                    except ValueError as exc:
                        sentry_sdk.capture_exception(exc)
    """,
        {"key": key},
    )  # brotli is installed, so the SDK sends br
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": 6, "off": 4}
        assert counts(api, "unhandled_exceptions", flag=key) == {}
        after = env_totals(api)
    assert after["errors"]["count"] == before["errors"]["count"] + 13
    assert after["unhandled_exceptions"]["count"] == before["unhandled_exceptions"]["count"]


def test_sdk_uncaught_exception_counts_as_unhandled(shared: Server, dsn: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        before = env_totals(api)
    run_sdk(
        dsn,
        """
        sentry_sdk.set_tag(P["key"] + "_enabled", "true")
        try:
            raise KeyError("handled first")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
    """,
        {"key": key},
        uncaught=True,
    )
    with shared.client() as api:
        assert counts(api, "unhandled_exceptions", flag=key) == {"on": 1}
        assert counts(api, "errors", flag=key) == {"on": 2}
        after = env_totals(api)
    assert after["unhandled_exceptions"]["count"] == before["unhandled_exceptions"]["count"] + 1


def test_sdk_feature_flag_context_attributes_errors(shared: Server, dsn: str) -> None:
    with shared.client() as api:
        key = new_flag(api, rollout=50)  # what the SDK reported wins over recomputing from user.id
    run_sdk(
        dsn,
        """
        from sentry_sdk.feature_flags import add_feature_flag
        for value, n in ((True, 3), (False, 2)):
            with sentry_sdk.isolation_scope():
                add_feature_flag(P["key"], value)
                add_feature_flag("some-other-flag", True)
                for i in range(n):
                    sentry_sdk.set_user({"id": f"ff-user-{value}-{i}"})
                    try:
                        raise ValueError(f"flagged {value} {i}")
                    except ValueError as exc:
                        sentry_sdk.capture_exception(exc)
    """,
        {"key": key, "init": {"_experiments": {"transport_compression_algo": "gzip"}}},
    )
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": 3, "off": 2}


def test_sdk_untagged_events_are_bucketed_by_user_id_at_the_current_rollout(shared: Server, dsn: str) -> None:
    with shared.client() as api:
        key = new_flag(api, rollout=30)
    users = [f"sentry-user-{i}" for i in range(60)]
    run_sdk(
        dsn,
        """
        for user in P["users"]:
            with sentry_sdk.isolation_scope():
                sentry_sdk.set_user({"id": user})
                try:
                    raise ZeroDivisionError(user)
                except ZeroDivisionError as exc:
                    sentry_sdk.capture_exception(exc)
        with sentry_sdk.isolation_scope():  # a tag says what the user saw: it wins
            sentry_sdk.set_user({"id": P["users"][0]})
            sentry_sdk.set_tag(P["key"] + "_enabled", "false")
            sentry_sdk.capture_message("tagged off")
        with sentry_sdk.isolation_scope():  # neither user nor tag: only in the environment's totals
            sentry_sdk.capture_message("anonymous")
    """,
        {"key": key, "users": users},
    )
    on = sum(in_rollout(key, u, 30) for u in users)
    assert 0 < on < len(users)
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": on, "off": len(users) - on + 1}


def test_sdk_transactions_feed_error_rate_latency_and_lcp(shared: Server, dsn: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        page_key = new_flag(api)
    base = math.floor(time.time()) - 900  # whole seconds: the durations below are exact in the payload
    transactions: list[dict[str, Any]] = []
    for i in range(40):
        on = i % 3 != 0
        transactions.append(
            {
                "start": base + i,
                "ms": 125 * (1 + (i * 7) % 23) * (2 if on else 1),
                "tag": "true" if on else "false",
                "http_status": 500 if i % 5 == 0 else (404 if i % 11 == 0 else None),
            }
        )
    run_sdk(
        dsn,
        """
        for t in P["transactions"]:
            start = datetime.fromtimestamp(t["start"], timezone.utc)
            tx = sentry_sdk.start_transaction(op="http.server", name="GET /api/things", start_timestamp=start)
            tx.set_tag(P["key"] + "_enabled", t["tag"])
            if t["http_status"] is not None:
                tx.set_http_status(t["http_status"])
            else:
                tx.set_status("ok")
            tx.finish(end_timestamp=start + timedelta(milliseconds=t["ms"]))
        start = datetime.now(timezone.utc) - timedelta(seconds=5)
        page = sentry_sdk.start_transaction(op="pageload", name="/dashboard", start_timestamp=start)
        page.set_tag(P["page_key"] + "_enabled", "true")
        page.set_measurement("lcp", 2345.0, "millisecond")
        page.set_status("ok")
        page.finish(end_timestamp=start + timedelta(seconds=3))
    """,
        {"key": key, "page_key": page_key, "transactions": transactions},
    )

    expected: dict[str, dict[str, Any]] = {
        "on": {"n": 0, "failed": 0, "ms": []},
        "off": {"n": 0, "failed": 0, "ms": []},
    }
    for t in transactions:
        e = expected["on" if t["tag"] == "true" else "off"]
        e["n"] += 1
        e["failed"] += t["http_status"] is not None
        e["ms"].append(float(t["ms"]))
    with shared.client() as api:
        assert counts(api, "error_rate", flag=key) == {v: (e["n"], e["failed"]) for v, e in expected.items()}
        for name, q in (("api_latency_p50", 0.5), ("api_latency_p95", 0.95)):
            got = metric(api, name, flag=key)
            for variant, e in expected.items():
                assert got[variant]["samples"] == len(e["ms"]), (name, variant)
                assert got[variant]["value"] == pytest.approx(exact_quantile(e["ms"], q), rel=REL), (
                    name,
                    variant,
                )
        lcp = metric(api, "lcp_p75", flag=page_key)
        assert lcp["on"]["samples"] == 1 and lcp["on"]["value"] == pytest.approx(2345.0, rel=REL)
        assert metric(api, "lcp_p75", flag=key)["on"]["samples"] == 0
        assert metric(api, "api_latency_p50", flag=page_key)["on"]["samples"] == 0  # not an API request


# ------------------------------------------------------------------------------------- raw HTTP: protocol


def envelope(*items: tuple[dict[str, Any], Any], event_id: str | None = None) -> tuple[str, bytes]:
    """An envelope of (item header, payload) pairs; JSON payloads get their length, as SDKs send them."""
    event_id = event_id or uuid.uuid4().hex
    parts = [json.dumps({"event_id": event_id, "sent_at": iso(time.time())}).encode()]
    for header, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        parts.append(json.dumps({**header, "length": len(data)}).encode())
        parts.append(data)
    return event_id, b"\n".join(parts) + b"\n"


def error_event(
    key: str | None = None, value: str = "true", *, handled: bool = True, **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "exception": {
            "values": [
                {"type": "ValueError", "value": "boom", "mechanism": {"type": "generic", "handled": handled}}
            ]
        },
        **extra,
    }
    if key:
        event["tags"] = {f"{key}_enabled": value}
    return event


def auth_header(key: str) -> dict[str, str]:
    return {
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=raw-test/1.0, sentry_key={key}",
        "Content-Type": "application/x-sentry-envelope",
    }


def post_envelope(
    server: Server,
    body: bytes,
    key: str,
    *,
    env_id: int = PRODUCTION_ID,
    headers: dict[str, str] | None = None,
    path: str = "envelope",
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/{env_id}/{path}/",
        content=body,
        headers={**auth_header(key), **(headers or {})},
        timeout=PATIENCE_S,
    )


def test_envelope_with_unknown_item_types_is_accepted(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    pretty = json.dumps(error_event(key, "false"), indent=2).encode()  # newlines inside: only length tells
    event_id, body = envelope(
        ({"type": "event"}, error_event(key)),
        (
            {"type": "client_report"},
            {
                "timestamp": time.time(),
                "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 3}],
            },
        ),
        ({"type": "check_in"}, {"check_in_id": uuid.uuid4().hex, "monitor_slug": "nightly", "status": "ok"}),
        ({"type": "span"}, {"span_id": "a" * 16, "trace_id": "b" * 32, "op": "db"}),
        ({"type": "log"}, {"items": [{"level": "info", "body": "hello"}]}),
        ({"type": "attachment", "filename": "dump.bin"}, b"\x00\x01\n\n\xff binary\n"),
        ({"type": "event"}, pretty),
        ({"type": "profile_chunk"}, {"whatever": [1, 2, 3]}),
    )
    response = post_envelope(shared, body, token)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == event_id
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": 1, "off": 1}


def test_envelope_items_without_length_and_empty_envelopes(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    header = json.dumps({"event_id": uuid.uuid4().hex}).encode()
    items = [
        json.dumps({"type": "event"}).encode(),
        json.dumps(error_event(key)).encode(),
        json.dumps({"type": "client_report"}).encode(),
        b'{"discarded_events": []}',
    ]
    response = post_envelope(shared, b"\n".join([header, *items]), token)  # no trailing newline
    assert response.status_code == 200, response.text
    assert post_envelope(shared, header + b"\n", token).status_code == 200
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": 1}


def test_legacy_store_endpoint(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    event = error_event(None, handled=False)
    event["tags"] = [[f"{key}_enabled", "false"], ["server", "web-1"]]  # the list form of tags
    response = post_envelope(
        shared, json.dumps(event).encode(), token, path="store", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == event["event_id"]
    now = time.time()
    transaction = {
        "type": "transaction",
        "event_id": uuid.uuid4().hex,
        "transaction": "GET /x",
        "start_timestamp": now - 0.25,
        "timestamp": now,
        "tags": {f"{key}_enabled": "true"},
        "contexts": {
            "trace": {
                "op": "http.server",
                "status": "internal_error",
                "trace_id": "c" * 32,
                "span_id": "d" * 16,
            }
        },
    }
    response = post_envelope(
        shared,
        gzip.compress(json.dumps(transaction).encode()),
        token,
        path="store",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    with shared.client() as api:
        assert counts(api, "unhandled_exceptions", flag=key) == {"off": 1}
        assert counts(api, "error_rate", flag=key) == {"on": (1, 1)}
        assert metric(api, "api_latency_p50", flag=key)["on"]["value"] == pytest.approx(250, rel=REL)


def test_compressed_envelopes(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    deflater = zlib.compressobj(wbits=-15)
    encodings = {
        "br": brotli.compress,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "identity": lambda b: b,
    }
    for encoding, compress in encodings.items():
        _, body = envelope(({"type": "event"}, error_event(key)))
        response = post_envelope(shared, compress(body), token, headers={"Content-Encoding": encoding})
        assert response.status_code == 200, (encoding, response.text)
    _, body = envelope(({"type": "event"}, error_event(key)))
    raw = deflater.compress(body) + deflater.flush()
    assert post_envelope(shared, raw, token, headers={"Content-Encoding": "deflate"}).status_code == 200
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": len(encodings) + 1}


def test_auth_by_header_or_query_and_refusals(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        staging = new_token(api, env="staging")
        sdk = new_token(api, scope="sdk")
        before = {env: env_totals(api, env) for env in ("production", "staging")}

    _, body = envelope(({"type": "event"}, error_event(key)))
    by_query = httpx.post(
        f"{shared.url}/api/{PRODUCTION_ID}/envelope/",
        params={"sentry_key": token, "sentry_version": "7"},
        content=body,
        timeout=PATIENCE_S,
    )
    assert by_query.status_code == 200, by_query.text
    assert post_envelope(shared, body, token).status_code == 200
    assert (
        httpx.post(
            f"{shared.url}/api/{PRODUCTION_ID}/store/",
            params={"sentry_key": token},
            json=error_event(key),
            timeout=PATIENCE_S,
        ).status_code
        == 200
    )
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": 3}
        before = {env: env_totals(api, env) for env in ("production", "staging")}

    refusals = [
        ("wrong key in the header", post_envelope(shared, body, "rp_wrong"), 401),
        (
            "wrong key in the query",
            httpx.post(
                f"{shared.url}/api/{PRODUCTION_ID}/envelope/",
                params={"sentry_key": "rp_wrong"},
                content=body,
                timeout=PATIENCE_S,
            ),
            401,
        ),
        (
            "no key",
            httpx.post(f"{shared.url}/api/{PRODUCTION_ID}/envelope/", content=body, timeout=PATIENCE_S),
            401,
        ),
        (
            "no key, store",
            httpx.post(f"{shared.url}/api/{PRODUCTION_ID}/store/", json=error_event(key), timeout=PATIENCE_S),
            401,
        ),
        ("unknown environment", post_envelope(shared, body, token, env_id=99), 404),
        ("a staging key for production", post_envelope(shared, body, staging), 403),
        ("a production key for staging", post_envelope(shared, body, token, env_id=STAGING_ID), 403),
        ("an sdk token", post_envelope(shared, body, sdk), 403),
    ]
    for what, response, status in refusals:
        assert response.status_code == status, (what, response.text)
        error_of(response)
    with shared.client() as api:
        assert {env: env_totals(api, env) for env in ("production", "staging")} == before
        assert counts(api, "errors", flag=key) == {"on": 3}


def _head(whole: bytes) -> bytes:
    return whole.split(b"\n", 1)[0]


# What is broken → (the body, its headers, the endpoint), made from a good single event and a good envelope.
CORRUPTIONS: dict[str, Callable[[bytes, bytes], tuple[bytes, dict[str, str], str]]] = {
    "truncated gzip": lambda _good, whole: (
        gzip.compress(whole)[:-10],
        {"Content-Encoding": "gzip"},
        "envelope",
    ),
    "corrupt br": lambda _good, whole: (
        brotli.compress(whole)[:-4] + b"\x00\x00",
        {"Content-Encoding": "br"},
        "envelope",
    ),
    "garbage deflate": lambda _good, _whole: (
        b"this is not deflate at all",
        {"Content-Encoding": "deflate"},
        "envelope",
    ),
    "header not json": lambda _good, whole: (b"{not json\n" + whole.split(b"\n", 1)[1], {}, "envelope"),
    "item header not json": lambda good, whole: (
        _head(whole) + b'\n{"type": "event"\n' + good + b"\n",
        {},
        "envelope",
    ),
    "second item not json": lambda good, whole: (
        _head(whole) + b'\n{"type":"event"}\n' + good + b'\n{"type":"event"}\n' + b'{"exception": oops}\n',
        {},
        "envelope",
    ),
    "length past the end": lambda good, whole: (
        _head(whole) + b'\n{"type":"event","length":100000}\n' + good + b"\n",
        {},
        "envelope",
    ),
    "item not an object": lambda good, whole: (
        _head(whole) + b'\n{"type":"event"}\n' + good + b'\n{"type":"session"}\n[1,2]\n',
        {},
        "envelope",
    ),
    "store body not json": lambda good, _whole: (good[:-20], {}, "store"),
    "store body not an object": lambda _good, _whole: (b'["an", "array"]', {}, "store"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_bodies_get_a_4xx_and_store_nothing(shared: Server, token: str, case: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        before = env_totals(api)
    good = json.dumps(error_event(key)).encode()
    _, whole = envelope(({"type": "event"}, error_event(key)), ({"type": "event"}, error_event(key)))
    body, headers, path = CORRUPTIONS[case](good, whole)
    response = post_envelope(shared, body, token, headers=headers, path=path)
    assert 400 <= response.status_code < 500 and response.status_code not in (401, 403, 404), (
        response.status_code,
        response.text,
    )
    error_of(response)
    with shared.client() as api:
        assert env_totals(api) == before
        assert counts(api, "errors", flag=key) == {}


def test_sessions_and_session_aggregates_count_into_error_rate(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api, rollout=50)
        before = metric(api, "error_rate")["all"]
    now = time.time()

    def session(did: str, status: str, errors: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"type": "session"},
            {
                "sid": uuid.uuid4().hex,
                "did": did,
                "init": True,
                "status": status,
                "errors": errors,
                "started": iso(now - 30),
                "timestamp": iso(now),
                "duration": 30,
                "attrs": {"release": "web@1.0", "environment": "prod"},
            },
        )

    sessions = [
        ("s-user-1", "exited", 0),
        ("s-user-2", "crashed", 1),
        ("s-user-3", "exited", 2),
        ("s-user-4", "abnormal", 0),
        ("s-user-5", "errored", 1),
        ("s-user-6", "ok", 0),
        ("s-user-7", "exited", 0),
        ("s-user-8", "exited", 0),
    ]
    _, body = envelope(*(session(*s) for s in sessions))
    assert post_envelope(shared, body, token).status_code == 200
    counted = [s for s in sessions if s[1] != "ok"]  # a session still running counts when it ends
    failed = [s for s in counted if s[1] != "exited" or s[2] > 0]

    aggregates = {
        "attrs": {"release": "web@1.0", "environment": "prod"},
        "aggregates": [
            {"started": iso(now - 120), "exited": 5, "errored": 2, "crashed": 1, "abnormal": 1},
            # started after the flag went to 50%: bucketed by its did (an older one would predate the flag)
            {"started": iso(now), "did": "agg-user", "exited": 3, "crashed": 2},
        ],
    }
    _, body = envelope(({"type": "sessions"}, aggregates))
    assert (
        post_envelope(shared, gzip.compress(body), token, headers={"Content-Encoding": "gzip"}).status_code
        == 200
    )

    with shared.client() as api:
        after = metric(api, "error_rate")["all"]
        assert after["count"] - before["count"] == len(counted) + 9 + 5
        assert after["failures"] - before["failures"] == len(failed) + 4 + 2
        # sessions carry a device id: attributed by bucketing at the rollout in force
        expected: dict[str, list[int]] = {}
        for did, status, errors in counted:
            e = expected.setdefault("on" if in_rollout(key, did, 50) else "off", [0, 0])
            e[0] += 1
            e[1] += status != "exited" or errors > 0
        agg = expected.setdefault("on" if in_rollout(key, "agg-user", 50) else "off", [0, 0])
        agg[0] += 5
        agg[1] += 2
        assert counts(api, "error_rate", flag=key) == {v: tuple(c) for v, c in expected.items()}


def test_raw_pageload_transactions_carry_lcp(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    now = time.time()
    values = {"on": [1200.0, 1850.5, 2400.0, 3100.0, 4200.0, 980.0], "off": [900.0, 1100.0, 1500.0, 1700.0]}
    items = []
    for variant, lcps in values.items():
        for i, lcp in enumerate(lcps):
            unit = "second" if i == 0 else "millisecond"
            items.append(
                (
                    {"type": "transaction"},
                    {
                        "type": "transaction",
                        "event_id": uuid.uuid4().hex,
                        "transaction": "/dashboard",
                        "start_timestamp": now - 10,
                        "timestamp": now - 5,
                        "contexts": {
                            "trace": {
                                "op": "pageload",
                                "status": "ok",
                                "trace_id": "e" * 32,
                                "span_id": "f" * 16,
                            },
                            "flags": {"values": [{"flag": key, "result": variant == "on"}]},
                        },
                        "measurements": {
                            "lcp": {"value": lcp / 1000 if unit == "second" else lcp, "unit": unit},
                            "fcp": {"value": 300, "unit": "millisecond"},
                        },
                    },
                )
            )
    _, body = envelope(*items)
    assert (
        post_envelope(shared, brotli.compress(body), token, headers={"Content-Encoding": "br"}).status_code
        == 200
    )
    with shared.client() as api:
        lcp_by_variant = metric(api, "lcp_p75", flag=key)
        for variant, lcps in values.items():
            assert lcp_by_variant[variant]["samples"] == len(lcps)
            assert lcp_by_variant[variant]["value"] == pytest.approx(exact_quantile(lcps, 0.75), rel=REL)
        # page loads are not API requests: no latency sample from them
        assert metric(api, "api_latency_p50", flag=key)["on"]["samples"] == 0


def test_chained_exception_with_one_unhandled_mechanism_is_unhandled(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
    event = error_event(key)
    event["exception"]["values"] = [
        {"type": "KeyError", "value": "cause", "mechanism": {"type": "chained", "handled": True}},
        {"type": "RuntimeError", "value": "effect", "mechanism": {"type": "excepthook", "handled": False}},
    ]
    handled = error_event(key, "false")
    handled["exception"]["values"][0]["mechanism"] = {"type": "logging"}  # no 'handled': not unhandled
    _, body = envelope(({"type": "event"}, event), ({"type": "event"}, handled))
    assert post_envelope(shared, body, token).status_code == 200
    with shared.client() as api:
        assert counts(api, "unhandled_exceptions", flag=key) == {"on": 1}
        assert counts(api, "errors", flag=key) == {"on": 1, "off": 1}


def test_huge_envelopes_are_413_and_store_nothing(shared: Server, token: str) -> None:
    with shared.client() as api:
        key = new_flag(api)
        before = env_totals(api)
    _, body = envelope(({"type": "event"}, error_event(key)))
    padded = body + b"\n" * (5 * 1024 * 1024 + 1 - len(body))
    response = post_envelope(shared, padded, token)
    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "too_large"
    bomb = brotli.compress(body + b"\n" * (25 * 1024 * 1024))  # small on the wire, 25 MiB inflated
    assert len(bomb) < 1024 * 1024
    response = post_envelope(shared, bomb, token, headers={"Content-Encoding": "br"})
    assert response.status_code == 413, response.text
    response = post_envelope(
        shared,
        json.dumps({**error_event(key), "extra": "x" * (6 * 1024 * 1024)}).encode(),
        token,
        path="store",
    )
    assert response.status_code == 413, response.text
    with shared.client() as api:
        assert env_totals(api) == before
        assert counts(api, "errors", flag=key) == {}


def test_user_id_is_bucketed_with_the_rollout_in_force_at_the_event_time(shared: Server, token: str) -> None:
    users = [f"hist-user-{i}" for i in range(80)]
    with shared.client() as api:
        key = new_flag(api, rollout=20)
        at_20 = in_force_from(api, key)
        put = api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 60})
        assert put.status_code == 200, put.text
        at_60 = in_force_from(api, key)

    def event(user: str, at: float, as_text: bool) -> dict[str, Any]:  # SDKs send either form
        return error_event(None, timestamp=iso(at) if as_text else at, user={"id": user})

    _, body = envelope(
        *(({"type": "event"}, event(u, at, i % 2 == 0)) for at in (at_20, at_60) for i, u in enumerate(users))
    )
    assert post_envelope(shared, body, token).status_code == 200
    on = sum(in_rollout(key, u, 20) for u in users) + sum(in_rollout(key, u, 60) for u in users)
    with shared.client() as api:
        assert counts(api, "errors", flag=key) == {"on": on, "off": 2 * len(users) - on}

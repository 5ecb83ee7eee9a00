"""Request telemetry with one line of set-up: a FastAPI app and a Flask app send `request` and `error`
events with the flags each request evaluated, and the server's error_rate, api_latency_p95 and
unhandled_exceptions come out per variant."""

import asyncio
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rampup.sdk import Client, RampupASGIMiddleware, RampupWSGIMiddleware, instrument_flask
from tests.sdk.conftest import FaultProxy, Rampup
from tests.support.clock import ManualClock
from tests.support.waiting import PATIENCE_S

USERS = [f"user-{i}" for i in range(200)]


@pytest.fixture
def proxy(rampup: Rampup, proxy_to: Callable[[str], FaultProxy]) -> FaultProxy:
    """Between the client and the server, to read the events one by one as well."""
    return proxy_to(rampup.server.url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["events"])
def client(
    request: pytest.FixtureRequest, rampup: Rampup, proxy: FaultProxy, clock: ManualClock
) -> Iterator[Client]:
    """Sending every event as it is, so a test can read them one by one; or, where a test asks for it,
    summaries (the default). Its telemetry is timed by `clock`: it sends when a test flushes."""
    with Client(
        proxy.url,
        rampup.sdk_token,
        ingest_token=rampup.ingest_token,
        exposures=False,
        telemetry=request.param,
        clock=clock,
    ) as c:
        rampup.caught_up(c)
        yield c


BOTH_MODES = pytest.mark.parametrize("client", ["events", "summaries"], indirect=True)


def summarized_requests(proxy: FaultProxy) -> int:
    """The requests the summaries the server took stand for (every one counts once in error_rate)."""
    return sum(
        cell["count"]
        for status, summary in proxy.summaries
        if status == 202
        for cell in summary["seconds"]
        if cell["flag"] == "" and cell["metric"] == "error_rate"
    )


def expected_failures(user: str, on: bool) -> bool:
    """The app's bug: users with the feature fail on one request in four."""
    return on and int(user.rsplit("-", 1)[1]) % 4 == 0


def fastapi_app(client: Client, key: str, clock: ManualClock | None = None) -> FastAPI:
    """With `clock` (the client's), a request with the feature takes 250 ms on it, one without 125 ms."""
    app = FastAPI()
    app.add_middleware(RampupASGIMiddleware, client=client)

    def serve(user: str) -> bool:
        on = client.is_enabled(key, user)
        if clock is not None:
            clock.advance(0.25 if on else 0.125)
        return on and expected_failures(user, True)

    @app.get("/sync/{user}")
    def sync_route(user: str) -> dict[str, Any]:  # runs in the threadpool: a copied context
        if serve(user):
            raise RuntimeError(f"workstation broke for {user}")
        return {"ok": True}

    @app.get("/async/{user}")
    async def async_route(user: str) -> JSONResponse:
        if serve(user):
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True})

    return app


def asgi_get(
    app: Any, *paths: str, headers: dict[str, str] | None = None, raise_app_exceptions: bool = False
) -> list[httpx.Response]:
    """GETs one after the other, in process (httpx's ASGI transport)."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=PATIENCE_S) as http:
            return [await http.get(path, headers=headers) for path in paths]

    return asyncio.run(run())


def per_variant(rampup: Rampup, metric: str, key: str) -> dict[str, dict[str, Any]]:
    return dict(rampup.metric(metric, key)["variants"])


@BOTH_MODES
def test_fastapi_requests_feed_the_gates_per_variant(
    rampup: Rampup, client: Client, proxy: FaultProxy, clock: ManualClock
) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    rampup.caught_up(client)
    on = {u: client.is_enabled(key, u) for u in USERS}
    responses = asgi_get(
        fastapi_app(client, key, clock), *(f"/{kind}/{user}" for user in USERS for kind in ("sync", "async"))
    )
    assert [r.status_code for r in responses] == [
        code if expected_failures(user, on[user]) else 200 for user in USERS for code in (500, 503)
    ]
    assert client.flush(PATIENCE_S)

    failing = sum(expected_failures(u, on[u]) for u in USERS)
    treated = sum(on.values())
    error_rate = per_variant(rampup, "error_rate", key)
    assert (error_rate["on"]["count"], error_rate["on"]["failures"]) == (2 * treated, 2 * failing)
    assert (error_rate["off"]["count"], error_rate["off"]["failures"]) == (2 * (200 - treated), 0)
    latency = per_variant(rampup, "api_latency_p95", key)
    assert latency["on"]["samples"] == 2 * treated and latency["on"]["value"] == pytest.approx(250, rel=0.01)
    assert latency["off"]["value"] == pytest.approx(125, rel=0.01), "what each request took on the clock"
    unhandled = per_variant(rampup, "unhandled_exceptions", key)
    assert unhandled["on"]["count"] == failing
    assert unhandled.get("off", {"count": 0})["count"] == 0
    if proxy.summaries:  # summarized: no event went one by one, and the summaries stand for every request
        assert proxy.events() == [] and summarized_requests(proxy) == 2 * len(USERS)
        return

    requests = [e for e in proxy.events() if e["type"] == "request"]
    assert {e["tags"]["route"] for e in requests} == {"/sync/{user}", "/async/{user}"}
    assert all(e["flags"] == {key: on[e["targeting_key"]]} for e in requests)
    errors = [e for e in proxy.events() if e["type"] == "error"]
    assert all(e["unhandled"] and e["message"].startswith("RuntimeError: workstation broke") for e in errors)


def test_the_exception_propagates_unchanged(rampup: Rampup, client: Client) -> None:
    key = rampup.new_flag(enabled=True, rollout=100)
    rampup.caught_up(client)
    with pytest.raises(RuntimeError, match="broke for user-4"):
        asgi_get(fastapi_app(client, key), "/sync/user-4", raise_app_exceptions=True)


def test_concurrent_requests_keep_their_own_flags(rampup: Rampup, client: Client, proxy: FaultProxy) -> None:
    keys = [rampup.new_flag(enabled=True, rollout=100) for _ in range(3)]
    rampup.caught_up(client)

    def flags_of(n: int) -> set[str]:
        return {keys[n % 3], keys[(n + 1) % 3]} if n % 2 == 0 else {keys[n % 3]}

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        n = int(scope["path"].rsplit("/", 1)[1])
        for key in sorted(flags_of(n)):
            client.is_enabled(key, f"user-{n}")
            await asyncio.sleep(0.001)  # the other requests run in between
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def requests() -> None:
        transport = httpx.ASGITransport(app=RampupASGIMiddleware(app, client))
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=PATIENCE_S) as http:
            await asyncio.gather(*(http.get(f"/r/{n}") for n in range(60)))

    asyncio.run(requests())
    assert client.flush(PATIENCE_S)
    events = {e["targeting_key"]: e for e in proxy.events() if e["type"] == "request"}
    assert {user: set(e["flags"]) for user, e in events.items()} == {
        f"user-{n}": flags_of(n) for n in range(60)
    }


def test_a_targeting_key_from_the_request(rampup: Rampup, client: Client, proxy: FaultProxy) -> None:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def user_of(scope: MutableMapping[str, Any]) -> str | None:
        return dict(scope["headers"]).get(b"x-user", b"").decode() or None

    middleware = RampupASGIMiddleware(app, client, targeting_key=user_of)
    asgi_get(middleware, "/", headers={"X-User": "user-77"})
    asgi_get(middleware, "/")
    assert client.flush(PATIENCE_S)
    requests = [e for e in proxy.events() if e["type"] == "request"]
    assert [(e.get("targeting_key"), e["status"], e["ok"], "flags" in e) for e in requests] == [
        ("user-77", 204, True, False),
        (None, 204, True, False),
    ]


def flask_app(client: Client, key: str, clock: ManualClock) -> Any:
    app = flask.Flask(__name__)
    instrument_flask(app, client)

    @app.get("/checkout/<user>")
    def checkout(user: str) -> Any:
        if client.is_enabled(key, user) and expected_failures(user, True):
            raise KeyError("cart")
        return {"ok": True}

    @app.get("/stream/<user>")
    def stream(user: str) -> Any:
        client.is_enabled(key, user)

        def body() -> Iterator[str]:
            yield "a"
            clock.advance(0.25)
            yield "b"

        return app.response_class(body())

    return app


@BOTH_MODES
def test_flask_requests_feed_the_gates_per_variant(
    rampup: Rampup, client: Client, proxy: FaultProxy, clock: ManualClock
) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    rampup.caught_up(client)
    on = {u: client.is_enabled(key, u) for u in USERS}
    http = flask_app(client, key, clock).test_client()
    for user in USERS:  # buffered: read and closed, as a WSGI server does
        response = http.get(f"/checkout/{user}", buffered=True)
        assert response.status_code == (500 if expected_failures(user, on[user]) else 200)
    assert http.get("/stream/user-1", buffered=True).data == b"ab"
    assert client.flush(PATIENCE_S)

    failing = sum(expected_failures(u, on[u]) for u in USERS)
    treated = sum(on.values())
    error_rate = per_variant(rampup, "error_rate", key)
    assert (error_rate["on"]["failures"], error_rate["off"]["failures"]) == (failing, 0)
    assert error_rate["on"]["count"] + error_rate["off"]["count"] == 201
    assert per_variant(rampup, "unhandled_exceptions", key)["on"]["count"] == failing
    assert treated > 0
    if proxy.summaries:
        assert proxy.events() == [] and summarized_requests(proxy) == len(USERS) + 1
        return
    streamed = [e for e in proxy.events() if e["type"] == "request" and e["targeting_key"] == "user-1"][-1]
    assert streamed["duration_ms"] == 250, "a streamed response counts until its last byte"
    errors = [e for e in proxy.events() if e["type"] == "error"]
    assert len(errors) == failing and all(e["message"] == "KeyError: 'cart'" for e in errors)


def test_a_plain_wsgi_app(rampup: Rampup, client: Client, proxy: FaultProxy) -> None:
    key = rampup.new_flag(enabled=True, rollout=100)
    rampup.caught_up(client)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise ValueError("bad input")
        client.is_enabled(key, "user-5")
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"made"]

    wrapped = RampupWSGIMiddleware(app, client)
    werkzeug = pytest.importorskip("werkzeug.test")
    http = werkzeug.Client(wrapped)
    assert http.post("/", buffered=True).status_code == 201  # buffered: read and closed, as a server does
    with pytest.raises(ValueError, match="bad input"):
        http.get("/boom")
    assert client.flush(PATIENCE_S)
    kinds = [
        (e["type"], e.get("status"), e.get("ok"), e.get("flags"), e.get("tags"))
        for e in proxy.events()
        if e["type"] in ("request", "error")
    ]
    assert kinds == [
        ("request", 201, True, {key: True}, {"method": "POST"}),
        ("error", None, None, None, {"method": "GET"}),
        ("request", 500, False, None, {"method": "GET"}),
    ]


def test_without_telemetry_the_app_is_unaffected(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=100)
    with Client(rampup.server.url, rampup.sdk_token) as client:
        rampup.caught_up(client)
        responses = asgi_get(fastapi_app(client, key), "/async/user-1", "/sync/user-4")
        assert [r.status_code for r in responses] == [200, 500]
        assert client.stats().errors == {"EVENT_DISCARDED": 3}

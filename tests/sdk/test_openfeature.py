"""The OpenFeature provider and hook, through the real `openfeature-sdk`: the provider answers what the
server's OFREP endpoint answers (errors included), reports readiness and changes as provider events, and the
hook puts flags evaluated through any provider into the current request's telemetry."""

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus
from openfeature.track import TrackingEventDetails

from rampup.sdk import Client, RampupASGIMiddleware
from rampup.sdk.openfeature import RampupHook, RampupProvider
from tests.sdk.conftest import FaultProxy, Rampup, tokens
from tests.sdk.test_client import mixed_flags, users
from tests.support.ports import free_port
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S, wait_until


@pytest.fixture
def domain() -> Iterator[Callable[..., OpenFeatureClient]]:
    """provider → an OpenFeature client of its own domain."""

    def make(provider: Any, *, wait: bool = True) -> OpenFeatureClient:
        name = f"test-{uuid.uuid4().hex}"
        # Waiting keeps a first evaluation from racing the provider's initialisation thread.
        (openfeature.set_provider_and_wait if wait else openfeature.set_provider)(provider, name)
        return openfeature.get_client(name)

    yield make
    openfeature.clear_providers()


@pytest.fixture
def client(rampup: Rampup) -> Iterator[Client]:
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as c:
        rampup.caught_up(c)
        yield c


def ofrep(rampup: Rampup) -> OFREPProvider:
    token = rampup.sdk_token
    return OFREPProvider(rampup.server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}"})


def details(of: OpenFeatureClient, name: str, key: str, ctx: EvaluationContext | None) -> tuple[Any, ...]:
    getters: dict[str, Callable[..., Any]] = {
        "string": of.get_string_details,
        "number": of.get_float_details,
        "object": of.get_object_details,
        "segment_split": of.get_string_details,
    }
    get = getters.get(name, of.get_boolean_details)
    default: Any = {"string": "-", "segment_split": "-", "number": -1.0, "object": {"default": True}}.get(
        name, True
    )
    d = get(key, default, ctx)
    return d.value, d.variant, d.reason, d.error_code, d.flag_metadata.get("version")


def test_the_provider_answers_what_the_ofrep_endpoint_answers(
    rampup: Rampup, client: Client, domain: Callable[..., OpenFeatureClient]
) -> None:
    population = users(1200, seed=11)
    flags = mixed_flags(rampup, population)
    rampup.caught_up(client)
    local, remote = domain(RampupProvider(client)), domain(ofrep(rampup))
    names = list(flags)
    for i, (user, attributes) in enumerate(population):
        name = names[i % len(names)]
        ctx = EvaluationContext(user, attributes)
        assert details(local, name, flags[name], ctx) == details(remote, name, flags[name], ctx), (name, user)

    errors: list[tuple[str, str, EvaluationContext | None]] = [
        ("split", "no-such-flag", EvaluationContext("user-1")),  # FLAG_NOT_FOUND
        ("split", flags["split"], None),  # TARGETING_KEY_MISSING
        ("string", flags["split"], EvaluationContext("user-1")),
    ]  # TYPE_MISMATCH
    for name, key, maybe in errors:
        mine, theirs = details(local, name, key, maybe), details(remote, name, key, maybe)
        assert mine[0] == theirs[0] and mine[2:4] == theirs[2:4] == (Reason.ERROR, mine[3])
    assert [details(local, n, k, c)[3] for n, k, c in errors] == [
        ErrorCode.FLAG_NOT_FOUND,
        ErrorCode.TARGETING_KEY_MISSING,
        ErrorCode.TYPE_MISMATCH,
    ]
    # Flags that need no targeting key evaluate without one, as OFREP does.
    assert details(local, "off", flags["off"], None) == details(remote, "off", flags["off"], None)


def test_integer_and_float_resolution(
    rampup: Rampup, client: Client, domain: Callable[..., OpenFeatureClient]
) -> None:
    limits = {"type": "number", "variants": [{"name": "low", "value": 10}, {"name": "high", "value": 2.5}]}
    key = rampup.new_flag(definition=limits, enabled=True, rollout=0)
    rampup.caught_up(client)
    of = domain(RampupProvider(client))
    assert of.get_integer_details(key, 0, EvaluationContext("u")).value == 10
    assert of.get_float_details(key, 0.0, EvaluationContext("u")).value == 10.0
    rampup.set_state(key, rollout=100)
    rampup.caught_up(client)
    fractional = of.get_integer_details(key, 7, EvaluationContext("u"))
    assert (fractional.value, fractional.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert of.get_float_details(key, 0.0, EvaluationContext("u")).value == 2.5


def test_not_ready_until_the_server_answers_then_ready(
    make_database_url: Callable[[str], str],
    server_factory: Callable[..., Server],
    domain: Callable[..., OpenFeatureClient],
) -> None:
    database_url, port = make_database_url("sqlite"), free_port()
    server = server_factory(database_url, port=port)
    rampup = Rampup(server, *tokens(server))
    key = rampup.new_flag(enabled=True, rollout=100)
    server.stop()

    ready = threading.Event()
    with Client(server.url, rampup.sdk_token) as client:
        of = domain(RampupProvider(client, ready_timeout=0.2), wait=False)
        of.add_handler(ProviderEvent.PROVIDER_READY, lambda _: ready.set())
        wait_until(
            lambda: of.get_provider_status() is ProviderStatus.ERROR,
            "of.get_provider_status() is ProviderStatus.ERROR",
        )
        not_yet = of.get_boolean_details(key, True, EvaluationContext("user-1"))
        assert (not_yet.value, not_yet.error_code) == (True, ErrorCode.PROVIDER_NOT_READY)

        server_factory(database_url, port=port)
        wait_until(ready.is_set, "the provider ready once the server is back")
        assert of.get_provider_status() is ProviderStatus.READY
        assert of.get_boolean_value(key, False, EvaluationContext("user-1")) is True


def test_a_kill_switch_is_a_configuration_change_event(
    rampup: Rampup, client: Client, domain: Callable[..., OpenFeatureClient]
) -> None:
    key = rampup.new_flag(enabled=True, rollout=100)
    rampup.caught_up(client)
    changes: list[EventDetails] = []
    of = domain(RampupProvider(client))
    wait_until(
        lambda: of.get_provider_status() is ProviderStatus.READY,
        "of.get_provider_status() is ProviderStatus.READY",
    )
    of.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changes.append)
    rampup.kill(key)
    wait_until(
        lambda: any(key in (c.flags_changed or []) for c in changes),
        "any(key in (c.flags_changed or []) for c in changes)",
    )
    assert of.get_boolean_details(key, True, EvaluationContext("user-1")).reason == Reason.DISABLED


def test_the_hook_puts_flags_from_any_provider_into_the_request(
    rampup: Rampup, proxy_to: Callable[[str], FaultProxy], domain: Callable[..., OpenFeatureClient]
) -> None:
    """Flags evaluated through OFREP, not the Rampup client, still reach the request's telemetry."""
    key = rampup.new_flag(enabled=True, rollout=100)
    proxy = proxy_to(rampup.server.url)
    of = domain(ofrep(rampup))
    of.add_hooks([RampupHook()])
    with Client(  # raw events: the test reads the request's own
        proxy.url, rampup.sdk_token, ingest_token=rampup.ingest_token, exposures=False, telemetry="events"
    ) as client:

        async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            # The OFREP provider blocks on HTTP: run it in a thread, as a sync framework route would.
            await asyncio.to_thread(of.get_boolean_value, key, False, EvaluationContext("user-9"))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def get() -> None:
            transport = httpx.ASGITransport(app=RampupASGIMiddleware(app, client))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://app", timeout=PATIENCE_S
            ) as http:
                await http.get("/")

        asyncio.run(get())
        assert client.flush(10)
    [request] = [e for e in proxy.events() if e["type"] == "request"]
    assert (request["flags"], request["targeting_key"]) == ({key: True}, "user-9")


def test_tracking_through_openfeature(
    rampup: Rampup, client: Client, domain: Callable[..., OpenFeatureClient]
) -> None:
    key = rampup.new_flag(enabled=True, rollout=50)
    rampup.caught_up(client)
    name = f"evt-{uuid.uuid4().hex[:8]}"
    of = domain(RampupProvider(client))
    on = 0
    for i in range(40):
        ctx = EvaluationContext(f"user-{i}")
        on += of.get_boolean_value(key, False, ctx)
        of.track(name, ctx, TrackingEventDetails(value=2, attributes={"engagement": True, "plan": "pro"}))
    assert client.flush(10)
    counts = rampup.metric(f"event:{name}", key)["variants"]
    assert (counts["on"]["count"], counts["off"]["count"]) == (on, 40 - on)
    assert rampup.metric("engagement", key)["variants"]["on"]["users"] == on

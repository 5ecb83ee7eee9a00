"""No requests to places the operator did not allow. A fresh server (no RAMPUP_ALLOWED_HOSTS) refuses
channels and plan webhooks aimed inside its network when they are saved, and checks again at every connection;
a receiver's answer never comes back in a delivery error."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.receivers import Receiver
from tests.support.servers import FAST, Server
from tests.support.waiting import wait_until

SECRET = "a-long-shared-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(refusal=b"internal detail: db password is hunter2") as r:
        yield r


def webhook(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, "secret": SECRET}


def deliveries(c: httpx.Client, channel: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/notifications")
    assert r.status_code == 200, r.text
    return [d for d in r.json() if d["channel"] == channel]


def test_destinations_inside_the_network_are_refused_when_saved(
    receiver: Receiver, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), allowed_hosts="")
    port = receiver.httpd.server_address[1]
    refused: list[tuple[dict[str, Any], str, str]] = [
        (webhook("loop", receiver.url()), "url", "loopback"),
        (webhook("named", f"http://localhost:{port}"), "url", "localhost (127.0.0.1) is a loopback address"),
        (webhook("meta", "http://169.254.169.254/latest/meta-data/"), "url", "link-local"),
        (webhook("lan", "http://10.1.2.3/hook"), "url", "private"),
        (webhook("any", "http://0.0.0.0:8400/"), "url", "unspecified"),
        (webhook("v6", "http://[::1]/hook"), "url", "loopback"),
        (webhook("mapped", "http://[::ffff:169.254.169.254]/"), "url", "link-local"),
        (webhook("file", "file:///etc/passwd"), "url", "http(s)"),
        (webhook("gopher", "gopher://127.0.0.1:6379/_FLUSHALL"), "url", "http(s)"),
        (
            {"name": "slack", "type": "slack", "url": "https://192.168.0.10/services/T0/B0/x"},
            "url",
            "private",
        ),
        (
            {"name": "pd", "type": "pagerduty", "routing_key": "k", "url": "http://127.0.0.1/v2"},
            "url",
            "loopback",
        ),
        (
            {
                "name": "mail",
                "type": "email",
                "host": "localhost",
                "port": 25,
                "from": "a@b.c",
                "to": ["d@e.f"],
            },
            "host",
            "loopback",
        ),
    ]
    with server.client() as admin:
        for body, where, says in refused:
            r = admin.post("/api/v1/channels", json=body)
            assert r.status_code == 422, (body, r.text)
            error = r.json()["error"]
            assert error["where"] == where and says in error["message"], (body, error)
        assert admin.get("/api/v1/channels").json() == [], "a refused channel is not saved"
        created = admin.post("/api/v1/flags", json={"key": "egress", "type": "boolean"})
        assert created.status_code == 201, created.text
        plan = {
            "name": "p",
            "flag": "egress",
            "environment": "production",
            "stages": [{"name": "all", "percentage": 100}],
            "hooks": {"webhook": "http://169.254.169.254/latest/meta-data/iam/"},
        }
        r = admin.post("/api/v1/rollouts", json={"plan": plan})
        assert r.status_code == 422 and r.json()["error"]["where"] == "hooks.webhook", r.text
        assert admin.get("/api/v1/rollouts").json() == []
    assert receiver.snapshot() == [], "nothing was called"


def test_an_allowed_receiver_is_checked_again_at_every_connection(
    receiver: Receiver, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """The operator allows loopback, a channel is saved and delivers; then the server restarts without the
    allowance (as if the name now resolved somewhere else): the stored channel is refused when connecting."""
    database = make_database_url("sqlite")
    first = server_factory(database, extra_env=FAST, allowed_hosts="127.0.0.0/8")
    with first.client() as admin:
        assert admin.post("/api/v1/channels", json=webhook("ops", receiver.url())).status_code == 201
        assert admin.post("/api/v1/channels/ops/test").status_code == 202
        wait_until(lambda: len(receiver.accepted()) == 1, "the test notification delivered")
    first.stop()

    second = server_factory(database, extra_env=FAST, allowed_hosts="")
    with second.client() as admin:
        assert admin.post("/api/v1/channels/ops/test").status_code == 202

        def failing() -> list[dict[str, Any]]:
            return [d for d in deliveries(admin, "ops") if d["status"] == "failing"]

        wait_until(
            failing, "the second test notification refused", detail=lambda: str(deliveries(admin, "ops"))
        )
        error = failing()[0]["last_error"]
    assert error.startswith("refused: 127.0.0.1 is a loopback address"), error
    assert len(receiver.snapshot()) == 1, "the receiver was not called again"


def test_a_receiver_s_answer_is_never_repeated_in_a_delivery_error(
    receiver: Receiver, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    receiver.refusing = True
    server = server_factory(make_database_url("sqlite"), extra_env=FAST)
    with server.client() as admin:
        assert admin.post("/api/v1/channels", json=webhook("ops", receiver.url())).status_code == 201
        assert admin.post("/api/v1/channels/ops/test").status_code == 202
        wait_until(lambda: receiver.refused(), "the receiver refused")
        wait_until(lambda: deliveries(admin, "ops")[0]["last_error"], "the refusal recorded")
        error = deliveries(admin, "ops")[0]["last_error"]
    assert error == "answered 503 Service Unavailable", error

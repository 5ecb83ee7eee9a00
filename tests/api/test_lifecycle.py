"""A flag's life against a real server on a manual clock: evaluations counted, stale after 30 days without
one, kill switches never stale, each change of status told once to the flag's channels."""

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.api import new_token
from tests.support.receivers import Receiver
from tests.support.servers import FAST, Server
from tests.support.waiting import wait_until

SECRET = "lifecycle-secret"


def start(server_factory: Callable[..., Server], database_url: str) -> Server:
    return server_factory(database_url, extra_env=FAST, manual_clock=True)


def flag(api: httpx.Client, key: str, kind: str, notify: list[str]) -> None:
    assert api.post("/api/v1/flags", json={"key": key, "kind": kind, "notify": notify}).status_code == 201
    put = api.put(f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": 100})
    assert put.status_code == 200, put.text


def life(api: httpx.Client, key: str) -> dict[str, Any]:
    lives = api.get("/api/v1/lifecycle").json()
    return next(f for f in lives if f["flag"] == key)


def ofrep(server: Server, sdk: str, key: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": "user-1"}},
        headers={"Authorization": f"Bearer {sdk}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def flag_notifications(receiver: Receiver) -> list[dict[str, Any]]:
    return [b for b in receiver.bodies() if str(b.get("type", "")).startswith("flag.")]


def all_delivered(api: httpx.Client) -> bool:
    return all(d["status"] == "delivered" for d in api.get("/api/v1/notifications").json())


def test_unused_flags_go_stale_after_30_days_kill_switches_never_and_the_channel_hears_once(
    server_factory: Callable[..., Server], database_url: str
) -> None:
    server = start(server_factory, database_url)
    api = server.client()
    with Receiver(SECRET) as receiver:
        channel = {"name": "team", "type": "webhook", "url": receiver.url(), "secret": SECRET}
        assert api.post("/api/v1/channels", json=channel).status_code == 201
        flag(api, "checkout", "release", ["team"])
        flag(api, "payments-off", "kill-switch", ["team"])
        sdk, ingest = new_token(api, "sdk"), new_token(api, "ingest")

        for _ in range(3):
            assert ofrep(server, sdk, "checkout")["value"] is True
        ofrep(server, sdk, "payments-off")
        exposure = {"type": "exposure", "targeting_key": "u-2", "flag": "checkout", "variant": "on"}
        events = httpx.post(
            f"{server.url}/api/v1/events",
            json={"events": [exposure]},
            headers={"Authorization": f"Bearer {ingest}"},
        )
        assert events.status_code == 202, events.text
        server.advance("1s")

        counts = api.get("/api/v1/flags/checkout/evaluations").json()["environments"]["production"]
        assert counts["total"] == 4  # three OFREP evaluations and one exposure
        assert counts["days"][-1]["count"] == 4 and counts["last_evaluated_at"] is not None
        assert life(api, "checkout")["status"] == "active"

        server.advance("29d")
        assert life(api, "checkout")["status"] == "active"
        server.advance("2d")
        stale = life(api, "checkout")
        assert (stale["status"], stale["reasons"]) == ("stale", ["not_evaluated"])
        assert "not evaluated for 31 days" in stale["reason"]
        kill_switch = life(api, "payments-off")
        assert (kill_switch["status"], kill_switch["reasons"]) == ("active", ["permanent"])
        listed = {f["key"]: f for f in api.get("/api/v1/flags", params={"status": "stale"}).json()}
        assert "checkout" in listed and "payments-off" not in listed  # (the example flag is stale too)
        assert listed["checkout"]["status"] == "stale"

        wait_until(lambda: flag_notifications(receiver), "the stale flag announced to its channel")
        server.advance("1h")  # another pass: nothing changed, nothing more to say
        wait_until(lambda: all_delivered(api), "every queued notification delivered")
        (told,) = flag_notifications(receiver)
        assert told["type"] == "flag.stale" and told["details"]["flag"] == "checkout"
        assert "not evaluated for 31 days" in told["text"]

        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "rampup",
                "flag",
                "stale",
                "--server",
                server.url,
                "--token",
                server.admin_token,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"COLUMNS": "250", "PATH": ""},
        )
        assert shown.returncode == 0, shown.stderr
        assert "checkout" in shown.stdout and "not evaluated for 31 days" in shown.stdout
        assert "payments-off" not in shown.stdout
    assert api.get("/api/v1/lifecycle", params={"status": "forever"}).status_code == 422

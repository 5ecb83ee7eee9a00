"""`rampup demo`: a throwaway server with the example plan in accelerated time and synthetic users.

Everything goes through the product's own front doors: the plans are started over the HTTP API, the users'
flags are evaluated by the Python SDK, and their requests, page loads, errors and engaged actions are posted
to the ingest API. Two rollouts run side by side on the same traffic:

- `workstation`, the example plan (examples/plans/workstation.yaml) with stages of about a minute, which finishes once a person approves the
  last stage (as that plan asks);
- `checkout-v2`, whose treatment starts failing when it reaches 25%, so the controller rolls it back by itself.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from rampup.sdk import Client

__all__ = ["DemoTraffic", "WORKSTATION_PLAN", "CHECKOUT_PLAN", "REGRESSING_FLAG", "set_up"]

REGRESSING_FLAG = "checkout-v2"
# The example plan (examples/plans/workstation.yaml): 48 hours a stage become a minute, 5-minute windows 30 s.
# Without its engagement gate: engagement per user adds up whole days, so in minute-long stages the users who
# got the feature a minute ago look less engaged than those who had it all day.
WORKSTATION_PLAN: dict[str, Any] = {
    "name": "workstation-rollout",
    "flag": "workstation",
    "environment": "production",
    "stages": [
        {
            "name": "Early Access",
            "percentage": 10,
            "min_duration": "1m",
            "prerequisites": ["Rollback plan ready", "Support team briefed"],
        },
        {"name": "Expanded", "percentage": 25, "min_duration": "1m"},
        {"name": "General", "percentage": 50, "min_duration": "1m"},
        {"name": "Full Rollout", "percentage": 100, "min_duration": "1m", "approval": "required"},
    ],
    "gates": [
        {"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%", "disable": "> 1%", "for": "10s"},
        {"metric": "unhandled_exceptions", "window": "30s", "rollback": "> 5"},
        {"metric": "api_latency_p95", "target": "< 500ms", "rollback": "> 1000ms", "for": "20s"},
        {"metric": "lcp_p75", "target": "< 2.5s", "rollback": "> 4s", "for": "20s"},
        {"metric": "data_loss", "rollback_to": 0},
        {"metric": "satisfaction", "compare": "control", "warn": "< -0.3"},
    ],
}
CHECKOUT_PLAN: dict[str, Any] = {
    "name": "checkout-v2-rollout",
    "flag": REGRESSING_FLAG,
    "environment": "production",
    "stages": [
        {"name": "Early Access", "percentage": 10, "min_duration": "1m"},
        {"name": "Expanded", "percentage": 25, "min_duration": "1m"},
        {"name": "General", "percentage": 50, "min_duration": "1m"},
        {"name": "Full Rollout", "percentage": 100, "min_duration": "1m"},
    ],
    "gates": [
        {"metric": "error_rate", "target": "< 0.5%", "rollback": "> 1%", "for": "10s"},
        {"metric": "api_latency_p95", "target": "< 500ms", "rollback": "> 1000ms", "for": "20s"},
    ],
}
USERS = 20_000
FEEDBACK_SHARE = 0.004  # of the web app's requests, a user leaves a rating (and now and then a comment)
# Ratings (1-5) the web app's users give, and what some of them write: the new UI is liked a little better.
RATINGS = {True: (5, 4, 4, 5, 3, 4), False: (4, 3, 4, 4, 5, 3)}
COMMENTS = {
    True: ("Love the new layout", "Faster to find my orders", "Where did the export button go?"),
    False: ("Fine as it is", "The old screen is cluttered"),
}


@dataclass(frozen=True, slots=True)
class Tokens:
    sdk: str
    ingest: str


def set_up(api: httpx.Client) -> tuple[Tokens, dict[str, int]]:
    """Flags, tokens, and the two rollouts started; returns the tokens and each flag's rollout id."""

    def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = api.request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json()  # type: ignore[no-any-return]

    call(
        "PATCH",
        "/api/v1/flags/workstation",
        {
            "description": "The new workstation UI, rolled out by the example plan (examples/plans/workstation.yaml)"
        },
    )
    call(
        "POST",
        "/api/v1/flags",
        {"key": REGRESSING_FLAG, "description": "A new checkout that fails under load"},
    )
    sdk = call(
        "POST", "/api/v1/tokens", {"scope": "sdk", "environment": "production", "name": "demo web app"}
    )
    ingest = call("POST", "/api/v1/tokens", {"scope": "ingest", "environment": "production", "name": "demo"})
    rollouts = {
        plan["flag"]: int(call("POST", "/api/v1/rollouts", {"plan": plan})["id"])
        for plan in (WORKSTATION_PLAN, CHECKOUT_PLAN)
    }
    return Tokens(sdk["token"], ingest["token"]), rollouts


class DemoTraffic:
    """Synthetic users of a web app and its checkout service: each batch is `rate / batches_per_second`
    requests from random users, page loads, rare unhandled errors, now and then a user's rating and comment.
    The new checkout fails 8% of its requests while its rollout is at stage 2 (25%) or later."""

    def __init__(
        self,
        server_url: str,
        tokens: Tokens,
        regressing_rollout: int,
        admin_token: str,
        *,
        rate: float = 1000.0,
        seed: int = 7,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self._url = server_url
        self._tokens = tokens
        self._rollout = regressing_rollout
        self._admin = admin_token
        self._rate = rate
        self._random = random.Random(seed)
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rampup-demo-traffic", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _regressing(self, admin: httpx.Client) -> bool:
        r = admin.get(f"/api/v1/rollouts/{self._rollout}")
        return r.status_code == 200 and r.json()["stage"]["number"] >= 2

    def batch(self, flags: Client, size: int, regressing: bool, at: datetime) -> list[dict[str, Any]]:
        """Half the requests are the web app's, reported with the user and the `workstation` variant they saw;
        half are the checkout service's, reported with only the `checkout-v2` variant it served, so a failing
        checkout counts against that flag alone, not against every flag its users happen to have."""
        rnd, stamp, events = self._random, at.isoformat(), []
        for _ in range(size):
            user = f"user-{rnd.randrange(USERS)}"
            if rnd.random() < 0.5:
                on = flags.is_enabled(REGRESSING_FLAG, user)
                failure = 0.08 if regressing and on else 0.0001
                events.append(
                    {
                        "type": "request",
                        "timestamp": stamp,
                        "flags": {REGRESSING_FLAG: on},
                        "duration_ms": round(rnd.lognormvariate(5.2, 0.3), 1),
                        "ok": rnd.random() >= failure,
                    }
                )
                continue
            new_ui = flags.is_enabled("workstation", user)
            common = {"timestamp": stamp, "targeting_key": user, "flags": {"workstation": new_ui}}
            slow = 40.0 if new_ui else 0.0  # the new UI is a little slower, well inside its target
            events.append(
                {
                    **common,
                    "type": "request",
                    "duration_ms": round(rnd.lognormvariate(5.0, 0.35) + slow, 1),
                    "ok": rnd.random() >= 0.0001,
                }
            )
            if rnd.random() < 0.66:
                lcp = rnd.lognormvariate(7.4, 0.2) + (150.0 if new_ui else 0.0)
                events.append({**common, "type": "page_load", "lcp_ms": round(lcp)})
            if rnd.random() < 0.0001:
                events.append(
                    {**common, "type": "error", "unhandled": True, "message": "TypeError in a widget"}
                )
            if rnd.random() < FEEDBACK_SHARE:
                events.append(self._feedback(common, new_ui))
        return events

    def _feedback(self, common: dict[str, Any], new_ui: bool) -> dict[str, Any]:
        rnd = self._random
        event = {**common, "type": "feedback", "rating": rnd.choice(RATINGS[new_ui])}
        if rnd.random() < 0.3:
            event["comment"] = rnd.choice(COMMENTS[new_ui])
        return event

    def _run(self) -> None:
        per_second = 4
        size = max(1, round(self._rate / per_second))
        headers = {"Authorization": f"Bearer {self._tokens.ingest}"}
        with (
            Client(self._url, self._tokens.sdk, exposures=False) as flags,
            httpx.Client(base_url=self._url, headers=headers, timeout=10) as ingest,
            httpx.Client(
                base_url=self._url, headers={"Authorization": f"Bearer {self._admin}"}, timeout=10
            ) as admin,
        ):
            regressing, checked = False, 0.0
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    if started - checked >= 1.0:
                        regressing, checked = self._regressing(admin), started
                    events = self.batch(flags, size, regressing, datetime.now(UTC))
                    r = ingest.post("/api/v1/events", json={"events": events})
                    if r.status_code == 202:
                        self.sent += len(events)
                    elif r.status_code != 429:  # 429: the server sheds load; the next batch will do
                        self._on_error(f"ingest answered {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self._on_error(f"ingest: {exc}")
                self._stop.wait(max(0.0, 1 / per_second - (time.monotonic() - started)))

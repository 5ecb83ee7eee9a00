"""Request events from a fixed pool of users, the way an application using an SDK would report them.

Every batch is one request from each user of the pool (with `exposures`, also the exposure event an SDK sends
when it evaluates the flag), and a user is in the treatment iff
`in_rollout(salt, user, percentage)` for the flag's state read just before the batch is sent — what an SDK
evaluating the flag would have answered. Failures, when asked for, are every k-th of the treatment's
requests only, so rates are exact; they move on by one treatment user each batch, so they are spread over
the users rather than always the same few (gates count evidence per user).
"""

import json
from typing import Any

import httpx

from rampup.core.bucketing import in_rollout
from tests.support.waiting import PATIENCE_S

__all__ = ["Traffic", "flag_state", "send_ratings"]


def flag_state(c: httpx.Client, flag: str, environment: str = "production") -> dict[str, Any]:
    r = c.get(f"/api/v1/flags/{flag}/environments/{environment}")
    assert r.status_code == 200, r.text
    return dict(r.json())


class Traffic:
    """`send()` posts one batch over `c` (a client with an ingest-capable token) and counts what it sent."""

    def __init__(
        self,
        c: httpx.Client,
        flag: str,
        users: int = 2000,
        environment: str = "production",
        exposures: bool = False,
    ) -> None:
        self.c, self.flag, self.environment, self.exposures = c, flag, environment, exposures
        self.users = [f"{flag}-user-{i}" for i in range(users)]
        self._bodies: dict[tuple[Any, ...], tuple[bytes, int, int, int]] = {}
        self.requests = self.treatment = self.failures = self.batches = 0
        self.unhandled = (0, 0)  # unhandled exceptions each batch, from the first treatment and control users
        self.slower = 1.0  # the treatment's request durations times this (each user's duration is their own)
        self.incident = False  # failures hit every user alike, with the flag or not: the environment's
        # the first users of the treatment and of control who send nothing but their exposures (with `exposures`)
        self.silent = (0, 0)

    def _body(
        self, percentage: float, enabled: bool, salt: str, fail_every: int | None
    ) -> tuple[bytes, int, int, int]:
        shift = self.batches % fail_every if fail_every else 0
        key = (
            percentage,
            enabled,
            salt,
            fail_every,
            shift,
            self.unhandled,
            self.slower,
            self.incident,
            self.silent,
        )
        if key not in self._bodies:
            on = [enabled and in_rollout(salt, user, percentage) for user in self.users]
            treatment = [i for i, yes in enumerate(on) if yes]
            control = [i for i, yes in enumerate(on) if not yes]
            silent = set(treatment[: self.silent[0]] + control[: self.silent[1]])
            # every k-th treatment request (every k-th request in an incident) fails, counted from a start that
            # moves with the batch
            pool = list(range(len(self.users))) if self.incident else treatment
            failing = (
                {
                    pool[(m * fail_every - 1 + shift) % len(pool)]
                    for m in range(1, len(pool) // fail_every + 1)
                }
                if fail_every and pool
                else set()
            )
            events = [
                {
                    "type": "request",
                    "targeting_key": user,
                    "flags": {self.flag: on[i]},
                    "duration_ms": (40.0 + i % 200) * (self.slower if on[i] else 1.0),
                    "ok": i not in failing,
                }
                for i, user in enumerate(self.users)
                if i not in silent
            ]
            if self.exposures:
                events += [
                    {
                        "type": "exposure",
                        "targeting_key": user,
                        "flag": self.flag,
                        "variant": "on" if on[i] else "off",
                    }
                    for i, user in enumerate(self.users)
                ]
            throwing = treatment[: self.unhandled[0]] + control[: self.unhandled[1]]
            events += [
                {
                    "type": "error",
                    "targeting_key": self.users[i],
                    "flags": {self.flag: on[i]},
                    "unhandled": True,
                }
                for i in throwing
            ]
            treated, failed = len(treatment), len(failing.intersection(treatment))
            self._bodies[key] = (json.dumps({"events": events}).encode(), treated, failed, len(events))
        return self._bodies[key]

    def send(self, fail_every: int | None = None) -> dict[str, Any]:
        """One batch: every user makes one request. Returns the flag state the batch was attributed with."""
        state = flag_state(self.c, self.flag, self.environment)
        body, treated, failed, sent = self._body(
            state["rollout"], state["enabled"], state["salt"], fail_every
        )
        r = self.c.post(
            "/api/v1/events",
            params={"environment": self.environment},
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=PATIENCE_S,
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": sent}
        self.batches += 1
        self.requests += len(self.users)
        self.treatment += treated
        self.failures += failed
        return state


def send_ratings(
    c: httpx.Client,
    flag: str,
    users: list[str],
    treatment: list[int],
    control: list[int],
    comment: str | None = None,
    environment: str = "production",
) -> tuple[int, int]:
    """Each user rates once (1–5) with the flag as it stands now: the treatment's users take their ratings in
    turn from `treatment`, the control's from `control`; the treatment's users add `comment`. Returns how many
    rated in each."""
    state = flag_state(c, flag, environment)
    events: list[dict[str, Any]] = []
    rated = {True: 0, False: 0}
    for user in users:
        on = bool(state["enabled"] and in_rollout(state["salt"], user, state["rollout"]))
        pool = treatment if on else control
        events.append(
            {
                "type": "feedback",
                "targeting_key": user,
                "flags": {flag: on},
                "rating": pool[rated[on] % len(pool)],
            }
        )
        rated[on] += 1
        if on and comment:
            events[-1]["comment"] = comment
    r = c.post(
        "/api/v1/events", params={"environment": environment}, json={"events": events}, timeout=PATIENCE_S
    )
    assert r.status_code == 202, r.text
    return rated[True], rated[False]

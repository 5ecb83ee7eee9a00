"""Small steps every API test takes: a flag of its own, a token of a scope, a metric's values per variant, the
instant a flag's last change took effect."""

import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from tests.support.waiting import wait_until

__all__ = ["in_force_from", "new_flag", "new_token", "variants_of"]


def new_flag(api: httpx.Client, *, rollout: float | None = None, env: str = "production") -> str:
    """A boolean flag with a fresh key (underscores: Sentry tags carry it too), optionally rolled out."""
    key = f"flag_{uuid.uuid4().hex[:10]}"
    assert api.post("/api/v1/flags", json={"key": key, "type": "boolean"}).status_code == 201
    if rollout is not None:
        put = api.put(f"/api/v1/flags/{key}/environments/{env}", json={"enabled": True, "rollout": rollout})
        assert put.status_code == 200, put.text
    return key


def new_token(
    api: httpx.Client, scope: str = "ingest", env: str | None = "production", name: str | None = None
) -> str:
    body: dict[str, Any] = {
        "scope": scope,
        **({"environment": env} if env is not None else {}),
        **({"name": name} if name is not None else {}),
    }
    response = api.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def variants_of(
    api: httpx.Client, metric: str, *, flag: str | None = None, env: str = "production", window: str = "1h"
) -> dict[str, Any]:
    """GET /api/v1/metrics: variant → value, bounds, samples and counts."""
    params = {"metric": metric, "environment": env, "window": window, **({"flag": flag} if flag else {})}
    response = api.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json()["variants"])


def in_force_from(api: httpx.Client, key: str) -> float:
    """When the flag's last change took effect (its audit entry's instant), as Unix seconds, half a millisecond
    on: events stamped then are judged by the state it made (attribution counts whole milliseconds). Returns once
    the clock has passed that instant by two milliseconds, so a next change takes effect strictly later."""
    audit = api.get("/api/v1/audit", params={"target": f"flag:{key}"})
    assert audit.status_code == 200, audit.text
    at = datetime.fromisoformat(audit.json()[0]["at"]).timestamp()
    wait_until(lambda: time.time() >= at + 0.002, "the clock past the change's millisecond")
    return at + 0.0005

"""Small steps every API test takes: a flag of its own, a token of a scope, a metric's values per variant."""

import uuid
from typing import Any

import httpx

__all__ = ["new_flag", "new_token", "variants_of"]


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

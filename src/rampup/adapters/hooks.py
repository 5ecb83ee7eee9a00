"""Stage-change hooks: an HTTP webhook, a local command. Each raises Unavailable when it did not get through."""

import os
import subprocess
from collections.abc import Mapping
from typing import Any

import httpx

from rampup.errors import Unavailable

__all__ = ["WebhookHook", "CommandHook"]


class WebhookHook:
    """POSTs the change as JSON; any 2xx is delivered. The delivery id is the same on every retry."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        body = {k: v for k, v in payload.items() if k != "url"}
        try:
            response = self._client.post(
                payload["url"],
                json={"id": item_id, "type": "rollout.stage", **body},
                headers={"X-Rampup-Delivery": item_id},
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"webhook {payload['url']}: {exc}") from exc
        if not response.is_success:
            raise Unavailable(f"webhook {payload['url']} answered {response.status_code}")


class CommandHook:
    """Runs the plan's command with the new state in its environment, so env-var deployments follow along:
    RAMPUP_FLAG, RAMPUP_ENVIRONMENT, RAMPUP_ENABLED (true/false), RAMPUP_ROLLOUT (percent), RAMPUP_STAGE."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self._timeout = timeout_s

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        env = {
            **os.environ,  # noqa: TID251 - the command inherits the server's environment, as any child would
            "RAMPUP_DELIVERY": item_id,
            "RAMPUP_FLAG": str(payload["flag"]),
            "RAMPUP_ENVIRONMENT": str(payload["environment"]),
            "RAMPUP_ENABLED": "true" if payload["enabled"] else "false",
            "RAMPUP_ROLLOUT": f"{payload['rollout']:g}",
            "RAMPUP_STAGE": str(payload["stage"]),
        }
        try:
            done = subprocess.run(
                payload["command"],
                shell=True,
                env=env,
                timeout=self._timeout,
                capture_output=True,
                text=True,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"hook command failed: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise Unavailable(f"hook command exited {done.returncode}: {tail[0][:300]}")

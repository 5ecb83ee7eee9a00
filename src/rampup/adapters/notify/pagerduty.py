"""PagerDuty Events API v2: trigger on firing, resolve on resolved, one dedup key for both."""

import httpx

from rampup.adapters.notify._http import post
from rampup.core.notifications import Channel, Notification

__all__ = ["PagerDutyNotifier"]


class PagerDutyNotifier:
    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, channel: Channel, n: Notification) -> None:
        event = {
            "routing_key": channel.config["routing_key"],
            "event_action": "resolve" if n.resolved else "trigger",
            "dedup_key": n.dedup_key or n.id,
            "payload": {
                "summary": f"{n.title}: {n.text}"[:1024],
                "source": "rampup",
                "severity": n.severity.value,
                "timestamp": n.at.isoformat(),
                "custom_details": {**dict(n.fields), "type": n.type},
            },
        }
        post(self._client, channel.config["url"], json=event)

"""Slack incoming webhooks, as Block Kit messages."""

from typing import Any

import httpx

from rampup.adapters.notify._http import post
from rampup.core.notifications import Channel, Notification, Severity

__all__ = ["SlackNotifier", "slack_message"]

_ICON = {
    Severity.INFO: ":large_blue_circle:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}


def slack_message(n: Notification) -> dict[str, Any]:
    icon = ":white_check_mark:" if n.resolved else _ICON[n.severity]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{n.title}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {n.text}"[:3000]}},
    ]
    if n.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in n.fields[:10]],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{n.type} · {n.at:%Y-%m-%d %H:%M} UTC · id {n.id}"}],
        }
    )
    return {"text": f"{n.title}: {n.text}"[:3000], "blocks": blocks}


class SlackNotifier:
    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, channel: Channel, n: Notification) -> None:
        post(self._client, channel.config["url"], json=slack_message(n))

"""Generic webhooks, signed: X-Rampup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""

import hashlib
import hmac
import time

import httpx
import msgspec

from rampup.adapters.notify._http import post
from rampup.core.notifications import Channel, Notification

__all__ = ["WebhookNotifier", "signature"]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookNotifier:
    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, channel: Channel, n: Notification) -> None:
        body = msgspec.json.encode({k: v for k, v in n.to_dict().items() if k != "html"})
        headers = {
            "Content-Type": "application/json",
            "X-Rampup-Signature": signature(channel.config["secret"], int(time.time()), body),
            "X-Rampup-Delivery": n.id,
        }
        post(self._client, channel.config["url"], content=body, headers=headers)

"""Channels, and notifications through the outbox: queued in the transaction of what caused them, delivered
after commit, at least once, with one id across retries and channels."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rampup.core.egress import Destinations
from rampup.core.masking import mask_urls
from rampup.core.notifications import Channel, ChannelType, Notification
from rampup.core.ports import Clock, Notifier, OutboxItem, Store, Transaction
from rampup.errors import Conflict, NotFound, Unavailable
from rampup.services.outbox import outbox_id

__all__ = ["Delivery", "NotificationService", "NOTIFY"]

NOTIFY = "notify"  # the outbox kind


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queued side effect as people may see it: where it goes (URLs masked), and how it is going."""

    id: str
    kind: str  # the outbox kind: notify, or a hook's
    channel: str | None  # a channel's name, a hook's masked URL or its command
    type: str  # the notification's type (rollout.advanced, alert.firing, …), else the kind
    notification_id: str  # one id across a notification's channels and retries
    status: str  # pending, failing (with last_error) or delivered
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class NotificationService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifiers: Mapping[ChannelType, Notifier],
        destinations: Destinations,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._notifiers = notifiers
        self._destinations = destinations
        self._on_change = on_change

    # channels

    def create_channel(self, body: Mapping[str, Any], actor: str) -> Channel:
        channel = Channel.parse(body)
        if channel.type is ChannelType.EMAIL:
            self._destinations.check_host(channel.config["host"], channel.config["port"], "host")
        else:
            self._destinations.check_url(channel.config["url"], "url")
        now = self._clock()
        with self._store.transaction() as tx:
            if tx.channels.get(channel.name) is not None:
                raise Conflict(f"channel {channel.name!r} exists")
            tx.channels.add(channel, now)
            tx.audit.record(
                actor, "channel.create", f"channel:{channel.name}", None, None, channel.public(), "", now
            )
        self._on_change()
        return channel

    def channels(self) -> list[Channel]:
        with self._store.read() as tx:
            return tx.channels.all()

    def channel(self, name: str) -> Channel:
        with self._store.read() as tx:
            channel = tx.channels.get(name)
        if channel is None:
            raise NotFound(f"channel {name!r} not found")
        return channel

    def delete_channel(self, name: str, actor: str) -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            before = tx.channels.get(name)
            if before is None or not tx.channels.delete(name):
                raise NotFound(f"channel {name!r} not found")
            tx.audit.record(actor, "channel.delete", f"channel:{name}", None, before.public(), None, "", now)
        self._on_change()

    def test(self, name: str, actor: str) -> str:
        channel = self.channel(name)
        now = self._clock()
        n = Notification(
            outbox_id(now),
            "test",
            now,
            f"Test from Rampup to {channel.name}",
            f"{actor} sent a test notification; if you read this, the {channel.type.value} channel works.",
        )
        with self._store.transaction() as tx:
            self.enqueue(tx, [name], n)
            tx.audit.record(
                actor, "channel.test", f"channel:{name}", None, None, {"notification_id": n.id}, "", n.at
            )
        return n.id

    # notifications

    def enqueue(self, tx: Transaction, channel_names: Iterable[str], n: Notification) -> None:
        """Queue `n` for each channel inside the caller's transaction: it goes out if and only if that commits."""
        for name in channel_names:
            tx.outbox.enqueue(
                outbox_id(n.at),
                NOTIFY,
                f"channel:{name}",
                {"channel": name, "notification": n.to_dict()},
                n.at,
            )

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        """The outbox's sender for notifications: look the channel up now (it may be fixed meanwhile)."""
        with self._store.read() as tx:
            channel = tx.channels.get(payload["channel"])
        if channel is None:
            raise Unavailable(f"no channel named {payload['channel']!r}; create it and the delivery goes out")
        n = Notification.from_dict(payload["notification"])
        if channel.wants(n):
            self._notifiers[channel.type].send(channel, n)

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        with self._store.read() as tx:
            return [_delivery(item) for item in tx.outbox.items(limit)]


def _delivery(item: OutboxItem) -> Delivery:
    notification = item.payload.get("notification") or {}
    return Delivery(
        item.id,
        item.kind,
        item.payload.get("channel") or mask_urls(item.payload.get("url")) or item.payload.get("command"),
        notification.get("type", item.kind),
        notification.get("id", item.id),
        "delivered" if item.delivered_at else ("failing" if item.attempts else "pending"),
        item.attempts,
        mask_urls(item.last_error),
        item.created_at,
        item.delivered_at,
    )

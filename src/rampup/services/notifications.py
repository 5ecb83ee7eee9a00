"""Channels, and notifications through the outbox: queued in the transaction of what caused them, delivered
after commit, at least once, with one id across retries and channels."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rampup.core.egress import Destinations
from rampup.core.masking import mask_urls
from rampup.core.notifications import Channel, ChannelType, Notification
from rampup.core.ports import Clock, Notifier, Store, Transaction
from rampup.errors import Conflict, NotFound, Unavailable
from rampup.services.outbox import outbox_id

__all__ = ["NotificationService", "NOTIFY"]

NOTIFY = "notify"  # the outbox kind


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

    def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._store.read() as tx:
            items = tx.outbox.items(limit)
        return [
            {
                "id": item.id,
                "kind": item.kind,
                "channel": item.payload.get("channel")
                or mask_urls(item.payload.get("url"))
                or item.payload.get("command"),
                "type": (item.payload.get("notification") or {}).get("type", item.kind),
                "notification_id": (item.payload.get("notification") or {}).get("id", item.id),
                "status": "delivered" if item.delivered_at else ("failing" if item.attempts else "pending"),
                "attempts": item.attempts,
                "last_error": mask_urls(item.last_error),
                "created_at": item.created_at,
                "delivered_at": item.delivered_at,
            }
            for item in items
        ]

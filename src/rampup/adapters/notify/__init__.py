"""Notifiers: one per channel type, each `send(channel, notification)`, raising Unavailable on failure."""

from collections.abc import Mapping

import httpx

from rampup.adapters.egress import Egress
from rampup.adapters.notify.email import EmailNotifier
from rampup.adapters.notify.pagerduty import PagerDutyNotifier
from rampup.adapters.notify.slack import SlackNotifier
from rampup.adapters.notify.webhook import WebhookNotifier
from rampup.core.notifications import ChannelType
from rampup.core.ports import Notifier

__all__ = ["notifiers"]


def notifiers(client: httpx.Client, egress: Egress) -> Mapping[ChannelType, Notifier]:
    return {
        ChannelType.SLACK: SlackNotifier(client),
        ChannelType.WEBHOOK: WebhookNotifier(client),
        ChannelType.EMAIL: EmailNotifier(egress),
        ChannelType.PAGERDUTY: PagerDutyNotifier(client),
    }

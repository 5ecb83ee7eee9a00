"""Notifications and the channels they go to: pure values and validation.

A notification has one id for its whole life: every retry and every channel carries it, so receivers
can drop duplicates (at-least-once delivery).
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rampup.core.masking import mask_url
from rampup.errors import InvalidInput

__all__ = ["Severity", "Notification", "ChannelType", "Channel", "SECRET_FIELDS", "PAGERDUTY_URL"]

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
SECRET_FIELDS = frozenset({"secret", "password", "routing_key"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\Z")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    type: str  # rollout.advanced, rollout.rolled_back, alert.firing, alert.resolved, report.daily, …
    at: datetime
    title: str
    text: str
    severity: Severity = Severity.INFO
    fields: tuple[tuple[str, str], ...] = ()
    dedup_key: str | None = None  # PagerDuty incident key: firing and resolved share it
    resolved: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    html: str | None = None  # reports: the rendered HTML, for e-mail

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "at": self.at.isoformat(),
            "title": self.title,
            "text": self.text,
            "severity": self.severity.value,
            "fields": [list(f) for f in self.fields],
            "dedup_key": self.dedup_key,
            "resolved": self.resolved,
            "details": dict(self.details),
            "html": self.html,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Notification":
        return cls(
            d["id"],
            d["type"],
            datetime.fromisoformat(d["at"]),
            d["title"],
            d["text"],
            Severity(d["severity"]),
            tuple((str(k), str(v)) for k, v in d["fields"]),
            d.get("dedup_key"),
            d.get("resolved", False),
            d.get("details") or {},
            d.get("html"),
        )


class ChannelType(StrEnum):
    SLACK = "slack"
    WEBHOOK = "webhook"
    EMAIL = "email"
    PAGERDUTY = "pagerduty"


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: ChannelType
    config: Mapping[str, Any]
    min_severity: Severity = Severity.INFO  # quieter channels (a pager) take only what is at least this bad

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> "Channel":
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"channel name {name!r} must match {_NAME.pattern}", where="name")
        try:
            kind = ChannelType(str(body.get("type")))
        except ValueError:
            raise InvalidInput(
                "type is one of " + ", ".join(t.value for t in ChannelType), where="type"
            ) from None
        try:
            min_severity = Severity(body.get("min_severity", "info"))
        except ValueError:
            raise InvalidInput("min_severity is info, warning or critical", where="min_severity") from None
        config = {k: v for k, v in body.items() if k not in ("name", "type", "min_severity")}
        return cls(name, kind, _validate(kind, config), min_severity)

    def wants(self, n: Notification) -> bool:
        return n.severity.rank >= self.min_severity.rank or n.resolved

    def public(self) -> dict[str, Any]:
        """The channel as every view shows it (API, audit log): secrets are never shown back, URLs masked."""
        config = {k: _public(k, v) for k, v in self.config.items()}
        return {"name": self.name, "type": self.type.value, "min_severity": self.min_severity.value, **config}


def _public(key: str, value: Any) -> Any:
    if key in SECRET_FIELDS and value:
        return "********"
    return mask_url(value) if key == "url" and isinstance(value, str) else value


def _url(config: Mapping[str, Any], key: str, required: bool = True) -> None:
    value = config.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise InvalidInput(f"{key} must be an http(s) URL", where=key)


def _validate(kind: ChannelType, config: dict[str, Any]) -> dict[str, Any]:
    allowed = {
        ChannelType.SLACK: {"url"},
        ChannelType.WEBHOOK: {"url", "secret"},
        ChannelType.EMAIL: {"host", "port", "from", "to", "starttls", "username", "password"},
        ChannelType.PAGERDUTY: {"routing_key", "url"},
    }[kind]
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InvalidInput(
            f"a {kind.value} channel has no {unknown[0]!r}; it takes " + ", ".join(sorted(allowed)),
            where=unknown[0],
        )
    _CHECKS[kind](config)
    return config


def _check_webhook(config: dict[str, Any]) -> None:
    _url(config, "url")
    if not isinstance(config.get("secret"), str) or len(config["secret"]) < 8:
        raise InvalidInput("secret signs every delivery: at least 8 characters", where="secret")


def _check_email(config: dict[str, Any]) -> None:
    if not isinstance(config.get("host"), str) or not config["host"]:
        raise InvalidInput("host is the SMTP server", where="host")
    port = config.setdefault("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise InvalidInput("port is a TCP port", where="port")
    if not isinstance(config.get("from"), str) or not _EMAIL.match(config["from"]):
        raise InvalidInput("from is an e-mail address", where="from")
    to = config.get("to")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and _EMAIL.match(a) for a in to):
        raise InvalidInput("to is a list of e-mail addresses", where="to")
    if not isinstance(config.setdefault("starttls", False), bool):
        raise InvalidInput("starttls is true or false", where="starttls")
    for key in ("username", "password"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise InvalidInput(f"{key} is a string", where=key)


def _check_pagerduty(config: dict[str, Any]) -> None:
    if not isinstance(config.get("routing_key"), str) or not config["routing_key"]:
        raise InvalidInput("routing_key is the PagerDuty integration key", where="routing_key")
    config.setdefault("url", PAGERDUTY_URL)
    _url(config, "url")


_CHECKS: dict[ChannelType, Callable[[dict[str, Any]], None]] = {
    ChannelType.SLACK: lambda config: _url(config, "url"),
    ChannelType.WEBHOOK: _check_webhook,
    ChannelType.EMAIL: _check_email,
    ChannelType.PAGERDUTY: _check_pagerduty,
}

"""Where the server may send requests: public addresses over http(s), plus what the operator allows.

A channel or a plan comes from a token holder; without this, a webhook aimed at 127.0.0.1, 10.0.0.5 or the
cloud metadata address (169.254.169.254) would make the server call into the network it sits in. The policy
is pure: resolving names is the adapter's part (adapters/egress.py), done when a destination is saved and
again at every connection, since DNS can change in between.
"""

import ipaddress
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from rampup.errors import ConfigError, InvalidInput

__all__ = ["Destinations", "EgressPolicy", "IPAddress", "url_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Destinations(Protocol):
    """Checks a destination when it is saved; raises InvalidInput (with `where`) when the policy refuses it."""

    def check_url(self, url: str, where: str) -> None: ...

    def check_host(self, host: str, port: int, where: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    hosts: frozenset[str] = frozenset()  # names allowed whatever they resolve to
    networks: tuple[_Network, ...] = ()  # addresses allowed although internal

    @classmethod
    def parse(cls, value: str | None) -> "EgressPolicy":
        """RAMPUP_ALLOWED_HOSTS: host names, addresses and CIDR networks, separated by commas or spaces."""
        hosts: set[str] = set()
        networks: list[_Network] = []
        for entry in (value or "").replace(",", " ").split():
            with suppress(ValueError):  # not an address or a network: a host name, checked below
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            if "/" in entry or ":" in entry:
                raise ConfigError(
                    f"{entry!r} is neither a host name nor a network", where="RAMPUP_ALLOWED_HOSTS"
                )
            hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why `host`, resolved to `address`, may not be called; None when it may."""
        if host.lower().rstrip(".") in self.hosts or any(address in n for n in self.networks):
            return None
        kind = _internal_kind(address)
        if kind is None:
            return None
        shown = host if host == str(address) else f"{host} ({address})"
        return f"{shown} is a {kind} address; the operator can allow it with RAMPUP_ALLOWED_HOSTS"

    def check(self, host: str, addresses: Iterable[IPAddress], where: str) -> None:
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise InvalidInput(f"refused: {reason}", where=where)


def url_host(url: str, where: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; anything else is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput("not a valid URL", where=where) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}", where=where
        )
    if not parts.hostname:
        raise InvalidInput("the URL has no host", where=where)
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _internal_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved or not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)

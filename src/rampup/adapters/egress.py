"""Outbound connections under the egress policy: checked when a destination is saved, and again at connect time.

At connect time the name is resolved once, every address checked, and the socket opened to a checked address,
so a name that resolves to a public address when checked and to an internal one a moment later (DNS
rebinding) is never followed. TLS still verifies the certificate against the name.
"""

import ipaddress
import smtplib
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from rampup.core.egress import EgressPolicy, IPAddress, url_host
from rampup.errors import InvalidInput, Unavailable

__all__ = ["Egress", "guarded_client", "GuardedSMTP"]

Resolver = Callable[[str, int], Iterable[str]]


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class Egress:
    def __init__(self, policy: EgressPolicy, resolve: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolve = resolve

    # when saved

    def check_url(self, url: str, where: str) -> None:
        host, port = url_host(url, where)
        self.check_host(host, port, where)

    def check_host(self, host: str, port: int, where: str) -> None:
        """Refuses a host that resolves to an address the policy does not allow. A name that does not resolve
        (yet) is accepted: the connection checks it again anyway."""
        try:
            addresses = self._addresses(host, port)
        except OSError:
            return
        self._policy.check(host, addresses, where)

    # when connecting

    def connect_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, all of them allowed; Unavailable when any is not."""
        try:
            addresses = self._addresses(host, port)
        except OSError as exc:
            raise Unavailable(f"{host} does not resolve: {exc.strerror or exc}") from None
        try:
            self._policy.check(host, addresses, host)
        except InvalidInput as exc:
            raise Unavailable(exc.message) from None
        return [str(a) for a in addresses]

    def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = host.strip("[]")
        try:
            return [ipaddress.ip_address(literal)]
        except ValueError:
            return [ipaddress.ip_address(a.split("%", 1)[0]) for a in self._resolve(host, port)]


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, egress: Egress) -> None:
        self._egress = egress

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self._egress.connect_addresses(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, egress: Egress) -> None:
        super().__init__()
        # httpx takes no network backend of its own; its pool does (the one place a connection is opened).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend(egress)
        )


def guarded_client(egress: Egress, timeout_s: float = 10.0) -> httpx.Client:
    """An httpx client that connects only where `egress` allows. It ignores HTTP(S)_PROXY: a proxy would make the
    check meaningless (and the proxy's own address internal)."""
    return httpx.Client(transport=_GuardedTransport(egress), timeout=timeout_s, trust_env=False)


class GuardedSMTP(smtplib.SMTP):
    """SMTP to a checked address; STARTTLS still verifies the certificate against the host name."""

    def __init__(self, egress: Egress, host: str, port: int, timeout: float) -> None:
        self._egress = egress
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        failure: OSError | None = None
        for address in self._egress.connect_addresses(host, port):
            try:
                return socket.create_connection((address, port), timeout, self.source_address)
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise failure

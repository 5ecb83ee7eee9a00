"""The egress policy's cases, and the guarded client: it resolves once, checks, and connects to the checked
address, so a name that changes what it resolves to (DNS rebinding) between save and send is never followed."""

import ipaddress
from collections.abc import Iterable

import pytest

from rampup.adapters.egress import Egress, GuardedSMTP, guarded_client
from rampup.core.egress import EgressPolicy, url_host
from rampup.errors import ConfigError, InvalidInput, Unavailable
from tests.support.receivers import Receiver, smtp_server


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT: not public either
        ("::ffff:10.0.0.1", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_internal_addresses_are_refused_unless_allowed(address: str, kind: str | None) -> None:
    ip = ipaddress.ip_address(address)
    refusal = EgressPolicy().refusal("receiver.example", ip)
    assert (refusal is None) if kind is None else (refusal is not None and f"a {kind} address" in refusal)
    allowed = EgressPolicy.parse(f"{address}/128" if ip.version == 6 else f"{address}/32")
    assert allowed.refusal("receiver.example", ip) is None


def test_the_allow_list_takes_names_addresses_and_networks() -> None:
    policy = EgressPolicy.parse("hooks.internal, 10.0.0.0/8 192.168.1.7")
    assert policy.refusal("HOOKS.internal.", ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal("other", ipaddress.ip_address("10.200.1.1")) is None
    assert policy.refusal("other", ipaddress.ip_address("192.168.1.7")) is None
    assert policy.refusal("other", ipaddress.ip_address("192.168.1.8")) is not None
    with pytest.raises(ConfigError):
        EgressPolicy.parse("10.0.0.0/33")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/", "//example.com/", "http://"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        url_host(url, "url")
    assert raised.value.where == "url"


class Rebinding:
    """A name the test controls: resolves to each of `answers` in turn, as a DNS server under attack would."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self, host: str, port: int) -> Iterable[str]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [answer]


def test_a_name_that_passes_when_saved_is_checked_again_when_connecting() -> None:
    dns = Rebinding("93.184.215.14", "127.0.0.1")
    egress = Egress(EgressPolicy(), dns)
    egress.check_url("http://receiver.example/hook", "url")  # public now: saved
    with guarded_client(egress) as client, pytest.raises(Unavailable, match="refused: receiver.example"):
        client.post("http://receiver.example/hook", json={})
    assert dns.asked == 2


def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    dns = Rebinding("127.0.0.1")
    egress = Egress(EgressPolicy.parse("127.0.0.1"), dns)
    with Receiver() as receiver, guarded_client(egress) as client:
        port = receiver.httpd.server_address[1]
        response = client.post(f"http://receiver.example:{port}/hook", json={"x": 1})
        assert response.status_code == 200
        assert receiver.accepted()[0].headers["host"] == f"receiver.example:{port}"
    assert dns.asked == 1


def test_a_name_that_does_not_resolve_is_accepted_when_saved_but_never_reached() -> None:
    def nowhere(host: str, port: int) -> Iterable[str]:
        raise OSError(-2, "Name or service not known")

    egress = Egress(EgressPolicy(), nowhere)
    egress.check_url("https://not-yet.example/hook", "url")
    with pytest.raises(Unavailable, match="does not resolve"):
        egress.connect_addresses("not-yet.example", 443)


def test_smtp_connects_only_to_a_checked_address() -> None:
    with smtp_server() as (mailbox, port):
        with pytest.raises(Unavailable, match="refused: mail.example .127.0.0.1. is a loopback address"):
            GuardedSMTP(Egress(EgressPolicy(), Rebinding("127.0.0.1")), "mail.example", port, 5)
        allowed = Egress(EgressPolicy.parse("127.0.0.0/8"), Rebinding("127.0.0.1"))
        with GuardedSMTP(allowed, "mail.example", port, 5) as smtp:
            smtp.sendmail("rampup@example.com", ["ops@example.com"], "Subject: hi\r\n\r\nhello")
        assert [to for to, _ in mailbox.snapshot()] == [["ops@example.com"]]

"""Behind a TLS proxy: the dashboard's cookies are Secure when the trusted proxy says the request came over HTTPS,
and a client that is not the proxy cannot claim HTTPS (docs/security.md, "Behind a TLS proxy")."""

import re
from collections.abc import Callable

import httpx

from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S


def sign_in_cookie(server: Server) -> str:
    """The Set-Cookie of the sign-in page, asked for as a proxy that terminated TLS would ask."""
    with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as proxy:
        page = proxy.get("/sign-in", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"})
    assert page.status_code == 200, page.text
    return page.headers["set-cookie"]


def test_cookies_are_secure_only_when_the_trusted_proxy_says_https(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    behind_proxy = server_factory(
        make_database_url("sqlite")
    )  # the proxy on this machine (loopback) is trusted
    assert re.search(r";\s*secure", sign_in_cookie(behind_proxy), re.IGNORECASE)

    elsewhere = server_factory(make_database_url("sqlite"), extra_env={"FORWARDED_ALLOW_IPS": "192.0.2.10"})
    cookie = sign_in_cookie(elsewhere)  # from loopback, which is not the proxy now: the header is ignored
    assert not re.search(r";\s*secure", cookie, re.IGNORECASE), cookie

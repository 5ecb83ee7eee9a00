"""Signing in to the dashboard over plain HTTP, as a browser would: the sign-in form's nonce, then the cookie."""

import re

import httpx

from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S


def signed_in(server: Server, token: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=server.url, timeout=PATIENCE_S)
    page = c.get("/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce, page.text
    r = c.post("/sign-in", data={"nonce": nonce.group(1), "token": token or server.admin_token, "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)

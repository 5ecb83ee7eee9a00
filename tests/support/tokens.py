"""Tokens of each scope, made by a server's admin token over the API."""

from tests.support.servers import Server

__all__ = ["new_token"]


def new_token(server: Server, scope: str, name: str) -> str:
    """A new token's secret: `scope` read, write, admin (or sdk, with an environment) named `name`."""
    body = {"scope": scope, "name": name, **({"environment": "production"} if scope == "sdk" else {})}
    with server.client() as admin:
        r = admin.post("/api/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])

"""A token of a scope with a name, made by a server's admin token over the API."""

from tests.support import api
from tests.support.servers import Server

__all__ = ["new_token"]


def new_token(server: Server, scope: str, name: str) -> str:
    """A new token's secret: `scope` read, write, admin (or sdk and ingest, for production) named `name`."""
    with server.client() as admin:
        return api.new_token(admin, scope, "production" if scope in ("sdk", "ingest") else None, name)

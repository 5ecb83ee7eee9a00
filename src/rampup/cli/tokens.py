"""rampup token create|list|revoke."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote

__all__ = ["app"]

app = typer.Typer(
    help="API tokens: admin, write, read, sdk (one environment), ingest (one environment).",
    no_args_is_help=True,
)


@app.command("create")
def create(
    scope: Annotated[str, typer.Option("--scope", help="admin, write, read, sdk or ingest.")],
    environment: Annotated[str | None, typer.Option("--env", "-e", help="For sdk and ingest tokens.")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Create a token and print its secret (shown only this once)."""
    created = Remote(server, token).call(
        "POST", "/api/v1/tokens", {"scope": scope, "environment": environment, "name": name}
    )
    if as_json:
        print_json(created)
    else:
        typer.echo(created["token"])


@app.command("list")
def list_tokens(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """List tokens (never their secrets)."""
    tokens = Remote(server, token).call("GET", "/api/v1/tokens")
    if as_json:
        print_json(tokens)
        return
    table = Table("id", "name", "scope", "environment", "created", "revoked")
    for t in tokens:
        table.add_row(
            t["id"],
            t["name"],
            t["scope"],
            t["environment"] or "",
            t["created_at"][:19],
            (t["revoked_at"] or "")[:19],
        )
    Console().print(table)


@app.command("revoke")
def revoke(token_id: str, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Revoke a token by id."""
    Remote(server, token).call("DELETE", f"/api/v1/tokens/{token_id}")
    typer.echo(f"revoked {token_id}")

"""rampup environment create|list|rename|delete."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote

__all__ = ["app"]

app = typer.Typer(help="Environments (an admin token changes them).", no_args_is_help=True)


@app.command("create")
def create(
    key: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Create an environment; every flag gets a state there, off."""
    created = Remote(server, token).call("POST", "/api/v1/environments", {"key": key, "name": name})
    if as_json:
        print_json(created)
    else:
        typer.echo(f"created {created['key']} ({created['name']})")


@app.command("list")
def list_environments(
    server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False
) -> None:
    """List environments."""
    found = Remote(server, token).call("GET", "/api/v1/environments")
    if as_json:
        print_json(found)
        return
    table = Table("key", "name")
    for env in found:
        table.add_row(env["key"], env["name"])
    Console().print(table)


@app.command("rename")
def rename(
    key: str,
    new_key: Annotated[str | None, typer.Option("--key", help="The new key.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The new name.")] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Rename an environment (refused while a rollout runs there)."""
    body = {field: value for field, value in (("key", new_key), ("name", name)) if value is not None}
    renamed = Remote(server, token).call("PATCH", f"/api/v1/environments/{key}", body)
    if as_json:
        print_json(renamed)
    else:
        typer.echo(f"{key} is now {renamed['key']} ({renamed['name']})")


@app.command("delete")
def delete(key: str, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Delete an environment, its flag states and its tokens (refused while a rollout runs there)."""
    Remote(server, token).call("DELETE", f"/api/v1/environments/{key}")
    typer.echo(f"deleted {key}")

"""Options shared by every command that talks to a server, and printing."""

import json
from typing import Annotated, Any

import typer

__all__ = ["Server", "TokenOpt", "JsonOut", "DEFAULT_SERVER", "print_json"]

DEFAULT_SERVER = "http://127.0.0.1:8400"

Server = Annotated[str, typer.Option("--server", envvar="RAMPUP_SERVER", help="Rampup server URL.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="RAMPUP_TOKEN", help="API token.", show_default=False)
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))

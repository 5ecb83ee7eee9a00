"""rampup segment create|list|show|update|delete|add-keys|remove-keys."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote
from rampup.cli.rules import parse_condition
from rampup.core.targeting import condition_text

__all__ = ["app"]

app = typer.Typer(
    help="Segments: named sets of users per environment that rules refer to ('segment in beta-testers').",
    no_args_is_help=True,
)

Env = Annotated[str, typer.Option("--env", "-e", help="Environment key.")]
Conditions = Annotated[
    list[str] | None,
    typer.Option(
        "--condition",
        help="'country in DE,AT': users for whom all hold are in the segment; repeat for several.",
    ),
]
KeysFile = Annotated[
    Path | None,
    typer.Option("--keys-file", help="Targeting keys, one a line (blank lines skipped).", exists=True),
]
Keys = Annotated[list[str] | None, typer.Argument(help="Targeting keys.", show_default=False)]
# Keys per request when adding or removing many: well under the server's 4 MiB body at 256 characters a key.
BATCH = 10_000


def _path(environment: str, key: str = "") -> str:
    return f"/api/v1/environments/{environment}/segments" + (f"/{key}" if key else "")


def _keys(keys: list[str] | None, keys_file: Path | None) -> list[str]:
    listed = list(keys or [])
    if keys_file is not None:
        listed += [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
    return listed


def _summary(segment: dict[str, Any]) -> str:
    conditions = " and ".join(condition_text(c) for c in segment["conditions"]) or "no conditions"
    used = ", ".join(segment["used_by"]) or "no flag"
    return (
        f"{segment['key']} in {segment['environment']} (v{segment['version']}): {segment['key_count']} keys; "
        f"{conditions}; used by {used}"
    )


@app.command("create")
def create(
    key: str,
    environment: Env,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    conditions: Conditions = None,
    keys_file: KeysFile = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Create a segment from conditions and/or a file of targeting keys (more: rampup segment add-keys)."""
    keys = _keys(None, keys_file)
    body = {
        "key": key,
        "description": description,
        "conditions": [parse_condition(c, f"--condition {c!r}") for c in conditions or []],
        "keys": keys[:BATCH],
    }
    remote = Remote(server, token)
    segment = remote.call("POST", _path(environment), body)
    if len(keys) > BATCH:
        segment = _in_batches(remote, environment, key, "add_keys", keys[BATCH:])
    if as_json:
        print_json(segment)
    else:
        typer.echo(f"created {_summary(segment)}")


@app.command("list")
def list_segments(
    environment: Env, server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False
) -> None:
    """List an environment's segments, with the flags that use each."""
    found = Remote(server, token).call("GET", _path(environment))
    if as_json:
        print_json(found)
        return
    table = Table("key", "keys", "conditions", "used by", "version")
    for s in found:
        conditions = " and ".join(condition_text(c) for c in s["conditions"])
        table.add_row(s["key"], str(s["key_count"]), conditions, ", ".join(s["used_by"]), str(s["version"]))
    Console().print(table)


@app.command("show")
def show(
    key: str,
    environment: Env,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Show a segment: its conditions, the flags that use it and its keys (every key with --json)."""
    segment = Remote(server, token).call("GET", _path(environment, key))
    if as_json:
        print_json(segment)
        return
    typer.echo(_summary(segment))
    if segment["description"]:
        typer.echo(segment["description"])
    shown = segment["keys"][:20]
    if shown:
        more = len(segment["keys"]) - len(shown)
        typer.echo("keys: " + ", ".join(shown) + (f" … and {more} more (--json for all)" if more else ""))


@app.command("update")
def update(
    key: str,
    environment: Env,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    conditions: Conditions = None,
    clear_conditions: Annotated[
        bool, typer.Option("--clear-conditions", help="Remove every condition.")
    ] = False,
    keys_file: KeysFile = None,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Change a segment's description, conditions, or its whole list of keys (--keys-file replaces it).
    Every flag that uses the segment answers by the new one at once."""
    body: dict[str, Any] = {"reason": reason}
    if description is not None:
        body["description"] = description
    if conditions or clear_conditions:
        body["conditions"] = [parse_condition(c, f"--condition {c!r}") for c in conditions or []]
    if keys_file is not None:
        body["keys"] = _keys(None, keys_file)
    segment = Remote(server, token).call("PATCH", _path(environment, key), body)
    if as_json:
        print_json(segment)
    else:
        typer.echo(f"updated {_summary(segment)}")


@app.command("delete")
def delete(key: str, environment: Env, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Delete a segment (refused while flags' rules refer to it)."""
    Remote(server, token).call("DELETE", _path(environment, key))
    typer.echo(f"deleted segment {key} in {environment}")


def _in_batches(remote: Remote, environment: str, key: str, field: str, keys: list[str]) -> Any:
    segment = None
    for start in range(0, len(keys), BATCH):
        segment = remote.call("PATCH", _path(environment, key), {field: keys[start : start + BATCH]})
    return segment


def _change_keys(
    field: str, key: str, environment: str, keys: list[str], server: str, token: str | None, as_json: bool
) -> None:
    if not keys:
        raise CliError("name the keys: as arguments or with --keys-file")
    segment = _in_batches(Remote(server, token), environment, key, field, keys)
    if as_json:
        print_json(segment)
    else:
        typer.echo(_summary(segment))


@app.command("add-keys")
def add_keys(
    key: str,
    environment: Env,
    keys: Keys = None,
    keys_file: KeysFile = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Add targeting keys to a segment (from a file: in batches of 10,000, each its own change)."""
    _change_keys("add_keys", key, environment, _keys(keys, keys_file), server, token, as_json)


@app.command("remove-keys")
def remove_keys(
    key: str,
    environment: Env,
    keys: Keys = None,
    keys_file: KeysFile = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Remove targeting keys from a segment."""
    _change_keys("remove_keys", key, environment, _keys(keys, keys_file), server, token, as_json)

"""rampup schedule create|list|show|cancel: flag state changes made once at a given time."""

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote
from rampup.cli.rules import parse_rule

__all__ = ["app"]

app = typer.Typer(
    help="Scheduled changes: enable, disable or set a flag's percentage or rules at a given time, once.",
    no_args_is_help=True,
)

PATH = "/api/v1/scheduled-changes"
_BOOLEANS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def _setting(text: str) -> tuple[str, Any]:
    """`percentage=25` → ("rollout", 25.0); `enabled=on`; `bucket_by=account_id`; `salt=…`."""
    name, equals, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not equals:
        raise CliError(f"--set {text!r}: write FIELD=VALUE, e.g. percentage=25")
    if name in ("percentage", "rollout"):
        try:
            return "rollout", float(value.rstrip("%"))
        except ValueError:
            raise CliError(f"--set {text!r}: the percentage is a number from 0 to 100") from None
    if name == "enabled":
        if value.lower() not in _BOOLEANS:
            raise CliError(f"--set {text!r}: enabled is true or false")
        return "enabled", _BOOLEANS[value.lower()]
    if name in ("bucket_by", "salt"):
        return name, value
    raise CliError(f"--set {text!r}: set percentage, enabled, bucket_by or salt (rules: --rule)")


def _line(s: dict[str, Any]) -> list[str]:
    change = ", ".join(
        f"{k}={v}" if not isinstance(v, list) else f"{len(v)} {k}" for k, v in s["change"].items()
    )
    return [
        str(s["id"]),
        s["flag"],
        s["environment"],
        f"{s['local_at'][:16].replace('T', ' ')} {s['timezone']}",
        change,
        s["status"],
        s["created_by"],
        s["outcome"],
    ]


def _print(changes: list[dict[str, Any]]) -> None:
    table = Table("id", "flag", "environment", "at (local)", "change", "status", "by", "outcome")
    for s in changes:
        table.add_row(*_line(s))
    Console().print(table)


@app.command("create")
def create(
    key: str,
    environment: Annotated[str, typer.Option("--env", "-e", help="Environment key.")],
    at: Annotated[
        str,
        typer.Option("--at", help="'2026-12-07 09:00' in --tz, HH:MM or 'monday 09:00' for the next one."),
    ],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of --at, e.g. Europe/Berlin.")] = "UTC",
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE: percentage=25, enabled=true, bucket_by=…, salt=…; repeat."),
    ] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="The kill switch.")] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "--rule", help="'ATTR OP VALUE[,VALUE] [and …] -> VARIANT|N%'; repeat; replaces all rules."
        ),
    ] = None,
    clear_rules: Annotated[bool, typer.Option("--clear-rules", help="Remove every rule then.")] = False,
    notify: Annotated[
        list[str] | None, typer.Option("--notify", help="A channel told, besides the flag's own; repeat.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Schedule a change of a flag in one environment: made once at --at by the leading worker."""
    change = dict(_setting(s) for s in settings or [])
    if enabled is not None:
        change["enabled"] = enabled
    if rules or clear_rules:
        change["rules"] = [parse_rule(r) for r in rules or []]
    if not change:
        raise CliError("say what to change: --set percentage=25, --enable, --disable or --rule")
    body = {
        "flag": key,
        "environment": environment,
        "at": at,
        "timezone": tz,
        "change": change,
        "notify": notify or [],
        "reason": reason,
    }
    scheduled = Remote(server, token).call("POST", PATH, body)
    if as_json:
        print_json(scheduled)
        return
    typer.echo(
        f"scheduled change {scheduled['id']}: {key} in {environment} at {scheduled['local_at']} "
        f"({scheduled['timezone']}; {scheduled['at']} UTC)"
    )


@app.command("list")
def list_changes(
    key: Annotated[str | None, typer.Option("--flag", help="Only this flag's.")] = None,
    environment: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, done, failed or cancelled.")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Scheduled changes, soonest first."""
    wanted = {n: v for n, v in (("flag", key), ("environment", environment), ("status", status)) if v}
    found = Remote(server, token).call("GET", PATH, params=wanted)
    if as_json:
        print_json(found)
        return
    _print(found)


@app.command("show")
def show(
    change_id: int, server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False
) -> None:
    """One scheduled change: what, when (local and UTC), who scheduled it, and how it ended."""
    scheduled = Remote(server, token).call("GET", f"{PATH}/{change_id}")
    if as_json:
        print_json(scheduled)
        return
    _print([scheduled])
    if scheduled["finished_by"]:
        typer.echo(f"{scheduled['status']} at {scheduled['finished_at']} by {scheduled['finished_by']}")


@app.command("cancel")
def cancel(
    change_id: int,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Cancel a pending change."""
    Remote(server, token).call("POST", f"{PATH}/{change_id}/cancel", {"reason": reason})
    typer.echo(f"cancelled scheduled change {change_id}")

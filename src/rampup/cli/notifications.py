"""rampup channel create|list|test|delete, and rampup notifications."""

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote

__all__ = ["app", "notifications"]

app = typer.Typer(
    help="Where people hear from Rampup: Slack, webhooks, e-mail, PagerDuty.", no_args_is_help=True
)
Opt = Annotated[str | None, typer.Option()]


@app.command("create")
def create(
    name: str,
    channel_type: Annotated[str, typer.Option("--type", help="slack, webhook, email or pagerduty.")],
    url: Opt = None,
    secret: Annotated[str | None, typer.Option("--secret", help="webhook: the HMAC key.")] = None,
    host: Opt = None,
    port: Annotated[int | None, typer.Option()] = None,
    sender: Annotated[str | None, typer.Option("--from")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="e-mail: repeat for several.")] = None,
    starttls: Annotated[bool, typer.Option("--starttls")] = False,
    username: Opt = None,
    password: Opt = None,
    routing_key: Annotated[str | None, typer.Option("--routing-key")] = None,
    min_severity: Annotated[str, typer.Option("--min-severity", help="info, warning or critical.")] = "info",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Create a channel."""
    body: dict[str, Any] = {"name": name, "type": channel_type, "min_severity": min_severity}
    given = {
        "url": url,
        "secret": secret,
        "host": host,
        "port": port,
        "from": sender,
        "to": to,
        "username": username,
        "password": password,
        "routing_key": routing_key,
    }
    body.update({k: v for k, v in given.items() if v is not None})
    if channel_type == "email":
        body["starttls"] = starttls
    created = Remote(server, token).call("POST", "/api/v1/channels", body)
    typer.echo(f"created {created['type']} channel {created['name']}")


@app.command("list")
def list_channels(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """Channels (secrets masked)."""
    channels = Remote(server, token).call("GET", "/api/v1/channels")
    if as_json:
        print_json(channels)
        return
    table = Table("name", "type", "min severity", "where")
    for ch in channels:
        where = ch.get("url") or ", ".join(ch.get("to", [])) or ch.get("host", "")
        table.add_row(ch["name"], ch["type"], ch["min_severity"], str(where))
    Console().print(table)


@app.command("test")
def test(name: str, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Send a test notification (see `rampup notifications`)."""
    queued = Remote(server, token).call("POST", f"/api/v1/channels/{name}/test")
    typer.echo(f"queued test notification {queued['notification_id']} to {name}")


@app.command("delete")
def delete(name: str, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Delete a channel."""
    Remote(server, token).call("DELETE", f"/api/v1/channels/{name}")
    typer.echo(f"deleted channel {name}")


def notifications(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 30,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Deliveries, newest first: pending, failing (with the last error) or delivered."""
    rows = Remote(server, token).call("GET", "/api/v1/notifications", params={"limit": limit})
    if as_json:
        print_json(rows)
        return
    table = Table("queued", "type", "to", "status", "tries", "last error")
    style = {"delivered": "green", "failing": "red", "pending": "yellow"}
    for r in rows:
        table.add_row(
            str(r["created_at"])[:19],
            r["type"],
            str(r["channel"]),
            f"[{style[r['status']]}]{r['status']}[/]",
            str(r["attempts"]),
            (r["last_error"] or "")[:60],
        )
    Console().print(table)

"""rampup alert add|rules|delete, and rampup alerts."""

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote

__all__ = ["app", "alerts"]

app = typer.Typer(help="Alert rules: a metric over a window, sustained, to channels.", no_args_is_help=True)


@app.command("add")
def add(
    environment: Annotated[str, typer.Option("--env", "-e")],
    metric: Annotated[
        str, typer.Option("--metric", help="error_rate, unhandled_exceptions, api_latency_p95, …")
    ],
    condition: Annotated[str, typer.Option("--condition", help="'> 0.5%', '> 5', '> 1000ms'")],
    window: Annotated[str, typer.Option("--window")] = "5m",
    sustain: Annotated[str | None, typer.Option("--for", help="How long it must hold before firing.")] = None,
    severity: Annotated[str, typer.Option("--severity", help="info, warning or critical.")] = "warning",
    channels: Annotated[list[str] | None, typer.Option("--channel", help="Repeat for several.")] = None,
    flag: Annotated[str | None, typer.Option("--flag")] = None,
    variant: Annotated[str | None, typer.Option("--variant")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat for several.")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    renotify: Annotated[str, typer.Option("--renotify", help="Re-send while firing, or 'never'.")] = "1h",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Add an alert rule."""
    body: dict[str, Any] = {
        "environment": environment,
        "metric": metric,
        "condition": condition,
        "window": window,
        "severity": severity,
        "channels": channels or [],
        "renotify": renotify,
        "tags": dict(t.split("=", 1) for t in tags or [] if "=" in t),
    }
    body.update(
        {k: v for k, v in (("for", sustain), ("flag", flag), ("variant", variant), ("name", name)) if v}
    )
    created = Remote(server, token).call("POST", "/api/v1/alert-rules", body)
    typer.echo(f"alert rule {created['id']}: {created['name']}")


@app.command("rules")
def rules(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """Alert rules and whether each is firing."""
    found = Remote(server, token).call("GET", "/api/v1/alert-rules")
    if as_json:
        print_json(found)
        return
    table = Table("id", "name", "condition", "window", "for", "severity", "channels", "state")
    for r in found:
        state = (
            "[red]firing[/]" if r["firing"] else ("[yellow]breaching[/]" if r["breaching_since"] else "ok")
        )
        table.add_row(
            str(r["id"]),
            r["name"],
            f"{r['metric']} {r['condition']}",
            r["window"],
            r.get("for", ""),
            r["severity"],
            ", ".join(r["channels"]),
            state,
        )
    Console().print(table)


@app.command("delete")
def delete(rule_id: int, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Delete an alert rule."""
    Remote(server, token).call("DELETE", f"/api/v1/alert-rules/{rule_id}")
    typer.echo(f"deleted alert rule {rule_id}")


def alerts(
    firing: Annotated[bool, typer.Option("--firing", help="Only alerts firing now.")] = False,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Alerts, newest first."""
    found = Remote(server, token).call(
        "GET", "/api/v1/alerts", params={"state": "firing"} if firing else None
    )
    if as_json:
        print_json(found)
        return
    table = Table("id", "rule", "state", "value", "since", "resolved")
    for a in found:
        style = "red" if a["state"] == "firing" else "green"
        table.add_row(
            str(a["id"]),
            (a["rule"] or {}).get("name", str(a["rule_id"])),
            f"[{style}]{a['state']}[/]",
            f"{a['value']:.4g}" if a["value"] is not None else "—",
            str(a["started_at"])[:19],
            str(a["resolved_at"] or "")[:19],
        )
    Console().print(table)

"""rampup metrics get|post|define|list, and rampup dsn."""

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.table import Table

from rampup.adapters.reports.labels import value_text
from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote

__all__ = ["app", "dsn", "sparkline"]

app = typer.Typer(
    help="Query telemetry per variant, post counters and gauges, define custom metrics.", no_args_is_help=True
)

Env = Annotated[str, typer.Option("--env", "-e", help="Environment key.")]


def sparkline(values: list[float | None], width: int = 32) -> str:
    """A one-line chart of the series on its own scale (the reports' sparkline)."""
    from rampup.adapters.reports.charts import sparkline as chart_line

    present = [v for v in values if v is not None]
    return chart_line(values, min(present), max(present), width) if present else ""


@app.command("get")
def get(
    metric: Annotated[
        str, typer.Argument(help="error_rate, api_latency_p95, lcp_p75, engagement, … or a custom one.")
    ],
    environment: Env,
    flag: Annotated[str | None, typer.Option("--flag", "-f", help="Per variant of this flag.")] = None,
    window: Annotated[str, typer.Option("--window", "-w")] = "1h",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """A metric per variant over a window, with 95% bounds, samples and a sparkline of the series."""
    params = {
        "metric": metric,
        "environment": environment,
        "window": window,
        **({"flag": flag} if flag else {}),
    }
    result = Remote(server, token).call("GET", "/api/v1/metrics", params=params)
    if as_json:
        print_json(result)
        return
    unit = result["unit"]
    table = Table(
        "variant",
        "value",
        "95% bounds",
        "samples",
        f"last {result['window']}",
        title=f"{metric} in {environment}" + (f", flag {flag}" if flag else ""),
    )
    for variant, e in result["variants"].items():
        series = [p["values"].get(variant) for p in result["series"]]
        bounds = (
            f"{value_text(e['lower'], unit)} – {value_text(e['upper'], unit)}"
            if e["lower"] is not None
            else ""
        )
        table.add_row(variant, value_text(e["value"], unit), bounds, str(e["samples"]), sparkline(series))
    Console().print(table)


@app.command("post")
def post(
    metric: Annotated[str, typer.Argument(help="support_tickets (a count) or lighthouse (a reading).")],
    value: float,
    environment: Env,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Post a counter increment or a gauge reading from outside (support desk, CI)."""
    Remote(server, token).call(
        "POST", "/api/v1/metrics", {"metric": metric, "environment": environment, "value": value}
    )
    typer.echo(f"posted {metric}={value:g} to {environment}")


@app.command("define")
def define(
    name: str,
    event: Annotated[str, typer.Option("--event", help="The custom event name to count.")],
    aggregation: Annotated[
        str, typer.Option("--aggregation", "-a", help="count, per_user, ratio, mean or percentile.")
    ] = "count",
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE filter; repeat for several.")
    ] = None,
    denominator: Annotated[
        str | None, typer.Option("--denominator", help="Ratio: the event to divide by.")
    ] = None,
    unit: Annotated[str, typer.Option("--unit")] = "",
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Define a custom metric over your own `custom` events."""
    body: dict[str, Any] = {
        "name": name,
        "event": event,
        "aggregation": aggregation,
        "unit": unit,
        "description": description,
        "tags": dict(t.split("=", 1) for t in tags or [] if "=" in t),
    }
    if denominator:
        body["denominator"] = denominator
    created = Remote(server, token).call("POST", "/api/v1/metric-definitions", body)
    typer.echo(f"defined {created['name']}: {created['aggregation']} of {created['event']}")


@app.command("list")
def list_metrics(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """List custom metric definitions."""
    definitions = Remote(server, token).call("GET", "/api/v1/metric-definitions")
    if as_json:
        print_json(definitions)
        return
    table = Table("name", "aggregation", "event", "tags", "unit", "description")
    for d in definitions:
        tags = ",".join(f"{k}={v}" for k, v in d["tags"].items())
        table.add_row(
            d["name"],
            d["aggregation"],
            d["event"] + (f" / {d['denominator']}" if d["denominator"] else ""),
            tags,
            d["unit"],
            d["description"],
        )
    Console().print(table)


def dsn(
    environment: Env,
    name: Annotated[str, typer.Option("--name", help="Name of the ingest token it creates.")] = "sentry",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Create an ingest token and print a Sentry DSN for it: point any Sentry SDK at Rampup."""
    remote = Remote(server, token)
    envs = {e["key"]: e["id"] for e in remote.call("GET", "/api/v1/environments")}
    if environment not in envs:
        raise CliError(f"environment {environment!r} not found; there are: {', '.join(envs)}")
    created = remote.call(
        "POST", "/api/v1/tokens", {"scope": "ingest", "environment": environment, "name": name}
    )
    parts = urlsplit(remote.server)
    typer.echo(
        urlunsplit((parts.scheme, f"{created['token']}@{parts.netloc}", f"/{envs[environment]}", "", ""))
    )

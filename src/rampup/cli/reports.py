"""rampup report daily|support|weekly|completion ROLLOUT_ID, and rampup report schedule add|list|delete."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote

__all__ = ["app"]

app = typer.Typer(
    help="Rollout reports (daily, support, weekly, completion), filled from real data, and their schedules.",
    no_args_is_help=True,
)
schedule = typer.Typer(
    help="Send reports to channels: daily or weekly at a local time, or when a rollout ends.",
    no_args_is_help=True,
)
app.add_typer(schedule, name="schedule")

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Format(StrEnum):
    md = "md"
    html = "html"


def _report_command(kind: str, doc: str) -> None:
    def run(
        rollout_id: int,
        fmt: Annotated[Format, typer.Option("--format", help="md (Markdown) or html.")] = Format.md,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead.")] = None,
        tz: Annotated[str, typer.Option("--tz", help="Time zone for dates, e.g. Europe/Berlin.")] = "UTC",
        server: Server = DEFAULT_SERVER,
        token: TokenOpt = None,
    ) -> None:
        text = Remote(server, token).text(
            f"/api/v1/reports/{kind}", {"rollout": rollout_id, "format": fmt.value, "tz": tz}
        )
        if out is None:
            typer.echo(text, nl=False)
            return
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror}") from None
        typer.echo(f"wrote the {kind} report of rollout {rollout_id} to {out}")

    run.__doc__ = doc
    app.command(kind)(run)


for _kind, _doc in (
    ("daily", "The daily report: metrics against targets, incidents, feedback, actions, charts."),
    ("support", "The support team's daily status e-mail."),
    ("weekly", "The weekly summary: the last 7 days."),
    ("completion", "The completion report: every stage with its dates, final metrics, incidents, rollbacks."),
):
    _report_command(_kind, _doc)


@schedule.command("add")
def add(
    kind: Annotated[str, typer.Argument(help="daily, support, weekly or completion.")],
    channels: Annotated[
        list[str], typer.Option("--channel", "-c", help="Where to send it; repeat for several.")
    ],
    rollout_id: Annotated[int | None, typer.Option("--rollout", help="The rollout's id.")] = None,
    flag: Annotated[
        str | None, typer.Option("--flag", help="Or: the rollout of this flag live at sending time.")
    ] = None,
    environment: Annotated[str | None, typer.Option("--env", "-e", help="… in this environment.")] = None,
    hour: Annotated[int | None, typer.Option("--hour", help="Local hour, 0-23.")] = None,
    minute: Annotated[int | None, typer.Option("--minute", help="Local minute (default 0).")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone (default UTC).")] = None,
    weekday: Annotated[str | None, typer.Option("--weekday", help="Weekly: monday … sunday, or 0-6.")] = None,
    contact: Annotated[str | None, typer.Option("--contact", help="Who to ask, shown in the report.")] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Schedule a report, e.g. `rampup report schedule add support --flag workstation -e production
    -c support-email --hour 8 --tz Europe/Berlin`."""
    given = {
        "rollout_id": rollout_id,
        "flag": flag,
        "environment": environment,
        "hour": hour,
        "minute": minute,
        "timezone": tz,
        "contact": contact,
        "weekday": int(weekday) if weekday is not None and weekday.isdigit() else weekday,
    }
    body = {"kind": kind, "channels": channels, **{k: v for k, v in given.items() if v is not None}}
    created = Remote(server, token).call("POST", "/api/v1/reports/schedules", body)
    if as_json:
        print_json(created)
    else:
        typer.echo(f"scheduled {_when(created)}: report schedule {created['id']}")


def _when(s: dict[str, Any]) -> str:
    if s["kind"] == "completion":
        return "the completion report, when the rollout ends"
    at = f"{s['hour']:02d}:{s['minute']:02d} {s['timezone']}"
    days = f"{_WEEKDAYS[s['weekday']]}s" if s["kind"] == "weekly" else "daily"
    return f"the {s['kind']} report, {days} at {at}"


@schedule.command("list")
def list_schedules(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """Report schedules, with the period each last sent and when it sends next."""
    schedules = Remote(server, token).call("GET", "/api/v1/reports/schedules")
    if as_json:
        print_json(schedules)
        return
    table = Table("id", "report", "rollout", "channels", "last sent", "next")
    for s in schedules:
        rollout = str(s["rollout_id"]) if "rollout_id" in s else f"{s['flag']} in {s['environment']} (live)"
        table.add_row(
            str(s["id"]),
            _when(s).removeprefix("the "),
            rollout,
            ", ".join(s["channels"]),
            s["last_period"] or "—",
            str(s["next_at"] or "")[:16].replace("T", " "),
        )
    Console().print(table)


@schedule.command("delete")
def delete(schedule_id: int, server: Server = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Stop a report schedule."""
    Remote(server, token).call("DELETE", f"/api/v1/reports/schedules/{schedule_id}")
    typer.echo(f"deleted report schedule {schedule_id}")

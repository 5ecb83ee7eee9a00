"""rampup backtest PLAN: the plan's gates and controller replayed over the server's recorded telemetry."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote

__all__ = ["backtest"]


def backtest(
    plan_file: Annotated[Path, typer.Argument(help="The plan, in YAML.")],
    since: Annotated[str, typer.Option("--from", help="Start, ISO 8601 with a zone: 2026-03-02T09:00:00Z.")],
    until: Annotated[str, typer.Option("--to", help="End, ISO 8601 with a zone.")],
    environment: Annotated[
        str | None, typer.Option("--env", help="Instead of the plan's environment.")
    ] = None,
    flag: Annotated[str | None, typer.Option("--flag", help="Instead of the plan's flag.")] = None,
    tick: Annotated[str, typer.Option("--tick", help="The controller's tick in the replay.")] = "1m",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """What a plan would have decided, and when, over telemetry the server recorded (nothing changes).
    Sign-offs count as given at once; the recorded traffic keeps the split it had."""
    try:
        text = plan_file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {plan_file}: {exc.strerror}") from None
    body = {
        "plan": {"yaml": text},
        "filename": plan_file.name,
        "from": since,
        "to": until,
        "tick": tick,
        **({"environment": environment} if environment else {}),
        **({"flag": flag} if flag else {}),
    }
    report = Remote(server, token).call("POST", "/api/v1/rollouts/backtest", body)
    if as_json:
        print_json(report)
        return
    table = Table(
        "at",
        "from → to",
        "stage",
        "decision",
        "reason",
        title=f"{report['plan']}: {report['flag']} in {report['environment']}, {report['from']} → {report['to']}",
    )
    for d in report["decisions"]:
        table.add_row(
            str(d["at"])[:19],
            f"{d['from']} → {d['to']}",
            f"{d['from_stage']} → {d['to_stage']}",
            d["kind"],
            d["reason"],
        )
    console = Console()
    console.print(table)
    console.print(f"at the end: {report['state']} at stage {report['stage']} (tick {report['tick_s']:g} s)")

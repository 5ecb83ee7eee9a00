"""rampup apply -f plan.yaml, and rampup rollout start|status|list|advance|pause|resume|rollback|disable|approve|signoff|abort."""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.adapters.reports.labels import gate_unit, value_text
from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote
from rampup.cli.srm_power import srm_table
from rampup.core.durations import format_duration

__all__ = ["app", "apply", "render_status"]

app = typer.Typer(help="Run plans: status, and a person's commands.", no_args_is_help=True)

Reason = Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the timeline and the audit log.")]
By = Annotated[
    str | None,
    typer.Option("--by", help="Whom the token acts for: audited beside the token's name as 'on behalf of'."),
]
_VERDICT_STYLE = {
    "pass": "green",
    "warn": "yellow",
    "fail": "red",
    "critical": "bold red",
    "inconclusive": "dim",
}


def _forecast_table(forecast: list[dict[str, Any]]) -> Table:
    """Each stage's expected time to a decision at the environment's traffic of the last day."""
    table = Table(
        "stage",
        "soak",
        "expected decision",
        "limited by",
        title="time to a decision, at the last day's traffic",
    )
    for f in forecast:
        expected = f["expected_decision_s"]
        table.add_row(
            f"{f['stage']} {f['name']}",
            format_duration(timedelta(seconds=f["soak_s"]), "short"),
            format_duration(timedelta(seconds=expected), "short")
            if expected is not None
            else "[red]never[/] (the target is not met at this traffic)",
            f["limited_by"] or "the soak",
        )
    return table


def render_status(r: dict[str, Any]) -> None:
    console = Console()
    stage = r["stage"]
    soak = stage["soak_remaining_s"]
    soak_text = f", soak left {soak:.0f}s" if soak else ""
    console.print(
        f"[bold]rollout {r['id']}[/] {r['name']}: {r['flag']} in {r['environment']} — "
        f"[bold]{r['state']}[/], stage {stage['number']} ({stage['name']}) at {stage['percentage']:g}%"
        f"{soak_text}"
    )
    bar = "".join("█" if s["number"] <= stage["number"] else "░" for s in r["stages"])
    console.print(f"stages {bar}  " + " → ".join(f"{s['percentage']:g}%" for s in r["stages"]))
    if r["waiting_for"]:
        console.print("[yellow]waiting for:[/] " + "; ".join(r["waiting_for"]))
    if r["gates"]:
        table = Table("gate", "verdict", "value", "95% sequence", "samples", "threshold")
        for g in r["gates"]:
            style = _VERDICT_STYLE.get(g["verdict"], "")
            unit = gate_unit(g["metric"], g["compare"])
            bounds = (
                f"{value_text(g['lower'], unit)} – {value_text(g['upper'], unit)}"
                if g["lower"] is not None and g["upper"] is not None
                else ""
            )
            needs = g.get("needs")
            verdict = g["verdict"] + (f" (≈{needs['samples']:.0f} more samples)" if needs else "")
            table.add_row(
                g["metric"],
                f"[{style}]{verdict}[/]",
                value_text(g["value"], unit),
                bounds,
                str(g["samples"]),
                g["threshold"],
            )
        console.print(table)
    if r.get("forecast"):
        console.print(_forecast_table(r["forecast"]))
    if r.get("srm_power"):
        console.print(srm_table(r["srm_power"], "the last days' users"))
    if r["timeline"]:
        timeline = Table("at", "from → to", "stage", "by", "reason")
        for t in r["timeline"]:
            timeline.add_row(
                str(t["at"])[:19],
                f"{t['from']} → {t['to']}",
                f"{t['from_stage']} → {t['to_stage']}",
                t["actor"] + (f" on behalf of {t['on_behalf_of']}" if t.get("on_behalf_of") else ""),
                t["reason"],
            )
        console.print(timeline)


def apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="The plan, in YAML.", exists=False)],
    no_start: Annotated[bool, typer.Option("--no-start", help="Create it pending; start it later.")] = False,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Start a rollout plan from a YAML file. A wrong plan is rejected with file, line and problem."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    remote = Remote(server, token)
    created = remote.call(
        "POST", "/api/v1/rollouts", {"plan": {"yaml": text}, "start": not no_start, "filename": file.name}
    )
    status = remote.call("GET", f"/api/v1/rollouts/{created['id']}")
    if as_json:
        print_json(status)
    else:
        render_status(status)


@app.command("status")
def status(
    rollout_id: int, server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False
) -> None:
    """Stage, percentage, soak time left, every gate's verdict, and the timeline."""
    result = Remote(server, token).call("GET", f"/api/v1/rollouts/{rollout_id}")
    print_json(result) if as_json else render_status(result)


@app.command("list")
def list_rollouts(
    flag: Annotated[str | None, typer.Option("--flag")] = None,
    live: Annotated[bool, typer.Option("--live", help="Only rollouts in progress.")] = False,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Rollouts, newest first."""
    params: dict[str, Any] = {**({"flag": flag} if flag else {}), **({"live": "true"} if live else {})}
    rollouts = Remote(server, token).call("GET", "/api/v1/rollouts", params=params)
    if as_json:
        print_json(rollouts)
        return
    table = Table("id", "name", "flag", "environment", "state", "stage", "percentage")
    for r in rollouts:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["flag"],
            r["environment"],
            r["state"],
            f"{r['stage']['number']} {r['stage']['name']}",
            f"{r['stage']['percentage']:g}%",
        )
    Console().print(table)


def _command(action: str, doc: str) -> None:
    def run(
        rollout_id: int,
        reason: Reason = "",
        by: By = None,
        server: Server = DEFAULT_SERVER,
        token: TokenOpt = None,
        as_json: JsonOut = False,
    ) -> None:
        result = Remote(server, token).call(
            "POST",
            f"/api/v1/rollouts/{rollout_id}/{action}",
            {"reason": reason, **({"by": by} if by else {})},
        )
        print_json(result) if as_json else render_status(result)

    run.__doc__ = doc
    app.command(action)(run)


for _action, _doc in (
    ("start", "Start a rollout created with --no-start."),
    ("advance", "Go to the next stage now (a person overrides soak and gates)."),
    ("pause", "Hold: no automatic advance (safety rollbacks still act)."),
    ("resume", "Run again after a pause or an automatic step back."),
    ("rollback", "Step back one stage."),
    ("disable", "Pull the kill switch."),
    ("approve", "Approve the next stage where the plan asks for approval."),
    ("abort", "Give up: back to 0%."),
):
    _command(_action, _doc)


@app.command("signoff")
def signoff(
    rollout_id: int,
    prerequisite: Annotated[str, typer.Argument(help="The prerequisite, as the plan words it.")],
    by: Annotated[str, typer.Option("--by", help="Who signs off.")],
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Sign off a stage's prerequisite, by name."""
    result = Remote(server, token).call(
        "POST", f"/api/v1/rollouts/{rollout_id}/signoff", {"prerequisite": prerequisite, "by": by}
    )
    print_json(result) if as_json else render_status(result)

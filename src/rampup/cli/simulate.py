"""rampup simulate PLAN: the real controller in virtual time, N seeded trials, beside the naive rule."""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rampup.cli.remote import CliError
from rampup.cli.srm_power import srm_table
from rampup.core.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from rampup.services.simulation import Summary

__all__ = ["simulate"]


def _span(value: timedelta | None) -> str:
    return "—" if value is None else format_duration(value, "short")


def simulate(
    plan_file: Annotated[Path, typer.Argument(help="The plan, in YAML.")],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, max=100_000)] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    rate: Annotated[float, typer.Option("--rate", help="Total requests per second.")] = 10.0,
    error_rate: Annotated[
        float, typer.Option("--error-rate", help="Healthy error rate, both variants.")
    ] = 0.0005,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Healthy median API latency.")] = 120.0,
    lcp_ms: Annotated[float, typer.Option("--lcp-ms", help="Healthy median LCP.")] = 1800.0,
    regression: Annotated[
        str | None,
        typer.Option(
            "--regression",
            help="The treatment worsens: METRIC=VALUE@stageN or METRIC=VALUE@6h, "
            "e.g. error_rate=0.02@stage1.",
        ),
    ] = None,
    incident: Annotated[
        list[str] | None,
        typer.Option(
            "--incident",
            help="Both variants worsen (the environment, not the flag): METRIC=VALUE@WHEN[+FOR], "
            "e.g. error_rate=0.01@20h+2h. Repeatable.",
        ),
    ] = None,
    burst: Annotated[
        int, typer.Option("--burst", min=1, help="Failures come in runs of N from one user (retries).")
    ] = 1,
    unhandled_rate: Annotated[
        float,
        typer.Option(
            "--unhandled-rate", min=0.0, max=1.0, help="Unhandled exceptions per request, both variants."
        ),
    ] = 0.0,
    requests_per_user: Annotated[
        float, typer.Option("--requests-per-user", min=1.0, help="Mean requests per user in a stage.")
    ] = 5.0,
    volume_sigma: Annotated[
        float,
        typer.Option("--volume-sigma", min=0.0, help="Spread (lognormal σ) of requests per user."),
    ] = 2.0,
    user_sigma: Annotated[
        float,
        typer.Option(
            "--user-sigma",
            min=0.0,
            help="How much users differ: each user's latencies scaled by a lognormal factor of this σ.",
        ),
    ] = 0.3,
    silent_share: Annotated[
        float,
        typer.Option(
            "--silent-share",
            min=0.0,
            max=1.0,
            help="Share of the users the flag serves who send nothing but its exposure, both variants.",
        ),
    ] = 0.02,
    tick: Annotated[str, typer.Option("--tick", help="Controller tick in virtual time.")] = "10s",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run a plan many times against synthetic traffic and report outcomes, false rollbacks, detection
    delays and rollout time — for Rampup's gates and for the naive rule (raw 5-minute windows)."""
    from rampup.adapters.codecs.plan_yaml import load_plan
    from rampup.services.simulation import (  # numpy: lazily
        Regression,
        Traffic,
        describe,
        simulate_trial,
        srm_caught,
        stage_summary,
        summarize,
    )

    try:
        text = plan_file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {plan_file}: {exc.strerror}") from None
    _, plan = load_plan(text, plan_file.name)
    traffic = Traffic(
        requests_per_s=rate,
        error_rate=error_rate,
        latency_ms=latency_ms,
        lcp_ms=lcp_ms,
        burst=burst,
        unhandled_per_request=unhandled_rate,
        requests_per_user=requests_per_user,
        volume_sigma=volume_sigma,
        user_sigma=user_sigma,
        silent_share=silent_share,
    )
    injected = Regression.parse(regression) if regression else None
    incidents = [Regression.parse(i, "--incident", everyone=True) for i in incident or []]
    step = parse_duration(tick, "--tick")
    if step.total_seconds() < 1:
        raise CliError("--tick: at least 1s")
    results = []
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=as_json,
        transient=True,
    ) as progress:
        task = progress.add_task(f"simulating {plan.name}", total=trials)
        for i in range(trials):
            results.append(simulate_trial(plan, traffic, injected, seed + i, step, incidents=incidents))
            progress.advance(task)
    seconds_per_trial = (time.perf_counter() - started) / trials
    ours, naive = summarize(results), summarize(results, naive=True)
    stages = stage_summary(plan, traffic, results)
    srm = [p.to_dict() for p in srm_caught(plan, traffic)] if plan.srm else []
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "plan": plan.name,
                    "trials": trials,
                    "rate": rate,
                    "error_rate": error_rate,
                    "regression": regression,
                    "incidents": incident or [],
                    "burst": burst,
                    "user_sigma": user_sigma,
                    "unhandled_rate": unhandled_rate,
                    "tick_s": step.total_seconds(),
                    "seconds_per_trial": seconds_per_trial,
                    "rampup": describe(ours),
                    "naive": describe(naive),
                    "stages": stages,
                    "srm_power": srm,
                },
                indent=2,
            )
        )
        return
    changes = ", ".join(
        [*([f"regression {regression}"] if regression else []), *(f"incident {i}" for i in incident or [])]
    )
    _print(plan.name, trials, rate, error_rate, changes, ours, naive, seconds_per_trial)
    _print_stages(stages)
    if srm:
        Console().print(srm_table(srm, f"{rate:g} req/s, {requests_per_user:g} requests a user"))


def _print(
    name: str,
    trials: int,
    rate: float,
    error_rate: float,
    changes: str,
    ours: "Summary",
    naive: "Summary",
    seconds_per_trial: float,
) -> None:
    title = f"{name}: {trials} trials at {rate:g} req/s, error rate {error_rate:.3%}, " + (
        changes or "healthy"
    )
    regression = "regression" in changes
    table = Table("", "Rampup", "naive rule", title=title)
    for outcome in ("completed", "rolled_back", "disabled", "paused", "waiting_for_data", "held"):
        table.add_row(
            outcome.replace("_", " "), str(ours.outcomes.get(outcome, 0)), str(naive.outcomes.get(outcome, 0))
        )
    label = (
        "detected (rolled back or disabled)" if regression else "false rollbacks (rolled back or disabled)"
    )
    table.add_row(label, f"{ours.acted_share:.1%}", f"{naive.acted_share:.1%}")
    table.add_row("stepped back from 100% to compare", str(ours.stepped_back), "—")
    if regression:
        table.add_row("detection delay p50", _span(ours.delay_p50), _span(naive.delay_p50))
        table.add_row("detection delay p90", _span(ours.delay_p90), _span(naive.delay_p90))
    table.add_row("rollout time p50 (completed)", _span(ours.duration_p50), "—")
    console = Console()
    console.print(table)
    console.print(f"[dim]{seconds_per_trial:.2f} s per trial[/]")


def _print_stages(stages: list[dict[str, Any]]) -> None:
    table = Table(
        "stage",
        "soak",
        "expected decision",
        "limited by",
        "simulated p50 (advanced)",
        "waited for data",
        "said so within a tick",
        title="Time to a decision per stage: the forecast `rampup apply` prints, and the trials",
    )
    for s in stages:
        expected = s["expected_decision_s"]
        table.add_row(
            f"{s['stage']} {s['name']}",
            _span(timedelta(seconds=s["soak_s"])),
            _span(timedelta(seconds=expected)) if expected is not None else "never",
            s["limited_by"] or "the soak",
            f"{_span(timedelta(seconds=s['simulated_p50_s'])) if s['simulated_p50_s'] is not None else '—'} "
            f"({s['advanced']})",
            str(s["waited_for_data"]),
            str(s["said_so_within_a_tick"]),
        )
    Console().print(table)

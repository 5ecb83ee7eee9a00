"""Entry point: the Typer app and the one place errors become a one-line reason and exit code 1."""

import sys
from typing import Annotated

import typer
from typer._click import exceptions as click_errors  # typer ships its own click

from rampup import __version__
from rampup.cli import (
    alerts,
    backtest,
    coderefs,
    demo,
    environments,
    feedback,
    flags,
    metrics,
    notifications,
    reports,
    rollouts,
    schedules,
    segments,
    serve,
    simulate,
    tokens,
)
from rampup.errors import RampupError

__all__ = ["app", "main"]

app = typer.Typer(
    name="rampup",
    help="Rampup: progressive delivery — flags, staged rollouts, statistical gates, automatic rollback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.command("migrate")(serve.migrate)
app.command("demo")(demo.demo)
app.add_typer(flags.app, name="flag")
app.add_typer(segments.app, name="segment")
app.add_typer(tokens.app, name="token")
app.add_typer(environments.app, name="environment")
app.add_typer(metrics.app, name="metrics")
app.add_typer(rollouts.app, name="rollout")
app.add_typer(notifications.app, name="channel")
app.command("notifications")(notifications.notifications)
app.add_typer(alerts.app, name="alert")
app.add_typer(reports.app, name="report")
app.add_typer(feedback.app, name="feedback")
app.add_typer(schedules.app, name="schedule")
app.command("alerts")(alerts.alerts)
app.command("apply")(rollouts.apply)
app.command("simulate")(simulate.simulate)
app.command("backtest")(backtest.backtest)
app.command("env")(flags.env)
app.command("dsn")(metrics.dsn)
app.command("refs")(coderefs.refs)
app.command("cleanup")(coderefs.cleanup)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"rampup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Rampup command line."""


def main() -> None:
    try:
        app(standalone_mode=False)
    except RampupError as exc:
        where = f" (at {exc.where})" if exc.where and exc.where not in exc.message else ""
        # One line even when the message quotes someone's text that has several (a kill switch's reason).
        print(" ".join(f"rampup: {exc.message}{where}".splitlines()), file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except click_errors.NoArgsIsHelpError as exc:  # `rampup flag` alone: the help, as asked
        typer.echo(exc.format_message())
        sys.exit(0)
    except click_errors.ClickException as exc:  # usage errors: one line too, saying where to look
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "rampup"
        print(f"rampup: {exc.format_message()} (see {command} --help)", file=sys.stderr)
        sys.exit(exc.exit_code)

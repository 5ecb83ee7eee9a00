"""rampup feedback list|purge: what users said about a flag, per variant; one user's feedback deleted."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote

__all__ = ["app"]

app = typer.Typer(
    help="User feedback: ratings and comments per variant; purge a user's.", no_args_is_help=True
)


@app.command("list")
def list_feedback(
    environment: Annotated[str, typer.Option("--env", "-e", help="Environment key.")],
    flag: Annotated[str | None, typer.Option("--flag", "-f", help="Only feedback attributed to it.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="With --flag: only this variant.")] = None,
    commented: Annotated[bool, typer.Option("--commented", help="Only feedback with a comment.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    before: Annotated[
        int | None, typer.Option("--before", help="Older than this id (the next page).")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Feedback newest first, with each one's variant of the flag; `--before` pages back."""
    params = {"environment": environment, "limit": limit, "commented": commented}
    params |= {k: v for k, v in (("flag", flag), ("variant", variant), ("before", before)) if v is not None}
    page = Remote(server, token).call("GET", "/api/v1/feedback", params=params)
    if as_json:
        print_json(page)
        return
    table = Table("id", "at", "user", "variant", "rating", "comment", title=f"Feedback in {environment}")
    for e in page["feedback"]:
        rating = f"{e['rating']:g} ({e['scale']})" if e["rating"] is not None else "—"
        shown = (
            e["variants"].get(flag, "—") if flag else ", ".join(f"{k}={v}" for k, v in e["variants"].items())
        )
        # Text, not a string: a comment is what a user typed, never markup for the terminal.
        table.add_row(
            str(e["id"]),
            e["at"][:19],
            Text(e["targeting_key"] or "—"),
            Text(shown),
            rating,
            Text(e["comment"] or ""),
        )
    console = Console()
    console.print(table)
    if page["next_before"]:
        console.print(f"More: --before {page['next_before']}")


@app.command("purge")
def purge(
    user: Annotated[str, typer.Option("--user", "-u", help="The user's targeting key.")],
    environment: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Delete every piece of feedback one user gave (comments included); audited as feedback.purge."""
    params = {"user": user, **({"environment": environment} if environment else {})}
    result = Remote(server, token).call("DELETE", "/api/v1/feedback", params=params)
    typer.echo(f"deleted {result['deleted']} feedback entries of {user}")

"""rampup flag create|list|show|set|kill, and rampup env."""

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote
from rampup.cli.rules import parse_rule

__all__ = ["app", "env"]

app = typer.Typer(help="Create, inspect and change flags.", no_args_is_help=True)

Env = Annotated[str, typer.Option("--env", "-e", help="Environment key.")]


def _rules_text(rules: list[dict[str, Any]]) -> str:
    return "; ".join(
        " and ".join(
            f"{c['attribute']} {c['operator']} {','.join(map(str, c['values']))}" for c in r["conditions"]
        )
        + f" -> {r['variant']}"
        for r in rules
    )


def _state_line(state: dict[str, Any]) -> str:
    status = "[green]on[/]" if state["enabled"] else "[red]off[/]"
    return f"{status} {state['rollout']:g}%" + (f" +{len(state['rules'])} rules" if state["rules"] else "")


@app.command("create")
def create(
    key: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    flag_type: Annotated[str, typer.Option("--type", help="boolean, string, number or object.")] = "boolean",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Create a flag (off everywhere until you set it)."""
    flag = Remote(server, token).call(
        "POST", "/api/v1/flags", {"key": key, "description": description, "type": flag_type}
    )
    if as_json:
        print_json(flag)
    else:
        typer.echo(f"created flag {flag['key']} ({flag['type']}), off in: {', '.join(flag['environments'])}")


@app.command("list")
def list_flags(server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """List flags with their state in every environment."""
    flags = Remote(server, token).call("GET", "/api/v1/flags")
    if as_json:
        print_json(flags)
        return
    environments = sorted({env for f in flags for env in f["environments"]})
    table = Table("flag", "type", *environments, "description")
    for f in flags:
        table.add_row(
            f["key"],
            f["type"],
            *(_state_line(f["environments"][e]) for e in environments),
            f["description"][:60],
        )
    Console().print(table)


@app.command("show")
def show(key: str, server: Server = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOut = False) -> None:
    """Show one flag in every environment."""
    flag = Remote(server, token).call("GET", f"/api/v1/flags/{key}")
    if as_json:
        print_json(flag)
        return
    console = Console()
    console.print(f"[bold]{flag['key']}[/] ({flag['type']}) {flag['description']}")
    table = Table("environment", "state", "salt", "version", "rules")
    for env, state in flag["environments"].items():
        table.add_row(
            env, _state_line(state), state["salt"], str(state["version"]), _rules_text(state["rules"])
        )
    console.print(table)


@app.command("set")
def set_state(
    key: str,
    environment: Env,
    rollout: Annotated[
        float | None, typer.Option("--rollout", help="Percentage 0–100, two decimals.")
    ] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="The kill switch.")] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            help="'ATTR OP VALUE[,VALUE] [and …] -> VARIANT'; repeat for several; replaces all rules.",
        ),
    ] = None,
    clear_rules: Annotated[bool, typer.Option("--clear-rules", help="Remove every rule.")] = False,
    salt: Annotated[str | None, typer.Option("--salt")] = None,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Change a flag in one environment: rollout, kill switch, rules, salt."""
    body: dict[str, Any] = {"reason": reason}
    if rollout is not None:
        body["rollout"] = rollout
    if enabled is not None:
        body["enabled"] = enabled
    if rules or clear_rules:
        body["rules"] = [parse_rule(r) for r in rules or []]
    if salt is not None:
        body["salt"] = salt
    state = Remote(server, token).call("PUT", f"/api/v1/flags/{key}/environments/{environment}", body)
    if as_json:
        print_json(state)
    else:
        Console().print(f"{key} in {environment}: {_state_line(state)} (version {state['version']})")


@app.command("kill")
def kill(
    key: str,
    environment: Env,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Pull the kill switch: everyone gets the off variant at once."""
    state = Remote(server, token).call(
        "POST", f"/api/v1/flags/{key}/environments/{environment}/kill", {"reason": reason}
    )
    typer.echo(f"killed {key} in {environment} (version {state['version']})")


def env(
    key: str,
    environment: Env,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Default: the flag key in upper case.")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Print the flag's state as environment variables, for env-var driven deployments."""
    state = Remote(server, token).call("GET", f"/api/v1/flags/{key}/environments/{environment}")
    name = prefix or key.upper().replace("-", "_").replace(".", "_")
    typer.echo(f"{name}_ENABLED={'true' if state['enabled'] else 'false'}")
    typer.echo(f"{name}_ROLLOUT={state['rollout']:g}")

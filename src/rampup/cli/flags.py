"""rampup flag create|list|show|update|set|kill, and rampup env."""

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampup.cli.options import DEFAULT_SERVER, JsonOut, Server, TokenOpt, print_json
from rampup.cli.remote import Remote
from rampup.cli.rules import parse_rule
from rampup.core.targeting import condition_text

__all__ = ["app", "env"]

app = typer.Typer(help="Create, inspect and change flags.", no_args_is_help=True)

Env = Annotated[str, typer.Option("--env", "-e", help="Environment key.")]
Kind = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="release, experiment, operational, kill-switch or permission: how long the flag should live.",
    ),
]
Notify = Annotated[
    list[str] | None,
    typer.Option("--notify", help="A channel told of the flag's lifecycle changes; repeat for several."),
]


def _rules_text(rules: list[dict[str, Any]]) -> str:
    return "; ".join(
        " and ".join(condition_text(c) for c in r["conditions"])
        + f" -> {r['variant'] if 'variant' in r else format(r['rollout'], 'g') + '%'}"
        for r in rules
    )


def _life_line(flag: dict[str, Any]) -> str:
    lifetime = f"lives {flag['lifetime_days']} days" if flag["lifetime_days"] else "lives for good"
    refs = flag["references"]
    scanned = (
        f"{refs['count']} code references (scanned {refs['scanned_at']})"
        if refs["scanned_at"]
        else "code references never pushed"
    )
    return f"{flag['status']}, {lifetime}, notifies {', '.join(flag['notify']) or 'no channel of its own'}; {scanned}"


def _state_line(state: dict[str, Any]) -> str:
    status = "[green]on[/]" if state["enabled"] else "[red]off[/]"
    return f"{status} {state['rollout']:g}%" + (f" +{len(state['rules'])} rules" if state["rules"] else "")


Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="A label to find the flag by; repeat for several.")
]
Owner = Annotated[str | None, typer.Option("--owner", help="The person or team who answers for the flag.")]


@app.command("create")
def create(
    key: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    flag_type: Annotated[str, typer.Option("--type", help="boolean, string, number or object.")] = "boolean",
    kind: Kind = None,
    notify: Notify = None,
    tags: Tags = None,
    owner: Owner = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Create a flag (off everywhere until you set it)."""
    body: dict[str, Any] = {"key": key, "description": description, "type": flag_type, "tags": tags or []}
    if owner is not None:
        body["owner"] = owner
    if kind is not None:
        body["kind"] = kind
    if notify:
        body["notify"] = notify
    flag = Remote(server, token).call("POST", "/api/v1/flags", body)
    if as_json:
        print_json(flag)
    else:
        typer.echo(
            f"created flag {flag['key']} ({flag['type']}, {flag['kind']}), off in: {', '.join(flag['environments'])}"
        )


@app.command("update")
def update(
    key: str,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    kind: Kind = None,
    notify: Notify = None,
    no_notify: Annotated[bool, typer.Option("--no-notify", help="Tell no channel of its own.")] = False,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Its labels, replacing the old ones; repeat for several."),
    ] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every label.")] = False,
    owner: Owner = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Change a flag's description, kind, channels, tags or owner (its state per environment: rampup flag set)."""
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    if kind is not None:
        body["kind"] = kind
    if notify or no_notify:
        body["notify"] = notify or []
    if tags or no_tags:
        body["tags"] = tags or []
    if owner is not None:
        body["owner"] = owner
    flag = Remote(server, token).call("PATCH", f"/api/v1/flags/{key}", body)
    if as_json:
        print_json(flag)
    else:
        channels = ", ".join(flag["notify"]) or "none of its own"
        labels = ", ".join(flag["tags"]) or "no tags"
        typer.echo(
            f"{flag['key']}: {flag['kind']}, notifies {channels}; {labels}; owner {flag['owner'] or 'nobody'}"
        )


@app.command("list")
def list_flags(
    tag: Annotated[str | None, typer.Option("--tag", help="Only flags with this tag.")] = None,
    owner: Owner = None,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """List flags with their state in every environment (those with a tag or an owner)."""
    wanted = {name: value for name, value in (("tag", tag), ("owner", owner)) if value is not None}
    flags = Remote(server, token).call("GET", "/api/v1/flags", params=wanted)
    if as_json:
        print_json(flags)
        return
    environments = sorted({env for f in flags for env in f["environments"]})
    table = Table("flag", "type", "kind", "status", "owner", "tags", *environments, "description")
    for f in flags:
        table.add_row(
            f["key"],
            f["type"],
            f["kind"],
            f["status"],
            f["owner"] or "",
            ",".join(f["tags"]),
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
    console.print(f"[bold]{flag['key']}[/] ({flag['type']}, {flag['kind']}) {flag['description']}")
    console.print(_life_line(flag), markup=False)
    table = Table("environment", "state", "salt", "version", "rules")
    for env, state in flag["environments"].items():
        table.add_row(
            env, _state_line(state), state["salt"], str(state["version"]), _rules_text(state["rules"])
        )
    console.print(table)
    for env, state in flag["environments"].items():
        if state.get("switched_off"):
            console.print(_switched_off_line(key, env, state["switched_off"]), markup=False)


def _switched_off_line(key: str, env: str, off: dict[str, Any]) -> str:
    """A pulled kill switch: who, when, why and how, and the way back."""
    by = f"{off['actor']} on behalf of {off['on_behalf_of']}" if off["on_behalf_of"] else off["actor"]
    how = {
        "kill": "flag kill",
        "disable": "flag set --disable",
        "rollout": "rollout",
        "scheduled": "scheduled change",
    }
    source = f" {off['source_id']}" if off["source_id"] is not None else ""
    why = f" ({off['reason']})" if off["reason"] else ""
    return (
        f"switched off in {env} at {off['at']} by {by} with {how.get(off['how'], off['how'])}{source}{why}; "
        f"stays off until a person turns it on: rampup flag set {key} --env {env} --enable --rollout 0"
    )


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
    bucket_by: Annotated[
        str | None,
        typer.Option(
            "--bucket-by", help="Context attribute to split by (account_id); targetingKey to reset."
        ),
    ] = None,
    requires: Annotated[
        list[str] | None,
        typer.Option(
            "--requires",
            help="FLAG or FLAG=VARIANT that must be on for the user first; repeat; replaces all.",
        ),
    ] = None,
    clear_requires: Annotated[
        bool, typer.Option("--clear-requires", help="Remove every prerequisite.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Change a flag in one environment: rollout, kill switch, rules, salt, bucketing attribute, prerequisites."""
    body: dict[str, Any] = {"reason": reason}
    if rollout is not None:
        body["rollout"] = rollout
    if enabled is not None:
        body["enabled"] = enabled
    if rules or clear_rules:
        body["rules"] = [parse_rule(r) for r in rules or []]
    if salt is not None:
        body["salt"] = salt
    if bucket_by is not None:
        body["bucket_by"] = bucket_by
    if requires or clear_requires:
        body["prerequisites"] = [
            dict(zip(("flag", "variant"), r.split("=", 1), strict=False)) for r in requires or []
        ]
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


@app.command("archive")
def archive(
    key: str,
    force: Annotated[
        bool,
        typer.Option("--force", help="Although the last pushed scan (rampup refs --push) found it in code."),
    ] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Take it out of the archive.")] = False,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Archive a flag the code no longer uses: evaluations answer its final value with reason ARCHIVED."""
    remote = Remote(server, token)
    if undo:
        remote.call("DELETE", f"/api/v1/flags/{key}/archive")
        typer.echo(f"{key} restored: it evaluates by its state again")
        return
    flag = remote.call("POST", f"/api/v1/flags/{key}/archive", {"force": force, "reason": reason})
    typer.echo(
        f"archived {key} at {flag['archived_at']}: evaluations answer its final value with reason ARCHIVED "
        "and are counted (rampup flag stale shows callers that remain)"
    )


@app.command("stale")
def stale(
    every: Annotated[bool, typer.Option("--all", help="Every flag, active ones included.")] = False,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOut = False,
) -> None:
    """Flags to clean up: stale, ready for cleanup, or archived but still evaluated — each with the reason."""
    lives = Remote(server, token).call("GET", "/api/v1/lifecycle")
    if not every:
        lives = [f for f in lives if f["status"] in ("stale", "ready_for_cleanup") or _archived_in_use(f)]
    if as_json:
        print_json(lives)
        return
    if not lives:
        typer.echo("no flag to clean up" + ("" if every else " (--all lists every flag)"))
        return
    table = Table("flag", "kind", "status", "since", "last evaluated", "code refs", "reason")
    for f in lives:
        table.add_row(
            f["flag"],
            f["kind"],
            f["status"],
            (f["since"] or "")[:10],
            (f["last_evaluated_at"] or "never")[:16],
            str(f["references"]) if f["scanned_at"] else "not pushed",
            f["reason"],
        )
    Console().print(table)


def _archived_in_use(life: dict[str, Any]) -> bool:
    """An archived flag evaluated after its archive: someone's code still asks for it."""
    last = life["last_evaluated_at"]
    return (
        life["status"] == "archived"
        and last is not None
        and datetime.fromisoformat(last) > datetime.fromisoformat(life["archived_at"])
    )


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

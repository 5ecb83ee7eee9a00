"""rampup refs and rampup cleanup: where flags are used in a source tree, and removing them."""

import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rampup.cli.options import DEFAULT_SERVER, Server, TokenOpt, print_json
from rampup.cli.remote import CliError, Remote

if TYPE_CHECKING:  # the parsers load only for these commands, not for every `rampup …`
    from rampup.adapters.codescan.scan import Found, Scan

__all__ = ["refs", "cleanup", "progress_bar", "scan_path"]

MAX_CODE = 300  # characters of a reference's line pushed to the server

Flags = Annotated[
    list[str] | None,
    typer.Option(
        "--flag", "-f", help="The flag key; repeat for several. Default: every flag the code evaluates."
    ),
]
PathArg = Annotated[
    Path, typer.Argument(help="A directory (or one file) of Python, JavaScript or TypeScript.")
]


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal; nothing otherwise (CI logs stay clean)."""
    if not sys.stderr.isatty():
        yield lambda done, total, doing: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=None)

        def update(done: int, total: int, doing: str) -> None:
            bar.update(task, completed=done, total=total, description=doing)

        yield update


def scan_path(path: Path, keys: list[str] | None) -> "Scan":
    from rampup.adapters.codescan.scan import scan

    if not path.exists():
        raise CliError(f"{path}: no such file or directory")
    with progress_bar() as progress:
        return scan(path, keys, progress)


def _as_json(found: "Found") -> dict[str, Any]:
    ref = found.ref
    return {
        "flag": ref.key,
        "file": ref.module,
        "line": ref.span.line,
        "column": ref.span.column + 1,
        "kind": str(ref.kind),
        "detail": ref.detail,
        "scope": ref.scope,
        "code": found.code,
    }


def refs(
    path: PathArg,
    flags: Flags = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    push: Annotated[
        bool,
        typer.Option(
            "--push", help="Send the references to the server (every flag it knows, or --flag): needs write."
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the code still uses an archived flag (for CI).")
    ] = False,
    server: Server = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Find every use of a flag: literals, constants and aliases, wrappers, SDK, OpenFeature, OFREP, env vars."""
    remote = Remote(server, token) if push or check else None
    archived = _archived(remote) if remote is not None and check else []
    pushed = (flags or _server_flags(remote)) if remote is not None and push else []
    keys = sorted({*pushed, *archived, *(flags or [])}) if remote is not None else flags
    if keys == []:  # --check alone with nothing archived: nothing to look for
        typer.echo("no archived flags on the server: nothing to check", err=True)
        return
    started = time.perf_counter()
    result = scan_path(path, keys)
    elapsed = time.perf_counter() - started
    counts: dict[str, Counter[str]] = {key: Counter() for key in sorted(result.keys)}
    for found in result.found:
        counts[found.ref.key][str(found.ref.kind)] += 1
    if as_json:
        print_json(
            {
                "root": str(result.tree.root),
                "flags": sorted(result.keys),
                "references": [_as_json(f) for f in result.found],
                "counts": {key: dict(sorted(c.items())) for key, c in counts.items()},
                "files": len(result.tree.files),
                "parsed": len(result.facts),
                "skipped": [{"file": f, "reason": "larger than 1 MiB"} for f in result.tree.skipped]
                + [{"file": f, "reason": why} for f, why in result.unreadable],
                "seconds": round(elapsed, 3),
            }
        )
    else:
        _print(result, counts, elapsed)
    if remote is not None and push:
        _push(remote, result, pushed)
    if check:
        _check(result, archived)


def _server_flags(remote: Remote) -> list[str]:
    return [f["key"] for f in remote.call("GET", "/api/v1/flags")]


def _archived(remote: Remote) -> list[str]:
    return [f["flag"] for f in remote.call("GET", "/api/v1/lifecycle", params={"status": "archived"})]


def _push(remote: Remote, result: "Scan", keys: list[str]) -> None:
    """One PUT per flag, its references replacing the last push's: a flag found nowhere is pushed empty, which
    is what lets it be archived."""
    for key in keys:
        found = [
            {k: v for k, v in _as_json(f).items() if k not in ("flag", "column")}
            | {"code": f.code[:MAX_CODE]}
            for f in result.found
            if f.ref.key == key
        ]
        try:
            remote.call(
                "PUT", f"/api/v1/flags/{key}/references", {"references": found, "root": str(result.tree.root)}
            )
        except CliError as exc:
            if "not found" not in str(exc):
                raise
            typer.echo(f"{key}: not a flag on the server, not pushed", err=True)
            continue
        typer.echo(f"{key}: pushed {len(found)} references", err=True)


def _check(result: "Scan", archived: list[str]) -> None:
    """Fail when an archived flag is still used; a bare literal may be a coincidence, so it only warns."""
    in_use = [f for f in result.found if f.ref.key in archived]
    blocking = [f for f in in_use if str(f.ref.kind) != "literal"]
    for f in in_use:
        level = "error" if f in blocking else "warning"
        typer.echo(
            f"{level}: {f.ref.module}:{f.ref.span.line} uses archived flag {f.ref.key} ({f.ref.kind})",
            err=True,
        )
    if blocking:
        flags = sorted({f.ref.key for f in blocking})
        raise CliError(f"archived flags still used: {', '.join(flags)} ({len(blocking)} references)")


def _print(result: "Scan", counts: dict[str, Counter[str]], elapsed: float) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not result.keys:
        console.print(f"no flag evaluations found in {len(result.tree.files)} files ({elapsed:.2f} s)")
        return
    for found in result.found:
        ref = found.ref
        where = f" in {ref.scope}()" if ref.scope else ""
        flag = f"{ref.key} " if len(result.keys) > 1 else ""
        console.print(
            f"[bold]{ref.module}:{ref.span.line}[/]  {flag}[cyan]{ref.kind}[/] {ref.detail}{where}",
            markup=True,
        )
        console.print(f"    {found.code}", markup=False)
    for key, kinds in counts.items():
        files = len({f.ref.module for f in result.found if f.ref.key == key})
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())) or "none"
        console.print(f"{key}: {sum(kinds.values())} references in {files} files ({summary})", markup=False)
    for module, why in result.unreadable:
        console.print(f"skipped {module}: {why}", markup=False, style="yellow")
    console.print(
        f"{len(result.tree.files)} files, {len(result.facts)} parsed, {elapsed:.2f} s",
        style="dim",
        markup=False,
    )


def cleanup(
    path: PathArg,
    flag: Annotated[str, typer.Option("--flag", "-f", help="The flag to remove from the code.")],
    keep: Annotated[str, typer.Option("--keep", help="on: the flag is always on; off: always off.")],
    apply: Annotated[
        bool, typer.Option("--write", help="Change the files instead of printing the diff.")
    ] = False,
) -> None:
    """Rewrite code as if the flag were always on (or off): a unified diff, or the files changed with --write."""
    from rampup.adapters.codescan.cleanup import clean, write

    if keep not in ("on", "off"):
        raise CliError(f"--keep must be on or off, not {keep!r}")
    if not path.exists():
        raise CliError(f"{path}: no such file or directory")
    with progress_bar() as progress:
        result = clean(path, flag, keep == "on", progress)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if not result.scan.analysis.checks and not result.changed:
        console.print(
            f"{flag}: no check of this flag found in {len(result.scan.tree.files)} files", markup=False
        )
    if apply:
        write(result)
    else:
        sys.stdout.write(result.diff())
    for module in sorted(result.changed):
        what = "deleted" if result.changed[module] is None else "rewritten" if apply else "would change"
        removed = result.removed.get(module)
        suffix = f" (removed {', '.join(removed)})" if removed else ""
        console.print(f"{what}: {module}{suffix}", markup=False)
    for module, line, reason in result.refused:
        console.print(f"left as it is: {module}:{line}: {reason}", markup=False, style="yellow")
    remaining = [f for f in result.scan.found if f.ref.module not in result.changed]
    if result.refused:
        console.print(f"{len(result.refused)} places need a hand", markup=False)
    elif not remaining:
        console.print(f"{flag}: nothing left to rewrite", markup=False)

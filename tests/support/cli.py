"""`rampup ARGS…` run in the test's own process: the real command line (`rampup.cli.entry.main`, its parsing,
its one-line errors and its exit codes) against a real server over HTTP, without a new interpreter for each
command — importing the command line costs more CPU than most commands do. The result is what a subprocess
gives (`subprocess.CompletedProcess`: exit code, stdout, stderr), so a test reads it the same way.

What only a subprocess shows stays a subprocess in the tests: the installed entry point (`python -m rampup`),
`rampup serve`, and a crash's traceback (here an unexpected exception fails the test where it is raised).

While a command runs, the process's environment, directory, argv and standard streams are the command's: one
command at a time, and whatever a test's own thread prints meanwhile lands in the command's output (the receivers
and servers here print nothing there). pytest-xdist's workers are processes, each with its own.
"""

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from rampup.cli.entry import main
from tests.support.servers import Server

__all__ = ["cli_env", "rampup_at", "run_cli"]


def cli_env(
    server_url: str | None = None, token: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The test's environment without its RAMPUP_* settings, on a wide terminal (rich tables keep one row per
    line), with RAMPUP_SERVER and RAMPUP_TOKEN when given, and `extra` over all that."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPUP_")}
    env["COLUMNS"] = "250"
    if server_url is not None:
        env["RAMPUP_SERVER"] = server_url
    if token is not None:
        env["RAMPUP_TOKEN"] = token
    return {**env, **(extra or {})}


@contextmanager
def _process_state(argv: list[str], env: Mapping[str, str], cwd: Path | None) -> Iterator[None]:
    """The command sees exactly `env` as its environment (typer reads RAMPUP_SERVER and RAMPUP_TOKEN there, rich
    reads COLUMNS), `argv` as its arguments and `cwd` as its directory; all are the test's own again afterwards."""
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, Path.cwd()
    _become(env)
    sys.argv = argv
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        _become(saved_env)
        sys.argv = saved_argv


def _become(env: Mapping[str, str]) -> None:
    """os.environ made `env` key by key, never empty in between: the test's own threads (receivers, SDK clients)
    may read it meanwhile."""
    for key in os.environ.keys() - env.keys():
        del os.environ[key]
    os.environ.update(env)


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`rampup ARGS…` with `env` (the test's own environment unless given) in `cwd` (the test's unless given)."""
    argv = ["rampup", *args]
    out, err = io.StringIO(), io.StringIO()
    with (
        _process_state(argv, os.environ.copy() if env is None else env, cwd),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as exc:
            # what the interpreter makes of it: None is 0, a message is printed and is 1
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def rampup_at(
    server: Server, *args: str, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`rampup ARGS…` against `server` (RAMPUP_SERVER), as its admin unless `token` is given (RAMPUP_TOKEN)."""
    return run_cli(args, cli_env(server.url, token or server.admin_token), cwd)

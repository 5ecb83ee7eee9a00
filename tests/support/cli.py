"""`rampup ARGS…` run in the test's own process: the real command line (`rampup.cli.entry.main`, its parsing,
its one-line errors and its exit codes) against a real server over HTTP, without a new interpreter for each
command — importing the command line costs more CPU than most commands do. The result is what a subprocess
gives (`subprocess.CompletedProcess`: exit code, stdout, stderr), so a test reads it the same way.

What only a subprocess shows stays a subprocess in the tests: the installed entry point (`python -m rampup`),
`rampup serve`, and a crash's traceback (here an unexpected exception fails the test where it is raised).
"""

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from rampup.cli.entry import main

__all__ = ["run_cli"]


@contextmanager
def _process_state(argv: list[str], env: Mapping[str, str]) -> Iterator[None]:
    """The command sees exactly `env` as its environment (typer reads RAMPUP_SERVER and RAMPUP_TOKEN there, rich
    reads COLUMNS) and `argv` as its arguments; both are the test's own again afterwards."""
    saved_env, saved_argv = dict(os.environ), sys.argv
    os.environ.clear()
    os.environ.update(env)
    sys.argv = argv
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv


def run_cli(args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    argv = ["rampup", *args]
    out, err = io.StringIO(), io.StringIO()
    with _process_state(argv, env), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
            code = 0
        except (
            SystemExit
        ) as exc:  # what the interpreter makes of it: None is 0, a message is printed and is 1
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())

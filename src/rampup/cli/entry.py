"""The `rampup` command: the command line, or what to install when only the SDK is installed."""

import sys

__all__ = ["main"]


def main() -> None:
    try:
        from rampup.cli.main import main as run
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("rampup"):
            raise
        sys.exit(
            f"rampup: the command line and the server are not installed ({exc.name} is missing): "
            "pip install 'rampup[server]'"
        )
    run()

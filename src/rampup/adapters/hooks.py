"""Stage-change hooks: an HTTP webhook, a command the server defines. Each raises Unavailable when it did not get through."""

import json
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from rampup.adapters.notify._http import post
from rampup.core.plans import HOOK_COMMAND_NAME
from rampup.errors import ConfigError, Unavailable

__all__ = ["WebhookHook", "CommandHook", "load_commands"]

log = logging.getLogger("rampup.hooks")


class WebhookHook:
    """POSTs the change as JSON; any 2xx is delivered. The delivery id is the same on every retry."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        body = {k: v for k, v in payload.items() if k != "url"}
        post(
            self._client,
            payload["url"],
            json={"id": item_id, "type": "rollout.stage", **body},
            headers={"X-Rampup-Delivery": item_id},
        )


def load_commands(value: str | None) -> dict[str, tuple[str, ...]]:
    """RAMPUP_HOOK_COMMANDS: a JSON object {"name": ["program", "arg", …]}, or the path of a file holding one."""
    if not value:
        return {}
    where = "RAMPUP_HOOK_COMMANDS"
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the hook commands file {value}: {exc.strerror}", where=where
            ) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"hook commands are not JSON: {exc}", where=where) from None
    if not isinstance(raw, dict):
        raise ConfigError('hook commands are a JSON object {"name": ["program", "arg", …]}', where=where)
    commands: dict[str, tuple[str, ...]] = {}
    for name, argv in raw.items():
        if not HOOK_COMMAND_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a command name (letters, digits, '.', '_', '-')", where=where)
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigError(f"{name}: a command is a list of its program and arguments", where=where)
        commands[name] = tuple(argv)
    return commands


class CommandHook:
    """Runs a command the server defines, named by the plan, with the new state in its environment, so env-var
    deployments follow along: RAMPUP_FLAG, RAMPUP_ENVIRONMENT, RAMPUP_ENABLED (true/false), RAMPUP_ROLLOUT
    (percent), RAMPUP_STAGE, RAMPUP_DELIVERY. No shell; its environment is those and PATH, nothing of the
    server's (its tokens, its database URL); what it prints goes to the server's log only."""

    def __init__(self, commands: Mapping[str, Sequence[str]], path: str, timeout_s: float) -> None:
        self._commands = commands
        self._path = path
        self._timeout = timeout_s

    def send(self, item_id: str, payload: Mapping[str, Any]) -> None:
        name = str(payload["command"])
        argv = self._commands.get(name)
        if argv is None:
            raise Unavailable(f"hook command {name!r} is not defined on this server (RAMPUP_HOOK_COMMANDS)")
        env = {
            "PATH": self._path,
            "RAMPUP_DELIVERY": item_id,
            "RAMPUP_FLAG": str(payload["flag"]),
            "RAMPUP_ENVIRONMENT": str(payload["environment"]),
            "RAMPUP_ENABLED": "true" if payload["enabled"] else "false",
            "RAMPUP_ROLLOUT": f"{payload['rollout']:g}",
            "RAMPUP_STAGE": str(payload["stage"]),
        }
        try:
            child = subprocess.Popen(
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout ends whatever it started too
            )
        except OSError as exc:
            raise Unavailable(f"hook command {name!r} could not start: {exc.strerror}") from None
        try:
            output, _ = child.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
            _log_output(name, item_id, "was killed after the time limit", output)
            raise Unavailable(f"hook command {name!r} did not finish within {self._timeout:g} s") from None
        if child.returncode != 0:
            _log_output(name, item_id, f"exited {child.returncode}", output)
            raise Unavailable(
                f"hook command {name!r} exited {child.returncode}; its output is in the server log"
            )
        log.info("hook command %s (delivery %s) done: %s", name, item_id, _tail(output))


def _tail(output: bytes) -> str:
    return output[-4000:].decode(errors="replace").strip()


def _log_output(name: str, item_id: str, what: str, output: bytes) -> None:
    log.warning("hook command %s (delivery %s) %s; its output: %s", name, item_id, what, _tail(output))

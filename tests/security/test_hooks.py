"""No code execution from the API. A plan names a hook command the server defines; a `write` token can
neither run a command line of its own nor read what a command printed."""

import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.rollouts import create_rollout, drive
from tests.support.servers import FAST, Server
from tests.support.tokens import new_token
from tests.support.waiting import wait_until

FLAG = "hooked"


def plan(command: str) -> dict[str, object]:
    return {
        "name": "hooked-plan",
        "flag": FLAG,
        "environment": "production",
        "stages": [{"name": "Everyone", "percentage": 100}],
        "hooks": {"command": command},
    }


def create_flag(c: httpx.Client) -> None:
    r = c.post("/api/v1/flags", json={"key": FLAG, "description": "hooks", "type": "boolean"})
    assert r.status_code == 201, r.text


def test_a_write_token_cannot_run_a_command_line_or_an_undefined_command(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    defined = {"deploy-env": [sys.executable, "-c", "pass"]}
    server = server_factory(
        make_database_url("sqlite"), extra_env={"RAMPUP_HOOK_COMMANDS": json.dumps(defined)}
    )
    proof = tmp_path / "pwned"
    with server.client(new_token(server, "write", "ci-bot")) as writer:
        create_flag(writer)
        for command, where in (
            (f"touch {proof}", "plan.hooks.command"),
            (f"$(touch {proof})", "plan.hooks.command"),
            ("deploy", "hooks.command"),  # a name, but not one the server defines
        ):
            r = writer.post("/api/v1/rollouts", json={"plan": plan(command)})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["where"] == where, r.text
        as_yaml = (
            f"name: p\nflag: {FLAG}\nenvironment: production\nstages:\n  - {{name: all, percentage: 100}}\n"
        )
        r = writer.post(
            "/api/v1/rollouts", json={"plan": {"yaml": as_yaml + f"hooks:\n  command: touch {proof}\n"}}
        )
        assert r.status_code == 422 and r.json()["error"]["where"] == "plan.yaml:7 (hooks.command)", r.text
        assert writer.get("/api/v1/rollouts").json() == [], "a refused plan starts nothing"
        # A name the server defines is accepted.
        assert writer.post("/api/v1/rollouts", json={"plan": plan("deploy-env")}).status_code == 201
    assert not proof.exists()


def test_what_a_command_prints_stays_in_the_server_log_and_a_slow_one_is_killed(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    secret = "printed-by-the-hook-4c1d"
    # A shell prints and exits well within the time limit on a busy machine; the slow one never ends by itself.
    commands = {
        "noisy": ["/bin/sh", "-c", f"echo {secret}; exit 3"],
        "slow": ["/bin/sh", "-c", "sleep 3600"],
    }
    server = server_factory(
        make_database_url("sqlite"),
        extra_env={**FAST, "RAMPUP_HOOK_COMMANDS": json.dumps(commands), "RAMPUP_HOOK_TIMEOUT_S": "5"},
        manual_clock=True,
    )
    with server.client() as admin:
        create_flag(admin)
        noisy = create_rollout(admin, plan("noisy"))
        drive(server, admin, noisy, lambda s: s["state"] == "completed", what="completion")
        slow = create_rollout(admin, {**plan("slow"), "name": "slow-plan"})
        drive(server, admin, slow, lambda s: s["state"] == "completed", what="completion")
    with server.client(new_token(server, "read", "dashboard-viewer")) as reader:

        def failures() -> dict[str, str]:
            items = reader.get("/api/v1/notifications").json()
            return {
                i["channel"]: i["last_error"]
                for i in items
                if i["kind"] == "hook.command" and i["last_error"]
            }

        wait_until(
            lambda: len(failures()) == 2, "both hook commands failed once", detail=lambda: str(failures())
        )
        errors = failures()
    assert errors["noisy"] == "hook command 'noisy' exited 3; its output is in the server log"
    assert errors["slow"] == "hook command 'slow' did not finish within 5 s"
    assert secret in server.output()

"""The `rampup` command line, driven as a user drives it, against a running server over HTTP.

Commands run in the test's process through the real command line (tests/support/cli.py); what needs a process of
its own runs as one: the entry point (`python -m rampup --version`, a missing token), and `rampup serve`. Every command is checked by what a user sees (its output and exit status) and by what the server holds
afterwards, read back over the HTTP API. The commands work on flags, tokens and segments of their own, find them
by key, or check that a refused command changed nothing, so the module shares a server per backend.
"""

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from rampup import __version__
from tests.support.cli import cli_env, run_cli
from tests.support.ports import free_port
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S, wait_until


@pytest.fixture
def sqlite_server(shared_sqlite_server: Server) -> Server:
    return shared_sqlite_server


ADMIN_TOKEN_LINE = re.compile(r"^Admin token \(shown once, keep it\): (rp_[A-Za-z0-9_-]+)$", re.MULTILINE)


def _environment(server: Server | None, token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    return cli_env(server.url if server is not None else None, token, extra)


def rampup(
    *args: str, server: Server | None = None, token: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `rampup ARGS…`; with `server`, RAMPUP_SERVER and RAMPUP_TOKEN (the admin token unless given) are set."""
    if server is not None and token is None:
        token = server.admin_token
    return run_cli(args, _environment(server, token, env))


def rampup_process(
    *args: str, server: Server | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m rampup ARGS…` in a process of its own, as installed; with `server`, RAMPUP_SERVER is set."""
    return subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        env=_environment(server, None, env),
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command exits non-zero and says why on exactly one stderr line starting with `rampup:`."""
    assert result.returncode != 0, f"expected a failure, got exit 0\nstdout: {result.stdout}"
    assert "Traceback" not in result.stderr, (
        f"crashed with {result.stderr.strip().splitlines()[-1]!r}:\n{result.stderr}"
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("rampup: "), lines[0]
    return lines[0]


def new_key() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def api_state(server: Server, key: str, environment: str = "production") -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/api/v1/flags/{key}/environments/{environment}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def create_flag(server: Server, key: str, **state: Any) -> None:
    with server.client() as client:
        assert client.post("/api/v1/flags", json={"key": key}).status_code == 201
        if state:
            response = client.put(f"/api/v1/flags/{key}/environments/production", json=state)
            assert response.status_code == 200, response.text


def server_snapshot(server: Server) -> tuple[Any, Any, Any]:
    """Everything a failed command could have changed: flags, tokens and the audit log."""
    with server.client() as client:
        return (
            client.get("/api/v1/flags").json(),
            client.get("/api/v1/tokens").json(),
            client.get("/api/v1/audit", params={"limit": 1000}).json(),
        )


# version


def test_version_prints_the_installed_version() -> None:
    result = rampup_process("--version")
    assert ok(result).strip() == f"rampup {__version__}"
    assert result.stderr == ""


# flags


def test_flag_create_then_list_and_show_it(sqlite_server: Server) -> None:
    key = new_key()
    created = ok(
        rampup(
            "flag",
            "create",
            key,
            "--description",
            "Workstation-UI",
            "--server",
            sqlite_server.url,
            "--token",
            sqlite_server.admin_token,
        )
    )
    assert key in created
    assert "production" in created and "staging" in created

    listed = ok(rampup("flag", "list", server=sqlite_server))
    row = next((line for line in listed.splitlines() if key in line), None)
    assert row is not None, listed
    assert "boolean" in row and "Workstation-UI" in row
    assert row.count("off 0%") == 2, row  # off in staging and in production

    as_json = json.loads(ok(rampup("flag", "list", "--json", server=sqlite_server)))
    flag = next(f for f in as_json if f["key"] == key)
    assert flag["description"] == "Workstation-UI"
    assert {env: (s["enabled"], s["rollout"]) for env, s in flag["environments"].items()} == {
        "staging": (False, 0),
        "production": (False, 0),
    }

    shown = ok(rampup("flag", "show", key, server=sqlite_server))
    assert key in shown and "Workstation-UI" in shown
    for environment in ("staging", "production"):
        line = next((line for line in shown.splitlines() if environment in line), None)
        assert line is not None and "off 0%" in line, shown

    with sqlite_server.client() as client:
        response = client.get(f"/api/v1/flags/{key}")
    assert response.status_code == 200
    assert response.json()["description"] == "Workstation-UI"


def test_flag_set_rollout_and_enable_then_env_prints_the_deployment_variables(shared_server: Server) -> None:
    """On SQLite and PostgreSQL: the NEXT_PUBLIC_WORKSTATION_* variables a Next.js app reads, from the server."""
    key = new_key()
    create_flag(shared_server, key)

    out = ok(
        rampup("flag", "set", key, "--env", "production", "--rollout", "25", "--enable", server=shared_server)
    )
    assert key in out and "production" in out and "25%" in out

    state = api_state(shared_server, key)
    assert state["enabled"] is True
    assert state["rollout"] == 25
    assert state["version"] == 2
    staging = api_state(shared_server, key, "staging")
    assert (staging["enabled"], staging["rollout"]) == (False, 0)

    result = rampup(
        "env", key, "--env", "production", "--prefix", "NEXT_PUBLIC_WORKSTATION", server=shared_server
    )
    assert ok(result) == "NEXT_PUBLIC_WORKSTATION_ENABLED=true\nNEXT_PUBLIC_WORKSTATION_ROLLOUT=25\n"
    assert result.stderr == ""

    ok(
        rampup(
            "flag", "set", key, "--env", "production", "--rollout", "12.5", "--disable", server=shared_server
        )
    )
    assert (api_state(shared_server, key)["enabled"], api_state(shared_server, key)["rollout"]) == (
        False,
        12.5,
    )
    assert ok(
        rampup("env", key, "--env", "production", "--prefix", "NEXT_PUBLIC_WORKSTATION", server=shared_server)
    ) == ("NEXT_PUBLIC_WORKSTATION_ENABLED=false\nNEXT_PUBLIC_WORKSTATION_ROLLOUT=12.5\n")


def test_env_without_prefix_uses_the_flag_key(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key, enabled=True, rollout=100)
    name = key.upper().replace("-", "_")
    assert ok(rampup("env", key, "--env", "production", server=sqlite_server)) == (
        f"{name}_ENABLED=true\n{name}_ROLLOUT=100\n"
    )


def test_flag_set_rule_is_stored_as_a_targeting_rule(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key)

    ok(
        rampup(
            "flag",
            "set",
            key,
            "--env",
            "production",
            "--enable",
            "--rule",
            "email ends_with @example.com -> on",
            server=sqlite_server,
        )
    )

    state = api_state(sqlite_server, key)
    assert state["enabled"] is True
    assert state["rollout"] == 0
    assert state["rules"] == [
        {
            "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}],
            "variant": "on",
        }
    ]
    assert api_state(sqlite_server, key, "staging")["rules"] == []

    shown = ok(rampup("flag", "show", key, server=sqlite_server))
    assert "email ends_with @example.com -> on" in shown


def test_flag_set_rule_with_a_percentage_serves_a_split(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key, enabled=True)

    ok(
        rampup(
            "flag",
            "set",
            key,
            "--env",
            "production",
            "--rule",
            "country in DE,AT -> 50%",
            "--bucket-by",
            "account_id",
            server=sqlite_server,
        )
    )

    state = api_state(sqlite_server, key)
    assert state["rules"] == [
        {"conditions": [{"attribute": "country", "operator": "in", "values": ["DE", "AT"]}], "rollout": 50}
    ]
    assert state["bucket_by"] == "account_id"
    assert "country in DE,AT -> 50%" in ok(rampup("flag", "show", key, server=sqlite_server))


def test_flag_set_several_rules_with_and_and_lists(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key, enabled=True)

    ok(
        rampup(
            "flag",
            "set",
            key,
            "--env",
            "production",
            "--rule",
            "user_id in u-1,u-2 -> on",
            "--rule",
            "age gte 18 and app_version semver_gte 2.1.0 -> off",
            server=sqlite_server,
        )
    )

    rules = api_state(sqlite_server, key)["rules"]
    assert rules == [
        {
            "conditions": [{"attribute": "user_id", "operator": "in", "values": ["u-1", "u-2"]}],
            "variant": "on",
        },
        {
            "conditions": [
                {"attribute": "age", "operator": "gte", "values": [18]},
                {"attribute": "app_version", "operator": "semver_gte", "values": ["2.1.0"]},
            ],
            "variant": "off",
        },
    ]

    ok(rampup("flag", "set", key, "--env", "production", "--clear-rules", server=sqlite_server))
    assert api_state(sqlite_server, key)["rules"] == []


def test_flag_kill_turns_the_flag_off_and_is_audited_with_reason_and_actor(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key, enabled=True, rollout=25)
    with sqlite_server.client() as client:
        response = client.post("/api/v1/tokens", json={"scope": "write", "name": "oncall-dana"})
    assert response.status_code == 201
    oncall = response.json()["token"]

    out = ok(
        rampup(
            "flag",
            "kill",
            key,
            "--env",
            "production",
            "--reason",
            "error rate 1.2% after deploy",
            server=sqlite_server,
            token=oncall,
        )
    )
    assert "killed" in out and key in out

    state = api_state(sqlite_server, key)
    assert state["enabled"] is False
    assert state["rollout"] == 25  # the kill switch keeps the rollout for when the flag comes back

    with sqlite_server.client() as client:
        audit = client.get("/api/v1/audit", params={"target": f"flag:{key}"}).json()
    kills = [entry for entry in audit if entry["action"] == "flag.kill"]
    assert len(kills) == 1, audit
    assert kills[0]["reason"] == "error rate 1.2% after deploy"
    assert kills[0]["actor"] == "oncall-dana"
    assert kills[0]["environment"] == "production"
    assert kills[0]["before"]["enabled"] is True and kills[0]["after"]["enabled"] is False

    assert ok(rampup("env", key, "--env", "production", "--prefix", "WS", server=sqlite_server)).startswith(
        "WS_ENABLED=false\n"
    )


# tokens


def test_token_create_sdk_prints_a_token_that_evaluates_flags_over_ofrep(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key, enabled=True, rollout=100)

    result = rampup(
        "token", "create", "--scope", "sdk", "--env", "production", "--name", "web", server=sqlite_server
    )
    lines = ok(result).strip().splitlines()
    assert len(lines) == 1, result.stdout
    secret = lines[0].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret), f"not URL-safe: {secret!r}"

    response = httpx.post(
        f"{sqlite_server.url}/ofrep/v1/evaluate/flags/{key}",
        timeout=PATIENCE_S,
        headers={"Authorization": f"Bearer {secret}"},
        json={"context": {"targetingKey": "user-42"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["key"], body["value"], body["variant"]) == (key, True, "on")

    # An sdk token evaluates flags; it does not administer the server.
    denied = rampup("flag", "list", server=sqlite_server, token=secret)
    assert "403" in one_line_error(denied)


def test_token_list_shows_tokens_but_never_their_secrets(sqlite_server: Server) -> None:
    secret = ok(
        rampup(
            "token",
            "create",
            "--scope",
            "sdk",
            "--env",
            "production",
            "--name",
            "web-frontend",
            server=sqlite_server,
        )
    ).strip()

    for args in (("token", "list"), ("token", "list", "--json")):
        out = ok(rampup(*args, server=sqlite_server))
        assert "web-frontend" in out and "sdk" in out and "production" in out
        assert secret not in out
        assert sqlite_server.admin_token not in out
        assert not re.search(r"\brp_[A-Za-z0-9_-]{20,}", out), out

    listed = json.loads(ok(rampup("token", "list", "--json", server=sqlite_server)))
    web = next(t for t in listed if t["name"] == "web-frontend")
    assert (web["scope"], web["environment"], web["revoked_at"]) == ("sdk", "production", None)
    assert "token" not in web and not any(secret in str(value) for value in web.values())


# errors: non-zero exit, one line on stderr, nothing changed on the server


ERRORS = {
    "unknown flag (show)": (["flag", "show", "{missing}"], r"not found", "{missing}"),
    "unknown flag (set)": (
        ["flag", "set", "{missing}", "--env", "production", "--rollout", "5"],
        r"not found",
        "{missing}",
    ),
    "unknown flag (kill)": (["flag", "kill", "{missing}", "--env", "production"], r"not found", "{missing}"),
    "unknown flag (env)": (["env", "{missing}", "--env", "production"], r"not found", "{missing}"),
    "unknown environment": (
        ["flag", "set", "{key}", "--env", "prod", "--rollout", "5"],
        r"not found",
        "prod",
    ),
    "rollout above 100": (
        ["flag", "set", "{key}", "--env", "production", "--rollout", "150", "--enable"],
        r"100",
        "rollout",
    ),
    "negative rollout": (["flag", "set", "{key}", "--env", "production", "--rollout", "-5"], r"0", "rollout"),
    "rollout with three decimals": (
        ["flag", "set", "{key}", "--env", "production", "--rollout", "12.345"],
        r"decimal",
        "rollout",
    ),
    "rule without an operator": (
        ["flag", "set", "{key}", "--env", "production", "--rollout", "50", "--rule", "email"],
        r"email",
        "rule",
    ),
    "rule with an unknown operator": (
        [
            "flag",
            "set",
            "{key}",
            "--env",
            "production",
            "--rollout",
            "50",
            "--rule",
            "email like @example.com -> on",
        ],
        r"like",
        "operator",
    ),
    "numeric rule on a word": (
        ["flag", "set", "{key}", "--env", "production", "--rule", "age gt old -> on"],
        r"old",
        "number",
    ),
    "rule serving an unknown variant": (
        ["flag", "set", "{key}", "--env", "production", "--rule", "email ends_with @example.com -> maybe"],
        r"maybe",
        "variant",
    ),
    "duplicate flag": (["flag", "create", "{key}"], r"exists", "{key}"),
    "invalid flag key": (["flag", "create", "Not A Key!"], r"key", "Not A Key!"),
    "sdk token without an environment": (["token", "create", "--scope", "sdk"], r"environment", "sdk"),
    "unknown token scope": (["token", "create", "--scope", "superuser"], r"admin.*read.*sdk", "scope"),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_bad_input_fails_with_one_line_and_changes_nothing(sqlite_server: Server, case: str) -> None:
    key, missing = new_key(), new_key()
    create_flag(sqlite_server, key)
    args, pattern, mentioned = ERRORS[case]
    args = [a.format(key=key, missing=missing) for a in args]
    before = server_snapshot(sqlite_server)

    line = one_line_error(rampup(*args, server=sqlite_server))

    assert re.search(pattern, line, re.IGNORECASE), line
    assert mentioned.format(key=key, missing=missing).lower() in line.lower(), line
    assert server_snapshot(sqlite_server) == before


def test_wrong_token_is_refused_and_changes_nothing(sqlite_server: Server) -> None:
    key = new_key()
    create_flag(sqlite_server, key)
    before = server_snapshot(sqlite_server)

    line = one_line_error(
        rampup(
            "flag",
            "set",
            key,
            "--env",
            "production",
            "--rollout",
            "50",
            "--enable",
            "--server",
            sqlite_server.url,
            "--token",
            "rp_not-a-real-token",
        )
    )
    assert "401" in line and "token" in line.lower(), line

    line = one_line_error(
        rampup("flag", "kill", key, "--env", "production", server=sqlite_server, token="rp_not-a-real-token")
    )
    assert "401" in line, line
    assert server_snapshot(sqlite_server) == before


def test_missing_token_says_so(sqlite_server: Server) -> None:
    before = server_snapshot(sqlite_server)
    line = one_line_error(rampup_process("flag", "create", new_key(), server=sqlite_server))
    assert "401" in line and "token" in line.lower(), line
    assert server_snapshot(sqlite_server) == before


def test_unreachable_server_fails_with_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = rampup("flag", "list", "--server", url, "--token", "rp_whatever")
    line = one_line_error(result)
    assert "cannot reach" in line and url in line, line
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("server_url", "token", "mentioned"),
    [
        ("http://127.0.0.1:84oo", "rp_whatever", "84oo"),  # a typo in the port
        ("127.0.0.1:8400", "rp_whatever", "127.0.0.1:8400"),  # no scheme
        ("http://[::1", "rp_whatever", "[::1"),
        ("http://127.0.0.1:1", "rp_pasted…", "token"),  # a token pasted with a stray character
    ],
    ids=["bad-port", "no-scheme", "broken-ipv6", "non-ascii-token"],
)
def test_malformed_connection_settings_fail_with_one_line(
    server_url: str, token: str, mentioned: str
) -> None:
    result = rampup("flag", "list", env={"RAMPUP_SERVER": server_url, "RAMPUP_TOKEN": token})
    line = one_line_error(result)
    assert mentioned in line, line


class _NotRampup(BaseHTTPRequestHandler):
    """Some other web server at RAMPUP_SERVER: HTML everywhere, 200 for the flag list, 404 elsewhere."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        found = self.path.rstrip("/") == "/api/v1/flags"
        body = (
            b"<!DOCTYPE html>\n<html>\n  <body>\n    <h1>Welcome to nginx!</h1>\n  </body>\n</html>\n"
            if found
            else b"<!DOCTYPE html>\n<html>\n  <body>\n    <h1>404 Not Found</h1>\n  </body>\n</html>\n"
        )
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def not_rampup() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotRampup)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "args", [["flag", "show", "workstation"], ["flag", "list"]], ids=["html-404", "html-200"]
)
def test_a_server_that_is_not_rampup_fails_with_one_line(not_rampup: str, args: list[str]) -> None:
    line = one_line_error(rampup(*args, env={"RAMPUP_SERVER": not_rampup, "RAMPUP_TOKEN": "rp_whatever"}))
    assert "<html>" not in line.lower(), line


# serve


@pytest.fixture
def serve_processes() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _serve(
    args: list[str],
    port: int,
    cwd: Path,
    log: Path,
    processes: list[subprocess.Popen[str]],
    env: dict[str, str] | None = None,
    command: str = "serve",
) -> str:
    """Start `rampup serve ARGS` (or `rampup worker ARGS`) without RAMPUP_ADMIN_TOKEN, wait until ready, return
    what it printed so far."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rampup", command, *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_environment(None, None, env),
            cwd=cwd,
        )
    processes.append(process)

    def ready() -> bool:
        assert process.poll() is None, (
            f"rampup {command} exited with {process.returncode}:\n{log.read_text()}"
        )
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=PATIENCE_S).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, f"rampup {command} to answer /readyz", detail=log.read_text)
    return log.read_text()


def test_serve_on_a_fresh_database_prints_a_working_admin_token_once(
    tmp_path: Path, serve_processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    # First start: no --db, so the default ./rampup.db in the working directory.
    output = _serve([], port, tmp_path, tmp_path / "first.log", serve_processes)
    assert (tmp_path / "rampup.db").exists()
    match = ADMIN_TOKEN_LINE.search(output)
    assert match, f"no admin token line in:\n{output}"
    token = match.group(1)

    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE_S
    ) as client:
        flags = client.get("/api/v1/flags")
        assert flags.status_code == 200, flags.text
        assert client.post("/api/v1/flags", json={"key": "from-first-start"}).status_code == 201
    assert (
        httpx.get(
            f"{url}/api/v1/flags", headers={"Authorization": "Bearer rp_wrong"}, timeout=PATIENCE_S
        ).status_code
        == 401
    )

    # The CLI takes it too, as the start-up message suggests.
    listed = ok(rampup("flag", "list", "--json", env={"RAMPUP_SERVER": url, "RAMPUP_TOKEN": token}))
    assert "from-first-start" in {f["key"] for f in json.loads(listed)}
    serve_processes[-1].terminate()
    serve_processes[-1].wait(timeout=PATIENCE_S)

    # Shown once: a restart on the same database (named by RAMPUP_DATABASE_URL this time, from another
    # directory) prints no new token, and the first one still works.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    output = _serve(
        [],
        port,
        elsewhere,
        tmp_path / "second.log",
        serve_processes,
        env={"RAMPUP_DATABASE_URL": f"sqlite:///{tmp_path / 'rampup.db'}"},
    )
    assert "Admin token" not in output, output
    assert token not in output
    assert not (elsewhere / "rampup.db").exists()
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE_S
    ) as client:
        assert "from-first-start" in {f["key"] for f in client.get("/api/v1/flags").json()}


def test_a_worker_started_first_prints_the_admin_token_without_sending_commands_to_itself(
    tmp_path: Path, serve_processes: list[subprocess.Popen[str]]
) -> None:
    """A worker answers only /healthz, /readyz and /metrics: its first start hands out the admin token, but
    points commands at a `rampup serve`, not at its own port (where `rampup flag list` would get a 404)."""
    port = free_port()
    output = _serve(
        ["--db", f"sqlite:///{tmp_path / 'w.db'}"],
        port,
        tmp_path,
        tmp_path / "w.log",
        serve_processes,
        command="worker",
    )
    match = ADMIN_TOKEN_LINE.search(output)
    assert match, f"no admin token line in:\n{output}"
    assert "rampup flag list" not in output and "a `rampup serve` on this database" in output, output
    url = f"http://127.0.0.1:{port}"
    scraped = httpx.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {match.group(1)}"}, timeout=PATIENCE_S
    )
    assert scraped.status_code == 200 and 'role="worker"' in scraped.text  # the token is a working one
    assert httpx.get(f"{url}/api/v1/flags", timeout=PATIENCE_S).status_code == 404


def test_environment_create_rename_list_and_delete(sqlite_server: Server) -> None:
    assert "created qa (QA)" in ok(
        rampup("environment", "create", "qa", "--name", "QA", server=sqlite_server)
    )
    renamed = ok(rampup("environment", "rename", "qa", "--key", "uat", "--name", "UAT", server=sqlite_server))
    assert "qa is now uat (UAT)" in renamed
    assert "uat" in ok(rampup("environment", "list", server=sqlite_server))
    assert "deleted uat" in ok(rampup("environment", "delete", "uat", server=sqlite_server))
    assert "uat" not in ok(rampup("environment", "list", server=sqlite_server))


def test_flag_create_with_tags_and_owner_and_list_by_them(sqlite_server: Server) -> None:
    key = new_key()
    ok(
        rampup(
            "flag", "create", key, "--tag", "checkout", "--tag", "q3", "--owner", "dana", server=sqlite_server
        )
    )
    assert key in ok(rampup("flag", "list", "--tag", "checkout", server=sqlite_server))
    assert key in ok(rampup("flag", "list", "--owner", "dana", server=sqlite_server))
    assert key not in ok(rampup("flag", "list", "--owner", "lee", server=sqlite_server))
    changed = ok(rampup("flag", "update", key, "--tag", "search", "--owner", "lee", server=sqlite_server))
    assert "search; owner lee" in changed
    assert key in ok(rampup("flag", "list", "--owner", "lee", server=sqlite_server))
    assert key not in ok(rampup("flag", "list", "--tag", "checkout", server=sqlite_server))
    assert "no tags" in ok(rampup("flag", "update", key, "--no-tags", server=sqlite_server))
    assert "owner nobody" in ok(rampup("flag", "update", key, "--owner", "", server=sqlite_server))
    assert key not in ok(rampup("flag", "list", "--owner", "lee", server=sqlite_server))


def test_schedule_create_list_show_and_cancel_and_the_change_is_made_at_its_local_time(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), manual_clock=True)
    key = new_key()
    create_flag(server, key)
    berlin = ZoneInfo("Europe/Berlin")
    tomorrow, later = ((server.now() + timedelta(days=d)).astimezone(berlin) for d in (1, 2))
    where = ["--env", "production", "--tz", "Europe/Berlin"]

    def create(at: str, *change: str) -> dict[str, Any]:
        return dict(
            json.loads(
                ok(rampup("schedule", "create", key, *where, "--at", at, *change, "--json", server=server))
            )
        )

    ramp = create(tomorrow.strftime("%Y-%m-%d %H:%M"), "--set", "percentage=25", "--enable")
    off = create(later.strftime("%Y-%m-%d %H:%M"), "--disable")
    assert ramp["change"] == {"rollout": 25.0, "enabled": True} and ramp["local_at"].startswith(
        tomorrow.strftime("%Y-%m-%dT%H:%M")
    )
    listed = ok(rampup("schedule", "list", "--flag", key, server=server))
    assert listed.count("pending") == 2 and "rollout=25.0" in listed
    assert f"cancelled scheduled change {off['id']}" in ok(
        rampup("schedule", "cancel", str(off["id"]), "--reason", "launch moved", server=server)
    )
    assert api_state(server, key)["rollout"] == 0

    server.advance("49h")
    shown = ok(rampup("schedule", "show", str(ramp["id"]), server=server))
    assert "done" in shown and "by " in shown
    state = api_state(server, key)
    assert (state["enabled"], state["rollout"]) == (True, 25)
    assert "launch moved" in ok(rampup("schedule", "list", "--status", "cancelled", server=server))

    past = one_line_error(
        rampup("schedule", "create", key, *where, "--at", "2020-01-01 09:00", "--disable", server=server)
    )
    assert "in the past" in past
    unknown = one_line_error(
        rampup("schedule", "create", key, *where, "--at", "10:00", "--set", "colour=red", server=server)
    )
    assert "colour=red" in unknown


def test_segment_create_grow_use_shrink_and_delete(sqlite_server: Server, tmp_path: Path) -> None:
    segment, flag = new_key(), new_key()
    keys = tmp_path / "testers.txt"
    keys.write_text("\n".join(f"tester-{i}" for i in range(25_000)) + "\n\n")
    created = ok(
        rampup(
            "segment", "create", segment, "--env", "production", "--keys-file", str(keys),
            "--condition", "email ends_with @staff.example", server=sqlite_server,
        )
    )  # fmt: skip
    assert f"created {segment} in production (v3): 25000 keys; email ends_with @staff.example" in created
    ok(rampup("segment", "add-keys", segment, "new-1", "new-2", "--env", "production", server=sqlite_server))
    ok(rampup("segment", "remove-keys", segment, "tester-0", "--env", "production", server=sqlite_server))
    create_flag(sqlite_server, flag)
    ok(
        rampup(
            "flag", "set", flag, "--env", "production", "--enable",
            "--rule", f"segment in {segment} -> on", server=sqlite_server,
        )
    )  # fmt: skip
    assert api_state(sqlite_server, flag)["rules"] == [
        {"conditions": [{"operator": "in_segment", "values": [segment]}], "variant": "on"}
    ]
    assert f"segment in {segment} -> on" in ok(rampup("flag", "show", flag, server=sqlite_server))
    listed = ok(rampup("segment", "list", "--env", "production", server=sqlite_server))
    assert segment in listed and "25001" in listed and flag in listed
    shown = ok(rampup("segment", "show", segment, "--env", "production", server=sqlite_server))
    assert f"used by {flag}" in shown and "new-1, new-2, tester-1," in shown
    every = json.loads(
        ok(rampup("segment", "show", segment, "--env", "production", "--json", server=sqlite_server))
    )
    assert len(every["keys"]) == 25_001 and "tester-0" not in every["keys"]
    updated = ok(
        rampup(
            "segment", "update", segment, "--env", "production", "--clear-conditions",
            "--reason", "staff are out", server=sqlite_server,
        )
    )  # fmt: skip
    assert "25001 keys; no conditions" in updated
    refused = one_line_error(
        rampup("segment", "delete", segment, "--env", "production", server=sqlite_server)
    )
    assert "409" in refused and flag in refused
    ok(rampup("flag", "set", flag, "--env", "production", "--clear-rules", server=sqlite_server))
    assert f"deleted segment {segment}" in ok(
        rampup("segment", "delete", segment, "--env", "production", server=sqlite_server)
    )
    unknown = one_line_error(
        rampup(
            "flag",
            "set",
            flag,
            "--env",
            "production",
            "--rule",
            f"segment in {segment} -> on",
            server=sqlite_server,
        )
    )
    assert "does not exist" in unknown and "rules[0].conditions[0].values[0]" in unknown

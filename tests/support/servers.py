"""Real `rampup serve` and `rampup worker` processes on free loopback ports: start, stop, kill, restart, and move a
manual clock."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.waiting import PATIENCE_S

__all__ = ["FAST", "LOOPBACK", "Server", "start_all", "start_server", "wall_clock_second"]

# As `extra_env`: a tick and an outbox poll a test need not wait long for (a manual clock has no periodic tick).
FAST = {"RAMPUP_TICK_S": "0.2", "RAMPUP_OUTBOX_POLL_S": "0.2"}
LOOPBACK = "127.0.0.1"  # where the test receivers (tests/support/receivers.py) listen


def wall_clock_second() -> datetime:
    """Now, to the whole second: a manual clock that starts (and moves) on whole seconds keeps each stage's
    traffic out of the previous stage's per-second rollup."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Server:
    url: str
    database_url: str
    admin_token: str
    process: subprocess.Popen[str] = field(repr=False)
    log: Path = field(repr=False)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=PATIENCE_S,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown), or with `kill` SIGKILL: no shutdown, no flush."""
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=PATIENCE_S)

    def advance(self, by: str = "0s") -> dict[str, Any]:
        """Moves a manual clock forward (`"1s"`, `"48h"`) and runs the controller once at the new time.
        Returns `{"now", "manual", "leader"}`; `leader` is false while another instance holds the lease."""
        return self._move({"advance": by})

    def advance_to(self, instant: datetime) -> dict[str, Any]:
        return self._move({"to": instant.isoformat()})

    def now(self) -> datetime:
        with self.client() as c:
            r = c.get("/api/v1/clock")
        assert r.status_code == 200, f"GET /api/v1/clock: {r.status_code} {r.text}"
        return datetime.fromisoformat(r.json()["now"])

    def _move(self, body: dict[str, str]) -> dict[str, Any]:
        with self.client() as c:
            r = c.post("/api/v1/clock", json=body, timeout=PATIENCE_S)
        assert r.status_code == 200, f"POST /api/v1/clock {body}: {r.status_code} {r.text}"
        return dict(r.json())


def start_server(
    database_url: str,
    log: Path,
    *,
    admin_token: str | None = None,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    manual_clock: bool | datetime = False,
    allowed_hosts: str = LOOPBACK,
    command: str = "serve",
    args: Sequence[str] = (),
) -> Server:
    """Starts `rampup serve` (or `command="worker"`: `rampup worker`), with `args` (`["--no-worker"]`), and
    returns once it answers /readyz.

    `manual_clock`: True starts the clock at the current whole second, a datetime starts it there (a restarted
    server continues from its predecessor's `now()`). `allowed_hosts` (RAMPUP_ALLOWED_HOSTS): the test receivers
    listen on loopback, which a server refuses to call unless allowed; "" starts a server that allows nothing
    internal, as a fresh one does."""
    port = port or free_port()
    admin_token = admin_token or f"test-admin-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "RAMPUP_ADMIN_TOKEN": admin_token,
        "RAMPUP_ALLOWED_HOSTS": allowed_hosts,
        "RAMPUP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    if manual_clock is not False:
        start = wall_clock_second() if manual_clock is True else manual_clock
        env["RAMPUP_MANUAL_CLOCK"] = start.isoformat()
    out = log.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "rampup", command, "--db", database_url, "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    out.close()
    server = Server(f"http://127.0.0.1:{port}", database_url, admin_token, process, log)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop(kill=True)
        raise
    return server


def start_all(factory: Callable[..., Server], count: int, database_url: str, **kwargs: Any) -> list[Server]:
    """`count` processes started at once (each takes seconds to import and migrate on a busy machine)."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: factory(database_url, **kwargs), range(count)))


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=PATIENCE_S).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server did not become ready within {PATIENCE_S:.0f} s:\n{server.output()}")

"""Kill-switch propagation: from the API call until a connected Python SDK client answers false.

`rampup serve` processes on loopback, with `RAMPUP_ADMIN_TOKEN` set. In this process, N `rampup.sdk.Client`s
stream the production configuration. Each of the `--flips` rounds pulls the kill switch of a flag that is on for
everyone (`POST …/kill`), at a random moment, and polls `is_enabled` every 0.2 ms until every client answers
false; then it switches the flag back on (`PUT … {"enabled": true}`) and waits until every client answers true
again. Reported: the latency of the kill to the last client, median, p99 (nearest rank) and max, and how much of
it was the API call itself (the change is committed and that instance's snapshot refreshed when it returns).

Setups, one table row per number of clients each:
- `same`: the kill through the instance the clients stream from (SQLite);
- `across`: two instances on one PostgreSQL database, the kill through A, the clients on B (LISTEN/NOTIFY);
- `lost`: the same with B not listening (`RAMPUP_LISTEN=false`): every notification lost, the 0.25 s poll alone.

Run:  python bench/sdk_propagation.py [--flips 100] [--clients 1,20] [--setups same,across,lost]
"""

import argparse
import logging
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from rampup.sdk import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.support
from tests.support.servers import Server, start_server  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"

ADMIN = f"bench-admin-{uuid.uuid4().hex}"
FLAG = "bench-kill"


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"no client saw the change within {timeout} s")
        time.sleep(0.0002)
    return time.perf_counter()


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run(url: str, sdk: str, api: httpx.Client, flips: int, n_clients: int) -> tuple[list[float], list[float]]:
    clients = [Client(url, sdk) for _ in range(n_clients)]
    try:
        wait_until(lambda: all(c.is_enabled(FLAG, "user-1") for c in clients))
        total, call = [], []
        for _ in range(flips):
            # A random phase against the 0.25 s poll (the `lost` setup): flipping right after the client saw
            # the last change would lock every kill to the same point of that cycle.
            time.sleep(random.uniform(0, 0.3))
            started = time.perf_counter()
            response = api.post(
                f"/api/v1/flags/{FLAG}/environments/production/kill", json={"reason": "bench"}
            )
            returned = time.perf_counter()
            assert response.status_code == 200, response.text
            seen = wait_until(lambda: not any(c.is_enabled(FLAG, "user-1") for c in clients))
            total.append((seen - started) * 1000)
            call.append((returned - started) * 1000)
            response = api.put(f"/api/v1/flags/{FLAG}/environments/production", json={"enabled": True})
            assert response.status_code == 200, response.text
            wait_until(lambda: all(c.is_enabled(FLAG, "user-1") for c in clients))
        assert all(c.stats().connects == 1 for c in clients), "a stream dropped during the run"
        return total, call
    finally:
        for c in clients:
            c.close()


def fresh_postgres(admin_url: str) -> str:
    import psycopg

    name = f"rampup_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def start(setup: str, directory: Path, postgres: str) -> tuple[Server, Server, list[Server]]:
    """(the instance the kill goes through, the one the clients stream from, everything to stop)."""
    if setup == "same":
        server = start_server(
            f"sqlite:///{directory / 'rampup.db'}", directory / "same.log", admin_token=ADMIN
        )
        return server, server, [server]
    url = fresh_postgres(postgres)
    a = start_server(url, directory / f"{setup}-a.log", admin_token=ADMIN)
    quiet = {"RAMPUP_LISTEN": "false"} if setup == "lost" else {}
    b = start_server(
        url, directory / f"{setup}-b.log", admin_token=ADMIN, extra_env=quiet, args=["--no-worker"]
    )
    return a, b, [a, b]


def prepare(api: httpx.Client) -> str:
    assert api.post("/api/v1/flags", json={"key": FLAG}).status_code == 201
    on = api.put(f"/api/v1/flags/{FLAG}/environments/production", json={"enabled": True, "rollout": 100})
    assert on.status_code == 200, on.text
    return str(api.post("/api/v1/tokens", json={"scope": "sdk", "environment": "production"}).json()["token"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--flips", type=int, default=100)
    ap.add_argument(
        "--clients", default="1,20", help="comma-separated numbers of connected clients, one run each"
    )
    ap.add_argument("--setups", default="same,across,lost", help="same, across, lost (see the module's doc)")
    ap.add_argument("--postgres", default=POSTGRES, help="a PostgreSQL to create a scratch database in")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    directory = Path(tempfile.mkdtemp(prefix="rampup-propagation-"))
    print(f"### Kill-switch propagation to the Python SDK ({args.flips} flips per row, loopback)")
    print()
    print(
        "| setup | connected clients | median | p99 | max | min | of which the API call: median / p99 "
        "| after the call returned: median / p99 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for setup in args.setups.split(","):
        through, streamed, servers = start(setup, directory, args.postgres)
        try:
            with httpx.Client(
                base_url=through.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
            ) as api:
                sdk = prepare(api)
                for n in (int(x) for x in args.clients.split(",")):
                    total, call = run(streamed.url, sdk, api, args.flips, n)
                    after = [t - c for t, c in zip(total, call, strict=True)]
                    print(
                        f"| {setup} | {n} | {statistics.median(total):.1f} ms | {nearest_rank(total, 0.99):.1f} ms "
                        f"| {max(total):.1f} ms | {min(total):.1f} ms "
                        f"| {statistics.median(call):.1f} / {nearest_rank(call, 0.99):.1f} ms "
                        f"| {statistics.median(after):.1f} / {nearest_rank(after, 0.99):.1f} ms |"
                    )
        finally:
            for server in servers:
                server.stop()
    print()
    print(
        "Goals: same instance, median < 100 ms; across instances, median < 80 ms, and < 1 s worst case with "
        "every notification lost."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

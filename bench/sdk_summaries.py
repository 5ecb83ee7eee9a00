"""Item 3's SDK side: the requests/s a service sustains with per-event and with summary telemetry, and the
server's ingest CPU per request represented.

`rampup serve --no-worker` on a fresh SQLite database runs in its own process. In this one, a minimal ASGI
service (one flag evaluated per request, one request in a hundred failing) behind `RampupASGIMiddleware` is
called directly, without HTTP, so what is measured is the service's own work plus its telemetry's (the sender
thread's folding or encoding included): --requests requests from --users users, then a flush that returns once
the server has committed everything. Per round, three clients one after the other:

- **floor**: no middleware, no ingest token — the service alone, measured in the same round;
- **events**: `telemetry="events"`, one event per request (and an exposure per user);
- **summaries**: `telemetry="summaries"` (the default), one summary per flush interval (1 s).

Reported (medians of --rounds): requests per CPU-second of the service process (all its threads), the ratio to
the floor's and what telemetry adds per request (1/rate − 1/floor's rate); the server process's CPU per request
represented (its idle CPU, measured over a pause without clients, times each round's wall time taken off) and
the ratio events / summaries.

Run:  python bench/sdk_summaries.py [--requests 50000] [--users 2000] [--rounds 5]
"""

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _quiet import background_load  # noqa: E402
from ofrep_http import cpu_seconds, http, wait_until_up  # noqa: E402

from rampup.sdk import Client, RampupASGIMiddleware  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

FLAG = "bench-flag"
MODES = ("floor", "events", "summaries")
IDLE_S = 5.0
Scope = MutableMapping[str, Any]


def service(client: Client) -> Callable[[Scope, Any, Any], Awaitable[None]]:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        user = scope["path"].rsplit("/", 1)[1]
        client.is_enabled(FLAG, user)
        status = 500 if scope["query_string"] == b"fail" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def drive(app: Any, paths: list[tuple[str, bytes]]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    for path, query in paths:
        scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []}
        await app(scope, receive, send)


def round_of(
    mode: str, base: str, sdk: str, ingest: str, paths: list[tuple[str, bytes]], server_pid: int
) -> dict[str, float]:
    # A buffer that holds a whole round: at full speed the default (10,000) overflows in events mode, and what
    # is measured is the cost of sending everything.
    telemetry = (
        {} if mode == "floor" else {"ingest_token": ingest, "telemetry": mode, "buffer_size": 2 * len(paths)}
    )
    with Client(base, sdk, **telemetry) as client:  # type: ignore[arg-type]
        client.wait_ready(10)
        app = service(client) if mode == "floor" else RampupASGIMiddleware(service(client), client=client)
        server_before, wall = cpu_seconds(server_pid), time.monotonic()
        mine = time.process_time()
        asyncio.run(drive(app, paths))
        assert client.flush(120), client.stats()
        mine = time.process_time() - mine
        wall = time.monotonic() - wall
        server = cpu_seconds(server_pid) - server_before
        stats = client.stats().events
    assert stats is None or (stats.dropped, stats.rejected) == (0, 0), stats
    return {"rps": len(paths) / mine, "server_s": server, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(7)
    paths = [
        (f"/orders/user-{rng.randrange(args.users)}", b"fail" if rng.random() < 0.01 else b"")
        for _ in range(args.requests)
    ]
    port, admin = free_port(), secrets.token_urlsafe(16)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "rampup", "serve", "--no-worker", "--db", f"sqlite:///{tmp}/b.db"]
            + ["--port", str(port)],
            # No configuration changes during the run: without the revision poll the idle server is nearly silent.
            env={**os.environ, "RAMPUP_ADMIN_TOKEN": admin, "RAMPUP_SNAPSHOT_POLL_S": "3600"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(base + "/readyz", server, "rampup serve")
            http("POST", base + "/api/v1/flags", admin, {"key": FLAG})
            http(
                "PUT",
                f"{base}/api/v1/flags/{FLAG}/environments/production",
                admin,
                {"enabled": True, "rollout": 50},
            )
            tokens = []
            for scope in ("sdk", "ingest"):
                status, made = http(
                    "POST", base + "/api/v1/tokens", admin, {"scope": scope, "environment": "production"}
                )
                assert status == 201 and isinstance(made, dict), made
                tokens.append(made["token"])
            load = background_load()
            idle = cpu_seconds(server.pid)
            time.sleep(IDLE_S)
            idle = (cpu_seconds(server.pid) - idle) / IDLE_S
            results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    results[mode].append(round_of(mode, base, tokens[0], tokens[1], paths, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(results, args, load, idle)


def report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, load: float, idle: float
) -> None:
    floor = statistics.median(r["rps"] for r in results["floor"])
    print(
        f"### SDK summaries (`bench/sdk_summaries.py`, {args.requests:,} requests from {args.users:,} users a round,"
        f" median of {args.rounds}, background load {load:.2f} cores)\n"
    )
    print(
        "| telemetry | service requests per CPU-second | × floor | telemetry's service CPU µs per request"
        " | server CPU µs per request | events ÷ it |"
    )
    print("|---|---|---|---|---|---|")
    per_request = {
        mode: statistics.median(max(0.0, r["server_s"] - idle * r["wall_s"]) for r in results[mode])
        / args.requests
        * 1e6
        for mode in MODES
    }
    for mode in MODES:
        rps = statistics.median(r["rps"] for r in results[mode])
        if mode == "floor":
            print(f"| floor (no telemetry) | {rps:,.0f} | 1.000 | — | — | — |")
            continue
        ratio = per_request["events"] / per_request[mode] if per_request[mode] else float("inf")
        added = 1e6 / rps - 1e6 / floor
        print(
            f"| {mode} | {rps:,.0f} | {rps / floor:.3f} | {added:.1f} | {per_request[mode]:.2f} | {ratio:.1f} |"
        )
    measured = {m: statistics.median(r["server_s"] for r in results[m]) * 1000 for m in MODES}
    print(
        f"\nServer CPU per round as measured (ms): {', '.join(f'{m} {v:.0f}' for m, v in measured.items())};"
        f" its idle CPU ({idle * 1000:.1f} ms a second, over {IDLE_S:.0f} s without clients) times each round's"
        " wall time is taken off."
    )


if __name__ == "__main__":
    main()

"""What counting evaluations costs OFREP's hot path, in process: the same OFREP ASGI app with the real counter
and with one that counts nothing, interleaved in the same run, so machine noise cancels in the ratio.

Each request is a full pass through `OfrepApp` (auth from the snapshot, body read, context parsed, the flag
evaluated, the answer encoded) without sockets; a different user per request. Also timed alone: the counter's
`hit` beside the floor of a bare dictionary increment. The store is a fresh SQLite file, flushed after each
round (the flush runs on a worker thread in the server, never on this path).

Run:  python bench/ofrep_counting.py [--rounds 7] [--requests 20000]
"""

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _quiet import busy_cpu, wait_quiet  # noqa: E402

from rampup.bootstrap import build_container, prepare  # noqa: E402
from rampup.config import Settings  # noqa: E402
from rampup.core.tokens import Scope  # noqa: E402
from rampup.http.ofrep import OfrepApp  # noqa: E402
from rampup.services.usage import EvaluationCounter  # noqa: E402


class NotCounting(EvaluationCounter):
    def hit(self, environment: str, flag: str) -> None:
        pass


async def _no_app(_scope: Any, _receive: Any, _send: Any) -> None:
    raise AssertionError("OFREP requests never reach the app behind")


async def requests(app: OfrepApp, secret: str, bodies: list[bytes]) -> float:
    """Seconds for one request per body."""
    headers = [(b"authorization", b"Bearer " + secret.encode()), (b"content-type", b"application/json")]
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.disable()
    started = time.perf_counter()
    for body in bodies:
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
            return message

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/ofrep/v1/evaluate/flags/bench-flag",
            "headers": headers,
            "query_string": b"",
        }
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    gc.enable()
    assert statuses == [200] * len(bodies), set(statuses)
    return elapsed


def hits(counter: EvaluationCounter, n: int) -> float:
    hit = counter.hit
    gc.disable()
    started = time.perf_counter()
    for _ in range(n):
        hit("production", "bench-flag")
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed


def floor(n: int) -> float:
    counts: dict[tuple[str, str], int] = {}
    gc.disable()
    started = time.perf_counter()
    for _ in range(n):
        counts["production", "bench-flag"] = counts.get(("production", "bench-flag"), 0) + 1
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--wait-quiet", type=float, default=0)
    args = ap.parse_args()
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    with tempfile.TemporaryDirectory(prefix="rampup-bench-") as tmp:
        c = build_container(Settings(database_url=f"sqlite:///{tmp}/rampup.db"))
        prepare(c)
        c.flags.create_flag({"key": "bench-flag"}, "bench")
        c.flags.set_state("bench-flag", "production", {"enabled": True, "rollout": 25}, "bench")
        _, secret = c.tokens.create(Scope.SDK, "production", "bench", "bench")
        c.snapshots.refresh()
        apps = {"counting": OfrepApp(c.snapshots, c.usage, _no_app)}
        apps["not counting"] = OfrepApp(c.snapshots, NotCounting(c.store, c.clock), _no_app)
        bodies = [b'{"context":{"targetingKey":"user-%d"}}' % i for i in range(args.requests)]
        per_request: dict[str, list[float]] = {name: [] for name in apps}
        per_hit: dict[str, list[float]] = {"counter.hit": [], "floor: dict increment": []}
        busy = busy_cpu()
        loop = asyncio.new_event_loop()
        loop.run_until_complete(requests(apps["counting"], secret, bodies[:2000]))  # warm-up
        for _ in range(args.rounds):
            order = list(apps)
            random.shuffle(order)
            for name in order:
                per_request[name].append(loop.run_until_complete(requests(apps[name], secret, bodies)))
            per_hit["counter.hit"].append(hits(c.usage, args.requests * 5))
            per_hit["floor: dict increment"].append(floor(args.requests * 5))
            c.usage.flush()
        other = busy_cpu() - busy
    counted = sum(d.count for d in c.lifecycle.evaluations("bench-flag").counts["production"])
    base = statistics.median(per_request["not counting"]) / args.requests
    print(
        f"### OFREP in process: counting evaluations ({args.rounds} rounds × {args.requests:,} requests, "
        f"interleaved; other processes used {other:.1f} CPU-s meanwhile)\n"
    )
    print("| case | median µs/request | range | × not counting |")
    print("|---|---:|---:|---:|")
    for name, times in per_request.items():
        us = [t / args.requests * 1e6 for t in times]
        print(
            f"| OFREP single, {name} | {statistics.median(us):.2f} | {min(us):.2f}–{max(us):.2f} "
            f"| {statistics.median(times) / args.requests / base:.3f} |"
        )
    floor_ns = statistics.median(per_hit["floor: dict increment"]) / (args.requests * 5) * 1e9
    print("\n| case | median ns/call | × floor |")
    print("|---|---:|---:|")
    for name, times in per_hit.items():
        ns = statistics.median(times) / (args.requests * 5) * 1e9
        print(f"| {name} | {ns:.0f} | {ns / floor_ns:.2f} |")
    print(f"\nSanity: the store holds {counted:,} evaluations of bench-flag after the flushes.")


if __name__ == "__main__":
    main()

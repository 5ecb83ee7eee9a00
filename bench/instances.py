"""Issue 15's scaling bench: OFREP evaluations/s and ingest events/s through one, two and three `rampup serve`
instances on one PostgreSQL, on this machine.

For each count N: a fresh PostgreSQL database, one `rampup worker` (the leader: controller, outbox, compaction)
and N `rampup serve --no-worker` instances sharing it, nothing pinned (N servers, the worker, PostgreSQL and wrk
share the machine's cores, as they would behind a load balancer on one box). Flags and tokens are made through
the first instance; every instance is checked to answer them before load (they learn of them by LISTEN/NOTIFY).
Then one wrk per instance, all at once, the same total connections split between them: OFREP single-flag
evaluations (a distinct user per request), then batches of 1,000 request events to `/api/v1/events`. The
environment's stored event count is checked against the acknowledged ones, read through the first instance.

Beside each figure, the CPU seconds per request of the serving processes, the worker and PostgreSQL's backends,
and how busy the machine was: where the bottleneck is (with two cores, more instances only share them).

Run:  python bench/instances.py [--duration 5] [--counts 1,2,3] [--postgres URL]
"""

import argparse
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from _quiet import busy_cpu  # noqa: E402
from ingest_http import LUA as INGEST_LUA  # noqa: E402
from ingest_http import _drop_postgres, _fresh_postgres, _load, _stored, backends, batch, cpu_s  # noqa: E402
from ofrep_http import (  # noqa: E402
    FLAG,
    OFREP,
    check_rampup,
    http,
    parse_wrk,
    setup_rampup,
    wait_until_up,
    wrk_argv,
)
from ofrep_http import LUA as OFREP_LUA  # noqa: E402

from tests.support.ports import free_port  # noqa: E402


@dataclass
class Load:
    per_s: float  # evaluations or events a second, all instances together
    p99_ms: float  # the worst instance's
    failed: int  # non-2xx and socket errors
    serving_cpu_us: float  # per evaluation or event: the `rampup serve` processes
    worker_cpu_us: float
    database_cpu_us: float
    busy_cores: float  # the whole machine's CPU over the run, in cores
    answered: int  # evaluations or events acknowledged with a 2xx


class Cluster:
    """A worker and `count` serving instances on one PostgreSQL database."""

    def __init__(self, database: str, count: int) -> None:
        self.database, self.admin = database, secrets.token_urlsafe(16)
        env = {**os.environ, "RAMPUP_ADMIN_TOKEN": self.admin}
        rampup = [sys.executable, "-m", "rampup"]
        self.procs: list[subprocess.Popen[bytes]] = []
        worker_port = free_port()
        self.worker = self._start([*rampup, "worker", "--db", database, "--port", str(worker_port)], env)
        wait_until_up(f"http://127.0.0.1:{worker_port}/readyz", self.worker, "rampup worker", timeout=120)
        self.bases, self.servers = [], []
        for _ in range(count):
            port = free_port()
            serve = [*rampup, "serve", "--db", database, "--port", str(port), "--no-worker"]
            self.servers.append(self._start(serve, env))
            self.bases.append(f"http://127.0.0.1:{port}")
        for base, server in zip(self.bases, self.servers, strict=True):
            wait_until_up(base + "/readyz", server, "rampup serve", timeout=120)

    def _start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def run(self, scripts: list[Path], path: str, seconds: int, connections: int, units: int) -> Load:
        """One wrk per instance at once; `units` evaluations or events per request."""
        pids = {"serving": [s.pid for s in self.servers], "worker": [self.worker.pid]}
        pids["database"] = backends(self.database)
        before = {pid: cpu_s(pid) for group in pids.values() for pid in group}
        busy, start = busy_cpu(), time.monotonic()
        each = max(1, math.ceil(connections / len(self.bases)))
        wrks = [
            subprocess.Popen(wrk_argv(script, base + path, each, seconds), stdout=subprocess.PIPE, text=True)
            for base, script in zip(self.bases, scripts, strict=True)
        ]
        outs = [w.communicate()[0] for w in wrks]
        busy_cores = (busy_cpu() - busy) / (time.monotonic() - start)
        parsed = [parse_wrk(out) for out in outs]
        answered = sum(requests - non_2xx for _, _, _, requests, non_2xx, _ in parsed) * units

        def cpu_us(group: str) -> float:
            return 1e6 * sum(cpu_s(pid) - before.get(pid, 0.0) for pid in pids[group]) / max(answered, 1)

        return Load(
            sum(rps * (requests - non_2xx) / max(requests, 1) for rps, _, _, requests, non_2xx, _ in parsed)
            * units,
            max(p99 for _, _, p99, _, _, _ in parsed),
            sum(non_2xx + sockets for _, _, _, _, non_2xx, sockets in parsed),
            cpu_us("serving"),
            cpu_us("worker"),
            cpu_us("database"),
            busy_cores,
            answered,
        )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def measure(database: str, count: int, seconds: int, tmp: Path) -> tuple[Load, Load, int, int]:
    """(OFREP, ingest, events acknowledged, events stored) through `count` instances."""
    cluster = Cluster(database, count)
    try:
        first = cluster.bases[0]
        # The example flag and bench-flag at 25%, as bench/ingest_http.py: an event counts for every flag splitting
        # users at its time (recomputed when it does not report it), so ten such flags cost it about five times as much.
        sdk = setup_rampup(first, cluster.admin, 2)
        for base in cluster.bases:  # each instance knows the flags before any load
            check_rampup(base, sdk, 2, users=20)
        ofrep = []
        for i, _ in enumerate(cluster.bases):
            script = tmp / f"ofrep-{count}-{i}.lua"
            script.write_text(OFREP_LUA.format(token=sdk, path=f"{OFREP}/{FLAG}", offset=i * 10**9))
            ofrep.append(script)
        status, created = http(
            "POST", first + "/api/v1/tokens", cluster.admin, {"scope": "ingest", "environment": "production"}
        )
        assert status == 201 and isinstance(created, dict), created
        bodies = [tmp / f"batch-{i}.json" for i in range(50)]
        for i, body in enumerate(
            bodies
        ):  # stamped now, after the flag exists: events from before it are not its
            body.write_bytes(batch(1000, seed=7 + i))
        ingest = []
        for i, _ in enumerate(cluster.bases):
            script = tmp / f"ingest-{count}-{i}.lua"
            order = bodies[i:] + bodies[:i]  # the instances send different batches at any moment
            script.write_text(
                INGEST_LUA.format(token=created["token"], paths=", ".join(f'"{p}"' for p in order))
            )
            ingest.append(script)
        cluster.run(ofrep, "", 2, 64, 1)  # warm-up
        evaluations = cluster.run(ofrep, "", seconds, 64, 1)
        cluster.run(ingest, "/api/v1/events", 2, 4, 1000)
        time.sleep(1.0)  # the warm-up's batches still in flight when wrk stopped are committed meanwhile
        stored_before = _stored(first, cluster.admin)
        events = cluster.run(ingest, "/api/v1/events", seconds, 4, 1000)
        time.sleep(1.0)
        stored = _stored(first, cluster.admin) - stored_before
        return evaluations, events, events.answered, stored
    finally:
        cluster.stop()


def row(what: str, count: int, load: Load, unit: str) -> str:
    return (
        f"| {what} | {count} | {load.per_s:,.0f} {unit}/s | {load.p99_ms:.1f} | {load.failed} | "
        f"{load.serving_cpu_us:.1f} | {load.worker_cpu_us:.2f} | {load.database_cpu_us:.1f} | {load.busy_cores:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--counts", default="1,2,3")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"load average before: {_load()}; {os.cpu_count()} CPUs")
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            database = _fresh_postgres(args.postgres)
            if database is None:
                raise SystemExit("PostgreSQL is needed: several instances share one database")
            try:
                ofrep, ingest, acknowledged, stored = measure(database, count, args.duration, Path(tmp))
            finally:
                _drop_postgres(args.postgres, database)
            measured = [
                row("OFREP evaluations", count, ofrep, "evals"),
                row("ingest", count, ingest, "events"),
            ]
            print(*measured, sep="\n")
            print(
                f"(events acknowledged {acknowledged:,}, stored {stored:,}: the rest were in flight as wrk stopped, "
                "committed but not counted by it)"
            )
            lines += measured
    print(
        "\n| load | instances | throughput | worst p99 ms | failed | serving CPU µs per unit | worker µs "
        "| PostgreSQL µs | machine busy, cores |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    print("\n".join(sorted(lines, key=lambda line: line.split("|")[1])))
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()

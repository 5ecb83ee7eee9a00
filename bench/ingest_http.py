"""Issue 3's ingest goal: sustained events/s over HTTP on one worker, batches of 1,000, SQLite and PostgreSQL.

`rampup serve` (one uvicorn process, pinned to CPU 0) on a fresh database; wrk (pinned to CPU 1) POSTs the
same 1,000-event batch (~150 KB of `request` events with flag maps, durations and tags) to
`/api/v1/events` over --connections connections; with --bodies K, K such batches in turn, each drawing its 1,000
users from 100,000 anew (the same batch every time keeps the same ~1,000 users' rows hot, which real traffic
does not). Every 202 means the batch was committed. Afterwards the
environment's event count is checked against what wrk was answered, so the figure counts stored events.

The floor, measured in the same run on the same database (the server stopped, pinned to CPU 0 too): the same
batch decoded by the same codec and written as one bulk insert of 1,000 rows (SQLite `executemany`, PostgreSQL
`COPY`), committed — what any ingest must at least do, without attribution, aggregates or HTTP. The ratio to it
is what travels between machines: the events/s alone move with the CPU, the disk's fsync and whatever else
runs, so the run also prints the load, the CPU steal time and the disk's fdatasync latency it saw.

CPU per event is counted too (the server process's user + system time over the run, and its PostgreSQL backends'
apart; the floor's own process and backend likewise): on a machine shared with other work it moves far less than
events/s, and 1,000,000 / (worker CPU µs per event) is what one core of this machine takes per worker.

With --worker apart, `rampup serve --no-worker` serves and a `rampup worker` (pinned to CPU 1 with wrk) compacts the
per-user days: the serving process's CPU without the compaction, and the worker's apart.

Run:  nice python bench/ingest_http.py [--duration 10] [--connections 4] [--rounds 3] [--bodies 50]
      [--worker inside|apart] [--postgres URL]
"""

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ofrep_http import http, parse_wrk, pinned, wait_until_up, wrk_argv  # noqa: E402

from tests.support.ports import free_port  # noqa: E402

LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local bodies, n = {{}}, 0
for i, path in ipairs({{{paths}}}) do
  local f = io.open(path, "rb")
  bodies[i] = f:read("*a")
  f:close()
end
request = function()
  n = n % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
"""


def batch(size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "events": [
                {
                    "type": "request",
                    "timestamp": now,
                    "targeting_key": f"user-{rng.randrange(100_000)}",
                    "flags": {"bench-flag": rng.random() < 0.25},
                    "duration_ms": round(rng.lognormvariate(4.6, 0.5), 2),
                    "ok": rng.random() > 0.002,
                    "tags": {"route": "/api/orders"},
                }
                for _ in range(size)
            ]
        }
    ).encode()


def measure(
    database: str, seconds: int, connections: int, tmp: Path, bodies: int = 1, apart: bool = False
) -> dict[str, float]:
    """`apart`: the server runs without its worker (`--no-worker`) and a `rampup worker` (pinned with wrk) does the
    compaction; its CPU is counted apart."""
    port, admin = free_port(), secrets.token_urlsafe(16)
    env = {**os.environ, "RAMPUP_ADMIN_TOKEN": admin}
    serve = [sys.executable, "-m", "rampup", "serve", "--db", database, "--port", str(port)]
    server = subprocess.Popen(
        pinned(0, serve + ["--no-worker"] * apart), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    worker = None
    try:
        wait_until_up(base + "/readyz", server, "rampup serve", timeout=120)  # a loaded machine starts slowly
        if apart:
            worker_port = free_port()
            worker = subprocess.Popen(
                pinned(1, [*serve[:3], "worker", "--db", database, "--port", str(worker_port)]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            wait_until_up(f"http://127.0.0.1:{worker_port}/readyz", worker, "rampup worker", timeout=120)
        # Checked: a flag that failed to be made would leave every event unattributed, and the figure 2-3x higher.
        status, _ = http("POST", base + "/api/v1/flags", admin, {"key": "bench-flag", "type": "boolean"})
        assert status == 201, status
        status, _ = http(
            "PUT",
            base + "/api/v1/flags/bench-flag/environments/production",
            admin,
            {"enabled": True, "rollout": 25},
        )
        assert status == 200, status
        status, created = http(
            "POST", base + "/api/v1/tokens", admin, {"scope": "ingest", "environment": "production"}
        )
        assert status == 201 and isinstance(created, dict), created
        paths = [tmp / f"batch-{i}.json" for i in range(bodies)]
        for i, path in enumerate(paths):
            path.write_bytes(batch(1000, seed=7 + i))
        script = tmp / "ingest.lua"
        script.write_text(LUA.format(token=created["token"], paths=", ".join(f'"{p}"' for p in paths)))
        url = base + "/api/v1/events"
        subprocess.run(
            pinned(1, ["wrk", "-t1", "-c2", "-d2s", "-s", str(script), url]), capture_output=True
        )  # warm-up
        before = _stored(base, admin)
        workers = [worker.pid] if worker else []
        cpu_before = {pid: cpu_s(pid) for pid in [server.pid, *workers, *backends(database)]}
        out = subprocess.run(
            pinned(1, wrk_argv(script, url, connections, seconds)), capture_output=True, text=True
        ).stdout
        server_cpu = cpu_s(server.pid) - cpu_before[server.pid]
        worker_cpu = sum(cpu_s(pid) - cpu_before[pid] for pid in workers)
        database_cpu = sum(cpu_s(pid) - cpu_before.get(pid, 0.0) for pid in backends(database))
        rps, p50, p99, requests, non_2xx, _ = parse_wrk(out)
        answered = (requests - non_2xx) * 1000  # acknowledged (2xx) events only
        time.sleep(0.5)
        stored = _stored(base, admin) - before
        events_per_s = rps * 1000 * (requests - non_2xx) / max(requests, 1)
        return {
            "events_per_s": events_per_s,
            "p50": p50,
            "p99": p99,
            "batches": requests,
            "non_2xx": non_2xx,
            "stored": stored,
            "cpu_us": 1e6 * server_cpu / max(answered, 1),
            "db_cpu_us": 1e6 * database_cpu / max(answered, 1),
            "apart_cpu_us": 1e6 * worker_cpu / max(answered, 1),
        }
    finally:
        for process in (server, worker):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def floor(database: str, seconds: float) -> dict[str, float]:
    """Events/s of decoding `body` and writing its events as one committed bulk insert, in a loop: `executemany` of
    the 1,000 rows on SQLite, `COPY … FROM STDIN` on PostgreSQL (its fastest way in)."""
    import msgspec
    from sqlalchemy import BigInteger, Boolean, Column, Float, LargeBinary, MetaData, String, Table

    from rampup.adapters.codecs.native import decode_batch
    from rampup.adapters.storage.engine import make_engine

    os.sched_setaffinity(0, {0})
    engine = make_engine(database)
    table = Table(
        "floor_events",
        MetaData(),
        Column("at_ms", BigInteger),
        Column("kind", String(16)),
        Column("targeting_key", String(256)),
        Column("flags", LargeBinary),
        Column("value", Float),
        Column("failed", Boolean),
        Column("tags", LargeBinary),
    )
    table.create(engine)
    encode, now_ms, body = msgspec.json.encode, int(time.time() * 1000), batch(1000)
    postgres = "postgresql" in database
    with engine.connect() as conn:  # the pool's one connection, reused by every batch below
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() if postgres else None
    database_cpu = cpu_s(backend) if backend else 0.0
    events, started, cpu = 0, time.perf_counter(), time.process_time()
    try:
        while time.perf_counter() - started < seconds:
            rows = [
                (o.at_ms, str(o.kind), o.targeting_key, encode(o.flags), o.value, o.failed, encode(o.tags))
                for o in decode_batch(body, now_ms)
            ]
            with engine.begin() as conn:
                if postgres:
                    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                    with cursor.copy("COPY floor_events FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    conn.exec_driver_sql("INSERT INTO floor_events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            events += len(rows)
        return {
            "events_per_s": events / (time.perf_counter() - started),
            "cpu_us": 1e6 * (time.process_time() - cpu) / events,
            "db_cpu_us": 1e6 * (cpu_s(backend) - database_cpu) / events if backend else 0.0,
        }
    finally:
        engine.dispose()


def fsync_ms(directory: str, n: int = 30) -> float:
    """Median ms of writing 4 KiB and `fdatasync` in `directory`: what every commit waits for on this disk."""
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.pwrite(fd, os.urandom(4096), 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times) * 1000


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 for one that is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(database: str) -> list[int]:
    """The PostgreSQL server processes serving `database` (none for SQLite, which runs in the server's process)."""
    if not database.startswith("postgresql"):
        return []
    import psycopg

    plain = database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def cpu_jiffies() -> tuple[int, int]:
    """(all, steal) CPU time of the machine so far: the steal share is time the hypervisor gave to other guests."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(fields), fields[7]


def _stored(base: str, admin: str) -> int:
    status, answer = http(
        "GET", base + "/api/v1/metrics?metric=error_rate&environment=production&window=1h", admin
    )
    assert status == 200 and isinstance(answer, dict), answer
    return int(answer["variants"]["all"]["count"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="server then floor, each on a fresh database")
    parser.add_argument(
        "--bodies",
        type=int,
        default=1,
        help="batches sent in turn, each its own 1,000 draws of 100,000 users (1: the same users every batch)",
    )
    parser.add_argument(
        "--worker",
        choices=("inside", "apart"),
        default="inside",
        help="inside: `rampup serve` with its worker (compaction included in its CPU); apart: `rampup serve "
        "--no-worker` and a `rampup worker` pinned with wrk, its CPU reported apart",
    )
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(
        f"### Ingest over HTTP, 1 uvicorn worker (cpu0), wrk -c{args.connections} (cpu1), batches of 1,000 "
        f"request events ({args.bodies} different batch(es) in turn), worker {args.worker}, {args.duration} s after a "
        "2 s warm-up; "
        f"medians of {args.rounds} round(s)"
    )
    print()
    print(
        "| database | events/s | p50 ms per batch | p99 ms | batches | non-2xx | events stored (checked) "
        "| worker CPU µs per event | its PostgreSQL's CPU µs per event |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    load_before, (total_before, steal_before) = _load(), cpu_jiffies()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="rampup-ingest-") as tmp:
        disk = fsync_ms(tmp)
        labels = ["SQLite (WAL, synchronous=FULL)"]
        if _fresh_postgres(args.postgres, check=True):
            labels.append("PostgreSQL (local)")
        for label in labels:
            rounds = []
            for i in range(args.rounds):
                sqlite = f"sqlite:///{tmp}/rampup-{i}.db"
                url = sqlite if label.startswith("SQLite") else _fresh_postgres(args.postgres) or sqlite
                try:
                    rounds.append(
                        (
                            measure(
                                url,
                                args.duration,
                                args.connections,
                                Path(tmp),
                                args.bodies,
                                args.worker == "apart",
                            ),
                            floor(url, args.duration),
                        )
                    )
                finally:
                    if url != sqlite:
                        _drop_postgres(args.postgres, url)
            r = {k: statistics.median(x[k] for x, _ in rounds) for k in rounds[0][0]}
            f = {k: statistics.median(y[k] for _, y in rounds) for k in rounds[0][1]}
            print(
                f"| {label} | {r['events_per_s']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['batches']:,.0f} "
                f"| {r['non_2xx']:.0f} | {r['stored']:,.0f} | {r['cpu_us']:.2f} | {r['db_cpu_us']:.2f} |\n"
                f"|   ↳ floor, same database | {f['events_per_s']:,.0f} | | | | | | {f['cpu_us']:.2f} "
                f"| {f['db_cpu_us']:.2f} |",
                flush=True,
            )
            per_round = [x["events_per_s"] / y["events_per_s"] for x, y in rounds]
            cpu = [x["cpu_us"] / y["cpu_us"] for x, y in rounds]
            ratios.append(
                f"{label}: events/s **{statistics.median(per_round):.2f}x the floor's** (rounds "
                f"{', '.join(f'{x:.2f}' for x in per_round)}), worker CPU per event {statistics.median(cpu):.2f}x the "
                f"floor's (one core of this machine would take {1e6 / r['cpu_us']:,.0f} events/s)"
                + (
                    f"; the worker apart {r['apart_cpu_us']:.2f} µs per event"
                    if args.worker == "apart"
                    else ""
                )
            )
    print()
    for line in ratios:
        print(f"- {line}")
    total, steal = cpu_jiffies()
    mhz = sorted({line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("cpu MHz")})
    print()
    print(
        f"Conditions: load average {load_before} before, {_load()} after ({os.cpu_count()} CPUs); CPU steal "
        f"{100 * (steal - steal_before) / max(total - total_before, 1):.1f} % of the machine's CPU time during the "
        f"runs; 4 KiB write + fdatasync in the database directory {disk:.2f} ms (median of 30); CPU MHz "
        f"{', '.join(mhz)}."
    )


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _drop_postgres(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(
        admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _fresh_postgres(admin_url: str, check: bool = False) -> str | None:
    """A new database for one round (or, with `check`, whether PostgreSQL answers at all)."""
    import psycopg

    name = f"rampup_bench_{secrets.token_hex(4)}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, autocommit=True) as conn:
            if not check:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"(PostgreSQL skipped: {exc})")
        return None
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


if __name__ == "__main__":
    main()

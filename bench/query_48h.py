"""Issue 3's query goal: an error-rate gate query over 48 hours after 10 million events, in < 10 ms.

The events go through the real ingest path (attribution, folding into per-second, per-minute and per-hour
aggregates, one transaction per batch) in process, spread evenly over the last 48 hours, into a fresh
SQLite database (or PostgreSQL with --db). Then we time, median of --reps:
- the metric query behind `GET /api/v1/metrics?metric=error_rate&window=48h&flag=…` (per variant, with
  bounds and an hourly series), and
- the gate read a rollout does every tick (the telemetry port's gate_inputs().aggregate over the 48 hours, both variants).
Ingest throughput of this in-process path is printed too (no HTTP).

Run:  python bench/query_48h.py [--events 10000000] [--batch 10000] [--db URL]
"""

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from rampup.bootstrap import build_container, prepare
from rampup.config import Settings
from rampup.core.telemetry import Kind, Observation
from rampup.services.metrics import MetricQuery


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="rampup-query-")
    url = args.db or f"sqlite:///{workdir}/rampup.db"
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=48)
    c = build_container(Settings(database_url=url, admin_token="bench"), clock=lambda: start)
    prepare(c)
    c.flags.create_flag({"key": "bench-flag"}, "bench")
    c.flags.set_state("bench-flag", "production", {"enabled": True, "rollout": 25}, "bench")
    c.snapshots.refresh()
    rng = random.Random(1)
    span_ms = int((end - start).total_seconds() * 1000)
    start_ms = int(start.timestamp() * 1000)
    began = time.perf_counter()
    for done in range(0, args.events, args.batch):
        observations = []
        for i in range(done, min(done + args.batch, args.events)):
            at = start_ms + i * span_ms // args.events
            on = rng.random() < 0.25
            observations.append(
                Observation(
                    Kind.REQUEST,
                    at,
                    f"user-{rng.randrange(200_000)}",
                    {"bench-flag": on},
                    rng.lognormvariate(4.6, 0.5),
                    failed=rng.random() < (0.002 if on else 0.001),
                )
            )
        c.ingest.ingest("production", observations)
        if (done // args.batch) % 50 == 0:
            rate = (done + len(observations)) / (time.perf_counter() - began)
            print(f"  ingested {done + len(observations):>10,} events  ({rate:,.0f}/s)", flush=True)
    ingest_s = time.perf_counter() - began
    print(
        f"ingest, in process: {args.events:,} events in {ingest_s:.0f} s = {args.events / ingest_s:,.0f} events/s"
    )

    query = MetricQuery("production", "error_rate", 48 * 3600, "bench-flag", end)
    answer = c.metrics.query(query)
    print(
        f"answer: on {answer.variants['on'].count:,} units, off {answer.variants['off'].count:,} units,"
        f" {len(answer.series)} series points"
    )
    timings = []
    for _ in range(args.reps):
        t = time.perf_counter()
        c.metrics.query(query)
        timings.append((time.perf_counter() - t) * 1000)
    gate = []
    env_id = c.snapshots.current.environments["production"].id
    for _ in range(args.reps):
        t = time.perf_counter()
        with c.store.read() as tx:
            inputs = tx.telemetry.gate_inputs(env_id, "bench-flag")
            for variant in ("on", "off"):
                inputs.aggregate("error_rate", variant, start_ms, start_ms + span_ms)
        gate.append((time.perf_counter() - t) * 1000)
    print()
    print(f"| query over 48 h after {args.events:,} events | median ms | min–max ms |")
    print("|---|---:|---:|")
    print(
        f"| GET /api/v1/metrics error_rate (service) | {statistics.median(timings):.2f} | "
        f"{min(timings):.2f}–{max(timings):.2f} |"
    )
    print(f"| gate read, both variants | {statistics.median(gate):.2f} | {min(gate):.2f}–{max(gate):.2f} |")


if __name__ == "__main__":
    main()

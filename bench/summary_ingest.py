"""Summaries against the events they stand for: the server's cost of one flush interval of a busy service.

In process, on a fresh SQLite database: a second of traffic (--rate request events, 25 % of users on a flag,
2,000 users) is stored either as its events (`IngestService.ingest`, what POST /api/v1/events does after decoding)
or as the client's summary of them (`fold_seconds` on the client, then `ingest_summary`, what POST
/api/v1/summaries does after decoding). Reported: the server's time per interval for each, medians of --rounds,
and the wire size of each body. The client's fold is reported too: it moves from the server to the sender.

Run:  python bench/summary_ingest.py [--rate 10000] [--rounds 15]
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from rampup.adapters.codecs.native import decode_batch
from rampup.adapters.codecs.summaries import decode_summary, encode_summary
from rampup.bootstrap import build_container, prepare
from rampup.config import Settings
from rampup.core.rollups import fold_seconds


def second_of_traffic(rate: int, start: datetime, rng: random.Random) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "type": "request",
                    "timestamp": (start + timedelta(seconds=rng.random())).isoformat(),
                    "targeting_key": f"user-{(user := rng.randrange(2000))}",
                    "flags": {"bench-flag": user % 4 == 0},
                    "duration_ms": round(rng.lognormvariate(4.6, 0.5), 2),
                    "ok": rng.random() > 0.002,
                }
                for _ in range(rate)
            ]
        }
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    rng, start = random.Random(7), datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    with tempfile.TemporaryDirectory() as tmp:
        containers = []
        for name in ("events", "summaries"):
            c = build_container(Settings(database_url=f"sqlite:///{tmp}/{name}.db", admin_token="bench"))
            prepare(c)
            c.flags.create_flag({"key": "bench-flag", "type": "boolean"}, "bench")
            c.flags.set_state("bench-flag", "production", {"enabled": True, "rollout": 25}, "bench")
            containers.append(c)
        raw, summarized = containers
        timelines = summarized.snapshots.current.timelines["production"]
        server_events, server_summary, client_fold, sizes = [], [], [], []
        for i in range(args.rounds):
            body = second_of_traffic(args.rate, start + timedelta(seconds=i), rng)
            t0 = time.perf_counter()
            observations = decode_batch(body, int(time.time() * 1000))
            raw.ingest.ingest("production", observations)
            t1 = time.perf_counter()
            summary = encode_summary(*fold_seconds(observations, timelines))
            t2 = time.perf_counter()
            summarized.ingest.ingest_summary("production", *decode_summary(summary, int(time.time() * 1000)))
            t3 = time.perf_counter()
            server_events.append(t1 - t0)
            client_fold.append(t2 - t1)
            server_summary.append(t3 - t2)
            sizes.append((len(body), len(summary)))
        for c in containers:
            c.close()
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    body_kb, summary_kb = (statistics.median(s[k] for s in sizes) / 1024 for k in (0, 1))
    print(
        f"### One second of {args.rate:,} request events (2,000 users, one flag at 25 %), SQLite, medians of {args.rounds}"
    )
    print()
    print("| stored as | server ms per second of traffic | body KiB | events/s one server core takes |")
    print("|---|---:|---:|---:|")
    print(
        f"| events | {ms(server_events):.1f} | {body_kb:,.0f} | {args.rate / statistics.median(server_events):,.0f} |"
    )
    print(
        f"| summary | {ms(server_summary):.1f} | {summary_kb:,.0f} "
        f"| {args.rate / statistics.median(server_summary):,.0f} |"
    )
    print()
    print(
        f"The client's fold and encoding of that second: {ms(client_fold):.1f} ms median (moved to the sender)."
    )
    print(f"Load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])} (2 CPUs).")


if __name__ == "__main__":
    main()

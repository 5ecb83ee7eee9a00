"""User feedback through the real ingest path, in process, beside plain request events (the floor).

A batch of feedback costs more than one of requests: each piece is also a row of its own with its variants
(so it can be paged per flag and purged per user), and feedback naming an earlier Sentry event looks that
event up. Batches of --batch events into a fresh SQLite database (or --db), three kinds interleaved round-robin
in shuffled order, --rounds rounds; the median events/s of each, and its ratio to the request batches.

Run:  python bench/feedback_ingest.py [--batch 1000] [--rounds 15] [--db URL]
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _quiet import background_load  # noqa: E402

from rampup.bootstrap import build_container, prepare  # noqa: E402
from rampup.config import Settings  # noqa: E402
from rampup.core.telemetry import Kind, Observation  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='rampup-feedback-')}/rampup.db"
    now = datetime.now(UTC)
    c = build_container(Settings(database_url=url, admin_token="bench"), clock=lambda: now)
    prepare(c)
    c.flags.set_state("workstation", "production", {"enabled": True, "rollout": 50}, "bench")
    at = int(now.timestamp() * 1000)
    users = [f"user-{i}" for i in range(args.batch)]
    crashes = []
    for i, u in enumerate(users):
        crash = Observation(Kind.ERROR, at, u, {"workstation": i % 2 == 0}, message="boom")
        crash.event_id = f"{i:032x}"
        crashes.append(crash)
    c.ingest.ingest("production", crashes, "sentry")

    def requests() -> list[Observation]:
        return [Observation(Kind.REQUEST, at, u, value=120.0) for u in users]

    def feedback() -> list[Observation]:
        comment = "The new workstation is faster, but the export button moved. " * 2
        return [Observation(Kind.FEEDBACK, at, u, value=4.0, name="1-5", message=comment) for u in users]

    def naming_an_event() -> list[Observation]:
        out = []
        for i in range(args.batch):
            o = Observation(Kind.FEEDBACK, at, value=2.0, name="1-5", message="it crashed")
            o.refers_to = f"{i:032x}"
            out.append(o)
        return out

    cases: dict[str, Callable[[], list[Observation]]] = {
        "requests (floor)": requests,
        "feedback with comments": feedback,
        "Sentry feedback naming an earlier event": naming_an_event,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    load = background_load(0.5)
    for _ in range(args.rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            batch = cases[name]()
            start = time.perf_counter()
            c.ingest.ingest("production", batch, "sentry" if name.startswith("Sentry") else "native")
            times[name].append(time.perf_counter() - start)
    floor = statistics.median(times["requests (floor)"])
    print(
        f"### Feedback ingest, in process, batches of {args.batch:,} ({url.split(':')[0]}, {args.rounds} rounds)"
    )
    print(f"\nOther processes kept {load:.2f} cores busy when it started.\n")
    print("| batch | median ms | events/s | × the request batch |")
    print("|---|---:|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {median * 1000:.1f} | {args.batch / median:,.0f} | {median / floor:.2f} |")


if __name__ == "__main__":
    main()

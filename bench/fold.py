"""The fold alone, in process: what turning a decoded batch into aggregates, per-user days and octaves costs.

The batches are `bench/ingest_http.py`'s (1,000 request events from 100,000 users, a boolean flag at 25 % in every
flag map, durations, a tag), decoded once by the server's codec; then, per round and interleaved, each batch is
folded as the server folds it (`core.rollups.fold`: per second, then minutes and hours) and as the SDK folds a
summary (`fold_seconds` alone), and walked by a floor: a bare loop that reads each event's fields once. Reported:
CPU µs per event, medians of --rounds, and each as a ratio to the floor measured in the same run, which travels
between machines better than the µs do. "recomputed": the same batches with the flag maps dropped, so every
event's variant is recomputed from its targeting key (events that do not say what they saw, e.g. Sentry's); "200
users a batch": those again with each batch's events spread over 200 users, five events each.

The collector is set as `rampup serve` sets it (`gc.freeze()` after setup, threshold 50,000).

Run:  nice python bench/fold.py [--rounds 30] [--bodies 10]
"""

import argparse
import dataclasses
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_http import batch  # noqa: E402

from rampup.adapters.codecs.native import decode_batch  # noqa: E402
from rampup.core.attribution import FlagTimeline  # noqa: E402
from rampup.core.flags import FlagDefinition, FlagState  # noqa: E402
from rampup.core.rollups import fold, fold_seconds  # noqa: E402
from rampup.core.telemetry import Observation  # noqa: E402

FLAG = "bench-flag"
TIMELINES = {
    FLAG: FlagTimeline(
        FlagDefinition.parse(FLAG),
        [0, 1],  # as the server's snapshot has it: made off, then turned on at 25 %
        [FlagState(salt=FLAG), FlagState(enabled=True, rollout_bp=2500, salt=FLAG, version=2)],
    )
}


def floor(observations: Sequence[Observation]) -> None:
    for o in observations:
        o.kind, o.at_ms, o.targeting_key, o.flags, o.value, o.failed, o.tags, o.count  # noqa: B018


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument(
        "--bodies", type=int, default=10, help="batches, each its own 1,000 draws of 100,000 users"
    )
    args = ap.parse_args()
    now_ms = int(time.time() * 1000)
    reported = [decode_batch(batch(1000, seed=7 + i), now_ms) for i in range(args.bodies)]
    unreported = [[dataclasses.replace(o, flags=None) for o in b] for b in reported]
    # Each user five times a batch (a service's flush interval, a Sentry envelope): recomputed once per user.
    repeating = [
        [dataclasses.replace(o, targeting_key=f"user-{i % 200}") for i, o in enumerate(b)] for b in unreported
    ]
    runs: dict[str, tuple[Callable[[Sequence[Observation]], object], list[list[Observation]]]] = {
        "floor (each event's fields read once)": (floor, reported),
        "fold (server: seconds, minutes, hours)": (lambda b: fold(b, TIMELINES), reported),
        "fold_seconds (SDK summaries)": (lambda b: fold_seconds(b, TIMELINES), reported),
        "fold, recomputed": (lambda b: fold(b, TIMELINES), unreported),
        "fold, recomputed, 200 users a batch": (lambda b: fold(b, TIMELINES), repeating),
    }
    events = sum(len(b) for b in reported)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (work, batches) in runs.items():  # interleaved: a busy spell hits every row alike
            started = time.process_time()  # CPU time: a busy machine's waits for a core are not counted
            for b in batches:
                work(b)
            times[name].append((time.process_time() - started) / events * 1e6)
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(
        f"### The fold alone, in process: {args.bodies} batches of 1,000 request events (100,000 users, one flag at "
        f"25 %), medians of {args.rounds} rounds, interleaved"
    )
    print()
    print("| what | CPU µs per event (median) | min | ÷ floor's median |")
    print("|---|---:|---:|---:|")
    base = statistics.median(times[next(iter(runs))])
    for name, xs in times.items():
        print(
            f"| {name} | {statistics.median(xs):.3f} | {min(xs):.3f} | {statistics.median(xs) / base:.1f} |"
        )
    print()
    print(f"Load average at the end: {load} (2 CPUs).")


if __name__ == "__main__":
    main()

"""In-process cost of evaluating one 25 % boolean flag, per call, against the CPython floor.

Method (the same as for the peer SDKs in bench/sdk_eval.py, so the ratios are comparable):
100,000 distinct user ids like ``user-<hex>``; every case is a generated tight loop
``for u in ids: if <expr>: n += 1`` with every name bound as a fast local; the cases run
interleaved, in a shuffled order per round, with the garbage collector off inside the timed loop.
We report the median over rounds (and the min–max range), ``net`` = median minus the empty loop,
the ratio to the floor, and the fraction of users who got the flag (a sanity check: ≈ 0.25).

The floor is the bucketing expression itself, inlined: ``mmh3.hash(f"{salt}:{u}", signed=False) % 10000``.

Run:  python bench/eval_inprocess.py [--rounds 9] [--users 100000] [--seed 1]
"""

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

import mmh3

from rampup.core import bucketing
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState
from rampup.core.targeting import EvaluationContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quiet import busy_cpu, wait_quiet  # noqa: E402

SALT = "workstation"
ROLLOUT_BP = 2500
FLOOR = "floor: mmh3.hash(f'{salt}:{u}') % 10000 < 2500"

# name → (expression evaluated per user u, is it a "flag evaluation" that should be on for ~25 %)
CASES: dict[str, tuple[str, bool]] = {
    "loop.empty (baseline)": ("False", False),
    "call.noop(u) (baseline)": ("noop(u)", False),
    FLOOR: ("mmh3_hash(f'{salt}:{u}', signed=False) % 10000 < 2500", True),
    "floor as a def: floor_fn(u)": ("floor_fn(u)", True),
    "bucketing.bucket(salt, u) < 2500": ("bucket(salt, u) < 2500", True),
    "bucketing.in_rollout(salt, u, 25)": ("in_rollout(salt, u, 25)", True),
    "EvaluationContext(targeting_key=u) only": ("EvaluationContext(targeting_key=u) is None", False),
    "CompiledFlag.evaluate(prebuilt ctx)": ("evaluate(ctxs[u]).value", True),
    "CompiledFlag.evaluate(EvaluationContext(u))": (
        "evaluate(EvaluationContext(targeting_key=u)).value",
        True,
    ),
}


def _noop(u: str) -> None:
    return None


def _floor_fn(u: str, _hash=mmh3.hash) -> bool:  # type: ignore[no-untyped-def]
    return _hash(f"{SALT}:{u}", signed=False) % 10000 < ROLLOUT_BP


def build_flag() -> CompiledFlag:
    definition = FlagDefinition(key="workstation")
    state = FlagState(enabled=True, rollout_bp=ROLLOUT_BP, salt=SALT)
    return CompiledFlag(definition, state)


def make_loop(expr: str, names: dict[str, object]):  # type: ignore[no-untyped-def]
    """A function whose loop sees every name as a fast local (bound as default arguments)."""
    params = ", ".join(f"{k}=__{k}" for k in names)
    src = (
        f"def timed(ids, {params}):\n"
        "    n = 0\n"
        "    t0 = perf_counter_ns()\n"
        "    for u in ids:\n"
        f"        if {expr}:\n"
        "            n += 1\n"
        "    return perf_counter_ns() - t0, n\n"
    )
    scope = {f"__{k}": v for k, v in names.items()}
    exec(compile(src, f"<case {expr}>", "exec"), scope)
    return scope["timed"]


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns >= 1000 else f"{ns:,.0f} ns"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPUs alone",
    )
    args = ap.parse_args(argv)
    wait_quiet(args.wait_quiet)

    rng = random.Random(args.seed)
    ids = [f"user-{rng.getrandbits(64):016x}" for _ in range(args.users)]
    assert len(set(ids)) == len(ids), "user ids must be distinct"
    flag = build_flag()
    ctxs = {u: EvaluationContext(targeting_key=u) for u in ids}

    names = {
        "perf_counter_ns": time.perf_counter_ns,
        "mmh3_hash": mmh3.hash,
        "salt": SALT,
        "noop": _noop,
        "floor_fn": _floor_fn,
        "bucket": bucketing.bucket,
        "in_rollout": bucketing.in_rollout,
        "EvaluationContext": EvaluationContext,
        "evaluate": flag.evaluate,
        "ctxs": ctxs,
    }
    loops = {name: make_loop(expr, names) for name, (expr, _) in CASES.items()}

    # Correctness before timing: every way of computing the bucket agrees with the floor, user by user.
    for u in ids[:20_000]:
        on = mmh3.hash(f"{SALT}:{u}", signed=False) % 10000 < ROLLOUT_BP
        assert bucketing.in_rollout(SALT, u, 25) is on, u
        assert flag.evaluate(EvaluationContext(targeting_key=u)).value is on, u

    warm = ids[:2000]
    for fn in loops.values():
        fn(warm)

    samples: dict[str, list[float]] = {name: [] for name in CASES}
    hits: dict[str, int] = {}
    order = list(CASES)
    gc_was_enabled = gc.isenabled()
    busy, own, wall = busy_cpu(), time.process_time(), time.monotonic()
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            gc.collect()
            gc.disable()
            try:
                elapsed, n = loops[name](ids)
            finally:
                if gc_was_enabled:
                    gc.enable()
            samples[name].append(elapsed / len(ids))
            hits[name] = n

    other = max(0.0, (busy_cpu() - busy) - (time.process_time() - own)) / (time.monotonic() - wall)
    empty = statistics.median(samples["loop.empty (baseline)"])
    floor = statistics.median(samples[FLOOR])
    print(
        f"### In-process evaluation, one 25 % boolean flag ({len(ids):,} distinct users, {args.rounds} rounds "
        f"interleaved & shuffled, GC off; loop overhead {fmt_ns(empty)} included in 'median', removed in 'net'; "
        f"other processes kept {other:.2f} cores busy meanwhile)"
    )
    print()
    print("| case | median | range | net | × floor | fraction on |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (_, is_eval) in CASES.items():
        s = samples[name]
        med = statistics.median(s)
        frac = f"{hits[name] / len(ids):.4f}" if is_eval else "—"
        print(
            f"| {name} | {fmt_ns(med)} | {fmt_ns(min(s))}–{fmt_ns(max(s))} | {fmt_ns(max(med - empty, 0))} "
            f"| {med / floor:.2f} | {frac} |"
        )
    print()
    evaluate = statistics.median(samples["CompiledFlag.evaluate(EvaluationContext(u))"])
    print(
        f"CompiledFlag.evaluate with a fresh context: {fmt_ns(evaluate)}/call = {evaluate / floor:.2f}× the floor "
        f"({fmt_ns(floor)}); ≈ {1e9 / evaluate:,.0f} evaluations/s on one core."
    )
    print("Every case agreed with the floor user by user on 20,000 ids.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

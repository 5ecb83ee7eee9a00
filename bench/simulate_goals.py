"""The gates' goals, measured with `rampup simulate` on examples/plans/workstation.yaml at 1, 10 and 100
requests/s.

Healthy (0.05% in both variants): false rollbacks; a 2% regression at stage 1: detection and delay;
0.3% (between target and rollback threshold): neither rollback nor advance. Rampup beside the naive rule.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PLAN = Path(__file__).parents[1] / "examples" / "plans" / "workstation.yaml"
SCENARIOS = [
    ("healthy 0.05%", None),
    ("2% at stage 1", "error_rate=0.02@stage1"),
    ("0.3% at stage 1", "error_rate=0.003@stage1"),
]


def run(rate: float, regression: str | None, trials: int, seed: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "rampup",
        "simulate",
        str(PLAN),
        "-n",
        str(trials),
        "--rate",
        str(rate),
        "--seed",
        str(seed),
        "--json",
    ]
    if regression:
        command += ["--regression", regression]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for rate in (1, 10, 100):
        for label, regression in SCENARIOS:
            started = time.perf_counter()
            report = run(rate, regression, args.trials, args.seed)
            ours, naive = report["rampup"], report["naive"]
            rows.append((rate, label, ours, naive, report["seconds_per_trial"]))
            print(
                f"{rate:>5} req/s  {label:<16} rampup acted {ours['acted_share']:6.1%} outcomes {ours['outcomes']}"
                f"  delay p50 {hours(ours['delay_p50_s'])}  |  naive acted {naive['acted_share']:6.1%}"
                f" delay p50 {hours(naive['delay_p50_s'])}  ({time.perf_counter() - started:.0f} s, "
                f"{report['seconds_per_trial']:.2f} s/trial)",
                flush=True,
            )
    print()
    print(
        "| req/s | scenario | Rampup: rolled back or disabled | Rampup outcomes | Rampup delay p50 / p90 "
        "| naive: rolled back or disabled | naive delay p50 | s/trial |"
    )
    print("|---:|---|---:|---|---|---:|---|---:|")
    for rate, label, ours, naive, per_trial in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(ours["outcomes"].items()))
        print(
            f"| {rate} | {label} | {ours['acted_share']:.1%} | {outcomes} | {hours(ours['delay_p50_s'])} / "
            f"{hours(ours['delay_p90_s'])} | {naive['acted_share']:.1%} | {hours(naive['delay_p50_s'])} "
            f"| {per_trial:.2f} |"
        )


if __name__ == "__main__":
    main()

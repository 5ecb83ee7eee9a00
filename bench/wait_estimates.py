"""The wait a stage short of data announces ("about X at the current traffic", the longest over its gates)
against the time the stage then took beyond its soak: healthy trials of the example plan, seeded, in two
processes. Per stage: how many waited, the median of estimate / actual, how many within ±25% and within ×2,
and how many said "about 0 more samples".

Run:  python bench/wait_estimates.py RATE [TRIALS] [FIRST_SEED]
"""

import re
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core.durations import parse_duration
from rampup.services.simulation import Traffic, simulate_trial

PLAN_FILE = Path(__file__).parents[1] / "examples" / "plans" / "workstation.yaml"
_, PLAN = load_plan(PLAN_FILE.read_text(), PLAN_FILE.name)
WAIT = re.compile(r"stage (\d) \(.*?\) soaked .*?without enough evidence: (.*)")
Wait = tuple[int, timedelta | None, timedelta | None, bool]  # stage, estimate, actual wait, "about 0"


def waits(rate: float, seed: int) -> list[Wait]:
    result = simulate_trial(PLAN, Traffic(requests_per_s=rate), None, seed)
    took = dict(result.stage_times)
    out: list[Wait] = []
    for reason in result.reasons:
        if (m := WAIT.match(reason)) is None:
            continue
        stage = int(m.group(1))
        etas = [
            parse_duration(e, "wait") for e in re.findall(r"about (\S+) at the current traffic", m.group(2))
        ]
        actual = took.get(stage)
        soak = PLAN.stages[stage - 1].min_duration
        out.append(
            (stage, max(etas, default=None), actual - soak if actual else None, "about 0 more" in m.group(2))
        )
    return out


def main() -> None:
    rate = float(sys.argv[1])
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rows: list[Wait] = []
    with ProcessPoolExecutor(2) as pool:
        for found in pool.map(waits, [rate] * trials, range(first, first + trials)):
            rows += found
    for stage in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == stage]
        pairs = [(e / timedelta(hours=1), a / timedelta(hours=1)) for _, e, a, _ in mine if e and a]
        ratios = sorted(e / a for e, a in pairs if a > 0)
        print(
            f"{rate:g} req/s, stage {stage}: waited {len(mine)}, said 'about 0' {sum(r[3] for r in mine)}; "
            f"estimate / actual median {statistics.median(ratios):.2f}, within ±25% "
            f"{sum(0.75 <= x <= 1.25 for x in ratios)}/{len(ratios)}, within ×2 "
            f"{sum(0.5 <= x <= 2 for x in ratios)}/{len(ratios)}"
            if ratios
            else f"{rate:g} req/s, stage {stage}: waited {len(mine)}, no estimate to compare"
        )


if __name__ == "__main__":
    main()

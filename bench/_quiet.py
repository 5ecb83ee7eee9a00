"""How busy the machine is with other people's work: the noise these benchmarks cannot remove, only report."""

import os
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET = 0.15  # cores; below this the machine counts as quiet


def busy_cpu() -> float:
    """CPU seconds the whole machine has spent in user + nice + system mode (irq time left out)."""
    user, nice, system = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    return (int(user) + int(nice) + int(system)) / CLK_TCK


def background_load(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes while this one sleeps."""
    busy, start = busy_cpu(), time.monotonic()
    time.sleep(seconds)
    return (busy_cpu() - busy) / (time.monotonic() - start)


def wait_quiet(max_seconds: float) -> float:
    """Wait up to max_seconds for the machine to go quiet; warns if it does not. Returns the last load seen."""
    deadline = time.monotonic() + max_seconds
    load = background_load()
    while load > QUIET and time.monotonic() < deadline:
        print(f"  machine busy ({load:.2f} cores used by other processes); waiting…", file=sys.stderr)
        load = background_load()
    if load > QUIET:
        print(f"warning: other processes keep {load:.2f} cores busy: expect noisy figures", file=sys.stderr)
    return load

"""`rampup refs` on sizeable trees, against the floor of reading every file and searching it once.

    .venv/bin/python bench/refs_scan.py [--rounds 5] [PATH …]

Default trees: this repository and the virtual environment's site-packages. For each: the scan for one
key (`workstation`), the scan without a key (finding the flags every evaluation names), and the floor — walk
the same tree, read every source file, one regex search — in the same run, interleaved. Medians printed as
a Markdown table.
"""

import argparse
import re
import statistics
import sys
import sysconfig
import time
from pathlib import Path

from rampup.adapters.codescan.files import SourceTree
from rampup.adapters.codescan.scan import scan

ROOT = Path(__file__).resolve().parent.parent


def _floor(path: Path) -> float:
    started = time.perf_counter()
    tree = SourceTree.walk(path)
    pattern = re.compile(rb"workstation", re.IGNORECASE)
    for module in tree.files:
        pattern.search(tree.read(module))
    return time.perf_counter() - started


def _timed(path: Path, keys: list[str] | None) -> tuple[float, int, int]:
    started = time.perf_counter()
    result = scan(path, keys)
    return time.perf_counter() - started, len(result.facts), len(result.found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.paths or [ROOT, Path(sysconfig.get_paths()["purelib"])]
    print(
        "| tree | files | floor: read + one regex | refs --flag workstation | × floor | refs (no flag) | × floor |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        files = len(SourceTree.walk(path).files)
        floors, keyed, discovery = [], [], []
        parsed_keyed = parsed_all = found_keyed = 0
        for _ in range(args.rounds):
            floors.append(_floor(path))
            seconds, parsed_keyed, found_keyed = _timed(path, ["workstation"])
            keyed.append(seconds)
            seconds, parsed_all, _ = _timed(path, None)
            discovery.append(seconds)
        floor, one, every = (statistics.median(x) for x in (floors, keyed, discovery))
        name = path.name if path != ROOT else "this repository"
        print(
            f"| {name} | {files:,} | {floor:.2f} s | {one:.2f} s ({parsed_keyed} parsed, {found_keyed} refs) "
            f"| {one / floor:.1f} | {every:.2f} s ({parsed_all} parsed) | {every / floor:.1f} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

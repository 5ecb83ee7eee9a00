"""Heaviest modules first, so two workers finish together.

`make test` hands whole modules to its workers (`--dist loadfile`: a module's shared server starts once). xdist
would queue them by test count, which puts a module of few slow tests (a worker killed mid-rollout) last, where
one worker runs it alone while the other has nothing left. Queued by measured seconds instead, the longest go
first and the short ones fill in at the end.

The seconds come from `tests/module_seconds.json`; `--record-module-seconds` updates it from the run's own
reports (setup + call + teardown per module). A module it does not know yet is queued as if it took the median.
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

SECONDS_FILE = "tests/module_seconds.json"  # under the root directory, whose paths the node ids are


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-module-seconds",
        action="store_true",
        help=f"write each module's measured seconds to {SECONDS_FILE} (the order of the next runs)",
    )


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _recorded(root: Path) -> dict[str, float]:
    path = root / SECONDS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seconds = _recorded(config.rootpath)
    unknown = statistics.median(seconds.values()) if seconds else 0.0
    # A stable sort: each module's tests keep their order and stay together.
    items.sort(key=lambda item: -seconds.get(_module(item.nodeid), unknown))


class _Recorder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_module(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        # Modules this run measured replace their old figures; the others keep theirs while their file exists.
        seconds = _recorded(self.root) | {module: round(total, 1) for module, total in self.seconds.items()}
        kept = {module: total for module, total in seconds.items() if (self.root / module).exists()}
        (self.root / SECONDS_FILE).write_text(
            json.dumps(dict(sorted(kept.items(), key=lambda kv: -kv[1])), indent=1) + "\n"
        )


def pytest_configure(config: pytest.Config) -> None:
    # Only the process that sees every report records: the controller under xdist, pytest itself without it.
    if config.getoption("--record-module-seconds") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(config.rootpath), "module-seconds-recorder")

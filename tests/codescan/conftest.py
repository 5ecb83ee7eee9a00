"""Helpers for the scanner and rewriter tests: copies of the fixture codebases and trees written inline."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import run_cli

CODEBASES = Path(__file__).resolve().parent.parent / "fixtures" / "codebases"


@pytest.fixture
def codebase(tmp_path: Path) -> Callable[[str], Path]:
    """name → a fresh copy of tests/fixtures/codebases/<name> (the rewriter may change it)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(CODEBASES / name, target)
        return target

    return copy


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """{relative path: source} → a directory holding those files."""

    def write(files: dict[str, str]) -> Path:
        root = tmp_path / "tree"
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return write


def rampup(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, cwd=cwd)

"""`pip install rampup` is the SDK alone: built from this tree and installed into a fresh virtual environment,
it brings none of the server's dependencies, and its client answers like the server."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rampup.core.bucketing import in_rollout
from tests.sdk.conftest import Rampup
from tests.support.waiting import PATIENCE_S

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pydantic", "typer"}
SERVER_ONLY |= {"rich", "pyyaml", "brotli", "numpy", "jinja2", "pydantic-settings", "psycopg-binary"}
USERS = [f"user-{i}" for i in range(500)]


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=10 * PATIENCE_S, check=False
    )
    assert not check or result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(directory: Path) -> Path:
    """A wheel of this tree, built from a copy (a build writes into the tree it builds)."""
    source = directory / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", *(p.name for p in ROOT.glob("LICEN[CS]E*"))):
        shutil.copy(ROOT / name, source / name)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        directory / "dist",
        source,
    )
    (wheel,) = (directory / "dist").glob("rampup-*.whl")
    return wheel


def test_the_sdk_installs_alone_and_answers_like_the_server(rampup: Rampup, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    # Without a pip of its own (installing one costs more than the rest of the test): this pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check")
    run(*pip, "install", "--quiet", wheel)

    listed = run(*pip, "list", "--format=json").stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert {"rampup", "httpx", "mmh3", "msgspec"} <= installed, installed
    assert installed.isdisjoint(SERVER_ONLY), installed & SERVER_ONLY

    key = rampup.new_flag(enabled=True, rollout=30)
    script = (  # exposures go as a summary, folded by the SDK alone
        "import json, sys\n"
        "from rampup.sdk import Client\n"
        "url, token, ingest, key, users = *sys.argv[1:5], json.loads(sys.argv[5])\n"
        "with Client(url, token, ingest_token=ingest) as flags:\n"
        "    print(json.dumps([flags.is_enabled(key, user) for user in users]))\n"
        "    assert flags.flush(30), flags.stats()\n"
    )
    args = (rampup.server.url, rampup.sdk_token, rampup.ingest_token, key, json.dumps(USERS))
    answered = run(python, "-c", script, *args).stdout
    assert json.loads(answered) == [in_rollout(key, user, 30) for user in USERS]
    exposed = rampup.metric("exposures", key)["variants"]
    assert exposed["on"]["count"] + exposed["off"]["count"] == len(USERS)

    # The command line is the server's: without it, the command says what to install.
    refused = run(venv / "bin" / "rampup", "serve", check=False)
    assert refused.returncode != 0 and "rampup[server]" in refused.stderr, refused.stderr

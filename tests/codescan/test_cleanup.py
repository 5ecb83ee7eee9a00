"""`rampup cleanup`: the removal patch, applied to code written without Rampup in mind.

The Flask app's own tests are the judge of its behaviour; the TSX tree must still parse.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rampup.adapters.codescan.cleanup import clean, write
from rampup.adapters.codescan.js_facts import parse_js
from tests.codescan.conftest import rampup

Tree = Callable[[dict[str, str]], Path]

# The Flask app asked as a user with the flag switched OFF everywhere: its answers show which path runs.
PROBE = """
import json, os
from ledger import create_app
client = create_app().test_client()
headers = {"X-Account": "acme", "X-User-Id": "dana"}
dashboard = client.get("/dashboard", headers=headers)
print(json.dumps({
    "layout": dashboard.get_json()["layout"],
    "ui": dashboard.headers["X-Ledger-UI"],
    "categories": client.get("/api/categories", headers=headers).status_code,
    "csv": client.get("/export.csv", headers=headers).get_data(as_text=True).splitlines()[0],
}))
"""


def _probe(app: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NEXT_PUBLIC_WORKSTATION_ENABLED"}
    env["NEXT_PUBLIC_WORKSTATION_ENABLED"] = "false"  # and no OpenFeature provider: every flag is off
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=app, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _app_tests(app: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=app,
        capture_output=True,
        text=True,
    )


def test_the_flask_app_keeps_the_flag_on_behaviour_and_loses_the_check(
    codebase: Callable[[str], Path],
) -> None:
    app = codebase("ledger")
    assert _probe(app) == {"layout": "executive", "ui": "classic", "categories": 404, "csv": "day,amount"}

    done = rampup("cleanup", str(app), "--flag", "workstation", "--keep", "on", "--write")
    assert done.returncode == 0, done.stderr

    assert _app_tests(app).returncode == 0, _app_tests(app).stdout  # the app's own tests, unchanged
    assert _probe(app) == {  # flag off everywhere, and yet: the workstation, since no check is left
        "layout": "workstation",
        "ui": "workstation",
        "categories": 200,
        "csv": "day,amount,category",
    }
    left = json.loads(rampup("refs", str(app / "ledger"), "--flag", "workstation", "--json").stdout)
    assert {r["kind"] for r in left["references"]} == {"literal"}  # the "workstation" layout name only
    assert not (app / "ledger" / "legacy.py").exists()  # the old path's module, used by nothing now
    views = (app / "ledger" / "views.py").read_text()
    for gone in (
        "executive_summary",
        "workstation_enabled",
        "settings",
        "abort",
        "EvaluationContext",
        "_user",
    ):
        assert gone not in views
    assert "# Support asks" in views  # comments elsewhere stay
    flags = (app / "ledger" / "feature_flags.py").read_text()
    assert "DARK_MODE" in flags and "def dark_mode" in flags and "WORKSTATION" not in flags
    assert "dana" not in done.stdout and "deleted: ledger/legacy.py" in done.stderr


def test_keep_off_leaves_the_old_path(codebase: Callable[[str], Path]) -> None:
    app = codebase("ledger")
    done = rampup("cleanup", str(app), "--flag", "workstation", "--keep", "off", "--write")
    assert done.returncode == 0, done.stderr
    os.environ.pop("NEXT_PUBLIC_WORKSTATION_ENABLED", None)
    assert _probe(app) == {"layout": "executive", "ui": "classic", "categories": 404, "csv": "day,amount"}
    assert not (app / "ledger" / "workstation.py").read_text() == ""
    assert "workstation_panels" not in (app / "ledger" / "views.py").read_text()


def test_without_write_it_prints_a_patch_that_applies(
    codebase: Callable[[str], Path], tmp_path: Path
) -> None:
    app = codebase("ledger")
    before = {p: p.read_bytes() for p in app.rglob("*.py")}
    done = rampup("cleanup", str(app), "--flag", "workstation", "--keep", "on")
    assert done.returncode == 0, done.stderr
    assert {p: p.read_bytes() for p in app.rglob("*.py")} == before  # nothing written
    assert done.stdout.startswith("--- a/ledger/feature_flags.py\n+++ b/ledger/feature_flags.py\n")
    applied = subprocess.run(
        ["patch", "-p1", "-E"], input=done.stdout, cwd=app, capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert _app_tests(app).returncode == 0
    assert not (app / "ledger" / "legacy.py").exists()


def test_the_nextjs_tree_still_parses_and_renders_the_new_path(codebase: Callable[[str], Path]) -> None:
    web = codebase("console")
    done = rampup("cleanup", str(web), "--flag", "workstation", "--keep", "on", "--write")
    assert done.returncode == 0, done.stderr
    for path in web.rglob("*.ts*"):
        tree = parse_js(path.read_bytes(), path.suffix)
        assert not tree.root_node.has_error, path
    src = web / "src"
    page = (src / "app" / "dashboard" / "page.tsx").read_text()
    assert "<WorkstationIntegrated {...props} />" in page
    assert "WorkstationFeatureFlag" not in page and "ExecutiveDashboardTab" not in page
    for gone in ("components/WorkstationFeatureFlag.tsx", "hooks/useWorkstation.ts", "lib/flags-server.ts"):
        assert not (src / gone).exists(), gone
    assert not (src / "components" / "ExecutiveDashboardTab.tsx").exists()  # the old UI, now unused
    sidebar = (src / "components" / "Sidebar.tsx").read_text()
    assert '<Link href="/workstation">Workstation</Link>' in sidebar
    assert '<Link href="/reports">Reports <span className="badge">new</span></Link>' in sidebar
    assert "useBooleanFlagValue" not in sidebar and "showWorkstation" not in sidebar
    workstation = (src / "app" / "workstation" / "page.tsx").read_text()
    assert "notFound" not in workstation and "enabled" not in workstation
    header = (src / "components" / "Header.tsx").read_text()
    assert 'className="classic"' not in header and "useWorkstation" not in header
    flags = (src / "lib" / "feature-flags.ts").read_text()
    assert "export function formatMoney" in flags and "process.env" not in flags
    assert " * NEXT_PUBLIC_WORKSTATION_ENABLED=true" in flags  # the comment is someone else's to edit
    left = json.loads(rampup("refs", str(web), "--flag", "workstation", "--json").stdout)
    assert {r["kind"] for r in left["references"]} == {"literal"}  # className="workstation"


def test_keep_off_in_tsx_takes_the_other_branches(codebase: Callable[[str], Path]) -> None:
    web = codebase("console")
    assert rampup("cleanup", str(web), "--flag", "workstation", "--keep", "off", "--write").returncode == 0
    src = web / "src"
    page = (src / "app" / "dashboard" / "page.tsx").read_text()
    assert "<ExecutiveDashboardTab {...props} />" in page and "WorkstationIntegrated" not in page
    sidebar = (src / "components" / "Sidebar.tsx").read_text()
    assert "/workstation" not in sidebar and "badge" not in sidebar
    assert (
        'return <header className="classic">{title}</header>;'
        in (src / "components" / "Header.tsx").read_text()
    )
    for path in web.rglob("*.ts*"):
        assert not parse_js(path.read_bytes(), path.suffix).root_node.has_error, path


def test_what_it_cannot_rewrite_is_listed_and_left_untouched(tree: Tree) -> None:
    root = tree(
        {
            "theme.py": (
                "from flags import client\n\n"
                "def theme(user):\n"
                "    # the details object is passed on: no boolean to fold\n"
                "    return describe(client.evaluate('beta', user))\n\n"
                "def banner(user):\n"
                "    if client.is_enabled('beta', user):\n"
                "        return 'new'\n"
                "    return 'old'\n"
            ),
        }
    )
    result = clean(root, "beta", True, lambda *_: None)
    write(result)
    text = (root / "theme.py").read_text()
    assert "return describe(client.evaluate('beta', user))" in text
    assert "def banner(user):\n    return 'new'\n" in text
    assert result.refused == [
        ("theme.py", 5, "evaluate returns the evaluation's details, not the boolean: rewrite it by hand")
    ]


def test_elif_chains_ternaries_and_boolean_operators_fold(tree: Tree) -> None:
    root = tree(
        {
            "rules.py": (
                "import os\n\nBETA = os.environ.get('BETA_ENABLED', 'false') in ('1', 'true')\n\n"
                "def pick(user, client):\n"
                "    if user.admin:\n        return 'admin'\n"
                "    elif BETA and user.paying:\n        return 'beta'  # paid beta\n"
                "    elif not client.is_enabled('beta', user.id):\n        return 'old'\n"
                "    else:\n        return 'never'\n\n"
                "def label(client, user):\n"
                "    return 'B' if client.is_enabled('beta', user) or user.staff else 'A'\n"
            ),
        }
    )
    write(clean(root, "beta", True, lambda *_: None))
    assert (root / "rules.py").read_text() == (
        "import os\n\n"
        "def pick(user, client):\n"
        "    if user.admin:\n        return 'admin'\n"
        "    elif user.paying:\n        return 'beta'  # paid beta\n"
        "    else:\n        return 'never'\n\n"
        "def label(client, user):\n"
        "    return 'B'\n"
    )


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    done = rampup("cleanup", str(tmp_path), "--flag", "beta", "--keep", "maybe")
    assert done.returncode == 1 and done.stderr.strip() == "rampup: --keep must be on or off, not 'maybe'"


def test_a_file_whose_first_statements_go_opens_with_what_is_left(tree: Tree) -> None:
    root = tree(
        {
            "banner.py": (
                "from flags import client\n\n\n"
                "def banner(user):\n"
                "    if client.is_enabled('beta', user):\n        return 'new'\n"
                "    return 'old'\n"
            ),
            "label.py": (
                "# Labels, by plan.\n\n"
                "from flags import client\nimport os\n\n\n"
                "# the short one\n"
                "def label(user):\n"
                "    return 'B' if client.is_enabled('beta', user) else os.environ['LABEL']\n"
            ),
            "setup_beta.py": (
                "if not client.is_enabled('beta', None):\n    print('old setup')\n\n\n"
                "def setup():\n    return 1\n"
            ),
        }
    )
    write(clean(root, "beta", True, lambda *_: None))
    assert (
        root / "setup_beta.py"
    ).read_text() == "def setup():\n    return 1\n"  # the check went, then its line
    assert (root / "banner.py").read_text() == "def banner(user):\n    return 'new'\n"
    assert (root / "label.py").read_text() == (
        "# Labels, by plan.\n\nimport os\n\n\n# the short one\ndef label(user):\n    return 'B'\n"
    )

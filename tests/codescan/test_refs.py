"""`rampup refs`: every use of a flag in code written without Rampup in mind, found with real parsers."""

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rampup.adapters.codescan.scan import scan
from tests.codescan.conftest import rampup

Tree = Callable[[dict[str, str]], Path]


def _refs(path: Path, *flags: str) -> dict[str, Any]:
    args = [a for key in flags for a in ("--flag", key)]
    done = rampup("refs", str(path), *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _found(path: Path, key: str) -> list[dict[str, Any]]:
    return [
        {"file": f.ref.module, "line": f.ref.span.line, "kind": str(f.ref.kind), "detail": f.ref.detail}
        for f in scan(path, [key]).found
    ]


def test_the_flask_app_through_constants_aliases_wrappers_openfeature_and_env(
    codebase: Callable[[str], Path],
) -> None:
    result = _refs(codebase("ledger"), "workstation")
    found = {(r["file"], r["line"], r["kind"]) for r in result["references"]}
    assert {
        ("ledger/feature_flags.py", 7, "constant"),  # WORKSTATION = "workstation"
        ("ledger/feature_flags.py", 13, "wrapper"),  # def workstation_enabled(user_id)
        ("ledger/feature_flags.py", 16, "openfeature"),  # _client.get_boolean_value(WORKSTATION, …)
        ("ledger/settings.py", 8, "wrapper"),  # WORKSTATION_ENABLED = os.getenv(…) == "true"
        ("ledger/settings.py", 8, "env"),  # NEXT_PUBLIC_WORKSTATION_ENABLED
        ("ledger/views.py", 8, "alias"),  # from .feature_flags import WORKSTATION as WORKSTATION_FLAG
        ("ledger/views.py", 29, "wrapper-use"),  # settings.WORKSTATION_ENABLED and workstation_enabled(…)
        ("ledger/views.py", 39, "wrapper-use"),  # if not workstation_enabled(_user())
        ("ledger/views.py", 47, "openfeature"),  # flags.get_boolean_value(WORKSTATION_FLAG, …)
        ("ledger/views.py", 64, "wrapper-use"),  # … if workstation_enabled(_user()) else "classic"
        ("tests/conftest.py", 3, "env"),  # os.environ.setdefault("NEXT_PUBLIC_WORKSTATION_ENABLED", …)
        ("tests/conftest.py", 19, "literal"),  # the test provider's flag
    } <= found
    assert Counter(r["kind"] for r in result["references"] if r["kind"] != "literal") == {
        "constant": 1,
        "alias": 1,
        "wrapper": 2,
        "wrapper-use": 4,
        "openfeature": 2,
        "env": 2,
    }
    dashboard = next(
        r for r in result["references"] if r["line"] == 29 and r["detail"] == "WORKSTATION_ENABLED"
    )
    assert dashboard["scope"] == "dashboard"
    assert dashboard["code"] == "if settings.WORKSTATION_ENABLED and workstation_enabled(_user()):"
    # functions that merely branch on the flag are uses, not wrappers
    assert not any(r["kind"] == "wrapper" and r["file"] == "ledger/views.py" for r in result["references"])


def test_the_nextjs_tree_through_an_alias_a_wrapper_component_hooks_ofrep_and_env(
    codebase: Callable[[str], Path],
) -> None:
    result = _refs(codebase("console"), "workstation")
    found = {(r["file"], r["line"], r["kind"], r["detail"]) for r in result["references"]}
    assert {
        ("src/lib/feature-flags.ts", 8, "constant", "WORKSTATION_FLAG"),
        ("src/lib/feature-flags.ts", 18, "wrapper", "function isWorkstationEnabled"),
        ("src/lib/feature-flags.ts", 19, "env", "NEXT_PUBLIC_WORKSTATION_ENABLED"),
        ("src/lib/feature-flags.ts", 22, "env", "NEXT_PUBLIC_WORKSTATION_ROLLOUT"),
        ("src/lib/flags-server.ts", 1, "alias", "import WORKSTATION_FLAG"),
        ("src/lib/flags-server.ts", 6, "wrapper", "function fetchWorkstationFlag"),
        ("src/lib/flags-server.ts", 7, "ofrep", "OFREP"),
        ("src/components/WorkstationFeatureFlag.tsx", 14, "wrapper", "component WorkstationFeatureFlag"),
        ("src/components/WorkstationFeatureFlag.tsx", 15, "wrapper-use", "isWorkstationEnabled"),
        ("src/components/Sidebar.tsx", 6, "alias", "import WORKSTATION_FLAG as WORKSTATION"),
        ("src/components/Sidebar.tsx", 9, "openfeature", "useBooleanFlagValue"),
        ("src/hooks/useWorkstation.ts", 3, "wrapper", "function useWorkstation"),
        ("src/hooks/useWorkstation.ts", 4, "openfeature", "useFlag"),
        ("src/components/Header.tsx", 8, "wrapper-use", "useWorkstation"),
        ("src/app/dashboard/page.tsx", 16, "wrapper-use", "WorkstationFeatureFlag"),
        ("src/app/workstation/page.tsx", 9, "wrapper-use", "fetchWorkstationFlag"),
    } <= found
    assert result["counts"]["workstation"]["wrapper"] == 4
    assert result["parsed"] <= result["files"]


def test_without_a_flag_it_finds_the_flags_the_code_evaluates(codebase: Callable[[str], Path]) -> None:
    result = _refs(codebase("ledger"))
    assert result["flags"] == ["dark-mode", "workstation"]
    assert result["counts"]["dark-mode"] == {"constant": 1, "literal": 1, "openfeature": 1, "wrapper": 1}


def test_the_human_output_is_file_line_kind_and_the_code(codebase: Callable[[str], Path]) -> None:
    done = rampup("refs", str(codebase("ledger")), "--flag", "workstation")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = lines.index("ledger/views.py:39  wrapper-use workstation_enabled in categories()")
    assert lines[at + 1].strip() == "if not workstation_enabled(_user()):"
    constant = lines.index("ledger/feature_flags.py:7  constant WORKSTATION")  # its kind said once
    assert lines[constant + 1].strip() == 'WORKSTATION = "workstation"'
    assert "workstation: 18 references in 6 files" in done.stdout


def test_constants_travel_through_re_exports_namespaces_objects_and_classes(tree: Tree) -> None:
    root = tree(
        {
            "src/flags/keys.ts": 'export const FLAGS = { newCheckout: "new-checkout" } as const;\n',
            "src/flags/index.ts": 'export { FLAGS as Keys } from "./keys";\nexport * from "./keys";\n',
            "src/pay.ts": (
                'import * as flags from "./flags";\nimport { client } from "./of";\n'
                "export const pay = () => client.getBooleanValue(flags.Keys.newCheckout, false);\n"
            ),
            "src/shadow.ts": (
                'import { FLAGS } from "./flags";\n'
                "export function shown(FLAGS: { newCheckout: string }) { return client.getStringValue(FLAGS.newCheckout, 'x'); }\n"
            ),
            "app/keys.py": 'class Flag:\n    NEW_CHECKOUT = "new-checkout"\n',
            "app/__init__.py": "",
            "app/cart.py": "import app.keys\n\ndef total(c):\n    return c.client.is_enabled(app.keys.Flag.NEW_CHECKOUT, c.user)\n",
        }
    )
    found = {(r["file"], r["line"], r["kind"]) for r in _found(root, "new-checkout")}
    assert ("src/flags/keys.ts", 1, "constant") in found
    assert ("src/pay.ts", 3, "openfeature") in found
    assert ("src/pay.ts", 3, "wrapper") in found  # an arrow function that only evaluates the flag
    assert ("app/keys.py", 2, "constant") in found
    assert ("app/cart.py", 4, "sdk") in found
    assert not any(f == "src/shadow.ts" and k == "openfeature" for f, _, k in found)  # a parameter shadows


def test_environment_variables_in_every_spelling(tree: Tree) -> None:
    root = tree(
        {
            "a.py": (
                "import os\nfrom os import environ, getenv\n"
                'a = os.environ["NEXT_PUBLIC_BETA_UI_ENABLED"]\nb = environ.get("BETA_UI_ROLLOUT", "0")\n'
                'c = getenv("VITE_BETA_UI_ENABLED")\nd = os.getenv("NEXT_PUBLIC_BETA_UIX_ENABLED")\n'
            ),
            "b.tsx": (
                'const on = process.env["NEXT_PUBLIC_BETA_UI_ENABLED"] === "true";\n'
                "const pct = import.meta.env.VITE_BETA_UI_ROLLOUT;\n"
            ),
        }
    )
    env = sorted((r["file"], r["line"], r["detail"]) for r in _found(root, "beta-ui") if r["kind"] == "env")
    assert env == [
        ("a.py", 3, "NEXT_PUBLIC_BETA_UI_ENABLED"),
        ("a.py", 4, "BETA_UI_ROLLOUT"),
        ("a.py", 5, "VITE_BETA_UI_ENABLED"),
        ("b.tsx", 1, "NEXT_PUBLIC_BETA_UI_ENABLED"),
        ("b.tsx", 2, "VITE_BETA_UI_ROLLOUT"),
    ]


def test_ofrep_urls_and_wrappers_of_wrappers(tree: Tree) -> None:
    root = tree(
        {
            "remote.py": (
                "import httpx\nKEY = 'beta'\n\n"
                "def beta_on(user):\n"
                "    answer = httpx.post(f'{BASE}/ofrep/v1/evaluate/flags/{KEY}', json={'context': {'targetingKey': user}})\n"
                "    return answer.json()['value'] is True\n\n"
                "def show_beta(user):\n    return beta_on(user) and not user.startswith('bot')\n\n"
                "def render(user):\n    print('hello')\n    return show_beta(user)\n"
            ),
        }
    )
    found = {(r["line"], r["kind"], r["detail"]) for r in _found(root, "beta")}
    assert (5, "ofrep", "OFREP") in found
    assert (4, "wrapper", "function beta_on") in found
    assert (8, "wrapper", "function show_beta") in found
    assert (13, "wrapper-use", "show_beta") in found
    assert not any(
        detail == "function render" for _, _, detail in found
    )  # it also prints: more than a wrapper


def test_a_file_that_does_not_parse_is_reported_and_the_rest_scanned(tree: Tree) -> None:
    root = tree(
        {"ok.py": 'FLAG = "beta"\n', "broken.py": 'FLAG = "beta" +\n', "broken.tsx": 'const a = "beta" <'}
    )
    result = _refs(root, "beta")
    assert [(r["file"], r["kind"]) for r in result["references"]] == [("ok.py", "constant")]
    assert sorted(s["file"] for s in result["skipped"]) == ["broken.py", "broken.tsx"]


def test_dependencies_and_build_output_are_not_scanned(tree: Tree) -> None:
    root = tree({"node_modules/x/index.js": 'useFlag("beta")\n', "src/a.ts": 'useFlag("beta")\n'})
    assert [r["file"] for r in _refs(root, "beta")["references"]] == ["src/a.ts"]


def test_a_missing_path_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = rampup("refs", str(tmp_path / "nowhere"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"rampup: {tmp_path / 'nowhere'}: no such file or directory"

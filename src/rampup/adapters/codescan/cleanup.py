"""`rampup cleanup`: a flag's checks folded, dead branches and then-unused definitions removed, as a patch.

1. Scan the tree for the flag (`scan.py`): every check, across modules.
2. Fold each file's checks with its language's rewriter; a file whose result does not parse is left as it
   was and listed.
3. Build the reference graph before and after (`core.coderefs.reference_graph`) and remove what
   `core.flagremoval.then_unused` says died — imports, constants, helpers, wrappers — in every module.
   Every file that mentions a dying name is parsed first: it may define it, or still use it.
4. A module left with nothing but imports and comments, and imported by no one, is deleted.
5. Re-parse every result; refuse (and list) a file whose result does not parse.
"""

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from rampup.adapters.codescan.js_facts import js_facts
from rampup.adapters.codescan.js_rewrite import fold_js, js_has_code, remove_js
from rampup.adapters.codescan.python_facts import python_facts
from rampup.adapters.codescan.python_rewrite import Refusal, fold_python, has_code, remove_python
from rampup.adapters.codescan.scan import Progress, Scan, scan
from rampup.core.coderefs import Definition, ModuleFacts, reference_graph
from rampup.core.flagremoval import then_unused

__all__ = ["Cleanup", "clean", "write"]


@dataclass
class Cleanup:
    scan: Scan
    changed: dict[str, bytes | None] = field(default_factory=dict)  # module → new bytes, None: deleted
    removed: dict[str, list[str]] = field(default_factory=dict)  # module → definitions removed
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (module, line, reason)

    def diff(self) -> str:
        chunks: list[str] = []
        for module in sorted(self.changed):
            before = self.scan.sources[module].decode("utf-8", "replace").splitlines(keepends=True)
            new = self.changed[module]
            after = new.decode("utf-8", "replace").splitlines(keepends=True) if new is not None else []
            target = f"b/{module}" if new is not None else "/dev/null"
            chunks.extend(difflib.unified_diff(before, after, f"a/{module}", target))
        return "".join(chunks)


def _suffix(module: str) -> str:
    return "." + module.rsplit(".", 1)[-1]


def _facts(result: Scan, module: str, source: bytes) -> ModuleFacts:
    if module.endswith(".py"):
        return python_facts(module, source.decode("utf-8", "replace"), result.tree.python_module)
    return js_facts(module, source, _suffix(module), result.tree.js_module)


def _parses(result: Scan, module: str, source: bytes) -> str | None:
    try:
        _facts(result, module, source)
    except (SyntaxError, ValueError) as exc:
        return str(exc)
    return None


def clean(path: Path, key: str, keep: bool, progress: Progress) -> Cleanup:
    result = scan(path, [key], progress)
    cleanup = Cleanup(result)
    texts = dict(result.sources)
    for module, checks in sorted(result.analysis.checks.items()):
        source = result.sources[module]
        refusals: list[Refusal]
        if module.endswith(".py"):
            folded, refusals = fold_python(source.decode("utf-8", "replace"), checks, keep)
            new = folded.encode()
        else:
            new, refusals = fold_js(source, _suffix(module), checks, keep)
        problem = _parses(result, module, new)
        if problem is not None:
            cleanup.refused.append(
                (module, 0, f"the rewritten file would not parse ({problem}); left as it was")
            )
            continue
        cleanup.refused.extend((module, r.line, r.reason) for r in refusals)
        texts[module] = new
    _remove_dead(cleanup, texts)
    for module, text in texts.items():
        if text != result.sources[module]:
            cleanup.changed[module] = text
    _delete_empty(cleanup, texts)
    cleanup.refused = [r for r in cleanup.refused if not _inside_removed(cleanup, r)]
    return cleanup


def _dead(result: Scan, texts: dict[str, bytes]) -> set[Definition]:
    """What died, with every file that mentions a dying name parsed too (it may be its definition, or
    a use the scan did not need to read)."""
    while True:
        before = reference_graph(result.facts)
        after_facts = dict(result.facts)
        for module, text in texts.items():
            if text != result.sources[module]:
                after_facts[module] = _facts(result, module, text)
        dead = then_unused(
            before.used(), reference_graph(after_facts).edges, reference_graph(after_facts).roots
        )
        mentioning = _mentioning(result, {name for _, name in dead})
        if not mentioning:
            return dead
        for module in mentioning:
            try:
                source = result.tree.read(module)
                result.facts[module] = _facts(result, module, source)
            except (OSError, SyntaxError, ValueError):
                result.facts[module] = ModuleFacts(module)  # unreadable: nothing it defines is touched
                source = b""
            result.sources[module] = texts[module] = source


def _mentioning(result: Scan, names: set[str]) -> list[str]:
    if not names:
        return []
    pattern = re.compile(rb"\b(?:" + b"|".join(re.escape(n.encode()) for n in sorted(names)) + rb")\b")
    found = []
    for module in result.tree.files:
        if module in result.facts:
            continue
        try:
            if pattern.search(result.tree.read(module)):
                found.append(module)
        except OSError:
            continue
    return found


def _remove_dead(cleanup: Cleanup, texts: dict[str, bytes]) -> None:
    result = cleanup.scan
    dead = _dead(result, texts)
    by_module: dict[str, set[str]] = {}
    for module, name in dead:
        by_module.setdefault(module, set()).add(name)
    for module, names in sorted(by_module.items()):
        text = texts[module]
        new = (
            remove_python(text.decode("utf-8", "replace"), names).encode()
            if module.endswith(".py")
            else remove_js(text, _suffix(module), names)
        )
        problem = _parses(result, module, new)
        if problem is not None:
            cleanup.refused.append((module, 0, f"removing {', '.join(sorted(names))} would not parse; kept"))
            continue
        texts[module] = new
        cleanup.removed[module] = sorted(names)


def _delete_empty(cleanup: Cleanup, texts: dict[str, bytes]) -> None:
    result = cleanup.scan
    final = {m: _facts(result, m, t) for m, t in texts.items()}
    imported = {i.module for facts in final.values() for i in facts.imports if i.module}
    for module in list(cleanup.changed):
        text = cleanup.changed[module]
        if text is None or module in imported or not cleanup.removed.get(module):
            continue
        empty = (
            not has_code(text.decode("utf-8", "replace"))
            if module.endswith(".py")
            else not js_has_code(text, _suffix(module))
        )
        if empty and not _mentioning(result, {_stem(module)}):
            cleanup.changed[module] = None


def _stem(module: str) -> str:
    return module.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _inside_removed(cleanup: Cleanup, refusal: tuple[str, int, str]) -> bool:
    """A check inside a wrapper that was removed whole needs no hand."""
    module, line, _ = refusal
    if cleanup.changed.get(module, b"") is None:
        return True
    facts = cleanup.scan.facts.get(module)
    names = set(cleanup.removed.get(module, ()))
    if facts is None or not names:
        return False
    return any(f.name in names and f.span.line <= line <= f.span.end_line for f in facts.functions)


def write(cleanup: Cleanup) -> None:
    root = cleanup.scan.tree.root
    for module, text in cleanup.changed.items():
        target = root / module
        if text is None:
            target.unlink()
        else:
            target.write_bytes(text)

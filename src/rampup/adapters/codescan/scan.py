"""Scanning a tree: read, pre-filter, parse, and hand the facts to `core.coderefs.analyze`.

Parsing is the expensive part, so a file is parsed only when its bytes mention something that can
matter: the key (or its environment variable), or a name found so far to hold the key or wrap the flag
(the name an importer must write). Each round of newly found names re-reads the files not yet parsed,
until a round finds nothing new — so a constant imported through two modules and a wrapper of a wrapper
are followed, and a tree of ten thousand files that never mention the flag costs one regex pass.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rampup.adapters.codescan.files import SourceTree
from rampup.adapters.codescan.js_facts import JS_SUFFIXES, js_facts
from rampup.adapters.codescan.python_facts import python_facts
from rampup.core.coderefs import (
    OFREP_PATH,
    OPENFEATURE_METHODS,
    SDK_METHODS,
    Analysis,
    CodeRef,
    ModuleFacts,
    analyze,
    discover_keys,
)

__all__ = ["Scan", "scan", "Progress", "Found"]

# (files read so far, files to read, what is being done)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class Found:
    """A reference with the line of code it is on."""

    ref: CodeRef
    code: str


@dataclass
class Scan:
    tree: SourceTree
    keys: set[str]
    found: list[Found] = field(default_factory=list)
    analysis: Analysis = field(default_factory=Analysis)
    facts: dict[str, ModuleFacts] = field(default_factory=dict)
    sources: dict[str, bytes] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (module, why)
    files_read: int = 0


def _quiet(done: int, total: int, doing: str) -> None:
    return None


def scan(path: Path, keys: Iterable[str] | None = None, progress: Progress = _quiet) -> Scan:
    """References to `keys` under `path`; without keys, to every flag the code evaluates."""
    tree = SourceTree.walk(path)
    result = Scan(tree, set(keys or ()))
    if not result.keys:
        _parse_matching(result, _discovery_needles(), progress, "finding flags")
        _parse_imported(result)
        result.keys = discover_keys(result.facts)
        if not result.keys:
            return result
    needles = _key_needles(result.keys)
    searched: set[str] = set()
    while needles:
        _parse_matching(result, needles, progress, f"searching {len(result.tree.files)} files")
        result.analysis = analyze(result.facts, result.keys)
        names = _exported_names(result) - searched
        searched |= names
        needles = [re.escape(n.encode()) for n in sorted(names)]
    result.found = [
        Found(ref, _line(result.sources[ref.module], ref.span.line)) for ref in result.analysis.refs
    ]
    return result


def _key_needles(keys: set[str]) -> list[bytes]:
    """The key as written in code, and as it appears inside environment variable names."""
    needles = []
    for key in sorted(keys):
        parts = re.split(r"[-_.]", key)
        needles.append(b"[-_.]".join(re.escape(p.encode()) for p in parts))
    return needles


def _discovery_needles() -> list[bytes]:
    methods = sorted(SDK_METHODS | OPENFEATURE_METHODS)
    return [
        rb"\b(?:" + b"|".join(m.encode() for m in methods) + rb")\s*\(",
        rb"_(?:ENABLED|ROLLOUT)\b",
        re.escape(OFREP_PATH.encode()),
    ]


def _parse_matching(result: Scan, needles: list[bytes], progress: Progress, doing: str) -> None:
    pattern = re.compile(b"|".join(needles), re.IGNORECASE)
    pending = [m for m in result.tree.files if m not in result.facts and m not in dict(result.unreadable)]
    for done, module in enumerate(pending):
        if done % 200 == 0:
            progress(done, len(pending), doing)
        try:
            source = result.tree.read(module)
        except OSError as exc:
            result.unreadable.append((module, exc.strerror or str(exc)))
            continue
        result.files_read += 1
        if pattern.search(source):
            _parse(result, module, source)
    progress(len(pending), len(pending), doing)


def _parse(result: Scan, module: str, source: bytes) -> None:
    try:
        if module.endswith(".py"):
            facts = python_facts(module, source.decode("utf-8", "replace"), result.tree.python_module)
        else:
            facts = js_facts(module, source, "." + module.rsplit(".", 1)[-1], result.tree.js_module)
    except (SyntaxError, ValueError, RecursionError) as exc:
        result.unreadable.append((module, f"not parsed: {type(exc).__name__}: {exc}"))
        return
    result.facts[module] = facts
    result.sources[module] = source


def _parse_imported(result: Scan) -> None:
    """The modules the parsed ones import from (where constants usually live), to a fixpoint."""
    while True:
        wanted = {
            i.module
            for facts in result.facts.values()
            for i in facts.imports
            if i.module and i.module not in result.facts
        } - {m for m, _ in result.unreadable}
        if not wanted:
            return
        for module in sorted(wanted):
            try:
                _parse(result, module, result.tree.read(module))
            except OSError as exc:
                result.unreadable.append((module, exc.strerror or str(exc)))


def _exported_names(result: Scan) -> set[str]:
    """What an importer of a holder or wrapper has to write: its name, or its file's name."""
    names: set[str] = set()
    for module, name in (*result.analysis.holders, *result.analysis.wrappers):
        head = name.split(".")[0]
        names.add(head if head != "default" else _stem(module))
    return names


def _stem(module: str) -> str:
    stem = module.rsplit("/", 1)[-1]
    for suffix in (*JS_SUFFIXES, ".py"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem if stem not in ("index", "__init__") else module.rsplit("/", 2)[-2] if "/" in module else stem


def _line(source: bytes, line: int) -> str:
    lines = source.splitlines()
    text = lines[line - 1].decode("utf-8", "replace").strip() if 0 < line <= len(lines) else ""
    return text if len(text) <= 160 else text[:157] + "..."

"""The files of a source tree, and how one module's imports name another (Python packages, ES modules).

Module ids are paths relative to the scanned root, with forward slashes.
"""

import json
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rampup.adapters.codescan.js_facts import JS_SUFFIXES

__all__ = ["SourceTree", "SKIPPED_DIRECTORIES", "MAX_FILE_BYTES"]

# Dependencies, build output and caches: not the team's code, and often most of the bytes.
SKIPPED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".next",
        ".nuxt",
        ".turbo",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "coverage",
    }
)
# Bigger files are generated (bundles, vendored data), not written by hand.
MAX_FILE_BYTES = 1 << 20
_SOURCE_SUFFIXES = (".py", *JS_SUFFIXES)
_CONFIG_NAMES = ("tsconfig.json", "jsconfig.json")


@dataclass
class SourceTree:
    root: Path
    files: list[str] = field(default_factory=list)  # module ids, sorted
    skipped: list[str] = field(default_factory=list)  # too big
    _python: dict[str, str] = field(default_factory=dict)  # dotted name → module id
    _ids: set[str] = field(default_factory=set)
    _aliases: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)  # config dir → patterns

    @classmethod
    def walk(cls, path: Path) -> "SourceTree":
        path = path.resolve()
        root = path if path.is_dir() else path.parent
        tree = cls(root)
        if path.is_file():
            tree._add(path.name, path.stat().st_size)
        else:
            for directory, subdirectories, names in os.walk(root):
                subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES)
                relative = os.path.relpath(directory, root)
                prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
                for name in sorted(names):
                    if name in _CONFIG_NAMES:
                        tree._read_aliases(prefix.rstrip("/"), Path(directory) / name)
                    elif name.endswith(_SOURCE_SUFFIXES) and not name.endswith((".min.js", ".d.ts")):
                        try:
                            size = (Path(directory) / name).stat().st_size
                        except OSError:
                            continue
                        tree._add(prefix + name, size)
        tree._index_python()
        return tree

    def _add(self, module: str, size: int) -> None:
        if size > MAX_FILE_BYTES:
            self.skipped.append(module)
        else:
            self.files.append(module)
            self._ids.add(module)

    def read(self, module: str) -> bytes:
        return (self.root / module).read_bytes()

    # -- Python ----------------------------------------------------------------------------------
    def _index_python(self) -> None:
        """Each file by its dotted name from the root and from the top of its package chain."""
        for module in sorted((m for m in self.files if m.endswith(".py")), key=lambda m: m.count("/")):
            parts = module[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not parts:
                continue
            self._python.setdefault(".".join(parts), module)
            top = len(parts) - 1
            while top > 0 and "/".join(parts[:top]) + "/__init__.py" in self._ids:
                top -= 1
            self._python.setdefault(".".join(parts[top:]), module)

    def python_module(self, importer: str, name: str, level: int) -> str | None:
        if level:
            package = importer.split("/")[:-1]
            if level > 1:
                package = package[: -(level - 1)] if len(package) >= level - 1 else []
            parts = [*package, *(name.split(".") if name else [])]
            for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
                if candidate in self._ids:
                    return candidate
            return None
        return self._python.get(name)

    # -- JavaScript / TypeScript -----------------------------------------------------------------
    def _read_aliases(self, directory: str, config: Path) -> None:
        try:
            options = json.loads(_strip_jsonc(config.read_text(errors="replace"))).get("compilerOptions", {})
        except (OSError, ValueError, AttributeError):
            return
        base = posixpath.normpath(posixpath.join(directory, options.get("baseUrl", ".")))
        patterns = []
        for pattern, targets in (options.get("paths") or {}).items():
            if isinstance(targets, list):
                patterns.append((pattern, [posixpath.normpath(posixpath.join(base, t)) for t in targets]))
        self._aliases[directory] = patterns

    def js_module(self, importer: str, spec: str) -> str | None:
        directory = posixpath.dirname(importer)
        if spec.startswith("."):
            return self._js_file(posixpath.normpath(posixpath.join(directory, spec)))
        for candidate in self._alias_targets(directory, spec):
            found = self._js_file(candidate)
            if found is not None:
                return found
        return None

    def _alias_targets(self, directory: str, spec: str) -> Iterator[str]:
        configs = [d for d in self._aliases if d == "" or directory == d or directory.startswith(d + "/")]
        for config in sorted(configs, key=len, reverse=True):
            for pattern, targets in self._aliases[config]:
                head, star, tail = pattern.partition("*")
                if star and spec.startswith(head) and spec.endswith(tail):
                    middle = spec[len(head) : len(spec) - len(tail)]
                    yield from (t.replace("*", middle, 1) for t in targets)
                elif spec == pattern:
                    yield from targets
        if spec.startswith(("@/", "~/")):  # the common default when no configuration says otherwise
            yield "src/" + spec[2:]
            yield spec[2:]

    def _js_file(self, stem: str) -> str | None:
        if stem in self._ids:
            return stem
        for suffix in JS_SUFFIXES:
            if stem + suffix in self._ids:
                return stem + suffix
        for suffix in JS_SUFFIXES:
            if f"{stem}/index{suffix}" in self._ids:
                return f"{stem}/index{suffix}"
        if stem.endswith(".js"):  # TypeScript's ESM style: `./flags.js` names `./flags.ts`
            return self._js_file(stem[:-3])
        return None


_JSONC_NOISE = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/|,(?=\s*[}\]])', re.DOTALL)


def _strip_jsonc(text: str) -> str:
    """tsconfig.json allows comments and trailing commas; JSON does not."""
    return _JSONC_NOISE.sub(lambda m: m.group(1) or "", text)

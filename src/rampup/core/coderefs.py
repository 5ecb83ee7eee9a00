"""Where a flag is used in source code: the rules, applied to facts the language adapters extract.

An adapter (`adapters/codescan/`) parses one file and describes it in the small vocabulary below —
bindings, imports, functions and the expressions that occur in them — without judging anything.
`analyze` then decides, across all modules at once, which names hold a flag's key (constants, aliases,
imports of either), which functions and components only evaluate the flag (wrappers), and what each
occurrence is: an SDK, OpenFeature or OFREP evaluation, an environment variable of the flag, a wrapper's
use, or the bare key. The same answer drives `rampup refs` (the references) and `rampup cleanup` (the
checks to fold away).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "RefKind",
    "Span",
    "Str",
    "Template",
    "Name",
    "Call",
    "Env",
    "Element",
    "Opaque",
    "Test",
    "Expr",
    "concatenation",
    "Site",
    "Binding",
    "Import",
    "Choice",
    "Function",
    "ModuleFacts",
    "CodeRef",
    "Check",
    "Analysis",
    "analyze",
    "discover_keys",
    "env_flag",
    "BOOLEAN_EVALUATIONS",
    "Definition",
    "ReferenceGraph",
    "reference_graph",
]


class RefKind(StrEnum):
    LITERAL = "literal"  # the key as a string literal, nothing more specific around it
    CONSTANT = "constant"  # a name bound to the key's literal
    ALIAS = "alias"  # a name bound to another name that holds the key, an import of one included
    SDK = "sdk"  # Rampup SDK: is_enabled / evaluate
    OPENFEATURE = "openfeature"  # an OpenFeature client call or React hook
    OFREP = "ofrep"  # a URL of the OFREP evaluation endpoint for the key
    ENV = "env"  # NEXT_PUBLIC_<NAME>_ENABLED / _ROLLOUT and their unprefixed forms
    WRAPPER = "wrapper"  # a function, component or value whose only job is to evaluate the flag
    WRAPPER_USE = "wrapper-use"  # a call of such a wrapper, its element rendered, its value read
    USE = "use"  # a name holding the key passed somewhere else (a list of flags, a tag)


# Rampup's Python SDK.
SDK_METHODS = frozenset({"is_enabled", "evaluate"})
# OpenFeature: the clients of every language we read, and the React SDK's hooks.
_OF_TYPES = ("boolean", "string", "number", "integer", "float", "object")
OPENFEATURE_METHODS = frozenset(
    {f"get_{t}_{part}" for t in _OF_TYPES for part in ("value", "details")}
    | {f"get_{t}_{part}_async" for t in _OF_TYPES for part in ("value", "details")}
    | {f"get{t.capitalize()}{part}" for t in _OF_TYPES for part in ("Value", "Details")}
    | {f"use{t.capitalize()}Flag{part}" for t in _OF_TYPES for part in ("Value", "Details")}
    | {"useFlag", "useSuspenseFlag"}
)
# Evaluations whose result is the flag's boolean itself (others return details or another type).
BOOLEAN_EVALUATIONS = frozenset(
    {"is_enabled", "get_boolean_value", "get_boolean_value_async", "getBooleanValue", "useBooleanFlagValue"}
)
# Evaluations whose result carries the boolean in `.value` (or a destructured `value`).
DETAIL_EVALUATIONS = frozenset(
    {"evaluate", "get_boolean_details", "getBooleanDetails", "useBooleanFlagDetails", "useFlag"}
)
KEY_KEYWORDS = frozenset({"flag_key", "flagKey", "key"})
OFREP_PATH = "/ofrep/v1/evaluate/flags/"
_ENV_FLAG = re.compile(r"^(?:NEXT_PUBLIC_|REACT_APP_|VITE_|PUBLIC_)?([A-Z0-9_]+?)_(ENABLED|ROLLOUT)$")


def env_flag(name: str) -> tuple[str, str] | None:
    """`NEXT_PUBLIC_WORKSTATION_ENABLED` → ("WORKSTATION", "ENABLED"): the flag's name and which variable."""
    match = _ENV_FLAG.match(name)
    return (match.group(1), match.group(2)) if match else None


def _env_name(key: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", key.upper())


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Where an expression is: 1-based lines, columns as the adapter counts them (it reads them back)."""

    line: int
    column: int
    end_line: int
    end_column: int

    def contains(self, other: "Span") -> bool:
        return (self.line, self.column) <= (other.line, other.column) and (
            other.end_line,
            other.end_column,
        ) <= (
            self.end_line,
            self.end_column,
        )


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    """A name or a dotted path read: `WORKSTATION`, `flags.WORKSTATION`, `FLAGS.workstation`."""

    path: tuple[str, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Env:
    """An environment variable read: `process.env.X`, `os.environ["X"]`, `os.getenv("X")`."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Opaque:
    """An expression the rules need not look into."""

    span: Span


@dataclass(frozen=True, slots=True)
class Test:
    """A boolean-shaped expression — a comparison, `not`, `and`/`or`, `true` — with its operands."""

    parts: "tuple[Expr, ...]"
    span: Span


@dataclass(frozen=True, slots=True)
class Template:
    """An f-string, a template literal or a concatenation: text and the expressions between."""

    parts: "tuple[str | Expr, ...]"
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    callee: tuple[str, ...]  # the dotted path called; empty when it is computed
    args: "tuple[Expr, ...]"
    keywords: "tuple[tuple[str, Expr], ...]"
    span: Span


@dataclass(frozen=True, slots=True)
class Element:
    """A JSX element `<Name …>`, with the expressions of its attributes."""

    name: tuple[str, ...]
    props: "tuple[tuple[str, Expr], ...]"
    span: Span


Expr = Str | Template | Name | Call | Env | Element | Test | Opaque


def concatenation(operands: "list[Expr]", span: Span) -> Expr:
    """`a + b`: a template when text is involved (a URL being built), else nothing to look into."""
    if not any(isinstance(o, Str | Template) for o in operands):
        return Opaque(span)
    parts: list[str | Expr] = []
    for operand in operands:
        if isinstance(operand, Str):
            parts.append(operand.value)
        elif isinstance(operand, Template):
            parts.extend(operand.parts)
        else:
            parts.append(operand)
    return Template(tuple(parts), span)


@dataclass(frozen=True, slots=True)
class Site:
    """An expression occurring in a module, with the function it is in ("" at module level)."""

    expr: Expr
    scope: str


@dataclass(frozen=True, slots=True)
class Binding:
    """`name = value` in a scope: module level (""), a function, or a class/object body (dotted name)."""

    name: str
    value: Expr
    span: Span
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Import:
    """`local` refers to `name` of `module` (a module id of this scan, None when outside it).

    `name` None imports the module itself (`import x as local`, `import * as local from …`);
    `name` "*" re-exports or star-imports everything.
    """

    local: str
    module: str | None
    name: str | None
    span: Span
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    """A component that renders one of its props by a condition: `cond ? when_true : when_false`.

    A prop of None renders nothing.
    """

    condition: Expr
    when_true: str | None
    when_false: str | None


@dataclass(frozen=True, slots=True)
class Function:
    """A function, method, arrow function or component. `simple`: its body only declares, branches and
    returns — no statement that does something else — so it can be a wrapper. `returns`: what each
    `return` gives back (an arrow function's expression body included)."""

    name: str  # qualified: `Panel.render`, nested functions `outer.inner`
    span: Span
    params: tuple[str, ...]
    simple: bool
    returns: tuple[Expr, ...] = ()
    choice: Choice | None = None


@dataclass(frozen=True, slots=True)
class ModuleFacts:
    module: str  # the module id: its path relative to the scanned root
    bindings: tuple[Binding, ...] = ()
    imports: tuple[Import, ...] = ()
    functions: tuple[Function, ...] = ()
    sites: tuple[Site, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeRef:
    module: str
    span: Span
    kind: RefKind
    key: str
    scope: str  # the enclosing function, "" at module level
    detail: str  # e.g. "getBooleanValue", "WORKSTATION" (a constant), "NEXT_PUBLIC_WORKSTATION_ENABLED"


@dataclass(frozen=True, slots=True)
class Check:
    """An expression that evaluates the flag, for the rewriter.

    `kind` says what it yields: "boolean" (the flag's value), "details" (`.value` is it), "env"
    (an ENABLED/ROLLOUT variable's text, `variable` says which), "choice" (a wrapper component's
    element, `choice` says which prop it renders), or "other" (a value of another type: not rewritable).
    """

    key: str
    span: Span
    kind: str
    method: str
    variable: str = ""
    choice: Choice | None = None


@dataclass(slots=True)
class Analysis:
    refs: list[CodeRef] = field(default_factory=list)
    checks: dict[str, list[Check]] = field(default_factory=dict)  # module → its checks
    wrappers: set[tuple[str, str]] = field(default_factory=set)  # (module, function or binding name)
    holders: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, name) → key


@dataclass(frozen=True, slots=True)
class _Holds:
    key: str


@dataclass(frozen=True, slots=True)
class _Evaluates:
    key: str
    kind: RefKind
    method: str
    result: str  # Check.kind
    variable: str = ""
    choice: Choice | None = None


_Meaning = _Holds | _Evaluates | None
_LONGEST_PATH = 16


class _Resolver:
    def __init__(self, modules: Mapping[str, ModuleFacts], keys: frozenset[str]) -> None:
        self.modules = modules
        self.keys = keys
        self.env_keys = {_env_name(k): k for k in keys}
        self.bindings = {m: {(b.scope, b.name): b for b in facts.bindings} for m, facts in modules.items()}
        self.imports = {m: {(i.scope, i.local): i for i in facts.imports} for m, facts in modules.items()}
        self.star_imports = {
            m: [i.module for i in facts.imports if i.name == "*" and i.module] for m, facts in modules.items()
        }
        self.functions = {m: {f.name: f for f in facts.functions} for m, facts in modules.items()}
        self.params = {m: {f.name: set(f.params) for f in facts.functions} for m, facts in modules.items()}
        self.wrappers: dict[tuple[str, str], _Evaluates] = {}
        self._active: set[tuple[str, str, int]] = set()
        self._resolving: set[tuple[str, str, tuple[str, ...]]] = set()
        self._meanings: dict[tuple[str, str, int], _Meaning] = {}  # valid while `wrappers` stays the same
        self.sites_in: dict[str, dict[str, list[Site]]] = {}
        for m, facts in modules.items():
            by_scope: dict[str, list[Site]] = {}
            for site in facts.sites:
                by_scope.setdefault(site.scope, []).append(site)
            self.sites_in[m] = by_scope

    # -- names -----------------------------------------------------------------------------------
    def symbol(self, module: str, scope: str, path: tuple[str, ...]) -> tuple[str, str] | None:
        """The (module, name) a dotted path read in `scope` refers to, following imports."""
        for outer in _scopes(scope):
            if path[0] in self.params[module].get(outer, ()):
                return None  # a parameter shadows anything outside
            found = self._in_scope(module, outer, path)
            if found is not None:
                return found
        return None

    def _in_scope(self, module: str, scope: str, path: tuple[str, ...]) -> tuple[str, str] | None:
        guard = (module, scope, path)
        if guard in self._resolving:  # modules that star-import each other
            return None
        self._resolving.add(guard)
        try:
            return self._in_scope_once(module, scope, path)
        finally:
            self._resolving.discard(guard)

    def _in_scope_once(self, module: str, scope: str, path: tuple[str, ...]) -> tuple[str, str] | None:
        for cut in range(len(path), 0, -1):
            head, rest = ".".join(path[:cut]), path[cut:]
            if (scope, head) in self.bindings[module] or (scope == "" and head in self.functions[module]):
                return (module, ".".join(path)) if not rest else self._member(module, head, rest)
            imported = self.imports[module].get((scope, head))
            if imported is not None:
                return self._through_import(imported, rest)
        if scope == "":
            for star in self.star_imports[module]:
                if star in self.modules and star != module:
                    found = self._in_scope(star, "", path)
                    if found is not None:
                        return found
        return None

    def _member(self, module: str, head: str, rest: tuple[str, ...]) -> tuple[str, str]:
        binding = self.bindings[module].get(("", head))
        followed = binding.value.path if binding is not None and isinstance(binding.value, Name) else ()
        # `F = other.FLAGS; F.x`; not `np = np.core` (it names itself) nor a chain that only grows
        if followed and followed[0] != head and len(followed) + len(rest) <= _LONGEST_PATH:
            target = self.symbol(module, "", followed + rest)
            if target is not None:
                return target
        return (module, ".".join((head, *rest)))

    def _through_import(self, imported: Import, rest: tuple[str, ...]) -> tuple[str, str] | None:
        if imported.module is None or imported.module not in self.modules:
            return None
        if imported.name is None:  # the module itself: `flags.WORKSTATION`
            return self._in_scope(imported.module, "", rest) if rest else None
        return self._in_scope(imported.module, "", (imported.name, *rest))

    # -- meanings --------------------------------------------------------------------------------
    def of_symbol(self, module: str, name: str) -> _Meaning:
        if (module, name) in self.wrappers:
            return self.wrappers[module, name]
        binding = self.bindings[module].get(("", name))
        if binding is None:
            return None
        return self.meaning(module, "", binding.value)

    def of_local(self, module: str, scope: str, path: tuple[str, ...]) -> _Meaning:
        """A name read in a function: a local binding of it first, then whatever it refers to."""
        for outer in _scopes(scope):
            if outer == "":
                break
            if path[0] in self.params[module].get(outer, ()):
                return None
            binding = self.bindings[module].get((outer, path[0]))
            if binding is not None and isinstance(binding.value, Test):  # `const on = env === "true"`
                tested = self.derived(module, outer, binding.value)
                if tested is None or len(path) > 1:
                    return None
                return _Evaluates(tested.key, RefKind.WRAPPER_USE, path[0], "boolean")
            if binding is not None:
                meaning = self.meaning(module, outer, binding.value)
                return meaning if len(path) == 1 or _is_details(meaning, path[1:]) else None
        target = self.symbol(module, scope, path)
        return self.of_symbol(*target) if target is not None else None

    def meaning(self, module: str, scope: str, expr: Expr) -> _Meaning:
        guard = (module, scope, id(expr))
        if guard in self._meanings:
            return self._meanings[guard]
        if guard in self._active:  # a cycle of names: `A = B; B = A`
            return None
        self._active.add(guard)
        try:
            found = self._meaning(module, scope, expr)
        finally:
            self._active.discard(guard)
        if not self._active:  # only answers reached without a cycle cut short are kept
            self._meanings[guard] = found
        return found

    def _meaning(self, module: str, scope: str, expr: Expr) -> _Meaning:
        if isinstance(expr, Str):
            return _Holds(expr.value) if expr.value in self.keys else None
        if isinstance(expr, Name):
            meaning = self.of_local(module, scope, expr.path)
            if isinstance(meaning, _Evaluates) and meaning.result == "details" and expr.path[-1] == "value":
                return _Evaluates(meaning.key, meaning.kind, meaning.method, "boolean")
            return meaning
        if isinstance(expr, Env):
            return self.env(expr.name)
        if isinstance(expr, Template):
            return self.ofrep(module, scope, expr)
        if isinstance(expr, Str) and OFREP_PATH in expr.value:
            return self.ofrep(module, scope, Template((expr.value,), expr.span))
        if isinstance(expr, Call):
            return self.call(module, scope, expr)
        if isinstance(expr, Element) and expr.name:
            target = self.symbol(module, scope, expr.name)
            wrapper = self.wrappers.get(target) if target else None
            return wrapper if wrapper is not None and wrapper.result == "choice" else None
        return None

    def env(self, name: str) -> _Meaning:
        parsed = env_flag(name)
        if parsed is None or parsed[0] not in self.env_keys:
            return None
        return _Evaluates(self.env_keys[parsed[0]], RefKind.ENV, name, "env", variable=parsed[1])

    def ofrep(self, module: str, scope: str, template: Template) -> _Meaning:
        text = "".join(p if isinstance(p, str) else "\x00" for p in template.parts)
        if OFREP_PATH not in text:
            return None
        after = text.split(OFREP_PATH, 1)[1]
        literal = re.match(r"[a-z0-9][a-z0-9_.-]*", after)
        if literal and literal.group(0) in self.keys:
            key = literal.group(0)
        else:
            exprs = [p for p in template.parts if not isinstance(p, str)]
            index = text.split(OFREP_PATH, 1)[0].count("\x00")
            if not after.startswith("\x00") or index >= len(exprs):
                return None
            meaning = self.meaning(module, scope, exprs[index])
            if not isinstance(meaning, _Holds):
                return None
            key = meaning.key
        return _Evaluates(key, RefKind.OFREP, "OFREP", "other")

    def call(self, module: str, scope: str, call: Call) -> _Meaning:
        if call.callee:
            method = call.callee[-1]
            if method in SDK_METHODS or method in OPENFEATURE_METHODS:
                key = self._key_argument(module, scope, call)
                if key is not None:
                    kind = RefKind.SDK if method in SDK_METHODS else RefKind.OPENFEATURE
                    result = (
                        "boolean"
                        if method in BOOLEAN_EVALUATIONS
                        else "details"
                        if method in DETAIL_EVALUATIONS
                        else "other"
                    )
                    return _Evaluates(key, kind, method, result)
            target = self.symbol(module, scope, call.callee)
            if target is not None and target in self.wrappers:
                return self.wrappers[target]
        return None

    def _key_argument(self, module: str, scope: str, call: Call) -> str | None:
        candidates = [*call.args[:1], *(v for k, v in call.keywords if k in KEY_KEYWORDS)]
        for expr in candidates:
            meaning = self.meaning(module, scope, expr)
            if isinstance(meaning, _Holds):
                return meaning.key
        return None

    # -- wrappers --------------------------------------------------------------------------------
    def find_wrappers(self) -> None:
        """Functions whose simple bodies evaluate a flag, to a fixpoint (wrappers of wrappers)."""
        changed = True
        while changed:
            changed = False
            for module, facts in self.modules.items():
                for function in facts.functions:
                    if not function.simple or (module, function.name) in self.wrappers:
                        continue
                    found = self._wrapper(module, facts, function)
                    if found is not None:
                        self.wrappers[module, function.name] = found
                        self._meanings.clear()
                        changed = True
                for binding in facts.bindings:  # a module-level value computed from the flag
                    if binding.scope or (module, binding.name) in self.wrappers:
                        continue
                    meaning = self.derived(module, "", binding.value)
                    if meaning is not None:
                        result = "boolean" if isinstance(binding.value, Test) else _value_result(meaning)
                        self.wrappers[module, binding.name] = _Evaluates(
                            meaning.key, RefKind.WRAPPER_USE, binding.name, result
                        )
                        self._meanings.clear()
                        changed = True

    def _wrapper(self, module: str, facts: ModuleFacts, function: Function) -> _Evaluates | None:
        """A simple function that returns the flag's value (or a test of it), or renders a prop by it."""
        scope = function.name
        if function.choice is not None:
            condition = self.derived(module, scope, function.choice.condition)
            if condition is not None:
                return _Evaluates(condition.key, RefKind.WRAPPER_USE, scope, "choice", choice=function.choice)
        if not function.returns:
            return None
        evaluated: _Evaluates | None = None
        for returned in function.returns:
            meaning = self.derived(module, scope, returned)
            if meaning is None and not isinstance(returned, Test):
                return None  # it gives back something that is not the flag's value
            evaluated = evaluated or meaning
        if evaluated is None:  # `return rollout >= 100`: the test's operands were bound earlier
            inside = function.name + "."
            scopes = [s for s in self.sites_in[module] if s == function.name or s.startswith(inside)]
            for site in (site for s in scopes for site in self.sites_in[module][s]):
                inner = self.meaning(module, site.scope, site.expr)
                if isinstance(inner, _Evaluates):
                    evaluated = inner
                    break
        if evaluated is None:
            return None
        return _Evaluates(evaluated.key, RefKind.WRAPPER_USE, scope, "boolean")

    def derived(self, module: str, scope: str, expr: Expr) -> _Evaluates | None:
        """The evaluation an expression gives or tests (`enabled`, `x === "true"`, `!isOn()`)."""
        if isinstance(expr, Test):
            for part in expr.parts:
                found = self.derived(module, scope, part)
                if found is not None:
                    return found
            return None
        meaning = self.meaning(module, scope, expr)
        return meaning if isinstance(meaning, _Evaluates) else None


def _is_details(meaning: _Meaning, rest: tuple[str, ...]) -> bool:
    return isinstance(meaning, _Evaluates) and meaning.result == "details" and rest == ("value",)


def _value_result(meaning: _Evaluates) -> str:
    return "boolean" if meaning.result in {"boolean", "env"} and meaning.variable != "ROLLOUT" else "other"


def _scopes(scope: str) -> Iterable[str]:
    """`a.b.c` → `a.b.c`, `a.b`, `a`, `` (innermost first)."""
    parts = scope.split(".") if scope else []
    for cut in range(len(parts), -1, -1):
        yield ".".join(parts[:cut])


def analyze(modules: Mapping[str, ModuleFacts], keys: Iterable[str]) -> Analysis:
    """Every reference to the given flag keys in the modules, and every check of them."""
    resolver = _Resolver(modules, frozenset(keys))
    resolver.find_wrappers()
    analysis = Analysis(wrappers=set(resolver.wrappers))
    for module, facts in modules.items():
        found = [
            *_definitions(resolver, analysis, module, facts),
            *_imports(resolver, analysis, module, facts),
            *_wrapper_functions(resolver, module, facts),
        ]
        checks: list[Check] = []
        for site in facts.sites:
            found.extend(_site(resolver, module, site, checks))
        analysis.refs.extend(_outermost(found))
        if checks:
            analysis.checks[module] = checks
    analysis.refs.sort(key=lambda r: (r.module, r.span))
    return analysis


def _definitions(resolver: _Resolver, analysis: Analysis, module: str, facts: ModuleFacts) -> list[CodeRef]:
    """Module-level names that hold a key (constants, aliases; noted in `analysis.holders`) or wrap a check."""
    found = []
    for binding in facts.bindings:
        meaning = resolver.meaning(module, binding.scope, binding.value)
        if binding.scope == "" and isinstance(meaning, _Holds):
            analysis.holders[module, binding.name] = meaning.key
            kind = RefKind.CONSTANT if isinstance(binding.value, Str) else RefKind.ALIAS
            found.append(CodeRef(module, binding.span, kind, meaning.key, "", binding.name))
        elif binding.scope == "" and (module, binding.name) in resolver.wrappers:
            wrapper = resolver.wrappers[module, binding.name]
            found.append(
                CodeRef(module, binding.span, RefKind.WRAPPER, wrapper.key, "", f"value {binding.name}")
            )
    return found


def _imports(resolver: _Resolver, analysis: Analysis, module: str, facts: ModuleFacts) -> list[CodeRef]:
    """Imported names that hold a key, noted in `analysis.holders` too."""
    found = []
    for imported in facts.imports:
        target = resolver._through_import(imported, ()) if imported.name not in (None, "*") else None
        if target is None:
            continue
        meaning = resolver.of_symbol(*target)
        if isinstance(meaning, _Holds):
            analysis.holders[module, imported.local] = meaning.key
            found.append(
                CodeRef(
                    module,
                    imported.span,
                    RefKind.ALIAS,
                    meaning.key,
                    imported.scope,
                    f"import {imported.name} as {imported.local}"
                    if imported.name != imported.local
                    else f"import {imported.local}",
                )
            )
    return found


def _wrapper_functions(resolver: _Resolver, module: str, facts: ModuleFacts) -> list[CodeRef]:
    found = []
    for function in facts.functions:
        wrapped = resolver.wrappers.get((module, function.name))
        if wrapped is not None:
            what = "component" if wrapped.result == "choice" else "function"
            found.append(
                CodeRef(module, function.span, RefKind.WRAPPER, wrapped.key, "", f"{what} {function.name}")
            )
    return found


def _site(resolver: _Resolver, module: str, site: Site, checks: list[Check]) -> list[CodeRef]:
    """What one expression is: an evaluation (added to `checks` too), a use of a key, or an environment
    variable naming a flag."""
    meaning = resolver.meaning(module, site.scope, site.expr)
    if isinstance(meaning, _Evaluates):
        checks.append(
            Check(
                meaning.key, site.expr.span, meaning.result, meaning.method, meaning.variable, meaning.choice
            )
        )
        if _is_local_read(resolver, module, site):
            return []  # `enabled` inside the function that evaluated it: the evaluation is the reference
        return [CodeRef(module, site.expr.span, meaning.kind, meaning.key, site.scope, meaning.method)]
    if isinstance(meaning, _Holds):
        kind = RefKind.LITERAL if isinstance(site.expr, Str) else RefKind.USE
        name = ".".join(site.expr.path) if isinstance(site.expr, Name) else f'"{meaning.key}"'
        return [CodeRef(module, site.expr.span, kind, meaning.key, site.scope, name)]
    if isinstance(site.expr, Str) and env_flag(site.expr.value) is not None:
        env = resolver.env(site.expr.value)
        if isinstance(env, _Evaluates):  # a variable named in a string: settings, a helper's argument
            return [CodeRef(module, site.expr.span, RefKind.ENV, env.key, site.scope, site.expr.value)]
    return []


def _is_local_read(resolver: _Resolver, module: str, site: Site) -> bool:
    if not isinstance(site.expr, Name) or not site.scope:
        return False
    return any(
        (outer, site.expr.path[0]) in resolver.bindings[module] for outer in _scopes(site.scope) if outer
    )


_CONTAINERS_OF = {
    RefKind.LITERAL: frozenset(RefKind) - {RefKind.LITERAL, RefKind.USE, RefKind.WRAPPER},
    RefKind.USE: frozenset(RefKind) - {RefKind.LITERAL, RefKind.USE, RefKind.WRAPPER},
    RefKind.ENV: frozenset({RefKind.WRAPPER_USE, RefKind.SDK, RefKind.OPENFEATURE, RefKind.OFREP}),
}


def _outermost(found: list[CodeRef]) -> list[CodeRef]:
    """One reference per use: the key inside an evaluation, a constant's own literal, are that one use."""
    kept: list[CodeRef] = []
    seen: set[tuple[Span, RefKind]] = set()
    for ref in found:
        containers = _CONTAINERS_OF.get(ref.kind, frozenset())
        if any(o.kind in containers and o.span != ref.span and o.span.contains(ref.span) for o in found):
            continue
        if (ref.span, ref.kind) not in seen:  # one expression reached twice
            seen.add((ref.span, ref.kind))
            kept.append(ref)
    return kept


def discover_keys(modules: Mapping[str, ModuleFacts]) -> set[str]:
    """The keys evaluated anywhere: literal (or constant) first arguments of evaluations, env variables."""
    literals: set[str] = set()
    for facts in modules.values():
        literals.update(b.value.value for b in facts.bindings if isinstance(b.value, Str))
        for site in facts.sites:
            expr = site.expr
            if (
                isinstance(expr, Call)
                and expr.callee
                and expr.callee[-1] in SDK_METHODS | OPENFEATURE_METHODS
            ):
                first = expr.args[0] if expr.args else None
                if isinstance(first, Str):
                    literals.add(first.value)
            elif isinstance(expr, Env | Str):
                parsed = env_flag(expr.name if isinstance(expr, Env) else expr.value)
                if parsed is not None:
                    literals.add(parsed[0].lower())
    resolver = _Resolver(modules, frozenset(k for k in literals if _looks_like_key(k)))
    keys: set[str] = set()
    for module, facts in modules.items():
        for site in facts.sites:
            meaning = resolver.meaning(module, site.scope, site.expr)
            if isinstance(meaning, _Evaluates) and meaning.kind in (
                RefKind.SDK,
                RefKind.OPENFEATURE,
                RefKind.ENV,
            ):
                keys.add(meaning.key)
    return keys


def _looks_like_key(text: str) -> bool:
    return re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,127}", text) is not None


Definition = tuple[str, str]  # (module, top-level name): a function, a binding, an import


@dataclass(slots=True)
class ReferenceGraph:
    """Who refers to which top-level definition: from another definition's code, or from a root."""

    edges: dict[Definition, set[Definition]] = field(default_factory=dict)
    roots: dict[Definition, int] = field(default_factory=dict)
    definitions: set[Definition] = field(default_factory=set)

    def used(self) -> dict[Definition, int]:
        counts = dict(self.roots)
        for targets in self.edges.values():
            for target in targets:
                counts[target] = counts.get(target, 0) + 1
        return counts


def reference_graph(modules: Mapping[str, ModuleFacts]) -> ReferenceGraph:
    resolver = _Resolver(modules, frozenset())
    graph = ReferenceGraph()
    for module, facts in modules.items():
        top = {b.name for b in facts.bindings if not b.scope and "." not in b.name}
        top |= {f.name for f in facts.functions if "." not in f.name}
        imports = {i.local: i for i in facts.imports if not i.scope and i.name != "*"}
        graph.definitions |= {(module, n) for n in top | set(imports)}
        for local, imported in imports.items():
            target = resolver._through_import(imported, ()) if imported.name else None
            if target is not None:
                graph.edges.setdefault((module, local), set()).add((target[0], target[1].split(".")[0]))
        owners = [(b.span, (module, b.name)) for b in facts.bindings if not b.scope and "." not in b.name]
        for site in facts.sites:
            for path in _paths_read(site.expr):
                if (
                    path[0] not in top
                    and path[0] not in imports
                    or _is_local(resolver, module, site.scope, path[0])
                ):
                    continue
                owner = _owner(module, site, owners, top)
                targets = [(module, path[0])]
                through = imports.get(path[0])
                if (
                    through is not None
                    and through.name is None
                    and through.module in modules
                    and len(path) > 1
                ):
                    targets.append((str(through.module), path[1]))  # `settings.X` reads X of that module
                for target in targets:
                    if owner is None:
                        graph.roots[target] = graph.roots.get(target, 0) + 1
                    elif owner != target:
                        graph.edges.setdefault(owner, set()).add(target)
    return graph


def _paths_read(expr: Expr) -> list[tuple[str, ...]]:
    if isinstance(expr, Name):
        return [expr.path]
    if isinstance(expr, Call | Element) and (expr.callee if isinstance(expr, Call) else expr.name):
        return [expr.callee if isinstance(expr, Call) else expr.name]
    return []


def _is_local(resolver: _Resolver, module: str, scope: str, name: str) -> bool:
    for outer in _scopes(scope):
        if not outer:
            return False
        if (outer, name) in resolver.bindings[module] or name in resolver.params[module].get(outer, ()):
            return True
    return False


def _owner(
    module: str, site: Site, owners: list[tuple[Span, Definition]], top: set[str]
) -> Definition | None:
    if site.scope:
        head = site.scope.split(".")[0]
        return (module, head) if head in top else None
    for span, definition in owners:
        if span.contains(site.expr.span):
            return definition
    return None

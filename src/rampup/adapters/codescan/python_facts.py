"""Python source → `ModuleFacts`, with the standard library's `ast` (the C parser: fast on big trees).

Columns are counted in characters, as LibCST counts them, so the rewriter finds the same expressions.
"""

import ast
from collections.abc import Callable

from rampup.core.coderefs import (
    Binding,
    Call,
    Env,
    Expr,
    Function,
    Import,
    ModuleFacts,
    Name,
    Opaque,
    Site,
    Span,
    Str,
    Template,
    Test,
    concatenation,
)

__all__ = ["python_facts", "ModuleResolver"]

# (importing module id, dotted module name, relative level) → the module id of this scan, or None
ModuleResolver = Callable[[str, str, int], str | None]

_ENV_CALLS = {("os", "getenv"), ("getenv",), ("os", "environ", "get"), ("environ", "get")}
_ENV_MAPPINGS = {("os", "environ"), ("environ",)}
_TEXT_METHODS = {"lower", "strip", "casefold", "upper"}


def python_facts(module: str, source: str, resolve: ModuleResolver) -> ModuleFacts:
    """Raises SyntaxError (and ValueError for null bytes) when the file is not Python."""
    tree = ast.parse(source, filename=module)
    collector = _Collector(module, source, resolve)
    collector.body(tree.body, "")
    return ModuleFacts(
        module,
        tuple(collector.bindings),
        tuple(collector.imports),
        tuple(collector.functions),
        tuple(collector.sites),
    )


def _path(node: ast.expr) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return tuple(reversed(parts))
    return None


_SIMPLE_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.Return, ast.Pass, ast.Global, ast.Nonlocal)


def _is_simple(body: list[ast.stmt]) -> bool:
    """Declares, branches and returns only (a docstring allowed): nothing else happens in it."""
    for index, statement in enumerate(body):
        if isinstance(statement, _SIMPLE_STATEMENTS):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and index == 0:
            continue
        if isinstance(statement, ast.If) and _is_simple(statement.body) and _is_simple(statement.orelse):
            continue
        if isinstance(statement, ast.Try) and all(
            _is_simple(b) for b in (statement.body, statement.orelse, statement.finalbody)
        ):
            if all(_is_simple(h.body) for h in statement.handlers):
                continue
        return False
    return True


class _Collector:
    def __init__(self, module: str, source: str, resolve: ModuleResolver) -> None:
        self.module = module
        self.lines = source.splitlines()
        self.resolve = resolve
        self.bindings: list[Binding] = []
        self.imports: list[Import] = []
        self.functions: list[Function] = []
        self.sites: list[Site] = []
        self.returns: list[Expr] = []  # of the function being read

    def span(self, node: ast.stmt | ast.expr | ast.alias) -> Span:
        end_line = node.end_lineno or node.lineno
        return Span(
            node.lineno,
            self._chars(node.lineno, node.col_offset),
            end_line,
            self._chars(end_line, node.end_col_offset or 0),
        )

    def _chars(self, line: int, byte_column: int) -> int:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return byte_column if text.isascii() else len(text.encode()[:byte_column].decode(errors="replace"))

    # -- statements ------------------------------------------------------------------------------
    def body(self, statements: list[ast.stmt], scope: str, prefix: str = "") -> None:
        for statement in statements:
            self.statement(statement, scope, prefix)

    def statement(self, node: ast.stmt, scope: str, prefix: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node, scope, prefix)
        elif isinstance(node, ast.ClassDef):
            for expr in (*node.bases, *node.decorator_list, *(k.value for k in node.keywords)):
                self.expr(expr, scope)
            self.body(node.body, scope, f"{prefix}{node.name}.")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = self.resolve(self.module, alias.name, 0)
                if alias.asname:
                    self.imports.append(Import(alias.asname, target, None, self.span(node), scope))
                else:  # `import a.b` binds `a`; reads of `a.b.X` are matched by the longest prefix
                    self.imports.append(Import(alias.name, target, None, self.span(node), scope))
        elif isinstance(node, ast.ImportFrom):
            self.import_from(node, scope)
        elif isinstance(node, ast.Return):
            self.returns.append(self.expr(node.value, scope) if node.value else Opaque(self.span(node)))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None:
                return
            value = self.expr(node.value, scope)
            for assigned in targets:
                if isinstance(assigned, ast.Name):
                    self.bindings.append(Binding(prefix + assigned.id, value, self.span(node), scope))
                else:
                    self.expr(assigned, scope)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.statement(child, scope, prefix)
                elif isinstance(child, ast.expr):
                    self.expr(child, scope)
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    for inner in ast.iter_child_nodes(child):
                        if isinstance(inner, ast.stmt):
                            self.statement(inner, scope, prefix)
                        elif isinstance(inner, ast.expr):
                            self.expr(inner, scope)
                elif isinstance(child, ast.withitem | ast.comprehension | ast.keyword):
                    for inner in ast.iter_child_nodes(child):
                        if isinstance(inner, ast.expr):
                            self.expr(inner, scope)

    def import_from(self, node: ast.ImportFrom, scope: str) -> None:
        base = node.module or ""
        for alias in node.names:
            local = alias.asname or alias.name
            if alias.name == "*":
                target = self.resolve(self.module, base, node.level)
                self.imports.append(Import("*", target, "*", self.span(node), scope))
                continue
            submodule = self.resolve(self.module, f"{base}.{alias.name}" if base else alias.name, node.level)
            if submodule is not None:  # `from ledger import flags`: the module itself
                self.imports.append(Import(local, submodule, None, self.span(node), scope))
            else:
                target = self.resolve(self.module, base, node.level)
                self.imports.append(Import(local, target, alias.name, self.span(node), scope))

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: str, prefix: str) -> None:
        name = f"{scope}.{node.name}" if scope else prefix + node.name
        args = node.args
        params = tuple(
            a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a
        )
        for expr in (*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d)):
            self.expr(expr, scope)
        outer_returns, self.returns = self.returns, []
        self.body(node.body, name)
        returns, self.returns = self.returns, outer_returns
        self.functions.append(Function(name, self.span(node), params, _is_simple(node.body), tuple(returns)))

    # -- expressions -----------------------------------------------------------------------------
    def expr(self, node: ast.expr, scope: str) -> Expr:
        """The expression's fact; every expression inside it is recorded as a site too."""
        return self._site(self._fact(node, scope), scope)

    def _site(self, fact: Expr, scope: str) -> Expr:
        if not isinstance(fact, Opaque | Test):
            self.sites.append(Site(fact, scope))
        return fact

    def _fact(self, node: ast.expr, scope: str) -> Expr:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return Str(node.value, self.span(node))
        path = _path(node)
        if path is not None:
            return Name(path, self.span(node))
        if isinstance(node, ast.Await):
            return self._fact(node.value, scope)
        if (
            isinstance(node, ast.Compare | ast.BoolOp)
            or isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.Not)
        ):
            operands = (
                [node.left, *node.comparators]
                if isinstance(node, ast.Compare)
                else (node.values if isinstance(node, ast.BoolOp) else [node.operand])
            )
            return Test(tuple(self.expr(o, scope) for o in operands), self.span(node))
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return Test((), self.span(node))
        if isinstance(node, ast.Call):
            return self.call(node, scope)
        if isinstance(node, ast.Subscript):
            mapping = _path(node.value)
            if mapping in _ENV_MAPPINGS and isinstance(node.slice, ast.Constant):
                if isinstance(node.slice.value, str):
                    return Env(node.slice.value, self.span(node))
        if isinstance(node, ast.JoinedStr):
            parts: list[str | Expr] = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                elif isinstance(value, ast.FormattedValue):
                    parts.append(self.expr(value.value, scope))
            return Template(tuple(parts), self.span(node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return concatenation([self.expr(node.left, scope), self.expr(node.right, scope)], self.span(node))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, scope)
            elif isinstance(child, ast.comprehension | ast.keyword):
                for inner in ast.iter_child_nodes(child):
                    if isinstance(inner, ast.expr):
                        self.expr(inner, scope)
            elif isinstance(child, ast.arguments):
                for default in (*child.defaults, *(d for d in child.kw_defaults if d)):
                    self.expr(default, scope)
        return Opaque(self.span(node))

    def call(self, node: ast.Call, scope: str) -> Expr:
        callee = _path(node.func)
        if callee in _ENV_CALLS and node.args and isinstance(node.args[0], ast.Constant):
            name = node.args[0].value
            for extra in node.args[1:]:
                self.expr(extra, scope)
            if isinstance(name, str):
                return Env(name, self.span(node))
        if callee is None and isinstance(node.func, ast.Attribute) and node.func.attr in _TEXT_METHODS:
            inner = self._fact(node.func.value, scope)
            if isinstance(inner, Env):  # `os.getenv("X", "false").lower()` is still the variable's text
                return Env(inner.name, self.span(node))
            self._site(inner, scope)
        elif callee is None:
            self.expr(node.func, scope)
        args = tuple(self.expr(a.value if isinstance(a, ast.Starred) else a, scope) for a in node.args)
        keywords = tuple((k.arg or "**", self.expr(k.value, scope)) for k in node.keywords)
        return Call(callee or (), args, keywords, self.span(node))

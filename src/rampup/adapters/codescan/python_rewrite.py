"""Python: fold a flag's checks with LibCST, which keeps every comment and blank line it does not touch."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from rampup.core.coderefs import Check
from rampup.core.flagremoval import Known, check_value, compare_text, env_text, fold, not_boolean

__all__ = ["fold_python", "remove_python", "has_code", "Refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    line: int
    reason: str


@dataclass
class _State:
    known: dict[int, bool] = field(default_factory=dict)  # id(node) → its value, for nodes we made
    texts: dict[int, str] = field(default_factory=dict)  # id(node) → an env variable's text
    keep_alive: list[cst.CSTNode] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


_COMPARISONS = {cst.Equal: "==", cst.NotEqual: "!=", cst.In: "in", cst.NotIn: "not in"}
_TERMINAL = (cst.Return, cst.Raise, cst.Continue, cst.Break)


class _Fold(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, checks: Sequence[Check], keep: bool) -> None:
        super().__init__()
        self.checks = {(c.span.line, c.span.column, c.span.end_line, c.span.end_column): c for c in checks}
        self.keep = keep
        self.state = _State()
        self.elifs: set[int] = set()

    def _constant(self, value: bool) -> cst.Name:
        node = cst.Name("True" if value else "False")
        self.state.known[id(node)] = value
        self.state.keep_alive.append(node)
        return node

    def _value(self, node: cst.CSTNode) -> bool | None:
        return self.state.known.get(id(node))

    def on_leave(  # type: ignore[override]
        self, original: cst.CSTNode, updated: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        if isinstance(original, cst.Call | cst.Name | cst.Attribute | cst.Subscript):
            position = self.get_metadata(PositionProvider, original)
            key = (position.start.line, position.start.column, position.end.line, position.end.column)
            check = self.checks.get(key)
            if check is not None:
                return self._check(check, updated, position.start.line)
        return super().on_leave(original, updated)

    def _check(self, check: Check, node: cst.CSTNode, line: int) -> cst.CSTNode:
        if check.kind == "env":
            self.state.texts[id(node)] = env_text(check.variable, self.keep)
            return node
        value = check_value(check, self.keep)
        if value is None:
            self.state.refusals.append(Refusal(line, not_boolean(check)))
            return node
        return self._constant(value)

    def leave_Comparison(self, original: cst.Comparison, updated: cst.Comparison) -> cst.BaseExpression:
        text = self.state.texts.get(id(updated.left))
        if text is None or len(updated.comparisons) != 1:
            return updated
        target = updated.comparisons[0]
        literals = _string_literals(target.comparator)
        operator = _COMPARISONS.get(type(target.operator))
        result = compare_text(text, operator, literals) if operator and literals is not None else None
        return updated if result is None else self._constant(result)

    def leave_UnaryOperation(
        self, original: cst.UnaryOperation, updated: cst.UnaryOperation
    ) -> cst.BaseExpression:
        value = self._value(updated.expression)
        if isinstance(updated.operator, cst.Not) and value is not None:
            return self._constant(not value)
        return updated

    def leave_BooleanOperation(
        self, original: cst.BooleanOperation, updated: cst.BooleanOperation
    ) -> cst.BaseExpression:
        operands = [updated.left, updated.right]
        folded = fold([self._value(o) for o in operands], conjunction=isinstance(updated.operator, cst.And))
        if isinstance(folded, Known):
            return self._constant(folded.value)
        if len(folded.indices) == 1:
            return operands[folded.indices[0]]
        return updated

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        value = self._value(updated.test)
        if value is None:
            return updated
        return updated.body if value else updated.orelse

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(id(node.orelse))

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        if id(original) in self.elifs:
            return updated  # the head of the chain decides
        branches: list[cst.If] = []
        rest: cst.If | cst.Else | None = updated
        changed = False
        while isinstance(rest, cst.If):
            value = self._value(rest.test)
            if value is True:
                changed = True
                rest = cst.Else(body=rest.body)  # this branch always runs: it ends the chain
                break
            if value is False:
                changed = True
            else:
                branches.append(rest)
            rest = rest.orelse
        if not changed:
            return updated
        if not branches:
            if rest is None:
                return cst.RemoveFromParent()
            body = rest.body
            statements: list[Any] = list(body.body)
            if isinstance(body, cst.SimpleStatementSuite):  # `else: return x` on one line
                statements = [cst.SimpleStatementLine(statements)]
            first = statements[0]
            statements[0] = first.with_changes(leading_lines=(*updated.leading_lines, *first.leading_lines))
            return cst.FlattenSentinel(statements)
        chain: cst.If | cst.Else | None = rest
        for branch in reversed(branches):
            chain = branch.with_changes(orelse=chain)
        assert isinstance(chain, cst.If)
        return chain.with_changes(leading_lines=updated.leading_lines)

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if updated is original:
            return updated
        body = _until_terminal(list(updated.body))
        return updated.with_changes(body=body or [cst.SimpleStatementLine([cst.Pass()])])

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if updated is original:
            return updated
        return _opening_kept(original, updated.with_changes(body=_until_terminal(list(updated.body))))

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        """A local that held the flag's value and is read no more goes (`enabled = True`)."""
        if updated is original or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        reads = _NameReads()
        updated.body.visit(reads)
        kept = []
        for statement in updated.body.body:
            assigned = _constant_assignment(statement, self.state.known)
            if assigned is not None and reads.counts.get(assigned, 0) == 0:
                continue
            kept.append(statement)
        body = kept or [cst.SimpleStatementLine([cst.Pass()])]
        return updated.with_changes(body=updated.body.with_changes(body=body))


def _until_terminal(statements: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """Statements after a `return`/`raise` that folding made unconditional can never run."""
    for index, statement in enumerate(statements):
        if isinstance(statement, cst.SimpleStatementLine) and any(
            isinstance(s, _TERMINAL) for s in statement.body
        ):
            return statements[: index + 1]
    return statements


def _opening_kept(original: cst.Module, updated: cst.Module) -> cst.Module:
    """A file that did not open with blank lines does not come to: when its first statements went, the blank
    lines that parted them from the next one go too (its comments stay)."""
    if (
        not updated.body
        or not original.body
        or _opens_blank(original.body[0])
        or not _opens_blank(updated.body[0])
    ):
        return updated
    first = updated.body[0]
    lines = first.leading_lines
    comments = [i for i, line in enumerate(lines) if line.comment is not None]
    opened = first.with_changes(leading_lines=lines[comments[0] :] if comments else ())
    return updated.with_changes(body=[opened, *updated.body[1:]])


def _opens_blank(statement: cst.BaseStatement) -> bool:
    lines: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
    return bool(lines) and lines[0].comment is None


def _string_literals(node: cst.BaseExpression) -> list[str] | None:
    if isinstance(node, cst.SimpleString):
        return [str(node.evaluated_value)]
    if isinstance(node, cst.Tuple | cst.List | cst.Set):
        values = [e.value for e in node.elements]
        if all(isinstance(v, cst.SimpleString) for v in values):
            return [str(v.evaluated_value) for v in values if isinstance(v, cst.SimpleString)]
    return None


class _NameReads(cst.CSTVisitor):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._targets: set[int] = set()

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._targets.add(id(node.target))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self._targets:
            self.counts[node.value] = self.counts.get(node.value, 0) + 1


def _constant_assignment(statement: cst.BaseStatement, known: dict[int, bool]) -> str | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if isinstance(assign, cst.Assign) and len(assign.targets) == 1 and id(assign.value) in known:
        target = assign.targets[0].target
        return target.value if isinstance(target, cst.Name) else None
    return None


def fold_python(source: str, checks: Sequence[Check], keep: bool) -> tuple[str, list[Refusal]]:
    """The source with every check folded; the checks it could not fold, with the reason."""
    module = cst.parse_module(source)
    folder = _Fold(checks, keep)
    result = MetadataWrapper(module, unsafe_skip_copy=True).visit(folder)
    return result.code, folder.state.refusals


class _Remove(cst.CSTTransformer):
    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # only module-level definitions are removed

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body: list[cst.BaseStatement] = []
        carried: Sequence[cst.EmptyLine] = ()
        for statement in updated.body:
            kept = self._kept(statement)
            if kept is None:  # its blank lines stay, so groups of imports stay apart
                blank = [line for line in getattr(statement, "leading_lines", ()) if line.comment is None]
                carried = carried or blank
                continue
            lines: Sequence[cst.EmptyLine] = getattr(kept, "leading_lines", ())
            if carried and not any(line.comment is None for line in lines):
                kept = kept.with_changes(leading_lines=(*carried, *lines))
            carried = ()
            body.append(kept)
        return _opening_kept(original, updated.with_changes(body=body))

    def _kept(self, statement: cst.BaseStatement) -> cst.BaseStatement | None:
        if isinstance(statement, cst.FunctionDef):
            return None if statement.name.value in self.names else statement
        if not isinstance(statement, cst.SimpleStatementLine):
            return statement
        kept: list[cst.BaseSmallStatement] = []
        for small in statement.body:
            if isinstance(small, cst.Assign | cst.AnnAssign):
                targets = (
                    [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                )
                if all(isinstance(t, cst.Name) and t.value in self.names for t in targets):
                    continue
            if isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                aliases = [a for a in small.names if _local(a) not in self.names]
                if not aliases:
                    continue
                if len(aliases) != len(small.names):
                    aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    small = small.with_changes(names=aliases)
            kept.append(small)
        return statement.with_changes(body=kept) if kept else None


def _local(alias: cst.ImportAlias) -> str:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    name = alias.name
    while isinstance(name, cst.Attribute):
        name = name.value  # type: ignore[assignment]
    return name.value if isinstance(name, cst.Name) else ""


def remove_python(source: str, names: set[str]) -> str:
    """The source without these module-level definitions and imported names."""
    return cst.parse_module(source).visit(_Remove(names)).code


def has_code(source: str) -> bool:
    """Whether anything but imports, a docstring and comments is left."""
    for statement in cst.parse_module(source).body:
        if isinstance(statement, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom | cst.Pass)
            or isinstance(s, cst.Expr)
            and isinstance(s.value, cst.SimpleString)
            for s in statement.body
        ):
            continue
        return True
    return False

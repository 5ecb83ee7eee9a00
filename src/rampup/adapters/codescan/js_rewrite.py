"""JavaScript/TypeScript/JSX: fold a flag's checks by editing byte ranges of the tree-sitter tree.

The source is re-emitted node by node with the original bytes between nodes, so everything the fold
does not touch — comments, formatting, quotes — comes out as it went in.
"""

from collections.abc import Sequence

import tree_sitter

from rampup.adapters.codescan.js_facts import parse_js, span_of, unwrap
from rampup.adapters.codescan.python_rewrite import Refusal
from rampup.core.coderefs import Check
from rampup.core.flagremoval import Known, check_value, compare_text, env_text, fold, not_boolean

__all__ = ["fold_js", "remove_js", "js_has_code"]

_GONE = "\x00gone\x00"  # a removed statement: its whole line goes when it stands alone on it
_COMPARE = {"===", "!==", "==", "!="}
_CONTAINERS = {"program", "statement_block", "switch_body", "class_body"}
_PRIMARY = {
    "identifier",
    "true",
    "false",
    "null",
    "string",
    "number",
    "jsx_element",
    "jsx_self_closing_element",
    "parenthesized_expression",
    "member_expression",
    "call_expression",
    "template_string",
}
_OPERAND_PARENTS = {"binary_expression", "unary_expression", "member_expression", "await_expression"}


def _text(node: tree_sitter.Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _key(node: tree_sitter.Node) -> tuple[int, int, int, int]:
    span = span_of(node)
    return (span.line, span.column, span.end_line, span.end_column)


class _Fold:
    def __init__(self, source: bytes, checks: Sequence[Check], keep: bool) -> None:
        self.source = source
        self.keep = keep
        self.checks = {(c.span.line, c.span.column, c.span.end_line, c.span.end_column): c for c in checks}
        self.refusals: list[Refusal] = []
        self.flag_locals: set[str] = set()  # locals bound to a check: dropped when nothing reads them

    # -- values ----------------------------------------------------------------------------------
    def check(self, node: tree_sitter.Node) -> Check | None:
        return self.checks.get(_key(node)) or self.checks.get(_key(unwrap(node)))

    def value(self, node: tree_sitter.Node) -> bool | None:
        node = unwrap(node)
        found = self.check(node)
        if found is not None:
            return check_value(found, self.keep)
        operator = _text(node.child_by_field_name("operator"))
        if node.type == "unary_expression" and operator == "!":
            argument = node.child_by_field_name("argument")
            inner = self.value(argument) if argument is not None else None
            return None if inner is None else not inner
        if node.type == "binary_expression":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None or right is None:
                return None
            if operator in ("&&", "||"):
                folded = fold([self.value(left), self.value(right)], conjunction=operator == "&&")
                return folded.value if isinstance(folded, Known) else None
            if operator in _COMPARE:
                return self._compare(left, operator, right)
        return None

    def _compare(self, left: tree_sitter.Node, operator: str, right: tree_sitter.Node) -> bool | None:
        for variable, literal in ((left, right), (right, left)):
            found = self.check(variable)
            if found is not None and found.kind == "env" and unwrap(literal).type == "string":
                text = env_text(found.variable, self.keep)
                return compare_text(text, operator, [_string(unwrap(literal))])
        return None

    # -- rendering -------------------------------------------------------------------------------
    def render(self, node: tree_sitter.Node) -> str:
        known = self.value(node)
        if known is not None and node.type not in ("parenthesized_expression",):
            if node.type == "variable_declarator":
                return self.default(node)
            return "true" if known else "false"
        found = self.check(node)
        if found is not None:
            return self._unfoldable(node, found)
        renderer = getattr(self, f"render_{node.type}", None)
        return renderer(node) if renderer is not None else self.default(node)

    def _unfoldable(self, node: tree_sitter.Node, found: Check) -> str:
        if found.kind == "choice" and found.choice is not None:
            return self._choose(node, found)
        self.refusals.append(Refusal(node.start_point[0] + 1, not_boolean(found)))
        return self.default(node)

    def default(self, node: tree_sitter.Node) -> str:
        out: list[str] = []
        position = node.start_byte
        for child in node.children:
            out.append(self.source[position : child.start_byte].decode("utf-8", "replace"))
            out.append(self.render(child))
            position = child.end_byte
        out.append(self.source[position : node.end_byte].decode("utf-8", "replace"))
        return "".join(out)

    def _choose(self, node: tree_sitter.Node, found: Check) -> str:
        """`<Wrapper enabledComponent={<A/>} disabledComponent={<B/>}/>` → `<A/>`."""
        assert found.choice is not None
        prop = found.choice.when_true if self.keep else found.choice.when_false
        opening = node.child_by_field_name("open_tag") if node.type == "jsx_element" else node
        chosen = "null"
        for attribute in opening.named_children if opening is not None else ():
            if attribute.type == "jsx_attribute" and attribute.named_children and prop:
                if _text(attribute.named_children[0]) == prop and len(attribute.named_children) > 1:
                    value = attribute.named_children[1]
                    inner = (
                        value.named_children[0]
                        if value.type == "jsx_expression" and value.named_children
                        else value
                    )
                    chosen = self.render(inner)
        if node.type == "jsx_element" and prop == "children":
            chosen = "".join(
                self.render(c)
                for c in node.named_children
                if c.type not in ("jsx_opening_element", "jsx_closing_element")
            )
            chosen = f"<>{chosen}</>"
        parent = node.parent
        if parent is not None and parent.type == "jsx_element" and not chosen.startswith("<"):
            return "" if chosen == "null" else "{" + chosen + "}"
        return chosen

    def render_binary_expression(self, node: tree_sitter.Node) -> str:
        operator = _text(node.child_by_field_name("operator"))
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if operator in ("&&", "||") and left is not None and right is not None:
            folded = fold([self.value(left), self.value(right)], conjunction=operator == "&&")
            if not isinstance(folded, Known) and len(folded.indices) == 1:
                return self._in_place(node, (left, right)[folded.indices[0]])
        return self.default(node)

    def render_ternary_expression(self, node: tree_sitter.Node) -> str:
        condition = node.child_by_field_name("condition")
        known = self.value(condition) if condition is not None else None
        branch = node.child_by_field_name("consequence" if known else "alternative")
        if known is None or branch is None:
            return self.default(node)
        return self._in_place(node, branch)

    def _in_place(self, replaced: tree_sitter.Node, kept: tree_sitter.Node) -> str:
        text = self.render(kept)
        parent = replaced.parent
        if parent is not None and parent.type in _OPERAND_PARENTS and unwrap(kept).type not in _PRIMARY:
            return f"({text})"
        return text

    def render_jsx_expression(self, node: tree_sitter.Node) -> str:
        """`{cond && <X/>}` as a child: the element itself, or nothing."""
        inner = node.named_children[0] if node.named_children else None
        parent = node.parent
        if inner is None or parent is None or parent.type != "jsx_element":
            return self.default(node)
        rendered = self.render(inner).strip()
        if rendered in ("false", "null", "undefined", "true", ""):
            return "" if inner.type != "identifier" or rendered != _text(inner) else self.default(node)
        if rendered.startswith("<") and rendered.endswith(">") and rendered != _text(inner).strip():
            return rendered
        return self.default(node)

    def render_if_statement(self, node: tree_sitter.Node) -> str:
        condition = node.child_by_field_name("condition")
        known = self.value(condition) if condition is not None else None
        if known is None:
            return self.default(node)
        if known:
            branch = node.child_by_field_name("consequence")
        else:
            alternative = node.child_by_field_name("alternative")
            branch = (
                alternative.named_children[-1]
                if alternative is not None and alternative.named_children
                else None
            )
        if branch is None:
            return _GONE
        return self._unwrap_block(node, branch)

    def _unwrap_block(self, statement: tree_sitter.Node, branch: tree_sitter.Node) -> str:
        if branch.type != "statement_block":
            return self.render(branch)
        inner = [c for c in branch.named_children]
        if not inner:
            return _GONE
        body = self._statements(branch, inner)
        indent = statement.start_point[1]
        child_indent = inner[0].start_point[1]
        lines = body.split("\n")
        shift = child_indent - indent
        return "\n".join(
            [lines[0], *(line[shift:] if line[:shift].strip() == "" else line for line in lines[1:])]
        )

    def _statements(self, container: tree_sitter.Node, children: list[tree_sitter.Node]) -> str:
        """Children of a block, rendered, cut after a `return`/`throw` that folding made unconditional."""
        out: list[str] = []
        position = children[0].start_byte
        for child in children:
            out.append(self.source[position : child.start_byte].decode("utf-8", "replace"))
            rendered = self.render(child)
            out.append(rendered)
            position = child.end_byte
            if child.type in ("if_statement",) and _ends_flow(rendered):
                break
        return "".join(out)

    def render_statement_block(self, node: tree_sitter.Node) -> str:
        children = node.named_children
        if not children:
            return self.default(node)
        body = self._statements(node, children)
        start = children[0].start_byte
        head = self.source[node.start_byte : start].decode("utf-8", "replace")
        return head + body + self.source[children[-1].end_byte : node.end_byte].decode("utf-8", "replace")

    def render_variable_declarator(self, node: tree_sitter.Node) -> str:
        name, value = node.child_by_field_name("name"), node.child_by_field_name("value")
        if (
            name is not None
            and value is not None
            and name.type == "identifier"
            and self.value(value) is not None
        ):
            self.flag_locals.add(_text(name))
        return self.default(node)


def _ends_flow(rendered: str) -> bool:
    last = rendered.strip().rsplit("\n", 1)[-1].strip()
    return last.startswith(("return", "throw")) and not rendered.strip().startswith("if")


def _string(node: tree_sitter.Node) -> str:
    return "".join(_text(c) for c in node.named_children if c.type in ("string_fragment", "escape_sequence"))


def _finish(text: str) -> str:
    """Removed statements go with their lines, and with a blank line that would double another."""
    lines = text.split("\n")
    kept: list[str] = []
    skip_blank = False
    for line in lines:
        if _GONE in line and not line.replace(_GONE, "").strip(" \t;"):
            skip_blank = not kept or not kept[-1].strip()
            continue
        if skip_blank and not line.strip():
            skip_blank = False
            continue
        skip_blank = False
        kept.append(line.replace(_GONE, ""))
    return "\n".join(kept)


def fold_js(source: bytes, suffix: str, checks: Sequence[Check], keep: bool) -> tuple[bytes, list[Refusal]]:
    tree = parse_js(source, suffix)
    folder = _Fold(source, checks, keep)
    text = _finish(folder.render(tree.root_node))
    if folder.flag_locals:
        text = _drop_constant_locals(text.encode(), suffix, folder.flag_locals)
    return text.encode(), folder.refusals


def _drop_constant_locals(source: bytes, suffix: str, names: set[str]) -> str:
    """`const enabled = true;` whose name nothing reads any more."""
    tree = parse_js(source, suffix)
    gone: list[tuple[int, int]] = []

    def visit(node: tree_sitter.Node, scope: tree_sitter.Node) -> None:
        if node.type in ("statement_block",):
            scope = node
        if node.type in ("lexical_declaration", "variable_declaration") and len(node.named_children) == 1:
            declarator = node.named_children[0]
            name, value = declarator.child_by_field_name("name"), declarator.child_by_field_name("value")
            if (
                name is not None
                and value is not None
                and _text(name) in names
                and unwrap(value).type in ("true", "false")
                and _reads(scope, _text(name)) == 1
            ):
                gone.append((node.start_byte, node.end_byte))
                return
        for child in node.named_children:
            visit(child, scope)

    visit(tree.root_node, tree.root_node)
    out = source
    for start, end in sorted(gone, reverse=True):
        out = out[:start] + _GONE.encode() + out[end:]
    return _finish(out.decode("utf-8", "replace"))


def _reads(scope: tree_sitter.Node, name: str) -> int:
    count = 0
    stack = [scope]
    while stack:
        node = stack.pop()
        if node.type in ("identifier", "shorthand_property_identifier") and _text(node) == name:
            count += 1
        stack.extend(node.named_children)
    return count


def remove_js(source: bytes, suffix: str, names: set[str]) -> bytes:
    """The source without these top-level declarations and imported names."""
    tree = parse_js(source, suffix)
    edits: list[tuple[int, int, str]] = []
    for statement in tree.root_node.named_children:
        declaration = (
            statement.child_by_field_name("declaration")
            if statement.type == "export_statement"
            else statement
        )
        if statement.type == "import_statement":
            edits.extend(_import_edits(statement, names))
        elif declaration is not None and _declared(declaration) and _declared(declaration) <= names:
            edits.append((statement.start_byte, statement.end_byte, _GONE))
    raw = source
    for start, end, text in sorted(edits, reverse=True):
        raw = raw[:start] + text.encode() + raw[end:]
    out = raw.decode("utf-8", "replace")
    return _finish(out).encode()


def _declared(node: tree_sitter.Node) -> set[str]:
    if node.type in ("function_declaration", "generator_function_declaration", "class_declaration"):
        name = node.child_by_field_name("name")
        return {_text(name)} if name is not None else set()
    if node.type in ("lexical_declaration", "variable_declaration"):
        names = set()
        for declarator in node.named_children:
            name = declarator.child_by_field_name("name")
            if name is None or name.type != "identifier":
                return set()
            names.add(_text(name))
        return names
    return set()


def _import_edits(statement: tree_sitter.Node, names: set[str]) -> list[tuple[int, int, str]]:
    clause = next((c for c in statement.named_children if c.type == "import_clause"), None)
    if clause is None:
        return []
    locals_: list[tuple[str, tree_sitter.Node]] = []
    for part in clause.named_children:
        if part.type == "identifier":
            locals_.append((_text(part), part))
        elif part.type == "namespace_import":
            locals_.extend((_text(c), part) for c in part.named_children if c.type == "identifier")
        elif part.type == "named_imports":
            for spec in part.named_children:
                if spec.type == "import_specifier":
                    alias = spec.child_by_field_name("alias") or spec.child_by_field_name("name")
                    if alias is not None:
                        locals_.append((_text(alias), spec))
    removed = [node for local, node in locals_ if local in names]
    if not removed:
        return []
    if len(removed) == len(locals_):
        return [(statement.start_byte, statement.end_byte, _GONE)]
    named = next((c for c in clause.named_children if c.type == "named_imports"), None)
    specs = [n for _, n in locals_ if n.type == "import_specifier"]
    kept = [s for s in specs if s not in removed]
    if named is not None and len(kept) != len(specs):
        replacement = "{ " + ", ".join(_text(s) for s in kept) + " }" if kept else ""
        edits = [(named.start_byte, named.end_byte, replacement)]
        if not kept:  # `import Default, { gone } from` → `import Default from`
            comma = named.prev_sibling
            if comma is not None and comma.type == ",":
                edits = [(comma.start_byte, named.end_byte, "")]
        return edits
    return []


def js_has_code(source: bytes, suffix: str) -> bool:
    """Whether anything but imports, directives, type declarations and comments is left."""
    tree = parse_js(source, suffix)
    for statement in tree.root_node.named_children:
        inner = (
            statement.child_by_field_name("declaration")
            if statement.type == "export_statement"
            else statement
        )
        kind = inner.type if inner is not None else statement.type
        if kind in ("import_statement", "comment", "interface_declaration", "type_alias_declaration"):
            continue
        if (
            kind == "expression_statement"
            and statement.named_children
            and statement.named_children[0].type == "string"
        ):
            continue  # "use client"
        return True
    return False

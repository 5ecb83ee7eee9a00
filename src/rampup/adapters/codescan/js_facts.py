"""JavaScript and TypeScript (with JSX) → `ModuleFacts`, with tree-sitter's grammars from PyPI.

Columns are UTF-8 byte offsets, as tree-sitter counts them; the rewriter reads them back the same way.
"""

from collections.abc import Callable
from functools import cache

import tree_sitter
import tree_sitter_javascript
import tree_sitter_typescript

from rampup.core.coderefs import (
    Binding,
    Call,
    Choice,
    Element,
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

__all__ = ["js_facts", "parse_js", "JS_SUFFIXES", "span_of", "SpecResolver"]

# (importing module id, the import's specifier) → the module id of this scan, or None
SpecResolver = Callable[[str, str], str | None]

JS_SUFFIXES = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")


@cache
def _parser(suffix: str) -> tree_sitter.Parser:
    if suffix == ".tsx":
        language = tree_sitter_typescript.language_tsx()
    elif suffix in (".ts", ".mts", ".cts"):
        language = tree_sitter_typescript.language_typescript()
    else:
        language = tree_sitter_javascript.language()
    return tree_sitter.Parser(tree_sitter.Language(language))


def parse_js(source: bytes, suffix: str) -> tree_sitter.Tree:
    return _parser(suffix).parse(source)


def span_of(node: tree_sitter.Node) -> Span:
    (line, column), (end_line, end_column) = node.start_point, node.end_point
    return Span(line + 1, column, end_line + 1, end_column)


def js_facts(module: str, source: bytes, suffix: str, resolve: SpecResolver) -> ModuleFacts:
    """Raises SyntaxError when tree-sitter could not read the file."""
    tree = parse_js(source, suffix)
    if tree.root_node.has_error:
        raise SyntaxError(f"{module}: not valid {suffix[1:]} (tree-sitter reports a syntax error)")
    collector = _Collector(module, resolve)
    collector.statements(tree.root_node, "", "")
    return ModuleFacts(
        module,
        tuple(collector.bindings),
        tuple(collector.imports),
        tuple(collector.functions),
        tuple(collector.sites),
    )


def _text(node: tree_sitter.Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


_TRANSPARENT = {
    "parenthesized_expression",
    "await_expression",
    "as_expression",
    "satisfies_expression",
    "non_null_expression",
    "type_assertion",
}
_FUNCTIONS = {"arrow_function", "function_expression", "function", "generator_function"}
_DECLARATIONS = {"lexical_declaration", "variable_declaration"}
_TESTS = {"===", "!==", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in", "instanceof"}
_SIMPLE = {"lexical_declaration", "variable_declaration", "return_statement", "empty_statement", "comment"}


def unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    while node.type in _TRANSPARENT:
        inner = [c for c in node.named_children if c.type != "comment"]
        if not inner:
            return node
        node = inner[0]
    return node


def _path(node: tree_sitter.Node) -> tuple[str, ...] | None:
    node = unwrap(node)
    if node.type in ("identifier", "this", "property_identifier", "shorthand_property_identifier"):
        return (_text(node),)
    if node.type == "member_expression":
        obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
        if obj is None or prop is None or prop.type == "private_property_identifier":
            return None
        head = _path(obj)
        return (*head, _text(prop)) if head is not None else None
    if node.type in ("jsx_namespace_name", "nested_identifier"):
        return tuple(_text(c) for c in node.named_children)
    return None


def _is_simple(body: tree_sitter.Node) -> bool:
    """Declares, branches and returns only: nothing else happens in it (an expression body is simple)."""
    if body.type != "statement_block":
        return True
    return all(_is_simple_statement(s) for s in body.named_children)


def _is_simple_statement(node: tree_sitter.Node) -> bool:
    if node.type == "statement_block":
        return _is_simple(node)
    if node.type == "if_statement":
        branches = (node.child_by_field_name("consequence"), node.child_by_field_name("alternative"))
        return all(b is None or _is_simple_statement(b) for b in branches)
    if node.type in ("try_statement", "else_clause", "catch_clause", "finally_clause"):
        return all(
            _is_simple_statement(c)
            for c in node.named_children
            if c.type not in ("identifier", "comment", "object_pattern", "type_annotation")
        )
    return node.type in _SIMPLE


def _param_names(params: tree_sitter.Node | None) -> tuple[str, ...]:
    names: list[str] = []

    def visit(node: tree_sitter.Node) -> None:
        if node.type in ("identifier", "shorthand_property_identifier_pattern"):
            names.append(_text(node))
        elif node.type in ("type_annotation", "default_value"):
            return
        elif node.type == "pair_pattern":
            value = node.child_by_field_name("value")
            if value is not None:
                visit(value)
        else:
            for child in node.named_children:
                if child.type != "type_annotation" and node.child_by_field_name("value") != child:
                    visit(child)

    if params is not None:
        visit(params)
    return tuple(names)


class _Collector:
    def __init__(self, module: str, resolve: SpecResolver) -> None:
        self.module = module
        self.resolve = resolve
        self.bindings: list[Binding] = []
        self.imports: list[Import] = []
        self.functions: list[Function] = []
        self.sites: list[Site] = []
        self.returns: list[Expr] = []  # of the function being read

    # -- statements ------------------------------------------------------------------------------
    def statements(self, node: tree_sitter.Node, scope: str, prefix: str) -> None:
        for child in node.named_children:
            self.statement(child, scope, prefix)

    def statement(self, node: tree_sitter.Node, scope: str, prefix: str) -> None:
        kind = node.type
        if kind == "import_statement":
            self.import_statement(node, scope)
        elif kind == "export_statement":
            self.export_statement(node, scope, prefix)
        elif kind in _DECLARATIONS:
            for declarator in node.named_children:
                if declarator.type == "variable_declarator":
                    self.declarator(declarator, node, scope, prefix)
        elif kind in ("function_declaration", "generator_function_declaration"):
            self.function(node, _qualified(scope, prefix, _text(node.child_by_field_name("name"))), scope)
        elif kind in ("class_declaration", "abstract_class_declaration"):
            class_name = _text(node.child_by_field_name("name"))
            body = node.child_by_field_name("body")
            for member in body.named_children if body is not None else ():
                if member.type == "method_definition":
                    method = _text(member.child_by_field_name("name"))
                    self.function(member, _qualified(scope, prefix, f"{class_name}.{method}"), scope)
                else:
                    self.walk(member, scope)
        elif kind == "return_statement":
            value = node.named_children[0] if node.named_children else None
            self.returns.append(self.expr(value, scope) if value is not None else Opaque(span_of(node)))
        elif kind in ("comment", "hash_bang_line"):
            return
        else:
            self.walk(node, scope)

    def walk(self, node: tree_sitter.Node, scope: str) -> None:
        """Statements and expressions inside a statement that declares nothing at module level."""
        for child in node.named_children:
            if (
                child.type.endswith("_statement")
                or child.type in _DECLARATIONS
                or child.type.endswith("_declaration")
            ):
                self.statement(child, scope, "")
            elif child.type in (
                "statement_block",
                "else_clause",
                "catch_clause",
                "finally_clause",
                "switch_body",
                "switch_case",
                "switch_default",
            ):
                self.walk(child, scope)
            elif child.type not in ("comment", "statement_identifier", "type_annotation"):
                self.expr(child, scope)

    def import_statement(self, node: tree_sitter.Node, scope: str) -> None:
        source = node.child_by_field_name("source")
        target = self.resolve(self.module, _string_value(source)) if source is not None else None
        span = span_of(node)
        for clause in node.named_children:
            if clause.type != "import_clause":
                continue
            for part in clause.named_children:
                if part.type == "identifier":
                    self.imports.append(Import(_text(part), target, "default", span, scope))
                elif part.type == "namespace_import":
                    ident = [c for c in part.named_children if c.type == "identifier"]
                    if ident:
                        self.imports.append(Import(_text(ident[0]), target, None, span, scope))
                elif part.type == "named_imports":
                    for spec in part.named_children:
                        if spec.type == "import_specifier":
                            name = _text(spec.child_by_field_name("name"))
                            alias = spec.child_by_field_name("alias")
                            self.imports.append(
                                Import(_text(alias) if alias else name, target, name, span, scope)
                            )

    def export_statement(self, node: tree_sitter.Node, scope: str, prefix: str) -> None:
        source = node.child_by_field_name("source")
        span = span_of(node)
        if source is not None:  # re-exports: `export { A as B } from "./x"`, `export * from "./x"`
            target = self.resolve(self.module, _string_value(source))
            clauses = [c for c in node.named_children if c.type == "export_clause"]
            if not clauses:
                self.imports.append(Import("*", target, "*", span, scope))
            for spec in clauses[0].named_children if clauses else ():
                name = _text(spec.child_by_field_name("name"))
                alias = spec.child_by_field_name("alias")
                self.imports.append(Import(_text(alias) if alias else name, target, name, span, scope))
            return
        declaration = node.child_by_field_name("declaration")
        if declaration is not None:
            self.statement(declaration, scope, prefix)
            if any(c.type == "default" for c in node.children):
                declared = declaration.child_by_field_name("name")
                if declared is not None:
                    self.bindings.append(
                        Binding("default", Name((_text(declared),), span_of(declared)), span)
                    )
            return
        value = node.child_by_field_name("value")
        if value is not None:  # `export default Thing` / `export default function () {…}`
            if value.type in _FUNCTIONS:
                self.function(value, "default", scope)
            else:
                self.bindings.append(Binding("default", self.expr(value, scope), span))
        for clause in node.named_children:
            if clause.type == "export_clause":  # `export { a as b }`
                for spec in clause.named_children:
                    local, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
                    if local is not None and alias is not None:
                        self.bindings.append(
                            Binding(_text(alias), Name((_text(local),), span_of(local)), span)
                        )

    def declarator(
        self, node: tree_sitter.Node, statement: tree_sitter.Node, scope: str, prefix: str
    ) -> None:
        target, value = node.child_by_field_name("name"), node.child_by_field_name("value")
        if target is None or value is None:
            return
        inner = unwrap(value)
        span = span_of(statement)
        if target.type == "identifier":
            name = _text(target)
            if inner.type in _FUNCTIONS:
                self.function(inner, _qualified(scope, prefix, name), scope, span)
            elif inner.type == "object" and not scope:
                self.object_members(inner, prefix + name, scope, span)
                self.bindings.append(Binding(prefix + name, Opaque(span_of(inner)), span, scope))
            else:
                self.bindings.append(Binding(prefix + name, self.expr(value, scope), span, scope))
        elif target.type == "object_pattern":  # `const { value } = useFlag(…)`
            fact = self.expr(value, scope)
            for prop in target.named_children:
                if prop.type == "shorthand_property_identifier_pattern":
                    self.bindings.append(Binding(_text(prop), _member(fact, _text(prop)), span, scope))
                elif prop.type == "pair_pattern":
                    key, local = prop.child_by_field_name("key"), prop.child_by_field_name("value")
                    if local is not None and local.type == "identifier":
                        self.bindings.append(Binding(_text(local), _member(fact, _text(key)), span, scope))
        else:
            self.expr(value, scope)

    def object_members(self, node: tree_sitter.Node, name: str, scope: str, span: Span) -> None:
        for pair in node.named_children:
            if pair.type != "pair":
                if pair.type != "comment":
                    self.expr(pair, scope)
                continue
            key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
            if key is None or value is None:
                continue
            member = f"{name}.{_string_value(key) if key.type == 'string' else _text(key)}"
            if unwrap(value).type == "object":
                self.object_members(unwrap(value), member, scope, span)
            else:
                self.bindings.append(Binding(member, self.expr(value, scope), span_of(pair), scope))

    def function(self, node: tree_sitter.Node, name: str, scope: str, span: Span | None = None) -> None:
        params_node = node.child_by_field_name("parameters") or node.child_by_field_name("parameter")
        params = _param_names(params_node)
        body = node.child_by_field_name("body")
        simple = body is not None and _is_simple(body)
        choice = self.choice(body, params, name) if body is not None and simple else None
        if params_node is not None:
            for default in _defaults(params_node):
                self.expr(default, scope)
        outer_returns, self.returns = self.returns, []
        if body is not None and body.type == "statement_block":
            self.statements(body, name, "")
        elif body is not None:
            self.returns.append(self.expr(body, name))
        returns, self.returns = self.returns, outer_returns
        self.functions.append(Function(name, span or span_of(node), params, simple, tuple(returns), choice))

    def choice(self, body: tree_sitter.Node, params: tuple[str, ...], name: str) -> Choice | None:
        """`return cond ? enabledComponent : disabledComponent` (or `cond && children`) over props."""
        returned = body
        if body.type == "statement_block":
            returns = [s for s in body.named_children if s.type == "return_statement"]
            if not returns or not returns[-1].named_children:
                return None
            returned = returns[-1].named_children[0]
        returned = _fragment_content(unwrap(returned))
        if returned.type == "ternary_expression":
            condition = returned.child_by_field_name("condition")
            on, off = returned.child_by_field_name("consequence"), returned.child_by_field_name("alternative")
            if condition is None or on is None or off is None:
                return None
            when_true, when_false = _prop(on, params), _prop(off, params)
            if when_true is None or when_false is None:
                return None
            return Choice(self._quiet(condition, name), when_true or None, when_false or None)
        if returned.type == "binary_expression" and _text(returned.child_by_field_name("operator")) == "&&":
            condition, on = returned.child_by_field_name("left"), returned.child_by_field_name("right")
            prop = _prop(on, params) if on is not None else None
            if condition is None or not prop:
                return None
            return Choice(self._quiet(condition, name), prop, None)
        return None

    def _quiet(self, node: tree_sitter.Node, scope: str) -> Expr:
        """A fact for an expression already recorded as sites (the function body is walked anyway)."""
        recorded = len(self.sites)
        fact = self.expr(node, scope)
        del self.sites[recorded:]
        return fact

    # -- expressions -----------------------------------------------------------------------------
    def expr(self, node: tree_sitter.Node, scope: str) -> Expr:
        fact = self._fact(node, scope)
        if not isinstance(fact, Opaque | Test):
            self.sites.append(Site(fact, scope))
        return fact

    def _fact(self, node: tree_sitter.Node, scope: str) -> Expr:
        node = unwrap(node)
        kind = node.type
        span = span_of(node)
        if kind == "string":
            return Str(_string_value(node), span)
        if kind == "template_string":
            parts: list[str | Expr] = []
            for child in node.named_children:
                if child.type == "template_substitution":
                    parts.extend(self.expr(c, scope) for c in child.named_children)
                elif child.type in ("string_fragment", "escape_sequence"):
                    parts.append(_text(child))
            return Template(tuple(parts), span)
        env = _env_name(node)
        if env is not None:
            return Env(env, span)
        text_of = _text_of_env(node)
        if text_of is not None:  # `process.env.X ?? "false"`, `process.env.X?.toLowerCase()`
            inner = self._fact(text_of, scope)
            if isinstance(inner, Env):
                return Env(inner.name, span)
        path = _path(node)
        if path is not None and kind in ("identifier", "member_expression"):
            return Name(path, span)
        if kind == "call_expression":
            function, arguments = node.child_by_field_name("function"), node.child_by_field_name("arguments")
            callee = _path(function) if function is not None else None
            if callee is None and function is not None:
                self.expr(function, scope)
            args = tuple(self.expr(a, scope) for a in (arguments.named_children if arguments else ()))
            return Call(callee or (), args, (), span)
        if kind in ("jsx_element", "jsx_self_closing_element"):
            return self.element(node, scope)
        if kind in ("true", "false"):
            return Test((), span)
        operator = _text(node.child_by_field_name("operator"))
        if (
            kind == "binary_expression"
            and operator in _TESTS
            or kind == "unary_expression"
            and operator == "!"
        ):
            operands = [c for c in (node.child_by_field_name(f) for f in ("left", "right", "argument")) if c]
            return Test(tuple(self.expr(o, scope) for o in operands), span)
        if kind == "binary_expression" and operator == "+":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            return concatenation([self.expr(s, scope) for s in (left, right) if s is not None], span)
        if kind in _FUNCTIONS:  # a callback: its body belongs to the enclosing function
            body = node.child_by_field_name("body")
            if body is not None:
                if body.type == "statement_block":
                    self.walk(body, scope)
                else:
                    self.expr(body, scope)
            return Opaque(span)
        for child in node.named_children:
            if child.type in ("statement_block",):
                self.walk(child, scope)
            elif child.type not in ("comment", "property_identifier", "type_arguments", "type_annotation"):
                self.expr(child, scope)
        return Opaque(span)

    def element(self, node: tree_sitter.Node, scope: str) -> Expr:
        opening = node.child_by_field_name("open_tag") if node.type == "jsx_element" else node
        name_node = opening.child_by_field_name("name") if opening is not None else None
        props: list[tuple[str, Expr]] = []
        for attribute in opening.named_children if opening is not None else ():
            if attribute.type == "jsx_attribute":
                key = attribute.named_children[0] if attribute.named_children else None
                value = attribute.named_children[1] if len(attribute.named_children) > 1 else None
                if key is not None and value is not None:
                    props.append((_text(key), self.expr(value, scope)))
            elif attribute.type == "jsx_expression":
                self.expr(attribute, scope)
        if node.type == "jsx_element":
            for child in node.named_children:
                if child.type not in ("jsx_opening_element", "jsx_closing_element", "jsx_text"):
                    self.expr(child, scope)
        path = _path(name_node) if name_node is not None else None
        return Element(path or (), tuple(props), span_of(node))


def _qualified(scope: str, prefix: str, name: str) -> str:
    return f"{scope}.{name}" if scope else prefix + name


def _member(fact: Expr, prop: str) -> Expr:
    """What `const { prop } = fact` binds: a path when the fact is a name, the fact itself for `value`."""
    if isinstance(fact, Name):
        return Name((*fact.path, prop), fact.span)
    return fact if prop == "value" else Opaque(fact.span)


def _defaults(params: tree_sitter.Node) -> list[tree_sitter.Node]:
    found: list[tree_sitter.Node] = []
    for child in params.named_children:
        value = child.child_by_field_name("value")
        if value is not None:
            found.append(value)
    return found


def _fragment_content(node: tree_sitter.Node) -> tree_sitter.Node:
    """`<>{x}</>` → `x`."""
    if node.type == "jsx_element":
        opening = node.child_by_field_name("open_tag")
        if opening is not None and opening.child_by_field_name("name") is None:
            inner = [c for c in node.named_children if c.type == "jsx_expression"]
            others = [
                c
                for c in node.named_children
                if c.type not in ("jsx_opening_element", "jsx_closing_element", "jsx_expression")
                and not (c.type == "jsx_text" and not _text(c).strip())
            ]
            if len(inner) == 1 and not others and inner[0].named_children:
                return unwrap(inner[0].named_children[0])
    return node


def _prop(node: tree_sitter.Node, params: tuple[str, ...]) -> str | None:
    """The prop a branch renders: its name, "" for nothing (null), None when it is something else."""
    node = _fragment_content(unwrap(node))
    if node.type in ("null", "undefined") or node.type == "identifier" and _text(node) == "undefined":
        return ""
    if node.type == "identifier" and _text(node) in params:
        return _text(node)
    path = _path(node)
    if path is not None and len(path) == 2 and path[0] in params:
        return path[1]
    return None


def _string_value(node: tree_sitter.Node) -> str:
    return "".join(_text(c) for c in node.named_children if c.type in ("string_fragment", "escape_sequence"))


def _env_name(node: tree_sitter.Node) -> str | None:
    """`process.env.X`, `process.env["X"]`, `import.meta.env.X`."""
    if node.type == "member_expression":
        obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
        if obj is not None and prop is not None and _is_env_object(obj):
            return _text(prop)
    if node.type == "subscript_expression":
        obj, index = node.child_by_field_name("object"), node.child_by_field_name("index")
        if obj is not None and index is not None and index.type == "string" and _is_env_object(obj):
            return _string_value(index)
    return None


def _text_of_env(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The operand of a default (`?? "x"`, `|| "x"`) or of a text method call (`.toLowerCase()`)."""
    if node.type == "binary_expression" and _text(node.child_by_field_name("operator")) in ("??", "||"):
        right = node.child_by_field_name("right")
        if right is not None and right.type == "string":
            return node.child_by_field_name("left")
    if node.type == "call_expression":
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if (
            function is not None
            and function.type == "member_expression"
            and not (arguments is not None and arguments.named_children)
        ):
            prop = function.child_by_field_name("property")
            if _text(prop) in ("toLowerCase", "trim", "toUpperCase"):
                return function.child_by_field_name("object")
    return None


def _is_env_object(node: tree_sitter.Node) -> bool:
    text = _text(unwrap(node))
    return text in ("process.env", "import.meta.env")

"""Plans in YAML, with every problem reported as file:line and what is wrong."""

import re
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rampup.core.plans import Plan
from rampup.errors import InvalidInput

__all__ = ["load_plan", "read_yaml", "MAX_DEPTH", "MAX_NODES"]

# A plan is a few hundred values at most. Aliases may repeat a block, but a few hundred bytes of aliases of
# aliases ("billion laughs") would expand to billions: the expansion stops at MAX_NODES values.
MAX_DEPTH = 32
MAX_NODES = 10_000


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML's stubs leave the loader untyped
    """Composes the document (nodes, no values yet), counting the values it stands for with every alias
    expanded, and refuses at the line where it passes MAX_NODES, nests deeper than MAX_DEPTH (before Python's own
    recursion limit would make it a crash), or an alias is used inside its own anchor."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}  # id(node) → values it stands for, once it is complete

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                if id(anchored) not in self._sizes:
                    raise ComposerError(None, None, "an alias that contains itself", event.start_mark)
                self._count(self._sizes[id(anchored)], event.start_mark)
            return super().compose_node(parent, index)
        if self._depth == MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        before = self._expanded
        self._count(1, event.start_mark)
        self._depth += 1
        try:
            node: Node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, values: int, mark: Mark) -> None:
        self._expanded += values
        if self._expanded > MAX_NODES:
            problem = f"more than {MAX_NODES} values with aliases expanded; a plan is far smaller"
            raise ComposerError(None, None, problem, mark)


def read_yaml(text: str, filename: str) -> tuple[Any, dict[str, int]]:
    """The document, and the line (1-based) of every path in it: "stages[1].percentage" → 7."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"not valid YAML: {problem}", where=f"{filename}{line}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    constructor = SafeConstructor()

    def build(n: Node, path: str) -> Any:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node) if isinstance(key_node, ScalarNode) else None
                if not isinstance(key, str):
                    raise InvalidInput(
                        "a key is a text: quote it if it reads as a number, a date or yes/no",
                        where=f"{filename}:{key_node.start_mark.line + 1}",
                    )
                child = f"{path}.{key}" if path else key
                out[key] = build(value_node, child)
                lines[child] = key_node.start_mark.line + 1
            return out
        if isinstance(n, SequenceNode):
            return [build(item, f"{path}[{i}]") for i, item in enumerate(n.value)]
        assert isinstance(n, ScalarNode)
        return constructor.construct_object(n, deep=True)

    return (build(node, "") if node is not None else None), lines


def _line_of(where: str | None, lines: dict[str, int]) -> int | None:
    path = where or ""
    while path:
        if path in lines:
            return lines[path]
        path = re.sub(r"(\[\d+\]|\.[^.\[]+|^[^.\[]+)$", "", path)  # up one level
    return lines.get("")


def load_plan(text: str, filename: str = "plan.yaml") -> tuple[dict[str, Any], Plan]:
    """(the plan as data, the parsed plan). Errors say `file:line (path)` and what is wrong."""
    data, lines = read_yaml(text, filename)
    try:
        plan = Plan.parse(data)
    except InvalidInput as exc:
        line = _line_of(exc.where, lines)
        location = f"{filename}:{line}" if line else filename
        raise InvalidInput(
            exc.message, where=f"{location} ({exc.where})" if exc.where else location
        ) from None
    return data, plan

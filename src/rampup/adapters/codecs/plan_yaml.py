"""Plans in YAML, with every problem reported as file:line and what is wrong."""

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rampup.core.plans import Plan
from rampup.errors import InvalidInput

__all__ = ["load_plan", "read_yaml"]


def read_yaml(text: str, filename: str) -> tuple[Any, dict[str, int]]:
    """The document, and the line (1-based) of every path in it: "stages[1].percentage" → 7."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"not valid YAML: {problem}", where=f"{filename}{line}") from None
    lines: dict[str, int] = {}
    constructor = SafeConstructor()

    def build(n: Node, path: str) -> Any:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                child = f"{path}.{key}" if path else str(key)
                lines[child] = key_node.start_mark.line + 1
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

"""Removing a flag from code: what its checks become when it is always on (or off), and what then dies.

Pure rules for the rewriters in `adapters/codescan/`: a check folds to a constant, boolean operators and
branches around it fold with it, and definitions nothing uses any more — imports, constants, helpers,
wrappers — go too. "Then unused" means used before the rewrite and not after: code that was already
unused is someone else's business and stays.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rampup.core.coderefs import Check

__all__ = [
    "Known",
    "Remaining",
    "fold",
    "check_value",
    "not_boolean",
    "env_text",
    "compare_text",
    "then_unused",
]

Node = TypeVar("Node", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Known:
    value: bool


@dataclass(frozen=True, slots=True)
class Remaining:
    """The operands (by index) still to be evaluated, in their order."""

    indices: tuple[int, ...]


def fold(operands: Sequence[bool | None], *, conjunction: bool) -> Known | Remaining:
    """`a and b and …` (or `or`) with some operands known. Dropping a known operand is safe as a
    condition; as a value, `x and True` becomes `x` (the same truthiness)."""
    absorbing = not conjunction  # False absorbs `and`, True absorbs `or`
    if any(o is absorbing for o in operands):
        return Known(absorbing)
    unknown = tuple(i for i, o in enumerate(operands) if o is None)
    return Remaining(unknown) if unknown else Known(conjunction)


def check_value(check: Check, keep: bool) -> bool | None:
    """What a check is once the flag is always `keep`; None when it is not a plain boolean."""
    return keep if check.kind == "boolean" else None


def not_boolean(check: Check) -> str:
    """Why a check stays for a person to rewrite."""
    if check.kind == "details":
        return f"{check.method} returns the evaluation's details, not the boolean: rewrite it by hand"
    if check.kind == "env":
        return f"{check.method} is read as text outside a comparison with a literal: rewrite it by hand"
    if check.method == "OFREP":
        return "an OFREP request: rewrite it by hand"
    return f"{check.method} gives a value that is not a boolean flag's: rewrite it by hand"


def env_text(variable: str, keep: bool) -> str:
    """The text an ENABLED / ROLLOUT variable holds once the flag is always on or off."""
    if variable == "ROLLOUT":
        return "100" if keep else "0"
    return "true" if keep else "false"


def compare_text(text: str, operator: str, literals: Sequence[str]) -> bool | None:
    """`env == "true"`, `env !== "1"`, `env in ("1", "true")` with the variable's text known."""
    if operator in ("==", "===", "in") and literals:
        return text in literals
    if operator in ("!=", "!==", "not in") and literals:
        return text not in literals
    return None


def then_unused(
    used_before: Mapping[Node, int],
    edges_after: Mapping[Node, set[Node]],
    roots_after: Mapping[Node, int],
) -> set[Node]:
    """Definitions used before and unused after, following removals to a fixpoint.

    `used_before`: how many references each definition had before the rewrite. `edges_after`: for each
    definition, the definitions its own code refers to after the rewrite. `roots_after`: references from
    code that is not a definition (module statements, other files' live code).
    """
    incoming: dict[Node, int] = dict(roots_after)
    for targets in edges_after.values():
        for target in targets:
            incoming[target] = incoming.get(target, 0) + 1
    dead = [d for d, n in used_before.items() if n > 0 and incoming.get(d, 0) == 0]
    removed: set[Node] = set()
    while dead:
        definition = dead.pop()
        if definition in removed:
            continue
        removed.add(definition)
        for target in edges_after.get(definition, ()):
            incoming[target] -= 1
            if incoming[target] == 0 and used_before.get(target, 0) > 0:
                dead.append(target)
    return removed

"""Syntax tree of a formula. Every node keeps its offset in the formula text (语法树)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Node:
    """Base node; `pos` is the character offset inside the formula text."""

    pos: int = field(compare=False)


@dataclass(frozen=True)
class Literal(Node):
    value: Any
    kind: str  # number | string | bool | date


@dataclass(frozen=True)
class Name(Node):
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" | "not"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / and or == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class InList(Node):
    value: Node
    options: Node  # a list written in place, or the name of a list parameter or table column
    negate: bool


@dataclass(frozen=True)
class IfElse(Node):
    condition: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Index(Node):
    target: Node
    key: Node


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]
    keywords: tuple[tuple[str, Node], ...] = ()
    where: Node | None = None

    def keyword(self, key: str) -> Node | None:
        return next((v for k, v in self.keywords if k == key), None)


def children(node: Node) -> list[Node]:
    """The direct sub-expressions of a node, in source order."""
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, InList):
        return [node.value, node.options]
    if isinstance(node, IfElse):
        return [node.condition, node.then, node.otherwise]
    if isinstance(node, ListExpr):
        return list(node.items)
    if isinstance(node, Index):
        return [node.target, node.key]
    if isinstance(node, Call):
        out = list(node.args) + [v for _, v in node.keywords]
        return out + ([node.where] if node.where is not None else [])
    return []


def walk(node: Node):
    """Yield the node and all its descendants, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)


def _binding(node: Node) -> int:
    """How tightly a node's text holds together, loosest 0 (see the grammar's precedence)."""
    if isinstance(node, IfElse):
        return 0
    if isinstance(node, Unary):
        return 3 if node.op == "not" else 7
    if isinstance(node, InList):
        return 4
    return 9  # atoms, calls, lists, indexing and (parenthesised) binary operations


def _part(node: Node, needs: int) -> str:
    """The text of a sub-expression, in parentheses when it binds more loosely than its place needs."""
    text = to_text(node)
    return f"({text})" if _binding(node) < needs else text


def to_text(node: Node) -> str:
    """Render a node back to formula text (used in traces and messages); parsing the text
    again gives the same tree."""
    if isinstance(node, Literal):
        if node.kind == "string":
            return f"'{node.value}'" if '"' in node.value else f'"{node.value}"'
        if node.kind == "bool":
            return "true" if node.value else "false"
        return str(node.value)
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, Unary):
        return f"-{_part(node.operand, 7)}" if node.op == "-" else f"not {_part(node.operand, 3)}"
    if isinstance(node, Binary):
        needs = 1 if node.op in ("and", "or") else 5
        return f"({_part(node.left, needs)} {node.op} {_part(node.right, needs)})"
    if isinstance(node, InList):
        return f"{_part(node.value, 5)} {'not in' if node.negate else 'in'} {to_text(node.options)}"
    if isinstance(node, IfElse):
        return f"if {to_text(node.condition)} then {to_text(node.then)} else {to_text(node.otherwise)}"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(to_text(i) for i in node.items) + "]"
    if isinstance(node, Index):
        return f"{to_text(node.target)}[{to_text(node.key)}]"
    if isinstance(node, Call):
        parts = [to_text(a) for a in node.args] + [f"{k}={to_text(v)}" for k, v in node.keywords]
        inner = ", ".join(parts)
        if node.where is not None:
            inner += f" where {to_text(node.where)}"
        return f"{node.function}({inner})"
    raise TypeError(node)

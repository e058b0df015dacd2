"""The resolved, typed tree of a formula (类型化语法树).

The checker translates the syntax tree (engine.dsl.ast) into these nodes: every name is
resolved (a variable of the same entity or of a parent through its links, a parameter, a
table column, the rows of the entity), every call knows its built-in and, for aggregations,
the child entity and the links up from it. Each node carries its type, the entity it is
evaluated on and whether it is an amount of money (None where the checker cannot tell).
Compiler, trace, round splitter, partitions and synthetic data all walk this tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.dsl import ast


@dataclass(frozen=True)
class Expr:
    """Base node: source offset, type, entity of evaluation, money or not, the syntax it came from."""

    pos: int = field(compare=False)
    type: str
    entity: str
    money: bool | None = field(default=None, kw_only=True)
    syntax: ast.Node | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Expr):
    value: Any
    kind: str  # number | string | bool | date


@dataclass(frozen=True)
class ListOf(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Var(Expr):
    """A variable of `owner`: the same entity when `path` is empty, else a parent reached
    through the links in `path`."""

    name: str
    owner: str
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link(Expr):
    """A link of `owner` (the same entity when `path` is empty, else a parent reached through
    `path`) used as an identity: the row of `target` it names, compared only with another link to
    the same entity (`signed_institution == institution`). `type` is "link:<target>"."""

    name: str
    owner: str
    target: str
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rows(Expr):
    """The entity's own name used as a value: 1 per row (so sum(claim) counts claims)."""


@dataclass(frozen=True)
class Param(Expr):
    """A policy parameter; `type` is its kind (number, bool, string, map, bands)."""

    name: str


@dataclass(frozen=True)
class Column(Expr):
    """A column of a lookup table, read only through lookup()."""

    table: str
    column: str


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-" | "not"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic (+ - * /) or logic (and, or); `-` of two dates is a number of days."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList(Expr):
    value: Expr
    options: tuple[Expr, ...]
    negate: bool


@dataclass(frozen=True)
class If(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True)
class Index(Expr):
    """A parameter by category read with a key: rate[level]."""

    param: str
    key: Expr


@dataclass(frozen=True)
class Call(Expr):
    """A call of a built-in function (see the function registry).

    `kind` is how this call evaluates: elementwise, aggregate (of `child` rows onto this entity,
    `path` the links from the child up), chain, lookup, bands, step, allocate (`path` the links up
    to the group whose total is shared). `all_rows`: it needs every row of its entity at once."""

    function: str
    kind: str
    args: tuple[Expr, ...]
    keywords: tuple[tuple[str, Expr], ...] = ()
    where: Expr | None = None
    child: str | None = None
    path: tuple[str, ...] = ()
    all_rows: bool = False

    def keyword(self, key: str) -> Expr | None:
        return next((v for k, v in self.keywords if k == key), None)


def children(node: Expr) -> list[Expr]:
    """The direct sub-expressions of a node, in source order."""
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, (Binary, Compare)):
        return [node.left, node.right]
    if isinstance(node, InList):
        return [node.value, *node.options]
    if isinstance(node, If):
        return [node.condition, node.then, node.otherwise]
    if isinstance(node, ListOf):
        return list(node.items)
    if isinstance(node, Index):
        return [node.key]
    if isinstance(node, Call):
        out = list(node.args) + [v for _, v in node.keywords]
        return out + ([node.where] if node.where is not None else [])
    return []


def walk(node: Expr) -> Iterator[Expr]:
    """The node and all its descendants, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)


def text(node: Expr) -> str:
    """The formula text of a node as written (no outer parentheses around an operation)."""
    if node.syntax is None:
        raise ValueError("node without syntax")
    out = ast.to_text(node.syntax)
    return out[1:-1] if isinstance(node.syntax, ast.Binary) else out

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


# ---- values pending review (待审核，无值) -----------------------------------------------------
# Calls whose result is a yes/no, a count or a text: never "no value", whatever they read.
NEVER_PENDING = ("count", "any", "all", "is_pending", "has", "starts_with", "between")


def may_be_pending(node: Expr, nullable: set[tuple[str, str]] | frozenset) -> bool:
    """Whether a node can have no value (`pending(...)`, directly or through a variable of
    `nullable`, keys (entity, name)). Only numbers can: a comparison of a value with no value is
    false, so yes/no values always have one; an aggregation is pending when a value it reads may
    be (at run time only the rows its filter keeps count)."""
    if node.type != "number":
        return False
    if isinstance(node, Call):
        if node.function == "pending":
            return True
        if node.function in NEVER_PENDING:
            return False
        return any(may_be_pending(a, nullable) for a in (*node.args, *(v for _, v in node.keywords)))
    if isinstance(node, Var):
        return (node.owner, node.name) in nullable
    if isinstance(node, If):
        return may_be_pending(node.then, nullable) or may_be_pending(node.otherwise, nullable) \
            or bool(unknown_operands(node.condition, nullable))
    return any(may_be_pending(child, nullable) for child in children(node))


def nullable_variables(trees: dict[tuple[str, str], Expr]) -> frozenset[tuple[str, str]]:
    """The variables (entity, name) whose formula can give no value, directly or through others
    (a fixpoint over the formulas; a loop between formulas is reported elsewhere)."""
    found: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for key, tree in trees.items():
            if key not in found and may_be_pending(tree, found):
                found.add(key)
                changed = True
    return frozenset(found)


def unknown_operands(condition: Expr, nullable: set[tuple[str, str]] | frozenset) -> list[Expr]:
    """The numbers a condition compares that may have no value: where one has none, the
    comparison has no answer, and an `if` on it gives no value either."""
    out: list[Expr] = []

    def visit(node: Expr) -> None:
        if isinstance(node, (Compare, InList)) or isinstance(node, Call) and node.function == "between":
            out.extend(c for c in children(node) if may_be_pending(c, nullable))
        if isinstance(node, Call) and node.kind not in ("elementwise", "text"):
            return  # an aggregation, chain or lookup reads other rows: its own value is the operand
        for child in children(node):
            visit(child)
    visit(condition)
    return out

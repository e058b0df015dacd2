"""Typed tree → closures over numpy columns (公式编译).

Each node becomes `fn(frame) -> array or scalar`. No Python loop runs over rows: loops run
over chain positions or over a handful of parameter versions and table keys only. Calls of
built-ins compile through their registry entries (engine.compile.functions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.compile.functions import FUNCTIONS
from engine.dsl import typed as T
from engine.dsl.checker import Checked
from engine.run import builtins
from engine.run.frame import Frame

Fn = Callable[[Frame], Any]


class Compiler:
    """Compiles the checked formulas of one policy."""

    def __init__(self, policy, nullable: frozenset | None = None):
        self.policy = policy
        self.key: tuple | None = None
        # variables that can have no value (pending); by default those of the policy's plan
        self.nullable = nullable if nullable is not None else getattr(policy.plan, "nullable", frozenset())

    def compile(self, checked: Checked, key: tuple | None = None) -> Fn:
        """Closures for a checked formula; `key` (entity, variable) names its aggregations so that a
        distributed run can hand in their values computed elsewhere."""
        self.key = key
        return self.expr(checked.node)

    def expr(self, node: T.Expr) -> Fn:
        """The closure of one typed node (aggregations compiled here are not handed in)."""
        return getattr(self, "_" + type(node).__name__.lower())(node)

    # ---- atoms -------------------------------------------------------------------------
    def _literal(self, node: T.Literal) -> Fn:
        value = node.value
        if node.kind == "date":
            value = np.datetime64(value, "D")
        elif node.kind == "number":
            value = float(value)
        return lambda frame: value

    def _listof(self, node: T.ListOf) -> Fn:
        items = [self.expr(i) for i in node.items]
        return lambda frame: [f(frame) for f in items]

    def _rows(self, node: T.Rows) -> Fn:
        return lambda frame: 1.0

    def _column(self, node: T.Column) -> Fn:
        """A table column as one array over the table's rows: read inside a total over that table
        (sum(drg.weight)); elsewhere a column is read through lookup(), `in` or has()."""
        values = self.policy.tables[node.table].column_values(node.column)
        array = np.asarray(values, dtype=float if node.type.endswith("number") else str)
        return lambda frame: array

    def _var(self, node: T.Var) -> Fn:
        name, path, owner = node.name, list(node.path), node.owner
        if not path:
            return lambda frame: frame.column(name)
        default = self.policy.model.entities[owner].variables[name].default_value()

        def parent_value(frame: Frame):
            idx = frame.parent_index(path)
            values = frame.pop.columns[owner][name]
            return builtins.gather(values, idx, default)
        return parent_value

    def _link(self, node: T.Link) -> Fn:
        """The row each row's link names (-1: no link), through the parents in `path` first."""
        path = [*node.path, node.name]
        return lambda frame: frame.parent_index(path)

    def _param(self, node: T.Param) -> Fn:
        name, is_date = node.name, node.type == "date"

        def value(frame: Frame):
            versions = frame.ctx.versions(name)
            if is_date:
                versions = [np.datetime64(v, "D") for v in versions]
            if len(versions) == 1:
                return versions[0]
            idx = frame.ctx.parameter(name).version_index(frame.dates())
            return np.asarray(versions)[idx]
        return value

    # ---- operators ---------------------------------------------------------------------
    def _unary(self, node: T.Unary) -> Fn:
        inner = self.expr(node.operand)
        if node.op == "not":
            return lambda frame: np.logical_not(inner(frame))
        return lambda frame: np.negative(inner(frame))

    def _binary(self, node: T.Binary) -> Fn:
        left, right = self.expr(node.left), self.expr(node.right)
        if node.op == "/":
            return lambda frame: builtins.divide(frame, left(frame), right(frame))
        if node.op == "-" and node.left.type == "date":
            return lambda frame: builtins.day_difference(left(frame), right(frame))
        op = builtins.BINARY[node.op]
        return lambda frame: op(left(frame), right(frame))

    def _compare(self, node: T.Compare) -> Fn:
        left, right = self.expr(node.left), self.expr(node.right)
        if isinstance(node.left, T.Link):
            return builtins.same_link(left, right, negate=node.op == "!=")
        op = builtins.BINARY[node.op]
        if any(T.may_be_pending(side, self.nullable) for side in (node.left, node.right)):
            return builtins.compare_values(op, left, right)
        return lambda frame: op(left(frame), right(frame))

    def _inlist(self, node: T.InList) -> Fn:
        value = self.expr(node.value)
        negate = node.negate
        if len(node.options) == 1 and node.options[0].type.startswith(("list:", "column:")):
            member = self._member(node.options[0], value)
            return (lambda frame: ~member(frame)) if negate else member
        options = [self.expr(i) for i in node.options]

        def member_of_items(frame: Frame):
            v = value(frame)
            hit = np.zeros(np.shape(v), dtype=bool)
            for opt in options:
                hit = hit | builtins.BINARY["=="](v, opt(frame))
            return ~hit if negate else hit
        return member_of_items

    def _member(self, options: T.Expr, value: Fn) -> Fn:
        """`x in codes` (a list parameter, its version on each row's date) or `x in drg.drg_group`."""
        if isinstance(options, T.Column):
            items = self.policy.tables[options.table].column_values(options.column)
            return lambda frame: builtins.member(frame, value(frame), items)
        return self.with_list(options, lambda rows, items: builtins.member(rows, value(rows), items))

    def with_list(self, node: T.Expr, apply: Callable[[Frame, Any], Any]) -> Fn:
        """`apply(rows, items)` with the items of a list: a list parameter's version in force on each
        row's date (once per version), or a list written in place."""
        if isinstance(node, T.Param):
            name = node.name
            return lambda frame: builtins.per_version(frame, name, lambda items, rows: apply(rows, items))
        items = self.expr(node)
        return lambda frame: apply(frame, items(frame))

    def _if(self, node: T.If) -> Fn:
        cond, then, other = self.expr(node.condition), self.expr(node.then), self.expr(node.otherwise)
        unknown = [self.expr(n) for n in T.unknown_operands(node.condition, self.nullable)]
        if unknown and node.type == "number":
            return builtins.choose_known(cond, then, other, unknown)
        return lambda frame: builtins.choose(frame, cond(frame), then, other)

    def _index(self, node: T.Index) -> Fn:
        name, key = node.param, self.expr(node.key)

        def by_category(frame: Frame):
            return builtins.per_version(frame, name,
                                        lambda mapping, rows: builtins.map_lookup(rows, name, mapping, key(rows)))
        return by_category

    # ---- calls -------------------------------------------------------------------------
    def _call(self, node: T.Call) -> Fn:
        return FUNCTIONS[node.function].compile(self, node)

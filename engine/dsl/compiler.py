"""Checked syntax tree → closures over numpy columns (公式编译).

Each node becomes `fn(frame) -> array or scalar`. No Python loop runs over rows: loops run
over chain positions or over a handful of parameter versions and table keys only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.dsl import ast
from engine.dsl.checker import CallInfo, Checked, Ref
from engine.run import builtins
from engine.run.frame import Frame

Fn = Callable[[Frame], Any]


class Compiler:
    """Compiles the checked formulas of one policy."""

    def __init__(self, policy):
        self.policy = policy

    def compile(self, checked: Checked, key: tuple | None = None) -> Fn:
        """Closures for a checked formula; `key` (entity, variable) names its aggregations so that a
        distributed run can hand in their values computed elsewhere."""
        self.notes, self.key = checked.notes, key
        return self.node(checked.node)

    def node(self, node: ast.Node) -> Fn:
        return getattr(self, "_" + type(node).__name__.lower())(node)

    # ---- atoms -------------------------------------------------------------------------
    def _literal(self, node: ast.Literal) -> Fn:
        value = node.value
        if node.kind == "date":
            value = np.datetime64(value, "D")
        elif node.kind == "number":
            value = float(value)
        return lambda frame: value

    def _listexpr(self, node: ast.ListExpr) -> Fn:
        items = [self.node(i) for i in node.items]
        return lambda frame: [f(frame) for f in items]

    def _name(self, node: ast.Name) -> Fn:
        ref: Ref = self.notes[id(node)]
        if ref.kind == "rows":
            return lambda frame: 1.0
        if ref.kind == "param":
            return self._parameter(ref.name)
        if ref.kind == "column":
            raise AssertionError("table columns are read through lookup()")
        name, path, target = ref.name, ref.path, ref.entity
        if not path:
            return lambda frame: frame.column(name)
        default = self.policy.model.entities[target].variables[name].default_value()

        def parent_value(frame: Frame):
            idx = frame.parent_index(path)
            values = frame.pop.columns[target][name]
            return builtins.gather(values, idx, default)
        return parent_value

    def _parameter(self, name: str) -> Fn:
        def value(frame: Frame):
            versions = frame.ctx.versions(name)
            if len(versions) == 1:
                return versions[0]
            idx = frame.ctx.parameter(name).version_index(frame.dates())
            return np.asarray(versions)[idx]
        return value

    # ---- operators ---------------------------------------------------------------------
    def _unary(self, node: ast.Unary) -> Fn:
        inner = self.node(node.operand)
        if node.op == "not":
            return lambda frame: np.logical_not(inner(frame))
        return lambda frame: np.negative(inner(frame))

    def _binary(self, node: ast.Binary) -> Fn:
        left, right = self.node(node.left), self.node(node.right)
        if node.op == "/":
            return lambda frame: builtins.divide(frame, left(frame), right(frame))
        if node.op == "-" and self._is_date(node.left):
            return lambda frame: builtins.day_difference(left(frame), right(frame))
        op = builtins.BINARY[node.op]
        return lambda frame: op(left(frame), right(frame))

    def _is_date(self, node: ast.Node) -> bool:
        if isinstance(node, ast.Literal):
            return node.kind == "date"
        ref = self.notes.get(id(node))
        if isinstance(ref, Ref) and ref.kind == "var":
            return self.policy.model.entities[ref.entity].variables[ref.name].type == "date"
        return False

    def _inlist(self, node: ast.InList) -> Fn:
        value = self.node(node.value)
        options = [self.node(i) for i in node.options.items]
        negate = node.negate

        def member(frame: Frame):
            v = value(frame)
            hit = np.zeros(np.shape(v), dtype=bool)
            for opt in options:
                hit = hit | builtins.BINARY["=="](v, opt(frame))
            return ~hit if negate else hit
        return member

    def _ifelse(self, node: ast.IfElse) -> Fn:
        cond, then, other = self.node(node.condition), self.node(node.then), self.node(node.otherwise)
        return lambda frame: builtins.choose(frame, cond(frame), then, other)

    def _index(self, node: ast.Index) -> Fn:
        name = self.notes[id(node.target)].name
        key = self.node(node.key)

        def by_category(frame: Frame):
            return builtins.per_version(frame, name,
                                        lambda mapping, rows: builtins.map_lookup(rows, name, mapping, key(rows)))
        return by_category

    # ---- calls -------------------------------------------------------------------------
    def _call(self, node: ast.Call) -> Fn:
        info: CallInfo = self.notes[id(node)]
        return getattr(self, "_call_" + info.kind)(node, info)

    def _call_elementwise(self, node: ast.Call, info: CallInfo) -> Fn:
        args = [self.node(a) for a in node.args]
        digits = node.keyword("digits")
        if digits is not None:
            args.append(self.node(digits))
        impl = builtins.ELEMENTWISE_IMPL[node.function]
        return lambda frame: impl(*[a(frame) for a in args])

    def _call_aggregate(self, node: ast.Call, info: CallInfo) -> Fn:
        arg = self.node(node.args[0])
        where = self.node(node.where) if node.where is not None else None
        child, path, how = info.child, info.path, node.function
        handed_in = (*self.key, node.pos) if getattr(self, "key", None) else None

        def aggregate(frame: Frame):
            if handed_in in frame.ctx.precomputed:
                return frame.take(frame.ctx.precomputed[handed_in])
            child_frame = Frame(frame.pop, child, frame.ctx)
            values = child_frame.full(arg(child_frame))
            mask = child_frame.full(where(child_frame)).astype(bool) if where else None
            groups = frame.pop.parent_index(child, path)
            return frame.take(builtins.aggregate(how, values, mask, groups, frame.pop.sizes[frame.entity]))
        return aggregate

    def _call_chain(self, node: ast.Call, info: CallInfo) -> Fn:
        arg = self.node(node.args[0]) if node.args else None
        return builtins.chain_function(node.function, arg)

    def _call_lookup(self, node: ast.Call, info: CallInfo) -> Fn:
        ref: Ref = self.notes[id(node.args[0])]
        table = self.policy.tables[ref.name]
        keys = [self.node(a) for a in node.args[1:]]
        default = self.node(node.keyword("default")) if node.keyword("default") is not None else None
        column = ref.column

        def lookup(frame: Frame):
            key_values = [frame.full(k(frame)) for k in keys]
            fallback = default(frame) if default else None
            return builtins.table_lookup(frame, table, column, key_values, fallback)
        return lookup

    def _call_bands(self, node: ast.Call, info: CallInfo) -> Fn:
        amount = self.node(node.args[0])
        base = self.node(node.keyword("base")) if node.keyword("base") is not None else None
        if len(node.args) == 2:
            name = self.notes[id(node.args[1])].name
            return self._bands_param(amount, base, name)
        edges, rates = self.node(node.args[1]), self.node(node.args[2])
        return lambda frame: builtins.cumulative(amount(frame), edges(frame), rates(frame),
                                                 base(frame) if base else None)

    def _bands_param(self, amount: Fn, base: Fn | None, name: str) -> Fn:
        def from_parameter(frame: Frame):
            return builtins.per_version(frame, name, lambda table, rows: builtins.cumulative(
                amount(rows), table["edges"], table["rates"], base(rows) if base else None))
        return from_parameter

    def _call_step(self, node: ast.Call, info: CallInfo) -> Fn:
        x, edges, values = (self.node(a) for a in node.args)
        closed = node.keyword("closed")
        left = closed is None or closed.value == "left"
        return lambda frame: builtins.step(frame, x(frame), edges(frame), values(frame), left)

    def _call_allocate(self, node: ast.Call, info: CallInfo) -> Fn:
        total, weight, path = self.node(node.args[0]), self.node(node.args[1]), info.path

        def allocate(frame: Frame):
            whole = frame.whole()
            groups = whole.parent_index(path) if path else np.zeros(whole.size, dtype=np.int64)
            totals, weights = whole.full(total(whole)).astype(float), whole.full(weight(whole)).astype(float)
            parts = builtins.allocate(totals, weights, groups)
            valid = groups >= 0
            if valid.any():
                # a group with something to share but no weight at all keeps its total unallocated
                size = int(groups[valid].max()) + 1
                weight_sum = np.bincount(groups[valid], weights=weights[valid], minlength=size)
                shared = np.bincount(groups[valid], weights=parts[valid], minlength=size)
                group_total = np.zeros(size)
                group_total[groups[valid]] = totals[valid]
                lost = (weight_sum == 0) & (np.abs(group_total - shared) >= 0.005)
                if lost.any():
                    frame.ctx.warn("allocation_without_weight",
                                   f"{int(lost.sum())} group(s) have an amount to share but every weight is 0; "
                                   "nothing was allocated there",
                                   f"{int(lost.sum())} 个分组有待分配金额，但权重全为 0，未作分配", int(lost.sum()))
            return frame.take(parts)
        return allocate


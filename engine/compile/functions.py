"""Built-in functions of the formula language, one registry entry each (内置函数登记表).

An entry says everything about one built-in: how a call is checked (arity, argument types,
entity levels) into a typed call node, how that node compiles to numpy (with the runtime
helpers of engine.run.builtins), what the trace shows for it, and, for aggregations, how
partial results over partitions combine. Adding a built-in is one `register(Builtin(...))`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.dsl import ast
from engine.dsl import typed as T
from engine.dsl.checker import NUMERIC, Checker, _type_name, _type_zh, error
from engine.run import builtins
from engine.run.frame import Frame

if TYPE_CHECKING:
    from engine.compile.compiler import Compiler

Fn = Callable[[Frame], Any]
CheckFn = Callable[[Checker, ast.Call, str, bool], T.Call]
CompileFn = Callable[["Compiler", T.Call], Fn]
TraceFn = Callable[[T.Call], "tuple[T.Expr, ...] | None"]


def look_through(node: T.Call) -> None:
    """The trace shows the call's arguments (as for round(x)), not the call itself."""
    return None


def shown_whole(node: T.Call) -> tuple[T.Expr, ...]:
    """The trace shows the call's value as one input (as for sum(claim.x))."""
    return ()


@dataclass(frozen=True)
class Builtin:
    """One built-in function.

    `check(checker, call, scope, in_before)` → typed call; `compile(compiler, typed call)` →
    `fn(frame)`; `trace(typed call)` → None to show the arguments' inputs instead of the call,
    or the sub-expressions whose inputs are shown besides the call's own value; `partial`:
    for aggregations, how per-partition partials combine (sum, count, mean, min, max, any, all);
    `explain`: what the function does, in English and Chinese; `batch`: its batch form, the
    typed call as a Polars expression (set by engine.batch.polars_backend; None: a policy calling
    it in a claim formula settles with numpy)."""

    name: str
    check: CheckFn
    compile: CompileFn
    explain: tuple[str, str]
    trace: TraceFn = look_through
    partial: str | None = None
    takes_where: bool = False
    batch: Callable[..., Any] | None = None


FUNCTIONS: dict[str, Builtin] = {}


def register(entry: Builtin) -> Builtin:
    """Add (or replace) a built-in."""
    FUNCTIONS[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    FUNCTIONS.pop(name, None)


def call(node: ast.Call, typ: str, scope: str, kind: str, args: tuple[T.Expr, ...], **extra) -> T.Call:
    """The typed node of a checked call."""
    return T.Call(node.pos, typ, scope, node.function, kind, args, syntax=node, **extra)


# ---- elementwise functions (逐行函数) ------------------------------------------------------
def elementwise_check(low: int, high: int, arg_type: str, result: str, keywords: tuple[str, ...] = (),
                      money: bool | None = None) -> CheckFn:
    """Arity and one type for every argument; `money` None: the result is money when the
    first argument is."""
    def check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
        c.arity(node, low, high, keywords)
        if node.function == "round":
            c.check_digits(node)
        args = tuple(c.typed_arg(a, scope, in_before, arg_type, node.function) for a in node.args)
        kws = tuple((k, c.typed_arg(v, scope, in_before, arg_type, node.function)) for k, v in node.keywords)
        flag = args[0].money if money is None and args else money
        return call(node, result, scope, "elementwise", args, keywords=kws, money=flag)
    return check


def elementwise_compile(runtime: Callable[..., Any], keywords: tuple[str, ...] = ()) -> CompileFn:
    """`runtime(*args, *keyword values in declared order)` on whole columns."""
    def compile_(c: Compiler, node: T.Call) -> Fn:
        args = [c.expr(a) for a in node.args]
        args += [c.expr(v) for k in keywords if (v := node.keyword(k)) is not None]
        return lambda frame: runtime(*[a(frame) for a in args])
    return compile_


def elementwise(name: str, low: int, high: int, arg_type: str, result: str, explain: tuple[str, str],
                keywords: tuple[str, ...] = (), money: bool | None = None) -> Builtin:
    runtime = builtins.ELEMENTWISE_IMPL[name]
    return Builtin(name, elementwise_check(low, high, arg_type, result, keywords, money),
                   elementwise_compile(runtime, keywords), explain)


# ---- aggregations of a child entity (汇总) ------------------------------------------------
def aggregate_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    name = node.function
    c.arity(node, 1, 1, ("via",))
    table = _table_named(c, node, scope)
    if table is not None:
        if node.keyword("via") is not None:
            raise error("via_link", f"via= chooses a link of a child entity; the rows of table '{table}' have none",
                        f"via= 用于选择下级实体的关联；表“{table}”的行没有关联", node.keyword("via"))
        return table_total_check(c, node, scope, table)
    children = c.child_heads([node.args[0]] + ([node.where] if node.where is not None else []), scope)
    if len(children) != 1:
        en = (f"{name}() needs the values of one child entity of {scope}, e.g. {name}(claim.total_cost)"
              if not children else f"{name}() mixes entities {', '.join(sorted(children))}; use one")
        raise error("aggregate_needs_child", en,
                    f"{name}() 需要汇总{scope}下属的一个实体的值，例如 {name}(claim.total_cost)", node)
    child = children.pop()
    arg = c.expr(node.args[0], child, in_before=False)
    where = None
    if node.where is not None:
        where = c.typed_arg(node.where, child, False, "bool", "where")
    if name in ("any", "all"):
        c.want(arg.type, "bool", node.args[0], name)
    elif name != "count":
        c.want(arg.type, NUMERIC, node.args[0], name)
    typ = "bool" if name in ("any", "all") else NUMERIC
    money = arg.money if name in ("sum", "mean", "min", "max") else False
    via = node.keyword("via")
    path = c.via_path(via, child, scope) if via is not None else c.model.parent_path(child, scope)
    return call(node, typ, scope, "aggregate", (arg,), where=where, child=child, path=tuple(path), money=money)


def aggregate_compile(c: Compiler, node: T.Call) -> Fn:
    if node.kind == "table":
        return table_total_compile(c, node)
    arg = c.expr(node.args[0])
    where = c.expr(node.where) if node.where is not None else None
    child, path, how = node.child, list(node.path), node.function
    handed_in = (*c.key, node.pos) if c.key else None

    def aggregate(frame: Frame):
        if handed_in in frame.ctx.precomputed:
            return frame.take(frame.ctx.precomputed[handed_in])
        child_frame = Frame(frame.pop, child, frame.ctx)
        values = child_frame.full(arg(child_frame))
        mask = child_frame.full(where(child_frame)).astype(bool) if where else None
        groups = frame.pop.parent_index(child, path)
        return frame.take(builtins.aggregate(how, values, mask, groups, frame.pop.sizes[frame.entity]))
    return aggregate


def aggregation(name: str, explain: tuple[str, str]) -> Builtin:
    return Builtin(name, aggregate_check, aggregate_compile, explain, shown_whole, partial=name, takes_where=True)


def smallest_or_largest(name: str, explain: tuple[str, str]) -> Builtin:
    """min/max: of two or more values on each row, or of one value over child rows."""
    many = elementwise(name, 2, 20, NUMERIC, NUMERIC, explain)

    def check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
        if len(node.args) < 2:
            return aggregate_check(c, node, scope, in_before)
        if node.where is not None:  # the smaller of several values: there is nothing to filter
            raise error("where_not_allowed",
                        f"'where' filters the rows of an aggregation such as {name}(claim.total_cost where …); "
                        f"{name}() of two or more values cannot take it",
                        f"“where”只能用于汇总，例如 {name}(claim.total_cost where …)；多个值的 {name}() 不能使用",
                        node.where)
        return many.check(c, node, scope, in_before)

    def compile_(c: Compiler, node: T.Call) -> Fn:
        return aggregate_compile(c, node) if node.kind in ("aggregate", "table") else many.compile(c, node)

    def trace(node: T.Call) -> tuple[T.Expr, ...] | None:
        return () if node.kind in ("aggregate", "table") else None
    return Builtin(name, check, compile_, explain, trace, partial=name, takes_where=True)


# ---- totals over a lookup table (查找表汇总) -------------------------------------------------
def _table_named(c: Checker, node: ast.Call, scope: str) -> str | None:
    """The table an aggregation runs over, when its argument and filter name no child entity but
    a table's columns (`drg.weight`) or rows (`count(drg)`), and `drg` is not a name of this row."""
    roots = [node.args[0]] + ([node.where] if node.where is not None else [])
    if c.child_heads(roots, scope):
        return None
    entity = c.model.entities[scope]
    for root in roots:
        for sub in ast.walk(root):
            head = sub.parts[0] if isinstance(sub, ast.Name) else None
            if head in c.tables and head not in c.model.entities and head not in entity.variables \
                    and head not in entity.links:
                return head
    return None


# what a table total may contain: its columns, fixed values, operators and row-by-row functions
_TABLE_NODES = (T.Column, T.Literal, T.ListOf, T.Unary, T.Compare, T.InList)


def _check_table_expr(expr: T.Expr, table: str) -> None:
    for sub in T.walk(expr):
        allowed = isinstance(sub, _TABLE_NODES) or isinstance(sub, T.Binary) and sub.op != "/" \
            or isinstance(sub, T.Call) and sub.kind in ("elementwise", "text")
        if not allowed:
            raise error("table_scope",
                        f"a total over table '{table}' may use its columns, fixed values, + - * and comparisons, "
                        f"and row-by-row functions; '{T.text(sub)}' is not allowed there",
                        f"对表“{table}”的汇总只能使用该表的列、固定值、+ - * 和比较运算及逐行函数；"
                        f"此处不能使用“{T.text(sub)}”", sub.syntax or ast.Literal(sub.pos, 0, "number"))


def table_total_check(c: Checker, node: ast.Call, scope: str, table: str) -> T.Call:
    """sum(drg.weight), count(drg where drg.kind == "surgical"), …: one number per run, over the
    table's rows; the filter reads the same table's columns."""
    name, arg_node = node.function, node.args[0]
    c.table_scope = table
    try:
        if isinstance(arg_node, ast.Name) and arg_node.parts == (table,):
            if name != "count":
                raise error("table_needs_column",
                            f"{name}() over a table needs one of its columns, e.g. {name}({table}."
                            f"{next(iter(c.tables[table].columns), 'value')})",
                            f"对表的 {name}() 需要指明列，例如 {name}({table}.列名)", arg_node)
            c.tables_used.add(table)
            arg: T.Expr = T.Literal(arg_node.pos, NUMERIC, scope, 1.0, "number", money=False, syntax=arg_node)
        else:
            arg = c.expr(arg_node, scope, False)
        where = c.typed_arg(node.where, scope, False, "bool", "where") if node.where is not None else None
    finally:
        c.table_scope = None
    for part in (arg, where):
        if part is not None:
            _check_table_expr(part, table)
    if name in ("any", "all"):
        c.want(arg.type, "bool", arg_node, name)
    elif name != "count":
        c.want(arg.type, NUMERIC, arg_node, name)
    typ = "bool" if name in ("any", "all") else NUMERIC
    return call(node, typ, scope, "table", (arg,), where=where, child=table, money=False)


def table_total_compile(c: Compiler, node: T.Call) -> Fn:
    """The total is the same for every row and every run of the policy: computed once."""
    table, arg = c.policy.tables[node.child], c.expr(node.args[0])
    where = c.expr(node.where) if node.where is not None else None
    how = node.function
    known: dict[str, Any] = {}

    def total(frame: Frame):
        if "value" not in known:
            size = len(table.index)
            values = np.broadcast_to(np.asarray(arg(None)), (size,))
            mask = np.broadcast_to(np.asarray(where(None), dtype=bool), (size,)) if where else None
            groups = np.zeros(size, dtype=np.int64)
            known["value"] = builtins.aggregate(how, values, mask, groups, 1)[0].item()
        return known["value"]
    return total


# ---- along chains (转诊链) -----------------------------------------------------------------
def chain(name: str, explain: tuple[str, str], before: bool = False, takes_arg: bool = True) -> Builtin:
    """A function along an ordered chain; `before`: reads only earlier rows, so the variable
    being defined may appear inside it."""
    def check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
        entity = c.model.entities[scope]
        if entity.chain is None:
            chained = [e.name for e in c.model.entities.values() if e.chain]
            raise error("no_chain", f"{node.function}() works on entities that form chains ({', '.join(chained)}), not {scope}",
                        f"{node.function}() 只能用于成链的实体（{', '.join(chained)}），不能用于 {scope}", node)
        if not takes_arg:
            c.arity(node, 0, 0)
            return call(node, NUMERIC, scope, "chain", (), money=False)
        c.arity(node, 1, 1)
        arg = c.typed_arg(node.args[0], scope, in_before or before, NUMERIC, node.function)
        return call(node, NUMERIC, scope, "chain", (arg,), money=arg.money)

    def compile_(c: Compiler, node: T.Call) -> Fn:
        arg = c.expr(node.args[0]) if node.args else None
        return builtins.chain_function(node.function, arg)
    return Builtin(name, check, compile_, explain, shown_whole)


# ---- lookup, bands, step, allocate ---------------------------------------------------------
def lookup_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    if len(node.args) < 2:
        raise error("arity", "lookup() takes a table column and one key per key column, e.g. lookup(drg.weight, drg_group)",
                    "lookup() 需要表列和每个键列的值，例如 lookup(drg.weight, drg_group)", node)
    c.arity(node, 2, 9, ("default",))
    target = node.args[0]
    if not isinstance(target, ast.Name):
        raise error("lookup_target", "the first argument of lookup() must be table.column",
                    "lookup() 的第一个参数必须是 表名.列名", target)
    column = c.expr(target, scope, in_before)
    if not isinstance(column, T.Column):
        raise error("lookup_target", f"'{target.dotted}' is not a table column (write table.column)",
                    f"“{target.dotted}”不是表的列（应写作 表名.列名）", target)
    table = c.tables[column.table]
    if column.column in table.key:
        raise error("lookup_target", f"'{target.dotted}' is a key column of {table.name}: lookup() reads another "
                    f"column; to ask whether a key is in the table write has({table.name}, …)",
                    f"“{target.dotted}”是表 {table.name} 的键列：lookup() 应读取其他列；判断键是否存在请用 "
                    f"has({table.name}, …)", target)
    if len(node.args) - 1 != len(table.key):
        raise error("lookup_keys", f"table '{table.name}' is keyed by {', '.join(table.key)}: give {len(table.key)} key(s)",
                    f"表“{table.name}”的键为 {', '.join(table.key)}：需要 {len(table.key)} 个键", node)
    keys = tuple(c.expr(arg, scope, in_before) for arg in node.args[1:])
    result = column.type.split(":", 1)[1]
    default = node.keyword("default")
    kws: tuple[tuple[str, T.Expr], ...] = ()
    if default is not None:
        kws = (("default", c.typed_arg(default, scope, in_before, result, "default")),)
    return call(node, result, scope, "lookup", (column, *keys), keywords=kws)


def lookup_compile(c: Compiler, node: T.Call) -> Fn:
    column: T.Column = node.args[0]
    table = c.policy.tables[column.table]
    keys = [c.expr(a) for a in node.args[1:]]
    default = c.expr(node.keyword("default")) if node.keyword("default") is not None else None
    name = column.column

    def lookup(frame: Frame):
        key_values = [frame.full(k(frame)) for k in keys]
        fallback = default(frame) if default else None
        return builtins.table_lookup(frame, table, name, key_values, fallback)
    return lookup


def bands_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 2, 3, ("base",))
    amount = c.typed_arg(node.args[0], scope, in_before, NUMERIC, "bands")
    table = node.args[1]
    edges = c.expr(table, scope, in_before)
    args: tuple[T.Expr, ...] = (amount, edges)
    if len(node.args) == 2:
        if edges.type != "bands":
            raise error("bands_table", "bands(amount, TABLE) needs a band-table parameter, or give edges and rates: "
                        "bands(amount, [edges], [rates])",
                        "bands(金额, 分段表) 需要分段表参数，或写作 bands(金额, [分段点], [比例])", table)
    else:
        c.want(edges.type, "list:number", table, "bands edges")
        rates = node.args[2]
        args += (c.typed_arg(rates, scope, in_before, "list:number", "bands rates"),)
        if isinstance(table, ast.ListExpr) and isinstance(rates, ast.ListExpr):
            c.check_edges(table, rates)
    base = node.keyword("base")
    kws = (("base", c.typed_arg(base, scope, in_before, NUMERIC, "base")),) if base is not None else ()
    return call(node, NUMERIC, scope, "bands", args, keywords=kws, money=amount.money)


def bands_compile(c: Compiler, node: T.Call) -> Fn:
    amount = c.expr(node.args[0])
    base = c.expr(node.keyword("base")) if node.keyword("base") is not None else None
    if len(node.args) == 2:
        name = node.args[1].name

        def from_parameter(frame: Frame):
            return builtins.per_version(frame, name, lambda table, rows: builtins.cumulative(
                amount(rows), table["edges"], table["rates"], base(rows) if base else None))
        return from_parameter
    edges, rates = c.expr(node.args[1]), c.expr(node.args[2])
    return lambda frame: builtins.cumulative(amount(frame), edges(frame), rates(frame),
                                             base(frame) if base else None)


EDGE_SIDES = {"above": False, "from": True}  # does the band above the edge include it (x >= edge)?


def _side_of(item: ast.Node) -> bool | None:
    """above(e): the band above starts after e (超过 e; e 以下/以内 is the band below); from(e): the
    band above starts at e (e 以上; 不满 e is the band below). None: a plain edge."""
    return EDGE_SIDES[item.function] if isinstance(item, ast.Call) and item.function in EDGE_SIDES else None


def _step_edges(c: Checker, edges: ast.Node, scope: str, in_before: bool,
                closed: ast.Node | None) -> tuple[T.Expr, list[bool] | None]:
    """The typed edges of step() and, when each edge states its side, one flag per edge."""
    if not isinstance(edges, ast.ListExpr) or all(_side_of(i) is None for i in edges.items):
        return c.typed_arg(edges, scope, in_before, "list:number", "step edges"), None
    if closed is not None:
        raise error("step_sides", "say on which side each edge lies either with closed= or with above()/from() "
                    "on the edges, not both", "分段点归属请用 closed= 或在分段点上用 above()/from() 标明，二者择一", closed)
    items, sides = [], []
    for item in edges.items:
        side = _side_of(item)
        if side is None:
            raise error("step_sides", "mark every edge of this step() with above(…) or from(…), or none of them",
                        "此 step() 的分段点要么全部用 above(…) 或 from(…) 标明，要么都不标", item)
        c.arity(item, 1, 1)
        inner = c.typed_arg(item.args[0], scope, in_before, NUMERIC, item.function)
        items.append(call(item, NUMERIC, scope, "edge", (inner,), money=inner.money))
        sides.append(side)
    return T.ListOf(edges.pos, "list:number", scope, tuple(items), money=None, syntax=edges), sides


def step_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 3, 3, ("closed",))
    x = c.typed_arg(node.args[0], scope, in_before, NUMERIC, "step")
    closed = node.keyword("closed")
    edges, sides = _step_edges(c, node.args[1], scope, in_before, closed)
    values = c.expr(node.args[2], scope, in_before)
    if not values.type.startswith("list:"):
        raise error("step_values", "step() needs a list of values, one more than the edges",
                    "step() 需要一个取值列表，比分段点多一个", node.args[2])
    if isinstance(node.args[1], ast.ListExpr) and isinstance(node.args[2], ast.ListExpr):
        plain = tuple(i.args[0] if _side_of(i) is not None and i.args else i for i in node.args[1].items)
        c.check_edges(ast.ListExpr(node.args[1].pos, plain), node.args[2])
    if closed is not None and not (isinstance(closed, ast.Literal) and closed.value in ("left", "right")):
        raise error("step_closed", 'closed= must be "left" (edge belongs to the upper band) or "right"',
                    'closed= 只能是 "left"（分段点属于上一段）或 "right"', closed)
    kws = c.keywords(node, scope, in_before)
    return call(node, values.type.split(":", 1)[1], scope, "step", (x, edges, values), keywords=kws,
                money=values.money)


def step_compile(c: Compiler, node: T.Call) -> Fn:
    x_node, edges_node, values_node = node.args
    x, values = c.expr(x_node), c.expr(values_node)
    closed = node.keyword("closed")
    sides: bool | list[bool] = closed is None or closed.value == "left"
    if isinstance(edges_node, T.ListOf) and edges_node.items and all(
            isinstance(i, T.Call) and i.kind == "edge" for i in edges_node.items):
        sides = [EDGE_SIDES[i.function] for i in edges_node.items]
    return c.with_list(edges_node, lambda rows, edges: builtins.step(rows, x(rows), edges, values(rows), sides))


def edge_marker(name: str, explain: tuple[str, str]) -> Builtin:
    """above(e) / from(e): an edge of step() that states which band it belongs to; nothing elsewhere."""
    def check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
        raise error("edge_outside_step", f"{name}() marks an edge of step(), as in "
                    f"step(x, [{name}(0.4), {name}(0.8)], [\"a\", \"b\", \"c\"]); it has no value of its own",
                    f"{name}() 只用于标明 step() 的分段点，例如 step(x, [{name}(0.4), {name}(0.8)], [\"a\", \"b\", \"c\"])；"
                    "它本身没有值", node)

    def compile_(c: Compiler, node: T.Call) -> Fn:
        return c.expr(node.args[0])
    return Builtin(name, check, compile_, explain)


# ---- texts and codes (文本与编码) ---------------------------------------------------------------
def starts_with_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 2, 2)
    text = c.typed_arg(node.args[0], scope, in_before, "string", "starts_with")
    prefixes = c.expr(node.args[1], scope, in_before)
    if prefixes.type not in ("string", "list:string"):
        hint_en = "; write codes in quotes (\"3708\")" if prefixes.type == "list:number" else ""
        hint_zh = "；编码请加引号（\"3708\"）" if prefixes.type == "list:number" else ""
        raise error("type", f"'starts_with' needs a text or a list of texts as its prefix, but this is a "
                    f"{_type_name(prefixes.type)}{hint_en}",
                    f"“starts_with”的前缀应为文本或文本列表，但这里是{_type_zh(prefixes.type)}{hint_zh}",
                    node.args[1])
    return call(node, "bool", scope, "text", (text, prefixes), money=False)


def starts_with_compile(c: Compiler, node: T.Call) -> Fn:
    text = c.expr(node.args[0])
    return c.with_list(node.args[1], lambda rows, prefixes: builtins.starts_with(rows, text(rows), prefixes))


def between_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 3, 3)
    x = c.expr(node.args[0], scope, in_before)
    if x.type not in (NUMERIC, "date", "string"):
        c.want(x.type, NUMERIC, node.args[0], "between")
    low = c.typed_arg(node.args[1], scope, in_before, x.type, "between")
    high = c.typed_arg(node.args[2], scope, in_before, x.type, "between")
    for bound in (low, high):
        c._check_category(x, bound)
    return call(node, "bool", scope, "text" if x.type == "string" else "elementwise", (x, low, high), money=False)


def between_compile(c: Compiler, node: T.Call) -> Fn:
    x, low, high = (c.expr(a) for a in node.args)
    is_text = node.args[0].type == "string"
    return lambda frame: builtins.between(frame, x(frame), low(frame), high(frame), is_text)


# ---- lookup tables: keys (查找表的键) -----------------------------------------------------------
def has_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    target = node.args[0] if node.args else None
    if not (isinstance(target, ast.Name) and len(target.parts) == 1 and target.parts[0] in c.tables):
        hint = _suggest_table(c, target)
        raise error("has_table", "has() takes a table and one key per key column, e.g. has(drg, drg_group)"
                    + (f"; did you mean '{hint}'?" if hint else ""),
                    "has() 需要一张表和每个键列的值，例如 has(drg, drg_group)" + (f"；是否应为“{hint}”？" if hint else ""),
                    target or node)
    table = c.tables[target.parts[0]]
    c.arity(node, 1 + len(table.key), 1 + len(table.key))
    c.tables_used.add(table.name)
    keys = tuple(c.expr(arg, scope, in_before) for arg in node.args[1:])
    name = T.Literal(target.pos, "string", scope, table.name, "string", money=False, syntax=target)
    return call(node, "bool", scope, "has", (name, *keys), money=False)


def _suggest_table(c: Checker, target: ast.Node | None) -> str:
    if not isinstance(target, ast.Name):
        return ""
    close = difflib.get_close_matches(target.parts[0], list(c.tables), n=1, cutoff=0.6)
    return close[0] if close else ""


def has_compile(c: Compiler, node: T.Call) -> Fn:
    table = c.policy.tables[node.args[0].value]
    keys = [c.expr(a) for a in node.args[1:]]
    return lambda frame: builtins.table_has(frame, table, [frame.full(k(frame)) for k in keys])


def allocate_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 2, 2)
    total = c.typed_arg(node.args[0], scope, in_before, NUMERIC, "allocate")
    weight = c.typed_arg(node.args[1], scope, in_before, NUMERIC, "allocate")
    paths = {n.path for n in T.walk(total) if isinstance(n, T.Var)}
    if any(not p for p in paths):
        raise error("allocate_total",
                    "allocate(total, weight): the total must be a value of a parent entity "
                    "(e.g. fund.points_budget) or a parameter, not a value of each row",
                    "allocate(总额, 权重)：总额必须是上级实体的值（如 fund.points_budget）或参数，不能是本级每行的值",
                    node.args[0])
    group = min(paths, key=len) if paths else ()
    return call(node, NUMERIC, scope, "allocate", (total, weight), path=group, all_rows=True, money=total.money)


def allocate_compile(c: Compiler, node: T.Call) -> Fn:
    total, weight, path = c.expr(node.args[0]), c.expr(node.args[1]), list(node.path)

    def allocate(frame: Frame):
        whole = frame.whole()
        groups = whole.parent_index(path) if path else np.zeros(whole.size, dtype=np.int64)
        totals, weights = whole.full(total(whole)).astype(float), whole.full(weight(whole)).astype(float)
        parts = builtins.allocate(totals, weights, groups)
        too_large = builtins.out_of_range_groups(totals, groups)
        if too_large:
            frame.ctx.warn("allocation_out_of_range",
                           f"{too_large} group(s) have a total above 9e13 yuan (or not a finite number), "
                           "too large to allocate to the fen; split in proportion to the weights",
                           f"{too_large} 个分组的待分配总额超过 9e13 元（或不是有限数），无法精确到分分配；"
                           "已按权重比例分配", too_large)
        _warn_unweighted(frame, groups, totals, weights, parts)
        return frame.take(parts)
    return allocate


def _warn_unweighted(frame: Frame, groups: np.ndarray, totals: np.ndarray, weights: np.ndarray,
                     parts: np.ndarray) -> None:
    """A group with something to share but no weight at all keeps its total unallocated: say so."""
    valid = groups >= 0
    if not valid.any():
        return
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


# ---- no value: pending review (无值：待审核) ----------------------------------------------------------
def pending_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    """pending() or pending("reason"): a number with no value (null in the result); the reason,
    if given, is a text written in the formula."""
    c.arity(node, 0, 1)
    reason = node.args[0] if node.args else None
    if reason is not None and not (isinstance(reason, ast.Literal) and reason.kind == "string"):
        raise error("pending_reason", 'pending() takes at most a reason written as a text, e.g. '
                    'pending("no standard in the catalogue")',
                    'pending() 最多带一个以文本写明的原因，例如 pending("目录中无标准")', reason)
    args = (c.expr(reason, scope, in_before),) if reason is not None else ()
    return call(node, NUMERIC, scope, "elementwise", args, money=None)


def pending_compile(c: Compiler, node: T.Call) -> Fn:
    return lambda frame: np.nan


def is_pending_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 1, 1)
    value = c.typed_arg(node.args[0], scope, in_before, NUMERIC, "is_pending")
    return call(node, "bool", scope, "elementwise", (value,), money=False)


def is_pending_compile(c: Compiler, node: T.Call) -> Fn:
    value = c.expr(node.args[0])
    return lambda frame: np.isnan(np.asarray(value(frame), dtype=float))


# ---- the built-ins ---------------------------------------------------------------------------
for _entry in (
    smallest_or_largest("min", ("the smallest of the values (or of the child rows' values)",
                                "各值（或下级各行的值）中的最小值")),
    smallest_or_largest("max", ("the largest of the values (or of the child rows' values)",
                                "各值（或下级各行的值）中的最大值")),
    elementwise("clamp", 3, 3, NUMERIC, NUMERIC, ("the value kept between a low and a high bound",
                                                   "把值限制在下限与上限之间")),
    elementwise("abs", 1, 1, NUMERIC, NUMERIC, ("the absolute value", "绝对值")),
    elementwise("floor", 1, 1, NUMERIC, NUMERIC, ("rounded down to a whole number", "向下取整")),
    elementwise("ceil", 1, 1, NUMERIC, NUMERIC, ("rounded up to a whole number", "向上取整")),
    elementwise("round", 1, 2, NUMERIC, NUMERIC, ("rounded half up (to `digits` decimals)",
                                                   "四舍五入（保留 digits 位小数）"), keywords=("digits",)),
    elementwise("days_between", 2, 2, "date", NUMERIC, ("days from the first date to the second",
                                                         "两个日期之间的天数"), money=False),
    elementwise("year", 1, 1, "date", NUMERIC, ("the year of a date", "日期的年份"), money=False),
    elementwise("month", 1, 1, "date", NUMERIC, ("the month of a date (1–12)", "日期的月份（1–12）"), money=False),
    aggregation("sum", ("the sum over the child rows (or over a table's rows); via=LINK: the child rows whose LINK "
                        "leads to this row", "下级各行（或查找表各行）之和；via=关联：按该关联指向本行的下级行")),
    aggregation("count", ("the number of child rows (or of a table's rows)", "下级（或查找表）行数")),
    aggregation("mean", ("the average over the child rows", "下级各行的平均值")),
    aggregation("any", ("yes if any child row is yes", "下级任一行为是则为是")),
    aggregation("all", ("yes if every child row is yes", "下级每一行都为是则为是")),
    chain("chain_max", ("the largest value along the chain up to this row", "链上截至本行的最大值")),
    chain("chain_max_before", ("the largest value on earlier rows of the chain", "链上本行之前的最大值"),
          before=True),
    chain("chain_sum", ("the sum along the chain up to this row", "链上截至本行的合计")),
    chain("chain_sum_before", ("the sum over earlier rows of the chain", "链上本行之前的合计"), before=True),
    chain("chain_position", ("the position of this row in its chain (1 first)", "本行在链上的序号（从 1 起）"),
          takes_arg=False),
    Builtin("lookup", lookup_check, lookup_compile, ("the value of a table column for the given keys",
                                                      "按键从查找表中取值"),
            trace=lambda node: node.args[1:]),
    Builtin("bands", bands_check, bands_compile, ("cumulative bands: each band's rate on the part inside it",
                                                  "分段累计：各段比例乘以落在该段内的金额"),
            trace=lambda node: node.args[:1]),
    Builtin("step", step_check, step_compile, ("the value of the band the amount falls in",
                                               "取金额所在分段对应的值"), trace=shown_whole),
    edge_marker("above", ("an edge of step() that belongs to the band below it: the band above starts after "
                          "the edge (超过; 以下/以内 below)",
                          "step() 的分段点，属于较低的一段：较高一段自超过该点起（超过；较低一段为以下/以内）")),
    edge_marker("from", ("an edge of step() that belongs to the band above it: the band above starts at the "
                         "edge (以上; 不满 below)",
                         "step() 的分段点，属于较高的一段：较高一段自该点起（以上；较低一段为不满）")),
    Builtin("starts_with", starts_with_check, starts_with_compile,
            ("yes if the text starts with the prefix (or with one of a list of prefixes)",
             "文本以该前缀（或列表中任一前缀）开头则为是")),
    Builtin("between", between_check, between_compile,
            ("yes if low ≤ x ≤ high; for codes, sub-codes of the upper end are inside (C97.1 is in C00–C97)",
             "low ≤ x ≤ high 则为是；编码区间包含上限的下级编码（C97.1 属于 C00–C97）")),
    Builtin("has", has_check, has_compile, ("yes if the table has a row with this key",
                                            "查找表中有此键则为是"), trace=shown_whole),
    Builtin("pending", pending_check, pending_compile,
            ("no value: the amount waits for review (特病单议) and is null in the result; arithmetic and "
             "totals that take it have no value either", "无值：金额待审核（特病单议），结果中为 null；"
             "用到它的运算和汇总同样无值")),
    Builtin("is_pending", is_pending_check, is_pending_compile,
            ("yes if the value has none (pending review)", "该值无值（待审核）则为是")),
    Builtin("allocate", allocate_check, allocate_compile, ("a group total shared out in proportion to weights",
                                                           "按权重分配分组总额"),
            trace=lambda node: node.args),
):
    register(_entry)

"""The claim stage compiled to Polars expressions (Polars 批量后端).

The numpy engine evaluates a claim formula as closures over numpy columns; here the same typed
tree (engine.dsl.typed) becomes Polars expressions over one DataFrame of claims: the claim
inputs read from Arrow (defaults filled as `engine.batch.io.read_column` fills them), the parent
values a formula reads gathered once per round, and each claim step added as a column.

Numbers are reproduced, not approximated (docs/scale.md, "One specification, two backends"):

- arithmetic is IEEE float64 in both, in the order the formula writes it; `a / b` is 0 where b is 0;
- comparisons of numbers use the 4-ulp edge of engine/run/exact.py (`close`), `step` and `bands`
  edges too; texts, dates and yes/no compare exactly;
- min/max propagate NaN as numpy's minimum/maximum do; a step's NaN or infinity becomes 0 (`finite`);
- chains: running sums and maxima along each chain in chain order (Population.chain), the same
  sequential left fold as the numpy accumulators; a step reading its own earlier values runs one
  chain position at a time;
- aggregations of claims leave this module as exact limb partials (engine/run/exact.py), the same
  partial rows a chunk or a Spark partition produces;
- money is rounded half-up to the fen when written, by the engine's own `round_half_up`;
- a pending value (`pending()`) is NaN, as in numpy: arithmetic and min/max propagate it, a
  comparison with it does not hold, an `if` whose condition compares it is pending, a running max
  is pending from it on, a total taking it is pending (exact partials); it is written as null;
- the grouping functions read one assignment per run (engine.run.grouping.assign over the claims'
  code fields, code lists kept out of the frame), its parts added as columns.

A construct without a Polars form raises `Unsupported`; `settle` then runs the whole settlement
with numpy and says so in a warning.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.batch.io import read_codes
from engine.batch.partition import SmallState, _partial_table, encode_key, find_aggregation
from engine.compile.functions import FUNCTIONS, register
from engine.compile.grouping import PARTS, group_variables, marked_supplied
from engine.dsl import typed as T
from engine.model.codelists import CodeLists
from engine.plan.plan import Step
from engine.policy.spec import Policy
from engine.run import exact, grouping
from engine.run.columns import EntityColumns, build_population, default_column
from engine.run.frame import RunContext
from engine.run.money import round_half_up
from engine.run.population import Population

TOLERANCE = float(exact.TOLERANCE)
POSITION, CHAIN, AT, TEMP = "__position", "__chain", "__at", "__t."
KEY_SEP = "\x1f"
POLARS_TYPES = {"number": pl.Float64, "bool": pl.Boolean, "string": pl.String, "date": pl.Date}


_TEMP_NAMES = itertools.count()
PolarsError = pl.exceptions.PolarsError


class Unsupported(Exception):
    """A construct the Polars backend does not compile; the run falls back to numpy."""


# ---- the claims as a DataFrame (输入) -------------------------------------------------------------

@dataclass
class Claims:
    """The claims of a run: inputs as a DataFrame, their links resolved (parent rows) and chain order.
    Code lists (type `codes`) stay out of the frame: only the grouping reads them, once per run."""

    frame: pl.DataFrame
    links: Population  # claims with links, dates and chain fields only: parent indices, chain order
    big: str
    parents: dict[tuple, str] = field(default_factory=dict)  # (owner, name, path) → column of the frame
    found: list = field(default_factory=list)  # what the population builder found (keyed rows that do not fit)
    codes: dict[str, CodeLists] = field(default_factory=dict)  # code-list inputs, as engine.batch.io reads them
    supplied: dict[str, np.ndarray] = field(default_factory=dict)  # a grouped variable → rows supplying it
    assigned: dict[str, grouping.Assigned] = field(default_factory=dict)  # a grouping → its assignment


def read_claims(policy: Policy, table: pa.Table, small: dict[str, EntityColumns], period_end: str,
                big: str) -> Claims:
    """The claim table as Polars columns with defaults filled, and a light population of the
    claims' links (no text column turned into numpy)."""
    entity = policy.model.entities[big]
    columns, codes = {}, {}
    for name in table.column_names:
        if name == "id" or name in entity.links:
            continue
        var = entity.variables[name]  # a formula's value supplied on some rows keeps its nulls: computed there
        if var.type == "codes":
            codes[name] = read_codes(table[name])
            continue
        columns[name] = _typed_input(table[name], var.type, var.default_value() if var.is_input else None)
    frame = pl.DataFrame(columns, height=table.num_rows) if columns else pl.DataFrame(height=table.num_rows)
    grouped = {v for g in policy.groupings for v in group_variables(entity.variables, g)}
    supplied = {name: ~table[name].is_null().to_numpy(zero_copy_only=False)
                for name in grouped & set(table.column_names)}
    light = EntityColumns(pc.cast(table["id"], pa.string()))
    light.links = {k: table[k] for k in entity.links if k in table.column_names}
    wanted = set(entity.chain.order if entity.chain else ()) | ({entity.date} if entity.date else set())
    wanted |= {p.field for e in policy.model.entities.values() if e.derived and e.derived.source == big
               for p in e.derived.parts if p.kind == "month"}
    for name in wanted & set(table.column_names):
        light.values[name] = frame[name].to_numpy().astype("datetime64[D]") \
            if entity.variables[name].type == "date" else frame[name].to_numpy()
    pop, found = build_population(policy.model, {**small, big: light}, np.datetime64(period_end, "D"))
    return Claims(frame, pop, big, found=found, codes=codes, supplied=supplied)


def _typed_input(array: pa.ChunkedArray, var_type: str, default: Any) -> pl.Series:
    """A claim input as its variable's type, nulls as its default: the casts of
    engine.batch.io.read_column, in Arrow, then handed to Polars without a copy of the numbers."""
    if var_type == "number":
        values = pc.cast(array, pa.float64())
        return pl.from_arrow(values if default is None else pc.fill_null(values, float(default)))
    if var_type == "bool":
        values = pc.cast(array, pa.bool_())
        return pl.from_arrow(values if default is None else pc.fill_null(values, bool(default)))
    if var_type == "date":
        if pa.types.is_timestamp(array.type):
            return pl.from_arrow(array).cast(pl.Date)
        return pl.from_arrow(array if pa.types.is_date(array.type) else pc.cast(array, pa.date32())).cast(pl.Date)
    values = pc.cast(array, pa.string())
    return pl.from_arrow(values if default is None else pc.fill_null(values, str(default)))


# ---- the compiler (编译) ------------------------------------------------------------------------

@dataclass
class Warned:
    """A warning the run may raise: rows counted by `count` (a boolean expression)."""

    code: str
    variable: str
    en: str
    zh: str
    count: pl.Expr
    example: pl.Expr | None = None  # a key shown in the message (lookup_missing)


class Compiler:
    """Typed claim formulas → Polars expressions, for one round (parent values as of that round)."""

    def __init__(self, policy: Policy, claims: Claims, state: SmallState, driver: Population):
        self.policy, self.claims, self.state, self.driver = policy, claims, state, driver
        self.big = claims.big
        self.nullable = getattr(policy.plan, "nullable", frozenset())  # variables that may be pending
        self.warned: list[Warned] = []
        self.variable = ""
        self.gathered: dict[str, pl.Series] = {}  # parent columns this round needs
        self.chain_cols: dict[str, str] = {}  # chain accumulators this step needs (recurrent steps)
        self.recurrent: Step | None = None
        self.temps: list[pl.Expr] = []  # sub-expressions read more than once, as columns (in order)

    def bind(self, expr: pl.Expr) -> pl.Expr:
        """A sub-expression used several times, computed once as a temporary column."""
        if expr.meta.is_column() or expr.meta.is_literal():
            return expr
        if self.recurrent is not None and any(  # a part of a chain recurrence is computed per position
                r in (self.recurrent.variable.name, AT) or r.startswith("__acc.") for r in expr.meta.root_names()):
            return expr
        name = f"{TEMP}{next(_TEMP_NAMES)}"
        self.temps.append(expr.alias(name))
        return pl.col(name)

    def expr(self, node: T.Expr, active: pl.Expr | None = None) -> pl.Expr:
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise Unsupported(type(node).__name__)
        return method(node, active)

    # ---- atoms --------------------------------------------------------------------------------
    def _literal(self, node: T.Literal, active) -> pl.Expr:
        if node.kind == "number":
            return pl.lit(float(node.value), pl.Float64)
        if node.kind == "date":
            return pl.lit(np.datetime64(node.value, "D").astype(object), pl.Date)
        if node.kind == "bool":
            return pl.lit(bool(node.value), pl.Boolean)
        return pl.lit(str(node.value), pl.String)

    def _rows(self, node: T.Rows, active) -> pl.Expr:
        return pl.lit(1.0, pl.Float64)

    def _var(self, node: T.Var, active) -> pl.Expr:
        if not node.path:
            if node.owner != self.big:
                raise Unsupported(f"{node.owner}.{node.name} read outside its entity")
            var = self.policy.model.entities[self.big].variables[node.name]
            if var.is_input and node.name not in self.claims.frame.columns:  # not in the file: its default
                default = var.default_value()
                return pl.lit(None, pl.Date) if default is None else _constant(default, var.type)
            return pl.col(node.name)
        return pl.col(self._parent_column(node))

    def _parent_column(self, node: T.Var) -> str:
        """The parent value gathered for each claim: the driver's column at the claim's parent row."""
        name = f"__{'.'.join(node.path)}.{node.name}"
        if name in self.gathered:
            return name
        var = self.policy.model.entities[node.owner].variables[node.name]
        idx = self.claims.links.parent_index(self.big, list(node.path))
        rows = _driver_rows(self.claims.links, self.driver, node.owner)
        idx = np.where(idx >= 0, rows[np.maximum(idx, 0)] if len(rows) else -1, -1)
        values = self.state.columns[node.owner][node.name]
        self.gathered[name] = _gather(values, idx, var.type, var.default_value(), name)
        return name

    def _link(self, node: T.Link, active) -> pl.Expr:
        """The row of its target each claim's link names (-1: none), as engine.compile.compiler._link."""
        name = f"__link.{'.'.join((*node.path, node.name))}"
        if name not in self.gathered and name not in self.claims.frame.columns:
            idx = self.claims.links.parent_index(self.big, [*node.path, node.name])
            self.gathered[name] = pl.Series(name, np.asarray(idx, dtype=np.int64))
        return pl.col(name)

    def _param(self, node: T.Param, active) -> pl.Expr:
        return self.per_version(node.name, lambda value: _constant(value, node.type))

    def per_version(self, name: str, build: Callable[..., pl.Expr], active: pl.Expr | None = None,
                    rows: bool = False) -> pl.Expr:
        """`build(value)` with the parameter's version in force on each claim's date; `rows`:
        `build(value, active)` with the rows of that version, for the warnings it counts."""
        versions = RunContext(self.policy).versions(name)
        if len(versions) == 1:
            return build(versions[0], active) if rows else build(versions[0])
        column = f"__version.{name}"
        if column not in self.gathered:
            dates = self.claims.links.row_dates[self.big]
            index = self.policy.parameters[name].version_index(dates)
            self.gathered[column] = pl.Series(column, np.broadcast_to(index, (self.claims.frame.height,)))
        parts = []
        for i, value in enumerate(versions):  # in version order, as the numpy engine warns
            here = pl.col(column) == i
            parts.append(build(value, here if active is None else active & here) if rows else build(value))
        out = parts[-1]
        for i in range(len(parts) - 2, -1, -1):
            out = pl.when(pl.col(column) == i).then(parts[i]).otherwise(out)
        return out

    # ---- operators ----------------------------------------------------------------------------
    def _unary(self, node: T.Unary, active) -> pl.Expr:
        inner = self.expr(node.operand, active)
        return inner.not_() if node.op == "not" else -inner

    def _binary(self, node: T.Binary, active) -> pl.Expr:
        left, right = self.expr(node.left, active), self.expr(node.right, active)
        if node.op == "and":
            return left & right
        if node.op == "or":
            return left | right
        if node.op == "/":
            zero = right == 0.0
            self.warn("division_by_zero", "a division by zero gave 0", "除数为零，结果取 0", zero, active)
            return pl.when(zero).then(pl.lit(0.0)).otherwise(divide(left, right))
        if node.op == "-" and node.left.type == "date":
            return _days(left, right)
        return {"+": left + right, "-": left - right, "*": left * right}[node.op]

    def _compare(self, node: T.Compare, active) -> pl.Expr:
        left, right = self.bind(self.expr(node.left, active)), self.bind(self.expr(node.right, active))
        if isinstance(node.left, T.Link):  # the same row, a missing link equal to nothing (builtins.same_link)
            same = (left == right) & (left >= 0)
            return same.not_() if node.op == "!=" else same
        numeric = node.left.type == "number" and node.right.type == "number"
        pending = any(T.may_be_pending(side, self.nullable) for side in (node.left, node.right))
        return compare(node.op, left, right, numeric, "date" in (node.left.type, node.right.type), pending)

    def _inlist(self, node: T.InList, active) -> pl.Expr:
        value = self.bind(self.expr(node.value, active))
        numeric = node.value.type == "number"
        if len(node.options) == 1 and node.options[0].type.startswith(("list:", "column:")):
            hit = self._member(node.options[0], value, numeric)
        else:
            hit = pl.lit(False)
            for option in node.options:
                hit = hit | compare("==", value, self.expr(option, active), numeric, False)
        return hit.not_() if node.negate else hit

    def _member(self, options: T.Expr, value: pl.Expr, numeric: bool) -> pl.Expr:
        def member(items) -> pl.Expr:
            items = list(items)
            if numeric:
                return value.is_in([float(i) for i in items])
            return value.cast(pl.String).is_in([str(i) for i in items])
        if isinstance(options, T.Column):
            return member(self.policy.tables[options.table].column_values(options.column))
        if isinstance(options, T.Param):
            return self.per_version(options.name, member)
        if isinstance(options, T.ListOf) and all(isinstance(i, T.Literal) for i in options.items):
            return member([i.value for i in options.items])
        raise Unsupported("membership in a computed list")

    def _if(self, node: T.If, active) -> pl.Expr:
        cond = self.bind(self.expr(node.condition, active))
        yes = cond if active is None else active & cond
        no = cond.not_() if active is None else active & cond.not_()
        out = pl.when(cond).then(self.expr(node.then, yes)).otherwise(self.expr(node.otherwise, no))
        unknown = T.unknown_operands(node.condition, self.nullable) if node.type == "number" else []
        if not unknown:
            return out
        # a condition comparing a pending value has no answer: the result is pending too
        # (engine.run.builtins.choose_known; the operands are evaluated again, as there)
        none = pl.lit(False)
        for operand in unknown:
            none = none | self.expr(operand, active).cast(pl.Float64).is_nan()
        return pl.when(none).then(pl.lit(float("nan"), pl.Float64)).otherwise(out)

    def _index(self, node: T.Index, active) -> pl.Expr:
        key = self.bind(_key_expr(self.expr(node.key, active), node.key.type))

        def by_category(mapping: dict, active: pl.Expr | None) -> pl.Expr:
            names = list(mapping)
            found = key.replace_strict(names, [float(mapping[k]) for k in names], default=None,
                                       return_dtype=pl.Float64)
            missing = found.is_null()
            first = key.filter(missing if active is None else missing & active).first()
            self.warned.append(Warned("category_missing", self.variable,
                                      f"parameter {node.param} has no value for category {{0}}; 0 used",
                                      f"参数 {node.param} 没有类别 {{0}} 的取值，按 0 计",
                                      _count(missing, active), first))
            return found.fill_null(0.0)
        return self.per_version(node.param, by_category, active, rows=True)

    # ---- calls ----------------------------------------------------------------------------------
    def _call(self, node: T.Call, active) -> pl.Expr:
        entry = FUNCTIONS.get(node.function)
        form = entry.batch if entry is not None else None
        if form is None or (node.kind == "aggregate" or node.kind == "table"):
            raise Unsupported(f"{node.function}() ({node.kind}) in a claim formula")
        return form(self, node, active)

    def warn(self, code: str, en: str, zh: str, rows: pl.Expr, active: pl.Expr | None) -> None:
        self.warned.append(Warned(code, self.variable, en, zh, _count(rows, active)))


def _count(rows: pl.Expr, active: pl.Expr | None) -> pl.Expr:
    hit = rows if active is None else rows & active
    return hit.fill_null(False).sum()


def compare(op: str, left: pl.Expr, right: pl.Expr, numeric: bool, dates: bool, pending: bool = False) -> pl.Expr:
    """A comparison as engine/run/exact.py states it: numbers within 4 ulps of the larger are equal.
    A NaN side (a pending value) makes every comparison false but `!=`, as IEEE (and numpy) has it;
    Polars orders NaN above every number, so this is said explicitly. `pending`: a side may be
    pending (engine.run.builtins.compare_values): then `!=` does not hold either."""
    if not numeric:
        out = {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
               ">": left > right, ">=": left >= right}[op]
        return out.fill_null(op == "!=") if dates else out
    close = (left - right).abs() <= TOLERANCE * pl.max_horizontal(left.abs(), right.abs())
    close = close.fill_null(False)
    out = {"==": close | (left == right), "!=": ~(close | (left == right)),
           "<": (left < right) & ~close, "<=": (left <= right) | close,
           ">": (left > right) & ~close, ">=": (left >= right) | close}[op]
    return pl.when(left.is_nan() | right.is_nan()).then(pl.lit(op == "!=" and not pending)).otherwise(out)


def divide(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """left / right correctly rounded (IEEE division, as numpy divides). Polars divides by a
    constant as a multiplication by its reciprocal, which is an ulp off for 13% of x / 100: the
    division is done by numpy on the batch."""
    def numpy_divide(parts: list[pl.Series]) -> pl.Series:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return pl.Series(np.divide(parts[0].to_numpy(), parts[1].to_numpy()), dtype=pl.Float64)
    return pl.map_batches([left.cast(pl.Float64), right.cast(pl.Float64)], numpy_divide, return_dtype=pl.Float64)


def _days(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """later − earlier in days as a number; NaN where a date is missing."""
    return (later - earlier).dt.total_days().cast(pl.Float64).fill_null(float("nan"))


def _constant(value: Any, kind: str) -> pl.Expr:
    if kind == "number":
        return pl.lit(float(value), pl.Float64)
    if kind == "bool":
        return pl.lit(bool(value), pl.Boolean)
    if kind == "date":
        return pl.lit(np.datetime64(value, "D").astype(object), pl.Date)
    if kind == "string":
        return pl.lit(str(value), pl.String)
    raise Unsupported(f"parameter of kind {kind} as a value")


def _key_expr(expr: pl.Expr, kind: str) -> pl.Expr:
    """A key as the text the numpy engine looks it up by (engine.run.builtins._key_text)."""
    if kind == "number":
        whole = (expr == expr.floor()) & ~expr.is_nan()
        return pl.when(expr.is_nan()).then(pl.lit("nan")).when(whole) \
            .then(expr.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(expr.cast(pl.String))
    if kind == "bool":
        return pl.when(expr).then(pl.lit("true")).otherwise(pl.lit("false"))
    return expr.cast(pl.String)


def _driver_rows(light: Population, driver: Population, entity: str) -> np.ndarray:
    """For each row of `entity` in the claims' light population, its row on the driver (by id)."""
    where = {str(i): k for k, i in enumerate(list(driver.ids[entity]))}
    return np.array([where.get(str(i), -1) for i in list(light.ids[entity])], dtype=np.int64)


def _gather(values: np.ndarray, idx: np.ndarray, var_type: str, default: Any, name: str) -> pl.Series:
    """values[idx] as a Series, the default where there is no parent (idx -1)."""
    if var_type == "date":
        source = pl.Series(name, np.asarray(values, dtype="datetime64[D]")).cast(pl.Date)
    elif var_type == "string":
        source = pl.Series(name, np.asarray(values).astype(str).tolist(), dtype=pl.String)
    else:
        source = pl.Series(name, np.asarray(values), dtype=POLARS_TYPES[var_type])
    fill = None if var_type == "date" or default is None else default
    source = source.append(pl.Series(name, [fill], dtype=source.dtype))
    return source.gather(np.where(idx >= 0, idx, len(source) - 1))


# ---- batch forms of the built-ins (内置函数的批量形式) ------------------------------------------

def _elementwise(fn: Callable[..., pl.Expr], binds: bool = False) -> Callable:
    """The batch form of a row-by-row function; `binds`: `fn` takes the compiler's `bind`."""
    def form(c: Compiler, node: T.Call, active) -> pl.Expr:
        if node.kind != "elementwise":
            raise Unsupported(f"{node.function}() ({node.kind})")
        args = [c.bind(c.expr(a, active)) for a in node.args]
        args += [c.bind(c.expr(v, active)) for _, v in node.keywords]
        return fn(*args, bind=c.bind) if binds else fn(*args)
    return form


def _nan_aware(pick_left: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> Callable[..., pl.Expr]:
    """numpy's minimum/maximum: NaN when either side is NaN, else the chosen side (`bind` keeps
    a chain of them from repeating its sub-expressions)."""
    def reduce(*args: pl.Expr, bind: Callable[[pl.Expr], pl.Expr] = lambda e: e) -> pl.Expr:
        out = args[0]
        for other in args[1:]:
            out = pl.when(out.is_nan() | other.is_nan()).then(pl.lit(float("nan"))) \
                .when(pick_left(out, other)).then(out).otherwise(other)
            out = bind(out)
        return out
    return reduce


_min = _nan_aware(lambda a, b: a <= b)
_max = _nan_aware(lambda a, b: a >= b)


def _round(x: pl.Expr, digits: pl.Expr | None = None) -> pl.Expr:
    if digits is not None:
        raise Unsupported("round(digits=…)")
    return x.map_batches(lambda s: pl.Series(s.name, np.asarray(round_half_up(s.to_numpy(), 0), dtype=float)),
                         return_dtype=pl.Float64)


def _year(d: pl.Expr) -> pl.Expr:
    return d.dt.year().cast(pl.Float64).fill_null(float("nan"))


def _month(d: pl.Expr) -> pl.Expr:
    return d.dt.month().cast(pl.Float64).fill_null(float("nan"))


def _lookup(c: Compiler, node: T.Call, active) -> pl.Expr:
    column: T.Column = node.args[0]
    table = c.policy.tables[column.table]
    key = _table_key(c, node.args[1:], active)
    is_number = table.column_type(column.column) == "number"
    texts = [KEY_SEP.join(t) for t in table.index]
    source = table.columns[column.column]
    values = [float(source[r]) if is_number else str(source[r]) for r in table.index.values()]
    found = key.replace_strict(texts, values, default=None, return_dtype=pl.Float64 if is_number else pl.String)
    missing = found.is_null()
    default = node.keyword("default")
    if default is not None:
        return pl.when(missing).then(c.expr(default, active)).otherwise(found)
    first = key.filter(missing if active is None else missing & active).first().str.replace_all(KEY_SEP, ", ")
    c.warned.append(Warned("lookup_missing", c.variable,
                           f"{{n}} row(s) have a key not in table {table.name} (e.g. {{0}}); 0 used",
                           f"{{n}} 行的键不在表 {table.name} 中（如 {{0}}），按 0 计", _count(missing, active), first))
    return found.fill_null(0.0 if is_number else "")


def _table_key(c: Compiler, keys: tuple[T.Expr, ...], active) -> pl.Expr:
    parts = [_key_expr(c.expr(k, active), k.type) for k in keys]
    return c.bind(parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=KEY_SEP))


def _has(c: Compiler, node: T.Call, active) -> pl.Expr:
    table = c.policy.tables[node.args[0].value]
    key = _table_key(c, node.args[1:], active)
    return key.is_in([KEY_SEP.join(t) for t in table.index])


def _bands(c: Compiler, node: T.Call, active) -> pl.Expr:
    """Cumulative bands, edges snapped as engine.run.builtins.cumulative snaps them."""
    amount = c.bind(c.expr(node.args[0], active))
    base = node.keyword("base")
    scale = c.expr(base, active) if base is not None else None
    if len(node.args) == 2:
        return c.per_version(node.args[1].name,
                             lambda t: _cumulative(amount, t["edges"], t["rates"], scale, c.bind))
    edges_node, rates_node = node.args[1], node.args[2]
    if not (isinstance(edges_node, T.ListOf) and isinstance(rates_node, T.ListOf)):
        raise Unsupported("bands() over list parameters")
    edges = [c.expr(e, active) for e in edges_node.items]
    rates = [c.expr(r, active) for r in rates_node.items]
    return _cumulative(amount, edges, rates, scale, c.bind)


def _cumulative(amount: pl.Expr, edges, rates, base: pl.Expr | None, bind: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    def num(v) -> pl.Expr:
        return v if isinstance(v, pl.Expr) else pl.lit(float(v), pl.Float64)
    cuts = [num(e) * (pl.lit(1.0) if base is None else base) for e in edges]
    x, total, low = amount, pl.lit(0.0), pl.lit(0.0)
    for i, rate in enumerate(rates):
        last = i >= len(cuts)
        high = None if last else cuts[i]
        if not last:
            x = bind(pl.when(_close(x, high)).then(high).otherwise(x))
        piece = bind(pl.when(x - low > 0.0).then(x - low).otherwise(pl.lit(0.0)))
        if not last:
            width = bind(pl.when(high - low > 0.0).then(high - low).otherwise(pl.lit(0.0)))
            piece = _min(piece, width, bind=bind)
        total = bind(total + piece * num(rate))
        low = high if not last else low
    return total


def _close(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return ((a - b).abs() <= TOLERANCE * pl.max_horizontal(a.abs(), b.abs())).fill_null(False)


def _step(c: Compiler, node: T.Call, active) -> pl.Expr:
    x_node, edges_node, values_node = node.args
    if not (isinstance(edges_node, T.ListOf) and isinstance(values_node, T.ListOf)):
        raise Unsupported("step() over list parameters")
    x = c.bind(c.expr(x_node, active))
    closed = node.keyword("closed")
    left = closed is None or closed.value == "left"
    index = pl.lit(0, pl.Int64)
    for item in edges_node.items:
        side = left
        if isinstance(item, T.Call) and item.kind == "edge":
            side, item = item.function == "from", item.args[0]
        edge = c.expr(item, active)
        index = index + compare(">=" if side else ">", x, edge, True, False).cast(pl.Int64)
    values = [c.expr(v, active) for v in values_node.items]
    out = values[0]
    for i in range(1, len(values)):
        out = pl.when(index == i).then(values[i]).otherwise(out)
    return out


def _starts_with(c: Compiler, node: T.Call, active) -> pl.Expr:
    text = c.expr(node.args[0], active)
    prefixes = node.args[1]

    def starts(items) -> pl.Expr:
        items = [items] if isinstance(items, str) else list(items)
        out = pl.lit(False)
        for p in items:
            out = out | text.str.starts_with(str(p))
        return out
    if isinstance(prefixes, T.Param):
        return c.per_version(prefixes.name, starts)
    if isinstance(prefixes, T.Literal):
        return starts(prefixes.value)
    if isinstance(prefixes, T.ListOf) and all(isinstance(i, T.Literal) for i in prefixes.items):
        return starts([i.value for i in prefixes.items])
    raise Unsupported("starts_with() with computed prefixes")


def _between(c: Compiler, node: T.Call, active) -> pl.Expr:
    x, low, high = (c.expr(a, active) for a in node.args)
    if node.args[0].type != "string":  # numpy's >= and <=: false where a side is NaN (pending)
        x, low, high = c.bind(x), c.bind(low), c.bind(high)
        return (x >= low) & (x <= high) & ~(x.is_nan() | low.is_nan() | high.is_nan())
    if not isinstance(node.args[2], T.Literal):
        raise Unsupported("between() of codes with a computed upper end")
    return (low <= x) & (x.str.slice(0, len(str(node.args[2].value))) <= high)


def _chain(c: Compiler, node: T.Call, active) -> pl.Expr:
    """Along the chain, in chain order: the sequential running sum / max of the numpy accumulators."""
    if node.function == "chain_position":
        return pl.col(POSITION).cast(pl.Float64) + 1.0
    arg = c.expr(node.args[0], active)
    use_max = node.function.startswith("chain_max")
    before = node.function.endswith("_before")
    if c.recurrent is not None and any(isinstance(n, T.Var) and not n.path and n.name == c.recurrent.variable.name
                                       for n in T.walk(node.args[0])):
        return _recurrent_chain(c, node, arg, use_max, before)
    if use_max:  # numpy's maximum: from a NaN (pending) value on, the running max is NaN
        arg = c.bind(arg)
        window = pl.when(arg.is_nan().cast(pl.UInt32).cum_sum() > 0).then(pl.lit(float("nan"))) \
            .otherwise(arg.cum_max())
    else:
        window = arg.cum_sum()
    if before:
        window = window.shift(1)
    window = window.over(CHAIN, order_by=POSITION)
    if before:
        window = window.fill_null(float("-inf") if use_max else 0.0)
    if use_max:
        window = pl.when(window == float("-inf")).then(pl.lit(0.0)).otherwise(window)
    return c.bind(window)  # once, as a column (inside a step run along chains: before its loop)


def _recurrent_chain(c: Compiler, node: T.Call, arg: pl.Expr, use_max: bool, before: bool) -> pl.Expr:
    """A chain call reading the step itself: its accumulator over earlier rows, kept in a column
    filled one chain position at a time (see `run_recurrent`)."""
    if not before:
        raise Unsupported(f"{node.function}() of the variable being defined")
    name = f"__acc.{node.pos}"
    c.chain_cols[name] = ("max" if use_max else "sum", arg)
    acc = pl.col(name)
    return pl.when(acc == float("-inf")).then(pl.lit(0.0)).otherwise(acc) if use_max else acc


# ---- no value: pending review (无值：待审核) --------------------------------------------------------
# A pending value is NaN in the claim frame, as in the numpy engine: arithmetic propagates it by
# IEEE rules in both; where Polars departs from numpy on NaN (comparisons, max, running max) the
# forms above say numpy's rule explicitly; it is written as null (`results`).

def _pending(c: Compiler, node: T.Call, active) -> pl.Expr:
    return pl.lit(float("nan"), pl.Float64)


def _is_pending(c: Compiler, node: T.Call, active) -> pl.Expr:
    return c.expr(node.args[0], active).cast(pl.Float64).is_nan().fill_null(True)


# ---- grouping (分组) ------------------------------------------------------------------------------

def _group(c: Compiler, node: T.Call, active) -> pl.Expr:
    """group(g), group_rule(g), …: one part of the grouping's assignment over every claim of the run
    (engine.run.grouping.assign, once per run), as a column of the claim frame; a row supplying the
    group has the rule "supplied" and no match (engine.compile.grouping.said_supplied)."""
    name, part = node.args[0].value, PARTS[node.function][0]
    column = f"__grouping.{name}.{part}"
    if column in c.claims.frame.columns or column in c.gathered:
        return pl.col(column)
    values = getattr(assignment(c.policy, c.claims, name), part)
    if part in ("rule", "match"):
        grouped = group_variables(c.policy.model.entities[c.big].variables, name)
        values = marked_supplied(np.asarray(values), [c.claims.supplied.get(v) for v in grouped], part)
    c.gathered[column] = pl.Series(column, np.asarray(values, dtype=float)) if part == "level" \
        else pl.Series(column, pl.from_arrow(pa.array(values, pa.string())))
    return pl.col(column)


def assignment(policy: Policy, claims: Claims, name: str) -> grouping.Assigned:
    """The groups of every claim by grouping `name`, from the claims' code fields (computed once)."""
    found = claims.assigned.get(name)
    if found is not None:
        return found
    rules = policy.groupings[name]
    entity = policy.model.entities[claims.big]
    n = claims.frame.height

    def field_values(role: str):
        field_name = rules.fields.get(role)
        if field_name is None:
            return None
        var = entity.variables[field_name]
        if not var.is_input:
            raise Unsupported(f"grouping {name} over the computed field {field_name}")
        if var.type == "codes":
            given = claims.codes.get(field_name)
            return given if given is not None else default_column(var, n)
        return claims.frame[field_name].to_numpy() if field_name in claims.frame.columns else default_column(var, n)
    diagnosis = field_values("diagnosis")
    found = grouping.assign(rules, diagnosis if diagnosis is not None else np.full(n, ""),
                            field_values("procedures"), field_values("secondary"))
    claims.assigned[name] = found
    return found


BATCH_FORMS: dict[str, Callable[[Compiler, T.Call, Any], pl.Expr]] = {
    "min": _elementwise(_min, True), "max": _elementwise(_max, True),
    "clamp": _elementwise(lambda x, lo, hi, bind: _min(_max(x, lo, bind=bind), hi, bind=bind), True),
    "abs": _elementwise(lambda x: x.abs()), "floor": _elementwise(lambda x: x.floor()),
    "ceil": _elementwise(lambda x: x.ceil()), "round": _elementwise(_round),
    "days_between": _elementwise(lambda a, b: _days(b, a)),
    "year": _elementwise(_year), "month": _elementwise(_month),
    "lookup": _lookup, "has": _has, "bands": _bands, "step": _step,
    "starts_with": _starts_with, "between": _between,
    "chain_max": _chain, "chain_max_before": _chain, "chain_sum": _chain, "chain_sum_before": _chain,
    "chain_position": _chain,
    "pending": _pending, "is_pending": _is_pending,
    **{function: _group for function in PARTS},
}


def install_batch_forms() -> None:
    """Give each built-in's registry entry its batch form (engine.compile.functions.Builtin.batch)."""
    for name, form in BATCH_FORMS.items():
        entry = FUNCTIONS.get(name)
        if entry is not None and entry.batch is not form:
            register(replace(entry, batch=form))


install_batch_forms()


# ---- running a round (按轮计算) ------------------------------------------------------------------

def add_chain_order(claims: Claims) -> None:
    """Chain id and position of every claim (Population.chain's order), as columns."""
    entity = claims.links.model.entities[claims.big]
    if entity.chain is None or CHAIN in claims.frame.columns:
        return
    n = claims.frame.height
    for name in entity.chain.order:  # the chain order fields, as the numpy engine sorts them
        if name in claims.frame.columns:
            claims.links.columns[claims.big][name] = claims.links.columns[claims.big].get(
                name, claims.frame[name].to_numpy().astype("datetime64[D]"))
    order = claims.links.chain(claims.big)
    group = claims.links._chain_groups(claims.big, entity.chain)
    chain = np.where(group >= 0, group, group.max(initial=-1) + 1 + np.arange(n))
    claims.frame = claims.frame.with_columns(pl.Series(CHAIN, chain), pl.Series(POSITION, order.position))


def run_round(policy: Policy, claims: Claims, steps: list[Step], state: SmallState, driver: Population,
              ctx: RunContext) -> None:
    """The round's claim steps added to the claim frame as one lazy query (a column per step, shared
    sub-expressions as temporary columns); warnings counted once, at the end of the round."""
    if not steps:
        return
    compiler = Compiler(policy, claims, state, driver)
    if any(_uses_chain(s) for s in steps):
        add_chain_order(claims)
    pipeline = Pipeline(claims)
    warned: list[Warned] = []
    for step in steps:
        if step.recurrent:
            warned += pipeline.collect(compiler)
            run_recurrent(compiler, step, ctx)
            continue
        compiler.variable = f"{claims.big}.{step.variable.name}"
        expr = compiler.expr(step.checked.node)
        pipeline.add(compiler, _finished(claims, step, expr, compiler))
    warned += pipeline.collect(compiler)
    count_warnings(claims, warned, ctx)
    claims.frame = claims.frame.drop([c for c in claims.frame.columns if c.startswith(TEMP)])


class Pipeline:
    """Columns added to the claim frame lazily, in order; collected when something must be read."""

    def __init__(self, claims: Claims):
        self.claims, self.lazy, self.warned = claims, None, []

    def add(self, compiler: Compiler, columns: list[pl.Expr]) -> None:
        lazy = self.lazy if self.lazy is not None else self.claims.frame.lazy()
        if compiler.gathered:
            lazy = lazy.with_columns(list(compiler.gathered.values()))
            compiler.gathered = {}
        for temp in compiler.temps:
            lazy = lazy.with_columns(temp)
        compiler.temps = []
        for column in columns:
            lazy = lazy.with_columns(column)
        self.lazy = lazy
        self.warned += compiler.warned
        compiler.warned = []

    def collect(self, compiler: Compiler) -> list[Warned]:
        """The frame with every added column; the warnings the added columns may raise."""
        self.add(compiler, [])
        self.claims.frame = self.lazy.collect()
        self.lazy = None
        warned, self.warned = self.warned, []
        return warned


def count_warnings(claims: Claims, warned: list[Warned], ctx: RunContext) -> None:
    """Count the rows of every possible warning in one pass over the claim frame."""
    if not warned:
        return
    counts = claims.frame.select(
        [w.count.alias(f"n{i}") for i, w in enumerate(warned)]
        + [w.example.alias(f"e{i}") for i, w in enumerate(warned) if w.example is not None])
    _record(warned, counts, ctx)


def _uses_chain(step: Step) -> bool:
    return any(isinstance(n, T.Call) and n.kind == "chain" for n in T.walk(step.checked.node))


def _finished(claims: Claims, step: Step, expr: pl.Expr, compiler: Compiler) -> list[pl.Expr]:
    """The step's column: its type, a value supplied in the claim file kept, non-finite → 0 (the
    raw value kept in a temporary column so that the warning counts it)."""
    var = step.variable
    name = var.name
    out = expr.cast(POLARS_TYPES[var.type])
    if name in claims.frame.columns:  # supplied on some rows: they win there
        out = pl.when(pl.col(name).is_not_null()).then(pl.col(name).cast(POLARS_TYPES[var.type])).otherwise(out)
    if var.type != "number":
        return [out.alias(name)]
    raw = f"{TEMP}raw.{name}"
    bad = pl.col(raw).is_infinite() if step.nullable else ~pl.col(raw).is_finite()  # pending (NaN) kept
    compiler.warned.append(Warned("non_finite", f"{claims.big}.{name}",
                                  "a value was not a finite number (overflow, 0/0 or a missing date); 0 used",
                                  "出现非有限数值（溢出、0/0 或缺少日期），按 0 计", bad.sum()))
    return [out.alias(raw), pl.when(bad).then(pl.lit(0.0)).otherwise(pl.col(raw)).alias(name)]


def _flush(claims: Claims, compiler: Compiler, pending: list[pl.Expr]) -> list[Warned]:
    """Add the parent values and temporaries read so far and the pending columns; the warnings
    they may raise."""
    pipeline = Pipeline(claims)
    pipeline.add(compiler, pending)
    pending.clear()
    return pipeline.collect(compiler)


def _record(warned: list[Warned], counts: pl.DataFrame, ctx: RunContext) -> None:
    for i, w in enumerate(warned):
        n = int(counts[f"n{i}"][0] or 0)
        if not n:
            continue
        example = counts[f"e{i}"][0] if w.example is not None else ""
        ctx.variable = w.variable
        en, zh = w.en.replace("{n}", str(n)).replace("{0}", str(example)), \
            w.zh.replace("{n}", str(n)).replace("{0}", str(example))
        ctx.warn(w.code, en, zh, n)


def run_recurrent(compiler: Compiler, step: Step, ctx: RunContext) -> None:
    """A step reading its own earlier values along the chain: one chain position at a time, all
    chains at once (as engine.run.evaluate._run_along_chains)."""
    claims, var = compiler.claims, step.variable
    name = var.name
    if name in claims.frame.columns:
        raise Unsupported(f"{name} supplied in the claim file and computed along chains")
    compiler.variable, compiler.recurrent = f"{claims.big}.{name}", step
    add_chain_order(claims)
    expr = compiler.expr(step.checked.node, pl.col(AT))
    accumulators = dict(compiler.chain_cols)
    compiler.chain_cols, compiler.recurrent = {}, None
    start = {n: float("-inf") if how == "max" else 0.0 for n, (how, _) in accumulators.items()}
    frame = claims.frame.with_columns(pl.lit(0.0 if var.type == "number" else None,
                                             POLARS_TYPES[var.type]).alias(name),
                                      *[pl.lit(v).alias(n) for n, v in start.items()])
    if compiler.gathered:
        frame = frame.with_columns(list(compiler.gathered.values()))
        compiler.gathered = {}
    lazy = frame.lazy()
    for temp in compiler.temps:  # the parts that do not depend on the chain: once, before the loop
        lazy = lazy.with_columns(temp)
    frame, compiler.temps = lazy.collect(), []
    warned, compiler.warned = compiler.warned, []
    length = int(frame[POSITION].max()) + 1 if frame.height else 0
    for p in range(length):
        at = pl.col(AT)
        frame = frame.with_columns((pl.col(POSITION) == p).alias(AT))
        if p:  # each accumulator from the previous row of the chain: its own value combined with the row's
            updates = []
            for n, (how, arg) in accumulators.items():
                combined = _max(pl.col(n), arg) if how == "max" else pl.col(n) + arg
                prev = combined.shift(1).over(CHAIN, order_by=POSITION)
                updates.append(pl.when(at).then(prev).otherwise(pl.col(n)).alias(n))
            frame = frame.with_columns(updates)
        counts = frame.select([w.count.alias(f"n{i}") for i, w in enumerate(warned)]
                              + [w.example.alias(f"e{i}") for i, w in enumerate(warned) if w.example is not None]) \
            if warned else None
        frame = frame.with_columns(pl.when(at).then(expr.cast(POLARS_TYPES[var.type])).otherwise(pl.col(name))
                                   .alias(name))
        if counts is not None:
            _record(warned, counts, ctx)
    if var.type == "number":  # a pending value (NaN) of a formula that may give none is kept
        bad = pl.col(name).is_infinite() if step.nullable else pl.col(name).is_nan() | pl.col(name).is_infinite()
        bad = frame.select(bad.sum()).item()
        if bad:
            ctx.variable = f"{claims.big}.{name}"
            ctx.warn("non_finite", "a value was not a finite number (overflow, 0/0 or a missing date); 0 used",
                     "出现非有限数值（溢出、0/0 或缺少日期），按 0 计", int(bad))
            frame = frame.with_columns(pl.when(~pl.col(name).is_infinite() if step.nullable
                                               else pl.col(name).is_finite())
                                       .then(pl.col(name)).otherwise(0.0).alias(name))
    claims.frame = frame.drop([*accumulators, AT], strict=False)


# ---- partial aggregates (部分汇总) -----------------------------------------------------------

def partials(policy: Policy, claims: Claims, keys: list[tuple], state: SmallState, driver: Population,
             ctx: RunContext) -> pa.Table:
    """Per parent: the exact limb sums, count, min and max of each aggregation of claims, the same
    rows engine.batch.partition.partials gives for a chunk."""
    from engine.batch.partition import PARTIAL_SCHEMA
    compiler = Compiler(policy, claims, state, driver)
    parts = []
    for key in keys:
        agg = find_aggregation(policy, key)
        compiler.variable = f"{key[0]}.{key[1]}"
        value = compiler.expr(agg.node.args[0]).cast(pl.Float64)
        where = compiler.expr(agg.node.where).cast(pl.Boolean) if agg.node.where is not None else pl.lit(True)
        count_warnings(claims, _flush(claims, compiler, []), ctx)
        got = claims.frame.select(value.alias("v"), where.alias("w"))
        n = claims.frame.height
        values = np.broadcast_to(got["v"].to_numpy(), (n,))
        idx = claims.links.parent_index(claims.big, agg.path)
        keep = (idx >= 0) & np.broadcast_to(got["w"].to_numpy(), (n,))
        parents = [str(i) for i in list(claims.links.ids[agg.parent])]
        parts.append(_partial_table(encode_key(key), parents, values[keep], idx[keep], len(parents)))
    return pa.concat_tables(parts) if parts else PARTIAL_SCHEMA.empty_table()


def results(claims: Claims, ids: pa.ChunkedArray, names: list[str], money: set[str]) -> pa.Table:
    """id and the claim results as Arrow, money rounded half-up to the fen and a pending value
    (NaN) written as null (as `write_entity`)."""
    arrays: dict[str, Any] = {"id": ids}
    for name in names:
        series = claims.frame[name]
        if name in money:
            arrays[name] = pa.array(round_half_up(series.to_numpy()), from_pandas=True)
        elif series.dtype == pl.Float64:
            arrays[name] = pa.array(series.to_numpy(), from_pandas=True)
        elif series.dtype == pl.String:
            arrays[name] = series.to_arrow().cast(pa.string())
        else:
            arrays[name] = series.to_arrow()
    return pa.table(arrays)


def unsupported(policy: Policy, rounds) -> str | None:
    """Why the Polars backend cannot settle this policy (None: it can): checks of claims, or a
    construct without a batch form in a claim formula or a claim aggregation."""
    big = rounds.big
    nodes = [n for group in rounds.claim_steps for s in group for n in T.walk(s.checked.node)]
    nodes += [n for c in policy.plan.checks if c.check.entity == big for n in T.walk(c.checked.node)]
    for group in rounds.aggregations:
        for agg in group:
            nodes += [n for part in (agg.node.args[0], agg.node.where) if part is not None for n in T.walk(part)]
    for node in nodes:
        if isinstance(node, T.Call) and node.kind != "edge" and getattr(FUNCTIONS.get(node.function), "batch",
                                                                        None) is None:
            return f"{node.function}() in a {big} formula"
        if isinstance(node, T.Call) and node.kind in ("aggregate", "table", "allocate"):
            return f"{node.function}() ({node.kind}) in a {big} formula"
    return None


def check_failures(policy: Policy, claims: Claims, ids: pa.ChunkedArray, state: SmallState, driver: Population,
                   ctx: RunContext) -> list[dict]:
    """The policy checks of claims, described as engine.run.policy_checks.describe describes them
    (rows named by id): a row fails where its check is not true."""
    from engine.run.policy_checks import FIRST_ROWS
    steps = [c for c in policy.plan.checks if c.check.entity == claims.big]
    compiler = Compiler(policy, claims, state, driver)
    tests = []
    for step in steps:
        compiler.variable = f"{claims.big}.check.{step.check.name}"
        tests.append(compiler.expr(step.checked.node).fill_null(False).not_().alias(step.check.name))
    count_warnings(claims, _flush(claims, compiler, []), ctx)
    if not tests or not claims.frame.height:
        return []
    failing = claims.frame.select(tests)
    out = []
    for step in steps:
        rows = np.flatnonzero(failing[step.check.name].to_numpy())
        if not len(rows):
            continue
        check = step.check
        first = [str(i) for i in ids.take(pa.array(rows[:FIRST_ROWS])).to_pylist()]
        paths = [f"{check.entity}[{i}]" for i in first]
        out.append({"check": check.name, "entity": check.entity, "severity": check.severity,
                    "path": paths[0], "message": check.message.en, "message_zh": check.message.zh,
                    "source": check.source, "assumed": check.assumed, "count": int(len(rows)),
                    "ids": first, "paths": paths})
    return out

"""numpy implementations of operators and built-in functions (内置函数的数组实现)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from engine.run import exact
from engine.run.frame import Frame
from engine.run.money import allocate, group_sum, out_of_range_groups, round_half_up

__all__ = ["allocate", "out_of_range_groups"]

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply,
    "and": np.logical_and, "or": np.logical_or,
    **exact.COMPARISONS,  # numbers on an edge fall on the side the rule states (engine/run/exact.py)
}


def _round(x, digits=0.0):
    return round_half_up(x, int(np.max(digits)) if np.ndim(digits) else int(digits))


def _clamp(x, low, high):
    return np.minimum(np.maximum(x, low), high)


def _days_between(a, b):
    return day_difference(b, a)


def _year(d):
    return _missing_as_nan(d, np.asarray(d).astype("datetime64[Y]").astype(np.int64) + 1970.0)


def _month(d):
    return _missing_as_nan(d, np.asarray(d).astype("datetime64[M]").astype(np.int64) % 12 + 1.0)


def _missing_as_nan(dates, values):
    """NaN where a date is missing (NaT), not the huge number NaT stands for: the step's
    `finite` check then gives 0 with a warning."""
    missing = np.isnat(np.asarray(dates))
    return np.where(missing, np.nan, values) if np.any(missing) else values


ELEMENTWISE_IMPL: dict[str, Callable[..., Any]] = {
    "min": lambda *a: _reduce(np.minimum, a), "max": lambda *a: _reduce(np.maximum, a),
    "clamp": _clamp, "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "round": _round,
    "days_between": _days_between, "year": _year, "month": _month,
}


def _reduce(ufunc, args):
    out = args[0]
    for a in args[1:]:
        out = ufunc(out, a)
    return out


def day_difference(a, b):
    """a − b in days, as a number."""
    days = np.asarray(a, dtype="datetime64[D]") - np.asarray(b, dtype="datetime64[D]")
    return _missing_as_nan(days, days.astype(float))


def divide(frame: Frame, a, b):
    """a / b; where b is 0 the result is 0 and the run gets a warning."""
    b_arr = np.asarray(b, dtype=float)
    zero = b_arr == 0
    if not np.any(zero):
        return np.divide(a, b_arr)
    count = int(np.sum(np.broadcast_to(zero, (frame.size,)))) if frame.size else 0
    if count:
        frame.ctx.warn("division_by_zero", "a division by zero gave 0", "除数为零，结果取 0", count)
    shape = np.broadcast_shapes(np.shape(a), b_arr.shape)
    out = np.zeros(shape)
    np.divide(np.broadcast_to(np.asarray(a, dtype=float), shape), np.broadcast_to(b_arr, shape),
              out=out, where=np.broadcast_to(~zero, shape))
    return out if out.ndim else float(out)


def gather(values: np.ndarray, idx: np.ndarray, default) -> np.ndarray:
    """values[idx], with `default` where idx is -1 (no parent)."""
    if len(values) == 0:
        return np.full(len(idx), default if default is not None else np.nan,
                       dtype=values.dtype if default is None else None)
    picked = values[np.maximum(idx, 0)]
    if np.all(idx >= 0):
        return picked
    if values.dtype.kind == "M":
        return np.where(idx >= 0, picked, np.datetime64("NaT"))
    return np.where(idx >= 0, picked, default)


def same_link(left: Callable, right: Callable, negate: bool) -> Callable[[Frame], np.ndarray]:
    """Two links compared as identities (rows of the same entity): equal when both name the same
    row; a missing link (-1) is equal to nothing, and `!=` is the negation of `==`."""
    def compare(frame: Frame) -> np.ndarray:
        a, b = np.asarray(left(frame)), np.asarray(right(frame))
        same = (a == b) & (a >= 0)
        return ~same if negate else same
    return compare


def _no_value(value) -> np.ndarray:
    """Where a number has no value (pending review: NaN)."""
    arr = np.asarray(value)
    return np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)


def compare_values(op: Callable, left: Callable, right: Callable) -> Callable[[Frame], Any]:
    """A comparison where a side may have no value: with no value it does not hold (`==` and `!=`
    alike), so a filter leaves such rows out and a check does not pass on them."""
    def compare(frame: Frame):
        a, b = left(frame), right(frame)
        return np.logical_and(op(a, b), ~(_no_value(a) | _no_value(b)))
    return compare


def choose_known(cond: Callable, then: Callable, other: Callable, operands: list[Callable]) -> Callable:
    """if-then-else whose condition compares values that may have none: where one has none the
    condition has no answer and the result has no value."""
    def pick(frame: Frame):
        unknown = np.zeros(frame.size, dtype=bool)
        for operand in operands:
            unknown |= np.broadcast_to(_no_value(operand(frame)), (frame.size,))
        result = choose(frame, cond(frame), then, other)
        if not unknown.any():
            return result
        out = np.array(np.broadcast_to(np.asarray(result, dtype=float), (frame.size,)))
        out[unknown] = np.nan
        return out
    return pick


def choose(frame: Frame, cond, then: Callable, other: Callable):
    """Lazy if-then-else: each branch is evaluated only on the rows that take it."""
    if np.ndim(cond) == 0:
        return then(frame) if cond else other(frame)
    if cond.all():
        return then(frame)
    if not cond.any():
        return other(frame)
    yes, no = np.flatnonzero(cond), np.flatnonzero(~cond)
    a, b = then(frame.subset(yes)), other(frame.subset(no))
    out = np.empty(frame.size, dtype=np.result_type(np.asarray(a), np.asarray(b)))
    out[yes], out[no] = a, b
    return out


def aggregate(how: str, values: np.ndarray, mask: np.ndarray | None, groups: np.ndarray, size: int):
    """Aggregate child values onto parent rows (`groups`: parent row of each child, -1 none)."""
    keep = groups >= 0 if mask is None else (groups >= 0) & mask
    g = groups[keep]
    if how == "count":
        return np.bincount(g, minlength=size).astype(float)
    vals = values[keep]
    if how in ("any", "all"):
        hits = np.bincount(g, weights=vals.astype(float), minlength=size)
        if how == "any":
            return hits > 0
        return hits == np.bincount(g, minlength=size)
    vals = vals.astype(float)
    if how == "sum":
        return group_sum(vals, g, size)
    counts = np.bincount(g, minlength=size)
    if how == "mean":
        sums = group_sum(vals, g, size)
        return np.divide(sums, counts, out=np.zeros(size), where=counts > 0)
    out = np.full(size, np.inf if how == "min" else -np.inf)
    (np.minimum if how == "min" else np.maximum).at(out, g, vals)
    out[counts == 0] = 0.0
    return out


class ChainAccumulator:
    """One chain call's accumulators during one step's run: for each row, the argument's value
    and the max or sum of the argument over the earlier rows of its chain ("before").

    Each row's "before" is computed once, from the previous row's (its own "before" combined
    with its value), so a chain of N rows costs N combinations, not N²; each row's argument is
    evaluated once. Rows whose "before" is known always include every earlier row of their
    chain, so a walk back stops at the first known row.
    """

    def __init__(self, size: int, use_max: bool):
        self.use_max = use_max
        self.start = -np.inf if use_max else 0.0
        self.value, self.has_value = np.zeros(size), np.zeros(size, dtype=bool)
        self.before, self.has_before = np.zeros(size), np.zeros(size, dtype=bool)
        self.queued = np.zeros(size, dtype=bool)  # rows met by a walk back (then known, or the run stopped)

    def values(self, frame: Frame, rows: np.ndarray, arg: Callable) -> np.ndarray:
        """The argument on `rows` (distinct), evaluated only where not yet known."""
        missing = rows[~self.has_value[rows]]
        if len(missing):
            at = frame.at(missing)
            self.value[missing] = at.full(arg(at)).astype(float)
            self.has_value[missing] = True
        return self.value[rows]

    def befores(self, frame: Frame, rows: np.ndarray, arg: Callable) -> np.ndarray:
        """The accumulator over the earlier rows of each row's chain (`rows` distinct)."""
        order = frame.pop.chain(frame.entity)
        unknown = rows[~self.has_before[rows]]
        if len(unknown):
            prev = order.prev[unknown]
            if np.all((prev < 0) | self.has_before[np.maximum(prev, 0)]):
                self._advance(frame, unknown, arg)  # the usual case: the previous rows are done
            else:
                self._fill(frame, unknown, arg)
        return self.before[rows]

    def _fill(self, frame: Frame, rows: np.ndarray, arg: Callable) -> None:
        """Accumulators of `rows` and of the earlier rows they need, one position at a time."""
        order, ctx = frame.pop.chain(frame.entity), frame.ctx
        pending = self._unknown_up_to(rows, order.prev, ctx)
        earlier = order.prev[pending]
        self.values(frame, earlier[earlier >= 0], arg)  # one evaluation for all of them
        by_position = pending[np.argsort(order.position[pending], kind="stable")]
        cuts = np.flatnonzero(np.diff(order.position[by_position])) + 1
        for count, group in enumerate(np.split(by_position, cuts)):
            if count % 256 == 255:
                ctx.check_deadline()
            self._advance(frame, group, arg)

    def _advance(self, frame: Frame, rows: np.ndarray, arg: Callable) -> None:
        """Accumulators of `rows` from their previous rows' (known): before + value there."""
        prev = frame.pop.chain(frame.entity).prev[rows]
        has = prev >= 0
        self.values(frame, prev[has], arg)
        safe = np.maximum(prev, 0)
        combined = _combine(self.use_max, self.before[safe], self.value[safe])
        self.before[rows] = np.where(has, combined, self.start)
        self.has_before[rows] = True

    def _unknown_up_to(self, rows: np.ndarray, prev: np.ndarray, ctx) -> np.ndarray:
        """`rows` and their earlier rows back to the first whose accumulator is known."""
        frontier, found, steps = rows, [], 0
        while len(frontier):
            steps += 1
            if steps % 256 == 0:
                ctx.check_deadline()
            self.queued[frontier] = True
            found.append(frontier)
            frontier = prev[frontier]
            frontier = frontier[frontier >= 0]
            frontier = frontier[~(self.has_before[frontier] | self.queued[frontier])]
        return np.concatenate(found)


def chain_function(name: str, arg: Callable | None) -> Callable[[Frame], Any]:
    """Functions along ordered chains: running max / sum with or without the row itself, and
    the position. Accumulators are kept in the run context for the step being run."""
    token = object()  # names this call's accumulators in the run context

    def run(frame: Frame):
        order = frame.pop.chain(frame.entity)
        rows = np.arange(frame.pop.sizes[frame.entity]) if frame.rows is None else frame.rows
        if name == "chain_position":
            return order.position[rows] + 1.0
        use_max = name.startswith("chain_max")
        state = frame.ctx.chain_state.get(token)
        if state is None or len(state.value) != frame.pop.sizes[frame.entity]:
            state = frame.ctx.chain_state[token] = ChainAccumulator(frame.pop.sizes[frame.entity], use_max)
        acc = state.befores(frame, rows, arg)
        if name in ("chain_max", "chain_sum"):
            acc = _combine(use_max, acc, state.values(frame, rows, arg))
        if use_max:
            acc = np.where(np.isneginf(acc), 0.0, acc)
        return acc
    return run


def _combine(use_max: bool, acc, values):
    return np.maximum(acc, values) if use_max else acc + values


def cumulative(amount, edges, rates, base=None):
    """Cumulative bands (分段累计): each band's rate applies to the part of the amount inside it."""
    x = np.asarray(amount, dtype=float)
    cuts = [np.asarray(e, dtype=float) * (1.0 if base is None else np.asarray(base, dtype=float))
            for e in edges]
    total = np.zeros(np.broadcast_shapes(x.shape, *[np.shape(r) for r in rates], *[c.shape for c in cuts]))
    low = 0.0
    for i, rate in enumerate(rates):
        high = cuts[i] if i < len(cuts) else np.inf
        if i < len(cuts):
            x = exact.snap(x, high)  # an amount on an edge up to float noise is on it
        piece = np.clip(x - low, 0.0, None)
        piece = np.minimum(piece, np.maximum(high - low, 0.0)) if i < len(cuts) else piece
        total = total + piece * np.asarray(rate, dtype=float)
        low = high
    return total


def step(frame: Frame, x, edges, values, left_closed: bool | list[bool]):
    """Threshold rule: the value of the band the amount falls in; an edge belongs to the upper
    band when it is left-closed (x >= edge), else to the lower one (x > edge). `left_closed` is
    one flag for every edge or one per edge."""
    x = np.asarray(x, dtype=float)
    sides = left_closed if isinstance(left_closed, list) else [left_closed] * len(edges)
    index = np.zeros(np.shape(x), dtype=np.int64)
    for edge, closed in zip(edges, sides, strict=True):
        index = index + (exact.greater_equal(x, edge) if closed else exact.greater(x, edge))
    if index.ndim == 0:
        return values[int(index)]
    picked = [frame.full(v) for v in values]
    return np.choose(index, picked) if len(picked) <= 32 else np.select(
        [index == i for i in range(1, len(picked))], picked[1:], default=picked[0])  # texts too


def _key_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


SMALL_TEXT = 4096  # up to this many rows, text is factorized by numpy (no Arrow conversion, no pandas import)


def _factorize(col: np.ndarray, cache: dict | None) -> tuple[np.ndarray, list[str]]:
    """Each row's index among the column's distinct values, and those values as key text; a
    column already factorized in this run is not sorted again (the cache keeps it alive, so
    its identity cannot be reused)."""
    if cache is not None and id(col) in cache and cache[id(col)][0] is col:
        return cache[id(col)][1], cache[id(col)][2]
    if col.dtype.kind in "UO" and len(col) > SMALL_TEXT:
        array = pa.array(col, type=pa.large_string(), from_pandas=True)
        if isinstance(array, pa.ChunkedArray):  # very large text columns come back in pieces
            array = array.combine_chunks()
        encoded = array.dictionary_encode()
        inverse = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = [_key_text(u) for u in encoded.dictionary.to_pylist()]
    else:  # numbers, and short text columns (sorting a few strings is quicker than handing them to Arrow)
        uniq, inverse = np.unique(col.astype(str) if col.dtype.kind == "O" else col, return_inverse=True)
        inverse, uniques = inverse.reshape(-1), [_key_text(u) for u in uniq.tolist()]
    if cache is not None:
        cache[id(col)] = (col, inverse, uniques)
    return inverse, uniques


def _codes(columns: list[np.ndarray], cache: dict | None = None) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Distinct key tuples of the rows and, for each row, the index of its tuple."""
    inverse_all, uniques_all = [], []
    for col in columns:
        inv, uniq = _factorize(col, cache)
        inverse_all.append(inv)
        uniques_all.append(uniq)
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    for inv, uniq in zip(inverse_all, uniques_all, strict=True):
        combined = combined * len(uniq) + inv
    distinct, where = np.unique(combined, return_inverse=True)
    tuples = []
    for code in distinct.tolist():
        parts = []
        for uniq in reversed(uniques_all):
            code, r = divmod(code, len(uniq))
            parts.append(uniq[r])
        tuples.append(tuple(reversed(parts)))
    return where.reshape(-1), tuples


def table_rows(frame: Frame, table, keys: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray]:
    """For each row, the table row of its key (-1: not in the table), the distinct key tuples and
    each row's tuple. Over all rows of an entity the answer is kept for the run, so that several
    lookups (and has()) on the same key columns factorize them once."""
    cache = frame.ctx.key_codes if frame.rows is None else None
    ident = ("rows", table.name, tuple(id(k) for k in keys))
    if cache is not None and ident in cache and all(a is b for a, b in zip(cache[ident][0], keys, strict=True)):
        return cache[ident][1]
    where, tuples = _codes(keys, cache)
    found = np.array([table.index.get(t, -1) for t in tuples], dtype=np.int64)
    answer = (found[where], tuples, where)
    if cache is not None:
        cache[ident] = (list(keys), answer)  # the key columns kept alive: their ids stay theirs
    return answer


def table_lookup(frame: Frame, table, column: str, keys: list[np.ndarray], default):
    """Vectorized lookup of `table.column` by key columns; a key not in the table gives
    `default`, or 0 / "" with a warning."""
    values = table.columns[column]
    is_number = table.column_type(column) == "number"
    if frame.size == 0:
        return np.zeros(0) if is_number else np.zeros(0, dtype=str)
    row, tuples, where = table_rows(frame, table, keys)
    source = np.asarray(values, dtype=float if is_number else str)
    missing = row < 0
    out = source[np.maximum(row, 0)] if len(source) else np.zeros(len(row))
    if missing.any():
        if default is None:
            first = tuples[int(where[np.flatnonzero(missing)[0]])]
            frame.ctx.warn("lookup_missing",
                           f"{int(missing.sum())} row(s) have a key not in table {table.name} (e.g. {', '.join(first)}); 0 used",
                           f"{int(missing.sum())} 行的键不在表 {table.name} 中（如 {', '.join(first)}），按 0 计",
                           int(missing.sum()))
            default = 0.0 if is_number else ""
        out = np.where(missing, default, out)
    return out


def table_has(frame: Frame, table, keys: list[np.ndarray]) -> np.ndarray:
    """Whether each row's key is in the table (has(table, key…))."""
    if frame.size == 0:
        return np.zeros(0, dtype=bool)
    return table_rows(frame, table, keys)[0] >= 0


def _per_distinct(frame: Frame | None, values, test: Callable[[str], bool]) -> np.ndarray:
    """`test` on each distinct text of a column (cached factorization over whole entities), spread
    back to the rows: a code column of a million claims holds a few thousand distinct codes."""
    array = np.asarray(values)
    if array.ndim == 0:
        return np.asarray(test(str(array.item())))
    if len(array) == 0:
        return np.zeros(0, dtype=bool)
    cache = frame.ctx.key_codes if frame is not None and frame.rows is None else None
    inverse, uniques = _factorize(array, cache)
    return np.array([test(u) for u in uniques], dtype=bool)[inverse]


def member(frame: Frame | None, values, items) -> np.ndarray:
    """`x in items` for a list parameter or a table column's values."""
    if isinstance(items, np.ndarray):
        items = items.tolist()
    array = np.asarray(values)
    if array.dtype.kind in "UO":
        wanted = {str(i) for i in items}
        return _per_distinct(frame, array, wanted.__contains__)
    return np.isin(array, np.asarray(items, dtype=float))


def starts_with(frame: Frame | None, values, prefixes) -> np.ndarray:
    """Whether each text starts with the prefix, or with one of a list of prefixes."""
    if isinstance(prefixes, np.ndarray) and prefixes.ndim == 1 and np.ndim(values) == 1 \
            and len(prefixes) == len(values) and prefixes.dtype.kind in "UO":  # a prefix per row
        return np.char.startswith(np.asarray(values, dtype=str), prefixes.astype(str))
    heads = tuple(str(p) for p in (prefixes if isinstance(prefixes, (list, tuple, np.ndarray)) else [prefixes]))
    return _per_distinct(frame, values, lambda text: text.startswith(heads))


def between(frame: Frame | None, x, low, high, is_text: bool) -> np.ndarray:
    """low <= x <= high. For texts (code ranges such as C00–C97) the code's first len(high)
    characters are compared with `high`, so sub-codes (C97.1) are inside the range."""
    if not is_text:
        return np.logical_and(np.greater_equal(x, low), np.less_equal(x, high))
    if np.ndim(low) == 0 and np.ndim(high) == 0:
        lo, hi = str(np.asarray(low).item()), str(np.asarray(high).item())
        return _per_distinct(frame, x, lambda code: lo <= code and code[:len(hi)] <= hi)
    inside = np.frompyfunc(lambda code, lo, hi: str(lo) <= str(code) and str(code)[:len(str(hi))] <= str(hi), 3, 1)
    return inside(x, low, high).astype(bool)


def map_lookup(frame: Frame, name: str, mapping: dict, keys) -> np.ndarray:
    """Value of a parameter by category for each key; an unknown category gives 0 and a warning."""
    keys = frame.full(keys)
    if len(keys) == 0:
        return np.zeros(0)
    where, tuples = _codes([keys], frame.ctx.key_codes if frame.rows is None else None)
    table = [mapping.get(t[0]) for t in tuples]
    missing = [t[0] for t, v in zip(tuples, table, strict=True) if v is None]
    if missing:
        count = int(np.isin(where, [i for i, v in enumerate(table) if v is None]).sum())
        frame.ctx.warn("category_missing",
                       f"parameter {name} has no value for category {missing[0]}; 0 used",
                       f"参数 {name} 没有类别 {missing[0]} 的取值，按 0 计", count)
    filled = np.asarray([0.0 if v is None else v for v in table])
    return filled[where]


def per_version(frame: Frame, name: str, apply: Callable[[Any, Frame], Any]):
    """`apply(value, rows)` with the parameter's value in force on each row's date: once over the
    whole frame when there is one version, else once per version over the rows it covers."""
    versions = frame.ctx.versions(name)
    if len(versions) == 1:
        return apply(versions[0], frame)
    idx = frame.ctx.parameter(name).version_index(frame.dates())
    parts = {int(v): apply(versions[int(v)], frame.subset(np.flatnonzero(idx == v))) for v in np.unique(idx)}
    out = np.empty(frame.size, dtype=np.result_type(*[np.asarray(p) for p in parts.values()]))
    for v, part in parts.items():
        out[idx == v] = part
    return out

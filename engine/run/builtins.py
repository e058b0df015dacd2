"""numpy implementations of operators and built-in functions (内置函数的数组实现)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from engine.run.frame import Frame
from engine.run.money import allocate, group_sum, round_half_up

__all__ = ["allocate"]

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply,
    "and": np.logical_and, "or": np.logical_or,
    "==": operator.eq, "!=": operator.ne, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}


def _round(x, digits=0.0):
    return round_half_up(x, int(np.max(digits)) if np.ndim(digits) else int(digits))


def _clamp(x, low, high):
    return np.minimum(np.maximum(x, low), high)


def _days_between(a, b):
    return day_difference(b, a)


def _year(d):
    return np.asarray(d).astype("datetime64[Y]").astype(np.int64) + 1970.0


def _month(d):
    return np.asarray(d).astype("datetime64[M]").astype(np.int64) % 12 + 1.0


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
    return (np.asarray(a, dtype="datetime64[D]") - np.asarray(b, dtype="datetime64[D]")).astype(float)


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


def chain_function(name: str, arg: Callable | None) -> Callable[[Frame], Any]:
    """Functions along ordered chains, vectorized across chains, looping over positions only."""
    def run(frame: Frame):
        order = frame.pop.chain(frame.entity)
        rows = np.arange(frame.pop.sizes[frame.entity]) if frame.rows is None else frame.rows
        if name == "chain_position":
            return order.position[rows] + 1.0
        use_max = name.startswith("chain_max")
        acc = np.full(len(rows), -np.inf if use_max else 0.0)
        if name in ("chain_max", "chain_sum"):
            acc = _combine(use_max, acc, frame.full(arg(frame)).astype(float))
        cur = order.prev[rows]
        active = np.flatnonzero(cur >= 0)
        while len(active):
            earlier = cur[active]
            values = Frame(frame.pop, frame.entity, frame.ctx, earlier)
            acc[active] = _combine(use_max, acc[active], values.full(arg(values)).astype(float))
            cur[active] = order.prev[earlier]
            active = active[cur[active] >= 0]
        if use_max:
            acc[np.isneginf(acc)] = 0.0
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
        index = index + (x >= edge if closed else x > edge)
    if index.ndim == 0:
        return values[int(index)]
    picked = [frame.full(v) for v in values]
    return np.choose(index, picked) if len(picked) <= 32 else np.select(
        [index == i for i in range(len(picked))], picked)


def _key_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _factorize(col: np.ndarray, cache: dict | None) -> tuple[np.ndarray, list[str]]:
    """Each row's index among the column's distinct values, and those values as key text; a
    column already factorized in this run is not sorted again (the cache keeps it alive, so
    its identity cannot be reused)."""
    if cache is not None and id(col) in cache and cache[id(col)][0] is col:
        return cache[id(col)][1], cache[id(col)][2]
    if col.dtype.kind in "UO":
        array = pa.array(col, type=pa.large_string(), from_pandas=True)
        if isinstance(array, pa.ChunkedArray):  # very large text columns come back in pieces
            array = array.combine_chunks()
        encoded = array.dictionary_encode()
        inverse = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = [_key_text(u) for u in encoded.dictionary.to_pylist()]
    else:
        uniq, inverse = np.unique(col, return_inverse=True)
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

"""Value checks shared by JSON situations and batch files: ids, link values, numbers (输入值检查).

Each rule is written once as a scalar check (a JSON value) with a vectorised twin (a column of a
batch file) that gives the same verdict and the same bilingual message.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.model.model import Model
from engine.model.spec import Variable
from engine.settings import LIMITS

MAX_ID_CHARS = 200
JOIN = "|"  # joins the parts of a derived id: account "H1|F"
Problem = tuple[str, str]  # (en, zh)
# an id that certainly passes `id_problem`: printable ASCII, 1…MAX_ID_CHARS long, no space at either end
# (and no JOIN where ids are joined); any other value is judged by `id_problem` itself
PLAIN = rf"^[!-~](?:[ -~]{{0,{MAX_ID_CHARS - 2}}}[!-~])?$"
PLAIN_JOINED = rf"^[!-{{}}~](?:[ -{{}}~]{{0,{MAX_ID_CHARS - 2}}}[!-{{}}~])?$"
LARGE_COLUMN = 100_000  # from this many rows, duplicates are looked for with Polars (hashing on every core)


def id_problem(text: str, joined: bool = False) -> Problem | None:
    """Why `text` cannot be an id or a link value, or None. Printable text only, no leading or
    trailing whitespace, at most MAX_ID_CHARS characters; `joined`: no '|' either."""
    if text == "":
        return "must not be empty", "不能为空"
    if len(text) > MAX_ID_CHARS:
        return (f"is {len(text)} characters long; at most {MAX_ID_CHARS} are accepted",
                f"长度为 {len(text)} 个字符，最多 {MAX_ID_CHARS} 个")
    bad = next((c for c in text if not c.isprintable() and c != " "), None)
    if bad is not None:
        return (f"contains the unprintable character U+{ord(bad):04X}; ids are printable text",
                f"含不可打印字符 U+{ord(bad):04X}；id 只能是可打印文本")
    if text != text.strip():
        return "must not start or end with a space", "首尾不能有空格"
    if joined and JOIN in text:
        return (f"must not contain '{JOIN}', which joins the parts of a derived id (H1{JOIN}F)",
                f"不能含“{JOIN}”（它用于连接派生 id 的各部分，如 H1{JOIN}F）")
    return None


def id_faults(values: pa.Array | pa.ChunkedArray, joined: bool = False,
              optional: bool = False) -> list[tuple[np.ndarray, Problem]]:
    """Vectorised `id_problem` over a text column: (bad rows, problem) per problem found.
    Printable ASCII without edge spaces passes in Arrow; each other distinct value is judged by
    `id_problem` itself. `optional` (link values): null and '' mean no link; else null is a fault."""
    text = _text(values)
    absent = text.is_null().to_numpy(zero_copy_only=False) if text.null_count else np.zeros(len(text), bool)
    plain = pc.match_substring_regex(text, PLAIN_JOINED if joined else PLAIN)
    if plain.null_count:  # (fill_null is slow on booleans even when there is nothing to fill)
        plain = pc.fill_null(plain, True)  # nulls are judged below
    found: list[tuple[np.ndarray, Problem]] = []
    if not optional and absent.any():
        found.append((np.flatnonzero(absent), ("must be given on every row", "每行都必须提供")))
    by_problem: dict[Problem, list[str]] = {}
    for value in pc.unique(pc.filter(text, pc.invert(plain))).to_pylist():
        problem = None if value is None or optional and value == "" else id_problem(value, joined)
        if problem is not None:
            by_problem.setdefault(problem, []).append(value)
    for problem, bad in by_problem.items():
        found.append((np.flatnonzero(pc.fill_null(pc.is_in(text, pa.array(bad, pa.string())), False)
                                     .to_numpy(zero_copy_only=False)), problem))
    return found


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    text = pc.cast(values, pa.string())
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def duplicate_rows(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows whose id already appeared on an earlier row (compared exactly, as text)."""
    text = _text(ids)
    if len(text) >= LARGE_COLUMN:
        import polars as pl  # only for large files: a JSON situation never waits for its import
        distinct = pl.from_arrow(text).n_unique()
    else:
        distinct = len(pc.unique(text))
    if distinct == len(text):
        return np.zeros(0, dtype=np.int64)
    codes = pc.dictionary_encode(text).indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    seen = np.zeros(len(codes), dtype=bool)
    seen[first] = True
    return np.flatnonzero(~seen)


def joined_links(model: Model) -> set[tuple[str, str]]:
    """(entity, link) whose values are joined with '|' into the ids of a derived entity."""
    return {(e.derived.source, k) for e in model.entities.values()
            if e.derived and len(e.derived.key) > 1 for k in e.derived.key}


def _number_rules(var: Variable) -> list[tuple[Callable, Callable, Callable]]:
    """(scalar test, vector test, message of the value) for each rule, in the order they apply."""
    limit = LIMITS.amount
    rules = [(lambda v: not math.isfinite(v), lambda a: ~np.isfinite(a),
              lambda v: ("must be a finite number", "应为有限数字")),
             (lambda v: abs(v) > limit, lambda a: np.abs(a) > limit,
              lambda v: (f"{v:g} is beyond the largest amount accepted ({limit:g}, MEDPAY_MAX_AMOUNT)",
                         f"{v:g} 超出可接受的最大数值（{limit:g}）"))]
    if var.minimum is not None:
        low = var.minimum
        rules.append((lambda v: v < low, lambda a: a < low,
                      lambda v: (f"must be at least {low:g}, not {v:g}", f"不能小于 {low:g}（给出 {v:g}）")))
    return rules


def number_problem(var: Variable, value: float) -> Problem | None:
    """Why a number cannot be the value of `var`: not finite, beyond MEDPAY_MAX_AMOUNT, below
    the field's minimum; None when it can."""
    for scalar, _, message in _number_rules(var):
        if scalar(value):
            return message(value)
    return None


def number_faults(var: Variable, values: np.ndarray, given: np.ndarray) -> list[tuple[np.ndarray, Problem]]:
    """Vectorised `number_problem` over the given cells of a column: (bad rows, problem) per rule,
    the problem worded for the first bad row."""
    out, left = [], given.copy()
    with np.errstate(invalid="ignore"):
        for _, vector, message in _number_rules(var):
            rows = np.flatnonzero(left & vector(values))
            if len(rows):
                out.append((rows, message(float(values[rows[0]]))))
                left[rows] = False
    return out

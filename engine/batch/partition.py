"""What runs on one slice of claims: the local engine on a chunk or a Spark partition (分片计算).

A slice is an Arrow table of claims plus the small entities' columns (broadcast on Spark).
The same population builder and `run_step` as a whole run are used, so no rule has a second
implementation. Pure functions of their inputs: chunked local settlement and Spark share them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.batch.io import entity_columns
from engine.compile.compiler import Compiler
from engine.compile.functions import FUNCTIONS
from engine.dsl import typed as T
from engine.errors import InputFault
from engine.plan.rounds import Aggregation
from engine.policy.spec import Policy
from engine.run import exact
from engine.run.builtins import gather
from engine.run.columns import (
    EntityColumns,
    always_required,
    build_population,
    date_window,
    input_readers,
    outside,
    outside_warning,
    required_words,
    rows_needing,
)
from engine.run.evaluate import run_step
from engine.run.frame import Frame, RunContext
from engine.run.money import round_half_up
from engine.run.population import Population

# One row per (aggregation, parent) with limb null: the count, min and max; one row per (aggregation,
# parent, limb position) with the exact integer sum of that limb (engine/run/exact.py). Limb sums of
# partitions add up as integers, so any partitioning gives the sum of a whole run.
PARTIAL_SCHEMA = pa.schema([("key", pa.string()), ("parent", pa.string()), ("limb", pa.int64()),
                            ("value", pa.int64()), ("rows", pa.int64()),
                            ("low", pa.float64()), ("high", pa.float64())])
PARTIAL_SPARK_SCHEMA = "key string, parent string, limb long, value long, rows long, low double, high double"
ARROW_TYPES = {"number": pa.float64(), "bool": pa.bool_(), "string": pa.string(), "date": pa.date32()}


@dataclass
class SmallState:
    """The small entities as the driver has them: ids, parent links, and every column so far."""

    ids: dict[str, list[str]]
    links: dict[str, dict[str, list[str]]]
    columns: dict[str, dict[str, np.ndarray]]


def state_of(pop: Population, big: str) -> SmallState:
    """Snapshot the driver's small entities (all but `big`) for broadcasting."""
    ids, links, columns = {}, {}, {}
    for name, entity in pop.model.entities.items():
        if name == big:
            continue
        ids[name] = [str(i) for i in list(pop.ids[name])]
        links[name] = {link: ids_of(pop, target, pop.links[(name, link)])
                       for link, target in entity.links.items() if (name, link) in pop.links}
        columns[name] = dict(pop.columns[name])
    return SmallState(ids, links, columns)


def ids_of(pop: Population, entity: str, index: np.ndarray) -> list[str]:
    names = [str(i) for i in list(pop.ids[entity])]
    return ["" if i < 0 else names[i] for i in index.tolist()]


def population(policy: Policy, table: pa.Table, state: SmallState, period_end: str, big: str,
               done: list[str]) -> Population:
    """The partition's population: its claims, the broadcast small entities, earlier claim results."""
    model = policy.model
    data = {}
    for name, ids in state.ids.items():
        if model.entities[name].derived:
            continue
        cols = EntityColumns(np.array(ids, dtype=object))
        cols.links = {k: np.array(v, dtype=str) for k, v in state.links.get(name, {}).items()}
        data[name] = cols
    data[big] = entity_columns(table, model.entities[big], "claims")
    pop, _ = build_population(model, data, np.datetime64(period_end, "D"))
    install(pop, state)
    for var in done:  # results of earlier passes arrive as columns of the claim table
        values, _ = pop.supplied[big].pop(var)
        pop.columns[big][var] = values
    return pop


def install(pop: Population, state: SmallState) -> None:
    """Put the small entities' current columns (inputs and results so far) into a slice's population."""
    model = pop.model
    for name, columns in state.columns.items():
        if model.entities[name].derived:
            where = {rid: i for i, rid in enumerate(state.ids[name])}
            pick = np.array([where.get(str(r), -1) for r in list(pop.ids[name])], dtype=np.int64)
            for var, col in columns.items():
                pop.columns[name][var] = gather(col, pick, model.entities[name].variables[var].default_value())
        else:
            pop.columns[name].update(columns)


def evaluate_round(policy: Policy, table: pa.Table, state: SmallState, period_end: str, big: str,
                   done: list[str], step_names: list[str], ctx: RunContext | None = None) -> pa.Table:
    """Evaluate one round's claim steps over a slice; returns the table with their columns."""
    pop = population(policy, table, state, period_end, big, done)
    return _evaluate(policy, pop, table, big, step_names, ctx or RunContext(policy))


def run_steps(policy: Policy, pop: Population, big: str, step_names: list[str], ctx: RunContext) -> None:
    for name in step_names:
        run_step(policy.plan.by_key[(big, name)], pop, ctx)


def _evaluate(policy: Policy, pop: Population, table: pa.Table, big: str, step_names: list[str],
              ctx: RunContext) -> pa.Table:
    run_steps(policy, pop, big, step_names, ctx)
    for name in step_names:
        var = policy.model.entities[big].variables[name]
        array = pa.array(pop.columns[big][name], ARROW_TYPES[var.type]) if var.type != "date" else \
            pa.array(pop.columns[big][name].astype("datetime64[D]"), pa.date32())
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


def find_aggregation(policy: Policy, key: tuple) -> Aggregation:
    entity, name, pos = key
    step = policy.plan.by_key[(entity, name)]
    for node in T.walk(step.checked.node):
        if isinstance(node, T.Call) and node.kind == "aggregate" and node.pos == pos:
            return Aggregation(key, step, node, list(node.path))
    raise KeyError(key)


def partial_aggregates(policy: Policy, table: pa.Table, state: SmallState, period_end: str, big: str,
                       done: list[str], keys: list[tuple], ctx: RunContext | None = None) -> pa.Table:
    """Per parent row of this slice: sum, count, min and max of each aggregation's values."""
    pop = population(policy, table, state, period_end, big, done)
    return partials(policy, pop, big, keys, ctx or RunContext(policy))


def run_chunk(policy: Policy, table: pa.Table, state: SmallState, period_end: str, big: str, done: list[str],
              step_names: list[str], keys: list[tuple], ctx: RunContext) -> tuple[pa.Table, pa.Table]:
    """Both at once on one chunk (one population built): the round's steps, then the partials.
    What the run context cached for this chunk (factorized keys, its grouping) is dropped after it:
    each cache entry holds its chunk's columns alive, and chunks exist to bound memory."""
    with chunk_caches(ctx):
        pop = population(policy, table, state, period_end, big, done)
        table = _evaluate(policy, pop, table, big, step_names, ctx) if step_names else table
        return table, partials(policy, pop, big, keys, ctx)


@contextmanager
def chunk_caches(ctx: RunContext) -> Iterator[None]:
    """Entries the block adds to the run context's key cache are removed when it ends."""
    before = set(ctx.key_codes)
    try:
        yield
    finally:
        for key in set(ctx.key_codes) - before:
            del ctx.key_codes[key]


def partials(policy: Policy, pop: Population, big: str, keys: list[tuple], ctx: RunContext) -> pa.Table:
    compiler = Compiler(policy)
    frame = Frame(pop, big, ctx)
    parts = []
    for key in keys:
        agg = find_aggregation(policy, key)
        values = frame.full(compiler.expr(agg.node.args[0])(frame)).astype(float)
        keep = pop.parent_index(big, agg.path) >= 0
        if agg.node.where is not None:
            keep &= frame.full(compiler.expr(agg.node.where)(frame)).astype(bool)
        groups = pop.parent_index(big, agg.path)[keep]
        size = pop.sizes[agg.parent]
        parts.append(_partial_table(encode_key(key), [str(i) for i in list(pop.ids[agg.parent])],
                                    values[keep], groups, size))
    return pa.concat_tables(parts) if parts else PARTIAL_SCHEMA.empty_table()


def _partial_table(key: str, parent_ids: list[str], values: np.ndarray, groups: np.ndarray, size: int) -> pa.Table:
    """One aggregation's partial rows: a stats row per parent present, a row per nonzero limb sum."""
    rows = np.bincount(groups, minlength=size)
    low, high = np.full(size, np.inf), np.full(size, -np.inf)
    with np.errstate(invalid="ignore"):  # a value with no value (NaN) makes low and high NaN: combine() sees it
        np.minimum.at(low, groups, values)
        np.maximum.at(high, groups, values)
    sums, base = exact.partial_sums(np.where(np.isnan(values), 0.0, values), groups, size)
    present = np.flatnonzero(rows > 0)
    parent, limb = np.nonzero(sums)
    n, m = len(present), len(parent)
    return pa.table({"key": pa.array([key] * (n + m), pa.string()),
                     "parent": pa.array([parent_ids[i] for i in present.tolist() + parent.tolist()], pa.string()),
                     "limb": pa.array([None] * n + (limb + base).tolist(), pa.int64()),
                     "value": np.concatenate([np.zeros(n, np.int64), sums[parent, limb].astype(np.int64)]),
                     "rows": np.concatenate([rows[present], np.zeros(m, np.int64)]).astype(np.int64),
                     "low": np.concatenate([low[present], np.full(m, np.inf)]),
                     "high": np.concatenate([high[present], np.full(m, -np.inf)])}, schema=PARTIAL_SCHEMA)


def _numeric(how: str, total: np.ndarray, rows: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    if how == "sum":
        return total
    if how == "mean":
        return np.divide(total, rows, out=np.zeros(len(rows)), where=rows > 0)
    return low if how == "min" else high


def _no_value_where(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """As locally: a total that took a value with no value has none."""
    return np.where(missing, np.nan, values) if missing.any() else values


def encode_key(key: tuple) -> str:
    return f"{key[0]}.{key[1]}@{key[2]}"


def combine_aggregation(agg: Aggregation, parent_ids: list[str], partials: list[tuple]) -> np.ndarray:
    """An aggregation's values over the driver's parent rows, combined as its built-in's registry
    entry says (sum, count, mean, min, max, any, all)."""
    return combine(FUNCTIONS[agg.node.function].partial, parent_ids, partials)


def combine(how: str, parent_ids: list[str], partials: list[tuple]) -> np.ndarray:
    """The aggregation over the driver's parent rows from partial rows (parent, limb, value, rows,
    low, high) of any number of partitions: exact sums, as a local run sums."""
    where = {pid: i for i, pid in enumerate(parent_ids)}
    size = len(parent_ids)
    rows, low, high = np.zeros(size), np.full(size, np.inf), np.full(size, -np.inf)
    missing = np.zeros(size, dtype=bool)  # a partition took a value with no value (pending review)
    limbs: dict[int, dict[int, int]] = {}
    for parent, limb, value, n, lo, hi in partials:
        i = where.get(parent)
        if i is None:
            continue
        if limb is None:
            rows[i] += n
            missing[i] |= lo != lo or hi != hi
            low[i], high[i] = min(low[i], lo), max(high[i], hi)
        else:
            by_limb = limbs.setdefault(i, {})
            by_limb[int(limb)] = by_limb.get(int(limb), 0) + int(value)
    total = np.zeros(size)
    for i, by_limb in limbs.items():
        base = min(by_limb)
        total[i] = exact.integer_to_float(
            sum(v << (exact.LIMB_BITS * (b - base)) for b, v in by_limb.items()), base)
    low[rows == 0], high[rows == 0] = 0.0, 0.0
    if how in ("sum", "mean", "min", "max"):
        return _no_value_where(_numeric(how, total, rows, low, high), missing)
    if how == "count":
        return rows
    if how == "any":
        return total > 0
    return total == rows  # all: every row true (an empty group is true, as locally)


def round_money(batch: pa.RecordBatch, money: list[str]) -> pa.RecordBatch:
    """Money columns rounded half-up to the fen with the engine's own rounding, as `settle` writes;
    a number with no value (pending review: NaN while the passes run) written as null."""
    arrays = []
    for i, name in enumerate(batch.schema.names):
        column = batch.column(i)
        if pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False)
            column = pa.array(round_half_up(values) if name in money else values, column.type, from_pandas=True)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def derived_keys(policy: Policy, big: str, columns: list[str]) -> list[str]:
    """The claim columns that define the derived entities the plan computes on: links (accounts)
    and the date fields whose month keys a month entity (fund_month)."""
    keys = sorted({p.field for e in policy.model.entities.values() if e.derived and e.derived.source == big
                   and any(s.variable.entity == e.name for s in policy.plan.steps) for p in e.derived.parts})
    return [k for k in keys if k in columns]


def driver_population(policy: Policy, small: dict[str, EntityColumns], big: str, keys: list[str],
                      rows: list[tuple], period_end: str) -> Population:
    """The small entities, plus the entities derived from claims built from their distinct keys
    (one stand-in claim per key), for the driver's stages."""
    stand_in = EntityColumns(np.array([f"k{i}" for i in range(len(rows))], dtype=object))
    fields = policy.model.entities[big].variables
    for j, key in enumerate(keys):
        if key in fields and fields[key].type == "date":  # a month key: the first day of its month
            stand_in.values[key] = np.array([np.datetime64("NaT") if r[j] is None else np.datetime64(r[j], "D")
                                             for r in rows], dtype="datetime64[D]")
            continue
        stand_in.links[key] = np.array(["" if r[j] is None else str(r[j]) for r in rows], dtype=str)
    pop, _ = build_population(policy.model, {**small, big: stand_in}, np.datetime64(period_end, "D"))
    return pop


# ---- inputs of a batch: rows outside the period, required inputs (批量输入检查) -------------------

def claims_in_period(policy: Policy, claims: pa.Table, big: str, start, end) -> tuple[pa.Table, dict | None]:
    """The claims dated inside the period and the policy's effective dates, and the warning for
    the others (None when every claim is inside)."""
    date = policy.model.entities[big].date
    if not date or date not in claims.column_names or not claims.num_rows:
        return claims, None
    window = date_window(policy, start, end)
    dates = claims[date]
    if not (pa.types.is_date(dates.type) or pa.types.is_timestamp(dates.type)):
        dates = pc.cast(dates, pa.date32())
    out = outside(dates.to_numpy(zero_copy_only=False).astype("datetime64[D]"), window)
    if not out.any():
        return claims, None
    ids = pc.cast(claims["id"], pa.string()).filter(pa.array(out)).slice(0, 20).to_pylist()
    return claims.filter(pa.array(~out)), outside_warning(big, date, window, ids, int(out.sum()))


def given_masks(small: dict[str, EntityColumns], claims: pa.Table, big: str) -> dict[tuple[str, str], np.ndarray]:
    """For each column present, the rows where it holds a value."""
    masks = {(name, var): np.asarray(mask, bool) for name, cols in small.items() for var, mask in cols.given.items()}
    for column in claims.column_names:
        masks[(big, column)] = ~claims[column].is_null().to_numpy(zero_copy_only=False)
    return masks


def required_faults_of_files(policy: Policy, masks: dict[tuple[str, str], np.ndarray], sizes: dict[str, int],
                             files: dict[str, str], most: int = 5,
                             needed: dict[tuple[str, str], np.ndarray] | None = None) -> list[InputFault]:
    """Inputs without a default that the settlement needs, missing in a file: the file and column,
    and the first rows (0 = the first data row). Without `needed` (engine.run.demand: the rows
    where each input is needed by branch), every row where a formula reading it runs needs it."""
    wanted = {s.key for s in policy.plan.steps if sizes.get(s.variable.entity, 0)}
    faults = []
    needs = input_readers(policy, wanted, lambda key: key in masks and bool(masks[key].all()))
    needs.update({key: [] for key in always_required(policy.model)})
    for (entity, name), readers in sorted(needs.items()):
        if not sizes.get(entity):
            continue
        mask = masks.get((entity, name))
        rows = np.arange(sizes[entity]) if mask is None else np.flatnonzero(~mask)
        if readers:
            rows = rows_needing((entity, name), readers, rows, masks.get)
            if needed is not None and (entity, name) in needed:
                rows = rows[needed[(entity, name)][:sizes[entity]][rows]]
        if len(rows):
            faults.append(file_fault(entity, name, readers[0] if readers else None, rows, mask is None,
                                     files.get(entity, entity), most))
    return faults


def file_fault(entity: str, name: str, reader: tuple[str, str] | None, rows: np.ndarray, absent: bool,
               file: str, most: int) -> InputFault:
    """A required column missing from a file, or empty on some rows that need it."""
    en, zh = required_words(entity, name, reader)
    shown = ", ".join(str(r) for r in rows[:most].tolist()) + (", …" if len(rows) > most else "")
    what = "the column is missing" if absent else f"{len(rows)} row(s) empty, first rows {shown}"
    return InputFault(f"{file}:{name}", f"{en}: {what}",
                      f"{zh}：" + ("缺少该列" if absent else f"{len(rows)} 行为空，前几行 {shown}"))

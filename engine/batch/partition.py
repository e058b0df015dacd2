"""What runs on one slice of claims: the local engine on a chunk or a Spark partition (分片计算).

A slice is an Arrow table of claims plus the small entities' columns (broadcast on Spark).
The same population builder and `run_step` as a whole run are used, so no rule has a second
implementation. Pure functions of their inputs: chunked local settlement and Spark share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.batch.io import entity_columns
from engine.compile.compiler import Compiler
from engine.compile.functions import FUNCTIONS
from engine.dsl import typed as T
from engine.plan.rounds import Aggregation
from engine.policy.spec import Policy
from engine.run.builtins import gather
from engine.run.columns import EntityColumns, build_population
from engine.run.evaluate import run_step
from engine.run.frame import Frame, RunContext
from engine.run.money import MICRO, micro_units, round_half_up
from engine.run.population import Population

PARTIAL_SCHEMA = pa.schema([("key", pa.string()), ("parent", pa.string()), ("total", pa.float64()),
                            ("micro", pa.int64()), ("exact", pa.bool_()), ("rows", pa.int64()),
                            ("low", pa.float64()), ("high", pa.float64())])
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
    """Both at once on one chunk (one population built): the round's steps, then the partials."""
    pop = population(policy, table, state, period_end, big, done)
    table = _evaluate(policy, pop, table, big, step_names, ctx) if step_names else table
    return table, partials(policy, pop, big, keys, ctx)


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
        rows = np.bincount(groups, minlength=size)
        total = np.bincount(groups, weights=values[keep], minlength=size)
        q = micro_units(values[keep])
        micro = np.zeros(size, dtype=np.int64)
        if q is not None:
            np.add.at(micro, groups, q)
        low, high = np.full(size, np.inf), np.full(size, -np.inf)
        np.minimum.at(low, groups, values[keep])
        np.maximum.at(high, groups, values[keep])
        present = np.flatnonzero(rows > 0)
        parent_ids = [str(i) for i in list(pop.ids[agg.parent])]
        parts.append(pa.table({"key": pa.array([encode_key(key)] * len(present), pa.string()),
                               "parent": pa.array([parent_ids[i] for i in present], pa.string()),
                               "total": total[present], "micro": micro[present],
                               "exact": np.full(len(present), q is not None),
                               "rows": rows[present].astype(np.int64),
                               "low": low[present], "high": high[present]}, schema=PARTIAL_SCHEMA))
    return pa.concat_tables(parts) if parts else PARTIAL_SCHEMA.empty_table()


def encode_key(key: tuple) -> str:
    return f"{key[0]}.{key[1]}@{key[2]}"


def combine_aggregation(agg: Aggregation, parent_ids: list[str], partials: list[tuple]) -> np.ndarray:
    """An aggregation's values over the driver's parent rows, combined as its built-in's registry
    entry says (sum, count, mean, min, max, any, all)."""
    return combine(FUNCTIONS[agg.node.function].partial, parent_ids, partials)


def combine(how: str, parent_ids: list[str], partials: list[tuple]) -> np.ndarray:
    """The aggregation over the driver's parent rows from (parent, total, micro, exact, rows, low,
    high) sums; exact millionths when every partition had them, as a local run sums."""
    where = {pid: i for i, pid in enumerate(parent_ids)}
    size = len(parent_ids)
    exact = all(p[3] for p in partials)
    total, rows, low, high = np.zeros(size), np.zeros(size), np.zeros(size), np.zeros(size)
    for parent, t, micro, _, n, lo, hi in partials:
        i = where.get(parent)
        if i is not None:
            total[i] = int(micro) / MICRO if exact else t
            rows[i], low[i], high[i] = n, lo, hi
    if how == "sum":
        return total
    if how == "count":
        return rows
    if how == "mean":
        return np.divide(total, rows, out=np.zeros(size), where=rows > 0)
    if how == "min":
        return low
    if how == "max":
        return high
    if how == "any":
        return total > 0
    return total == rows  # all: every row true (an empty group is true, as locally)


def round_money(batch: pa.RecordBatch, money: list[str]) -> pa.RecordBatch:
    """Money columns rounded half-up to the fen with the engine's own rounding, as `settle` writes."""
    arrays = [pa.array(round_half_up(batch.column(i).to_numpy(zero_copy_only=False)))
              if name in money else batch.column(i) for i, name in enumerate(batch.schema.names)]
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

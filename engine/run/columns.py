"""Typed columns of every entity → a Population: ids, derived entities, link indexes (列数据装配).

Shared by JSON situations (rows turned into columns first) and batch files (columns as read),
so both reach the engine the same way. Vectorized: no loop over rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from engine.errors import InputFault
from engine.model.codelists import CodeLists
from engine.model.model import Model
from engine.run import keyed
from engine.run.population import Population


@dataclass
class EntityColumns:
    """One entity as columns: ids, typed field values, supplied masks, parent ids per link."""

    ids: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    given: dict[str, np.ndarray] = field(default_factory=dict)
    links: dict[str, np.ndarray] = field(default_factory=dict)
    active: np.ndarray | None = None  # rows taking part in the run (None: all); others derive no rows

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class UnknownLink:
    entity: str
    link: str
    row: int
    value: str
    field: str = ""  # where the link was written, when not the link itself (an account's id)


def as_text(values) -> np.ndarray:
    """Ids as fixed-width text, '' for missing (small id sets only). Fixed-width numpy text drops
    trailing NUL characters: the readers refuse control characters in ids and links
    (engine.run.checks), so no two distinct ids become one here."""
    if hasattr(values, "to_pylist"):
        return np.array(["" if v is None else str(v) for v in values.to_pylist()], dtype=str)
    if values.dtype.kind == "U":
        return values
    return np.array(["" if v is None else str(v) for v in values.tolist()], dtype=str) if len(values) else \
        np.zeros(0, dtype=str)


def encode(values) -> tuple[np.ndarray, list[str]]:
    """Link values as integer codes (-1: missing or empty) and the distinct ids they stand for.

    Arrow columns are dictionary-encoded without leaving Arrow; numpy text goes through np.unique.
    """
    if hasattr(values, "combine_chunks") or hasattr(values, "dictionary_encode"):
        import pyarrow as pa
        import pyarrow.compute as pc
        array = values.combine_chunks() if hasattr(values, "combine_chunks") else values
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(pc.cast(array, pa.string()))
        codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = [("" if u is None else str(u)) for u in array.dictionary.to_pylist()]
    else:
        text = as_text(values)
        uniq, inverse = np.unique(text, return_inverse=True)
        codes, uniques = inverse.reshape(-1).astype(np.int64), uniq.tolist()
    if "" in uniques:
        empty = uniques.index("")
        codes = np.where(codes == empty, -1, codes)
    return codes, uniques


def resolve_links(values, parent_ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row index of each value among `parent_ids` (-1 when empty); the rows naming unknown ids;
    the distinct values (to name an unknown one)."""
    codes, uniques = encode(values)
    lookup = {pid: i for i, pid in enumerate(as_text(parent_ids).tolist())}
    if len(lookup) != len(parent_ids):  # readers refuse duplicate and unprintable ids; never merge two
        raise ValueError("two parent ids became one as text; ids must be distinct printable text")
    mapped = np.array([lookup.get(v, -1) for v in uniques] + [-1], dtype=np.int64)
    idx = mapped[codes]  # code -1 picks the trailing -1
    unknown = np.flatnonzero((codes >= 0) & (idx < 0))
    return idx, unknown, [uniques[c] for c in codes[unknown[:100]]]


def build_population(model: Model, data: dict[str, EntityColumns],
                     period_end: np.datetime64) -> tuple[Population, list[UnknownLink | keyed.RowFault]]:
    """Assemble a Population; links naming ids that do not exist, and rows of keyed entities that
    do not fit (engine.run.keyed), are returned, not raised."""
    sizes, ids, links = {}, {}, {}
    empty = EntityColumns(np.zeros(0, dtype=object))
    data, merged, links, unknown = merge_keyed(model, data)
    for name in model.entities:
        ids[name] = data.get(name, empty).ids
        sizes[name] = len(ids[name])
    for name, entity in model.entities.items():
        for link, target in entity.links.items():
            if (name, link) in links or model.entities[target].covers and target == link:
                continue  # made from keys: derived rows (account), covering rows (community_fund)
            raw = data.get(name, empty).links.get(link, np.full(sizes[name], "", dtype=str))
            idx, bad, names = resolve_links(raw, ids[target])
            links[(name, link)] = idx
            unknown.extend(unknown_link(merged.get(name), name, link, int(r), v)
                           for r, v in zip(bad[:100], names, strict=False)
                           if name not in merged or r < merged[name].supplied and link not in merged[name].joined)
    columns: dict[str, dict[str, np.ndarray]] = {}
    supplied: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    missing: dict[str, dict[str, np.ndarray]] = {}
    for name, entity in model.entities.items():
        given = data.get(name, empty)
        columns[name], supplied[name], missing[name] = {}, {}, {}
        for vname, var in entity.variables.items():
            if vname in entity.links:
                continue
            if var.is_input:
                columns[name][vname] = given.values.get(vname, default_column(var, sizes[name]))
                if var.default is None:  # required when a computed output needs it
                    mask = given.given.get(vname)
                    missing[name][vname] = np.broadcast_to(True, (sizes[name],)) if mask is None else \
                        ~np.asarray(mask, bool)
            elif vname in given.values and given.given.get(vname, np.zeros(0, bool)).any():
                supplied[name][vname] = (given.values[vname], given.given[vname])
    pop = Population(model, sizes, ids, columns, links, supplied, missing=missing)
    for name, entity in model.entities.items():
        if entity.date and sizes[name]:
            dates = columns[name][entity.date]
            pop.row_dates[name] = np.where(np.isnat(dates), period_end, dates)
        else:
            pop.row_dates[name] = period_end
    for entity in model.entities.values():  # claim → community_fund through the covering key
        if entity.covers:
            link, missing = keyed.cover_link(pop, entity, data.get(entity.covers.source, empty).active)
            pop.links[(entity.covers.source, entity.name)] = link
            unknown += keyed.coverage_faults(pop, entity, missing)
    return pop, unknown


def merge_keyed(model: Model, data: dict[str, EntityColumns]) -> tuple[
        dict[str, EntityColumns], dict[str, keyed.Keyed], dict[tuple[str, str], np.ndarray], list]:
    """Every keyed entity's rows: supplied ones checked against their ids, derived ones after
    them; the source rows' links to derived rows; the faults found."""
    data, merged, links, faults, cache = dict(data), {}, {}, [], {}
    for name, entity in model.entities.items():
        if not (entity.derived or entity.key):
            continue
        source = data.get(entity.derived.source) if entity.derived else None
        merged[name], found = keyed.merge(model, entity, data.get(name), source, cache)
        faults += found
        data[name] = merged[name].data
        if entity.derived:
            size = len(source) if source is not None else 0
            link = merged[name].source_link
            links[(entity.derived.source, name)] = link if link is not None else np.full(size, -1, dtype=np.int64)
    return data, merged, links, faults


def unknown_link(merged: keyed.Keyed | None, entity: str, link: str, row: int, value: str) -> UnknownLink:
    """A link to an id that does not exist; on a keyed row that did not write the link, its id."""
    implied = merged is not None and link in merged.explicit and not merged.explicit[link][row]
    return UnknownLink(entity, link, row, value, "id" if implied else "")


def default_column(var, n: int) -> np.ndarray:
    """An input nobody gave: its default on every row, as a read-only view of one value (no memory
    per row; a column is never written in place)."""
    if var.type == "date":
        return np.broadcast_to(np.array(np.datetime64("NaT"), dtype="datetime64[D]"), (n,))
    if var.type == "codes":
        return CodeLists.from_lists([var.default or ()] * n)
    default = var.default_value()
    if var.type == "string":  # dtype=str would keep only the first character of "inpatient"
        return np.broadcast_to(np.array(default), (n,))
    return np.broadcast_to(np.array(default, dtype={"number": float, "bool": bool}[var.type]), (n,))


# ---- required inputs (必填输入) ---------------------------------------------------------------

def input_readers(policy, wanted: set[tuple[str, str]],
                  complete: Callable[[tuple[str, str]], bool]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Inputs without a default that the wanted outputs depend on, each with every formula variable
    of the run that reads it directly (the first found first). A formula variable given on every
    row (`complete`) needs nothing. (The chain order fields are not required: a chain orders rows
    without dates by input order.)"""
    plan, model = policy.plan, policy.model
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    formulas: list[tuple[str, str]] = []
    stack = [(k, k) for k in wanted]
    while stack:
        key, reader = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        step = plan.by_key.get(key)
        if step is None:
            var = model.entities[key[0]].variables.get(key[1])
            if var is not None and var.is_input and var.default is None and key[1] not in model.entities[key[0]].links:
                found.setdefault(key, [reader])
            continue
        if complete(key):
            continue
        formulas.append(key)
        stack.extend((d, key) for d in step.checked.deps if d not in seen)
    for key, readers in found.items():
        readers += [f for f in formulas if f not in readers and key in plan.by_key[f].checked.deps]
    return found


def rows_needing(key: tuple[str, str], readers: list[tuple[str, str]], rows: np.ndarray,
                 supplied: Callable[[tuple[str, str]], np.ndarray | None]) -> np.ndarray:
    """Of the `rows` missing input `key`, those where a formula reading it runs: a formula of the
    same entity does not run on a row that supplies its value (`supplied(reader)`: the mask)."""
    if len(rows) and all(r[0] == key[0] for r in readers):
        masks = [supplied(r) for r in readers]
        if all(m is not None for m in masks):
            rows = rows[~np.logical_and.reduce([np.asarray(m, bool)[rows] for m in masks])]
    return rows


def missing_rows(pop: Population, key: tuple[str, str]) -> np.ndarray:
    """Rows of the entity where a required input was not given."""
    mask = pop.missing.get(key[0], {}).get(key[1])
    return np.zeros(0, dtype=np.int64) if mask is None else np.flatnonzero(mask)


def always_required(model: Model) -> list[tuple[str, str]]:
    """Inputs declared `required: always`: needed on every row of their entity, whatever reads them."""
    return [(e.name, v.name) for e in model.entities.values() for v in e.variables.values()
            if v.is_input and v.required == "always" and v.name not in e.links]


def required_rows(policy, pop: Population, wanted: set[tuple[str, str]],
                  needed: dict[tuple[str, str], np.ndarray] | None = None
                  ) -> dict[tuple[str, str], tuple[tuple[str, str] | None, np.ndarray]]:
    """Each required input missing on some rows that need it: the first formula reading it (None:
    required on every row) and those rows. Without `needed` (engine.run.demand: the rows where
    each input is needed by branch), every row where a reading formula runs needs it."""
    def complete(key: tuple[str, str]) -> bool:
        given = pop.supplied.get(key[0], {}).get(key[1])
        return given is not None and bool(given[1].all())
    found: dict[tuple[str, str], tuple[tuple[str, str] | None, np.ndarray]] = {}
    for key, readers in input_readers(policy, wanted, complete).items():
        rows = rows_needing(key, readers, missing_rows(pop, key),
                            lambda r: pop.supplied.get(r[0], {}).get(r[1], (None, None))[1])
        if needed is not None and key in needed:
            rows = rows[needed[key][rows]]
        if len(rows):
            found[key] = (readers[0], rows)
    for key in always_required(policy.model):
        rows = missing_rows(pop, key)
        if len(rows):
            found[key] = (None, rows)
    return found


def required_faults(policy, pop: Population, wanted: set[tuple[str, str]], where: Callable[[str, int, str], str],
                    most: int = 20, needed: dict[tuple[str, str], np.ndarray] | None = None) -> list[InputFault]:
    """One fault per row (up to `most` per field) where an input a wanted output needs is missing;
    `where(entity, row, field)` names the place (a JSON path, a file and column)."""
    faults = []
    for (entity, name), (reader, rows) in sorted(required_rows(policy, pop, wanted, needed).items()):
        en, zh = required_words(entity, name, reader)
        numbers = pop.row_numbers.get(entity)
        for row in rows[:most].tolist():
            place = where(entity, int(numbers[row]) if numbers is not None else row, name)
            faults.append(InputFault(place, f"{en}: give a value", f"{zh}：请提供"))
        if len(rows) > most:
            faults.append(InputFault(where(entity, -1, name), f"… and {len(rows) - most} more {entity} rows without "
                                     f"{name}", f"……另有 {len(rows) - most} 行 {entity} 缺少 {name}"))
    return faults


def required_words(entity: str, name: str, reader: tuple[str, str] | None) -> tuple[str, str]:
    """Why an input is required, in English and Chinese (no trailing advice)."""
    if reader is None:
        return (f"{entity}.{name} is required on every {entity} row and has no default",
                f"{entity}.{name} 在每一行 {entity} 上都必填，且没有默认值")
    return (f"{entity}.{name} is required ({reader[0]}.{reader[1]} needs it) and has no default",
            f"{entity}.{name} 为必填项（{reader[0]}.{reader[1]} 需要它），且没有默认值")


# ---- rows outside the period (期间外的记录) -------------------------------------------------------

def date_window(policy, start: dt.date, end: dt.date) -> tuple[np.datetime64, np.datetime64]:
    """The days both in the run's period and in the policy's effective life."""
    meta = policy.meta
    first = max(start, meta.effective_from)
    last = min(end, meta.effective_to) if meta.effective_to else end
    return np.datetime64(first, "D"), np.datetime64(last, "D")


def outside(dates: np.ndarray, window: tuple[np.datetime64, np.datetime64]) -> np.ndarray:
    """Rows whose date is known and outside the window (a row without a date is kept)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    return ~np.isnat(d) & ((d < window[0]) | (d > window[1]))


def keep_rows(cols: EntityColumns, keep: np.ndarray) -> EntityColumns:
    """The entity's columns on the kept rows only."""
    def pick(col):
        return col.filter(pa.array(keep)) if hasattr(col, "filter") else np.asarray(col)[keep]
    return EntityColumns(pick(cols.ids), {k: v[keep] for k, v in cols.values.items()},
                         {k: v[keep] for k, v in cols.given.items()}, {k: pick(v) for k, v in cols.links.items()})


def outside_warning(entity: str, date_field: str, window: tuple[np.datetime64, np.datetime64], ids: list,
                    count: int, most: int = 20) -> dict:
    """The warning for rows left out because their date is outside the window (`claims_outside_period`:
    their count and the first 20 ids in request order)."""
    shown = ", ".join(str(i) for i in ids[:most]) + (", …" if count > most else "")
    return {"code": f"{entity}s_outside_period", "path": f"entities.{entity}", "rows": count, "count": count,
            "ids": [str(i) for i in ids[:most]],
            "message": f"{count} {entity} row(s) with a {date_field} outside {window[0]}–{window[1]} (the period "
                       f"within the policy's effective dates) were left out of every computation: {shown}",
            "message_zh": f"{count} 条 {entity} 记录的 {date_field} 不在 {window[0]}–{window[1]}（期间与政策有效期的交集）内，"
                          f"未参与任何计算：{shown}"}

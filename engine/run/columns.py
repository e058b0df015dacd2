"""Typed columns of every entity → a Population: ids, derived entities, link indexes (列数据装配).

Shared by JSON situations (rows turned into columns first) and batch files (columns as read),
so both reach the engine the same way. Vectorized: no loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    for name, entity in model.entities.items():
        given = data.get(name, empty)
        columns[name], supplied[name] = {}, {}
        for vname, var in entity.variables.items():
            if vname in entity.links:
                continue
            if var.is_input:
                columns[name][vname] = given.values.get(vname, default_column(var, sizes[name]))
            elif vname in given.values and given.given.get(vname, np.zeros(0, bool)).any():
                supplied[name][vname] = (given.values[vname], given.given[vname])
    pop = Population(model, sizes, ids, columns, links, supplied)
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
    data, merged, links, faults = dict(data), {}, {}, []
    for name, entity in model.entities.items():
        if not (entity.derived or entity.key):
            continue
        source = data.get(entity.derived.source) if entity.derived else None
        merged[name], found = keyed.merge(model, entity, data.get(name), source)
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
    """An input nobody gave: its default on every row."""
    if var.type == "date":
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    default = var.default_value()
    if var.type == "string":  # np.full(n, "inpatient", dtype=str) would keep only "i"
        return np.full(n, default, dtype=np.array(default).dtype)
    return np.full(n, default, dtype={"number": float, "bool": bool}[var.type])

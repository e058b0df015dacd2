"""Keyed entities: ids made of parts joined with "|" (键控实体).

An account is "<institution>|<fund>", a fund month "<fund>|<YYYY-MM>", a community package
"<community>|<fund>". Rows a situation supplies come first, checked against their ids; rows
derived from the claims follow, in order of first appearance; a `covers` rule names the claims
left without their row (`community_fund_missing`). Shared by JSON situations and batch files
through `engine.run.columns.build_population`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.model.model import Model
from engine.model.spec import Entity, KeyPart
from engine.run import columns
from engine.run.population import Population

JOIN = "|"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
SHOWN = 20  # faults of one kind named one by one


@dataclass
class RowFault:
    """A fault of one row (`row` counted from 0 in its entity's rows as given) at one field."""

    entity: str
    row: int
    field: str
    en: str
    zh: str
    code: str = ""


@dataclass
class Keyed:
    """A keyed entity's rows after merging: the columns, the source rows' links to them, how many
    rows were supplied, and which supplied key links the rows wrote out (else implied by the id)."""

    data: columns.EntityColumns
    source_link: np.ndarray | None
    supplied: int
    explicit: dict[str, np.ndarray]
    joined: frozenset[str] = frozenset()  # links made of key parts (account_month.account): none when absent


def parts_of(entity: Entity) -> list[KeyPart]:
    """The id parts of a keyed entity; a one-part derived entity (episode) is keyed by its id alone."""
    if entity.key:
        return entity.key
    return list(entity.derived.parts) if entity.derived else []


def shape(entity: Entity) -> str:
    """How an id of the entity is written: <institution>|<fund>, <fund>|<YYYY-MM>."""
    return JOIN.join("<YYYY-MM>" if p.kind == "month" else f"<{p.name}>" for p in parts_of(entity))


# ---- rows a situation gives ----------------------------------------------------------------
def given_parts(entity: Entity, cols: columns.EntityColumns) -> tuple[list[np.ndarray], dict[str, np.ndarray],
                                                                      list[RowFault]]:
    """Each supplied row's key parts, read from its id; a link or month the row also writes must
    agree with it. Returns the parts (text per row), which link parts the rows wrote, the faults."""
    parts = parts_of(entity)
    ids = columns.as_text(cols.ids).tolist()
    n = len(ids)
    written = [_written(cols, part, n) for part in parts]
    out = [[""] * n for _ in parts]
    faults: list[RowFault] = []
    for row, rid in enumerate(ids):
        pieces = [rid] if len(parts) == 1 else rid.split(JOIN)
        if len(pieces) != len(parts) or "" in pieces:
            faults.append(_id_fault(entity, row, rid))
            continue
        for j, (part, piece) in enumerate(zip(parts, pieces, strict=True)):
            if part.kind == "month" and not MONTH.match(piece):
                faults.append(_id_fault(entity, row, rid))
                break
            given = written[j][row]
            if given not in ("", piece):
                faults.append(RowFault(entity.name, row, part.name,
                                       f"'{given}' does not match the id '{rid}', whose {part.name} is '{piece}' "
                                       f"(an {entity.name} id is {shape(entity)})",
                                       f"“{given}”与 id“{rid}”不符：其 {part.name} 部分为“{piece}”"
                                       f"（{entity.name} 的 id 写作 {shape(entity)}）"))
            out[j][row] = piece
    explicit = {p.name: written[j] != "" for j, p in enumerate(parts) if p.kind == "link"}
    return [np.array(p, dtype=str) if n else np.zeros(0, dtype=str) for p in out], explicit, faults


def _written(cols: columns.EntityColumns, part: KeyPart, n: int) -> np.ndarray:
    """The part as the rows write it beside the id ('' where not written)."""
    if part.kind == "link":
        values = cols.links.get(part.name)
        return columns.as_text(values) if values is not None else np.full(n, "", dtype=object)
    if part.name in cols.values:
        text = columns.as_text(cols.values[part.name])
        return np.where(cols.given.get(part.name, np.ones(n, bool)), text, "")
    return np.full(n, "", dtype=object)


def _id_fault(entity: Entity, row: int, rid: str) -> RowFault:
    return RowFault(entity.name, row, "id",
                    f"an {entity.name} id is written {shape(entity)}, not '{rid}'",
                    f"{entity.name} 的 id 应写作 {shape(entity)}，而不是“{rid}”")


# ---- rows made from the claims ---------------------------------------------------------------
def part_codes(source: columns.EntityColumns, part: KeyPart, cache: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """Each source row's value of a key part as a code (-1: missing) and the values coded; `cache`
    keeps them for the other entities derived from the same rows (account, account_month)."""
    if cache is not None:
        key = (id(source), part.kind, part.field)
        if key not in cache:
            cache[key] = part_codes(source, part)
        return cache[key]
    n = len(source)
    if part.kind == "month":
        dates = source.values.get(part.field)
        if dates is None:
            return np.full(n, -1, dtype=np.int64), []
        months = np.asarray(dates).astype("datetime64[M]")
        valid = ~np.isnat(months)
        uniq, inverse = np.unique(months[valid].astype(np.int64), return_inverse=True)
        codes = np.full(n, -1, dtype=np.int64)
        codes[valid] = inverse.reshape(-1)
        return codes, [str(np.datetime64(int(u), "M")) for u in uniq]
    return columns.encode(source.links.get(part.field, np.full(n, "", dtype=str)))


def derive(source: columns.EntityColumns, parts: list[KeyPart], active: np.ndarray | None = None,
           cache: dict | None = None) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Distinct key tuples of the (active) source rows in order of first appearance, and each
    source row's tuple (-1 when a part is missing or the row is excluded)."""
    n = len(source)
    present = np.ones(n, dtype=bool) if active is None else active.copy()
    combined = np.zeros(n, dtype=np.int64)
    vocabularies = []
    for part in parts:
        codes, uniques = part_codes(source, part, cache)
        present &= codes >= 0
        combined = combined * (len(uniques) + 1) + (codes + 1)
        vocabularies.append((codes, uniques))
    rows = np.flatnonzero(present)
    distinct, inverse = first_appearance(combined[rows])
    link = np.full(n, -1, dtype=np.int64)
    link[rows] = inverse
    decoded = []  # the combined code taken apart again, last part first (mixed radix)
    for _, uniques in reversed(vocabularies):
        distinct, code = np.divmod(distinct, len(uniques) + 1)
        decoded.append([uniques[c - 1] for c in code.tolist()])
    tuples = list(zip(*reversed(decoded), strict=True)) if len(inverse) else []
    return tuples, link


SMALL_SOURCE = 4096


def first_appearance(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct integers in order of first appearance, and each value's index among them (hashed
    by Arrow, not sorted; a few values by numpy, with no Arrow conversion)."""
    if len(values) <= SMALL_SOURCE:
        uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return uniq[order], rank[inverse.reshape(-1)]
    import pyarrow as pa
    import pyarrow.compute as pc
    encoded = pc.dictionary_encode(pa.array(values, pa.int64()))
    return (encoded.dictionary.to_numpy(zero_copy_only=False).astype(np.int64),
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))


def undated(entity: Entity, source: columns.EntityColumns, active: np.ndarray | None,
            cache: dict | None = None) -> list[RowFault]:
    """Source rows with every link part but no date for a month part: they cannot be placed."""
    faults: list[RowFault] = []
    n = len(source)
    linked = np.ones(n, dtype=bool) if active is None else active.copy()
    for part in parts_of(entity):
        if part.kind == "link":
            linked &= part_codes(source, part, cache)[0] >= 0
    for part in parts_of(entity):
        if part.kind != "month":
            continue
        missing = np.flatnonzero(linked & (part_codes(source, part, cache)[0] < 0))
        faults += [RowFault(source_name(entity), int(r), part.field,
                            f"{entity.name} rows are made from the month of {part.field}: give it (YYYY-MM-DD)",
                            f"{entity.name} 按 {part.field} 的月份生成：请提供该日期（YYYY-MM-DD）")
                   for r in missing[:SHOWN]]
    return faults


def source_name(entity: Entity) -> str:
    return entity.derived.source if entity.derived else entity.name


def needs_rows(entity: Entity, supplied: int) -> bool:
    """A month entity needs every claim's date when rows are supplied or the policy declares values on it."""
    keys = {p.name for p in parts_of(entity)}
    return supplied > 0 or any(v not in entity.links and v not in keys for v in entity.variables)


# ---- merging ----------------------------------------------------------------------------------
def merge(model: Model, entity: Entity, given: columns.EntityColumns | None,
          source: columns.EntityColumns | None, cache: dict | None = None) -> tuple[Keyed, list[RowFault]]:
    """Supplied rows first (their ids checked), then rows derived from `source` that no supplied
    row already has, in order of first appearance."""
    parts = parts_of(entity)
    given = given if given is not None else columns.EntityColumns(np.zeros(0, dtype=object))
    supplied_parts, explicit, faults = given_parts(entity, given)
    n_given = len(given)
    tuples: list[tuple[str, ...]] = []
    link = None
    if entity.derived and source is not None:
        active = getattr(source, "active", None)
        tuples, link = derive(source, entity.derived.parts, active, cache)
        if any(p.kind == "month" for p in parts) and needs_rows(entity, n_given):
            faults += undated(entity, source, active, cache)
    where = {t: i for i, t in enumerate(zip(*[p.tolist() for p in supplied_parts], strict=True))} if n_given \
        else {}
    remap = np.empty(len(tuples), dtype=np.int64)
    new: list[tuple[str, ...]] = []
    for i, t in enumerate(tuples):
        found = where.get(t)
        if found is None:
            found = n_given + len(new)
            new.append(t)
        remap[i] = found
    if link is not None:
        link = np.where(link >= 0, remap[np.maximum(link, 0)], -1) if len(remap) else link
    data = _columns(model, entity, given, supplied_parts, new)
    joined = frozenset(link for link, target in entity.links.items()
                       if link not in {p.name for p in parts} and model.entities[target].key)
    return Keyed(data, link, n_given, explicit, joined), faults


def _columns(model: Model, entity: Entity, given: columns.EntityColumns, supplied_parts: list[np.ndarray],
             new: list[tuple[str, ...]]) -> columns.EntityColumns:
    """The merged rows as columns: ids, key links (and links to keyed parents made of some of the
    parts: account_month.account), supplied values with defaults on the derived rows."""
    parts = parts_of(entity)
    k, n_new = len(given), len(new)
    ids = np.array([*columns.as_text(given.ids).tolist(), *(JOIN.join(t) for t in new)], dtype=object)
    out = columns.EntityColumns(ids)
    values = {p.name: np.concatenate([supplied_parts[j].astype(object), np.array([t[j] for t in new], dtype=object)])
              for j, p in enumerate(parts)}
    for link, target in entity.links.items():
        sub = [p.name for p in parts_of(model.entities[target])] if model.entities[target].key else []
        if link in values:
            out.links[link] = values[link].astype(str)
        elif sub and all(name in values for name in sub):
            joined = [JOIN.join(row) for row in zip(*[values[s].tolist() for s in sub], strict=True)]
            out.links[link] = np.array(joined, dtype=str) if joined else np.zeros(0, dtype=str)
        elif link in given.links:
            out.links[link] = np.concatenate([columns.as_text(given.links[link]), np.full(n_new, "", dtype=str)])
    for name, column in given.values.items():
        var = entity.variables[name]
        out.values[name] = np.concatenate([column, columns.default_column(var, n_new)]) if n_new else column
        out.given[name] = np.concatenate([given.given.get(name, np.ones(k, bool)), np.zeros(n_new, bool)])
    for p in parts:  # a non-link part (month) is also a text field of the row when declared
        if p.kind != "link" and p.name in entity.variables:
            out.values[p.name] = values[p.name].astype(str) if len(values[p.name]) else np.zeros(0, dtype=str)
            out.given[p.name] = np.ones(len(ids), dtype=bool)  # known on every row: never a missing input
    return out


# ---- coverage ---------------------------------------------------------------------------------
def cover_link(pop: Population, entity: Entity, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`covers`: each source row's row of the entity, found through the key's link paths (-1: none),
    and the source rows that reach a first part with rows (a community with community_fund rows)
    yet find no row. Excluded source rows find none and are not missing."""
    rule = entity.covers
    n = pop.sizes.get(rule.source, 0)
    if not pop.sizes.get(entity.name) or not n:
        return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    parts = parts_of(entity)
    own = [pop.links[(entity.name, p.name)] for p in parts]
    theirs = [pop.parent_index(rule.source, path) for path in rule.key]
    sizes = [pop.sizes[entity.links[p.name]] for p in parts]
    complete = np.all([o >= 0 for o in own], axis=0)
    have, rows = _combine(own, sizes)[complete], np.flatnonzero(complete)
    order = np.argsort(have, kind="stable")
    wanted = _combine(theirs, sizes)
    reach = np.all([t >= 0 for t in theirs], axis=0) & np.isin(theirs[0], own[0][own[0] >= 0])
    if active is not None:
        reach &= active
    if not len(have):
        return np.full(n, -1, dtype=np.int64), reach
    ordered = have[order]
    at = np.minimum(np.searchsorted(ordered, wanted), len(have) - 1)
    found = reach & (ordered[at] == wanted)
    return np.where(found, rows[order][at], -1).astype(np.int64), reach & ~found


def coverage_faults(pop: Population, entity: Entity, missing: np.ndarray) -> list[RowFault]:
    """One fault per missing key, at the first source row lacking it (`<entity>_missing`)."""
    rule = entity.covers
    parts = parts_of(entity)
    rows = np.flatnonzero(missing)
    if not len(rows):
        return []
    theirs = [pop.parent_index(rule.source, path) for path in rule.key]
    wanted = _combine(theirs, [pop.sizes[entity.links[p.name]] for p in parts])
    _, first, counts = np.unique(wanted[rows], return_index=True, return_counts=True)
    via = " and ".join(".".join(path) for path in rule.key)
    via_zh = "、".join(".".join(path) for path in rule.key)
    faults: list[RowFault] = []
    for row, count in sorted(zip(rows[first].tolist(), counts.tolist(), strict=True))[:SHOWN]:
        key = JOIN.join(str(pop.ids[entity.links[p.name]][theirs[j][row]]) for j, p in enumerate(parts))
        faults.append(RowFault(rule.source, row, rule.key[-1][0],
                               f"no {entity.name} row '{key}' for this {rule.source} (its {via}); when "
                               f"{entity.name} rows are given for a {parts[0].name}, every {rule.source} reaching "
                               f"it needs its row ({count} {rule.source} row(s) lack '{key}')",
                               f"本{rule.source}（按 {via_zh}）没有对应的 {entity.name} 行“{key}”：某 {parts[0].name} "
                               f"给出 {entity.name} 行时，其下每条 {rule.source} 都须有对应行（共 {count} 条缺少）",
                               code=f"{entity.name}_missing"))
    return faults


def _combine(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for c, size in zip(codes, sizes, strict=True):
        combined = combined * (size + 1) + (c + 1)
    return combined

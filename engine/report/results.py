"""A run's values by entity and id, with each row's parents: what statements are made from (结算结果).

Two sources give the same shape: the folder `medpay settle` writes (one Parquet file per entity,
money already rounded to the fen) with the input data folder beside it (for the links of the
rows that are not made from the claims), or the JSON result of one evaluated situation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from engine.batch.io import entity_file, read_table
from engine.model.model import Entity
from engine.policy.spec import Policy

SKIP = ("claim",)  # statements never list claims one by one


@dataclass
class Results:
    """entity → id → {variable: value}; entity → id → {link or "month": value}."""

    policy: Policy
    period: str
    rows: dict[str, dict[str, dict[str, Any]]]
    parents: dict[str, dict[str, dict[str, str]]]

    def children(self, entity: str, link: str, parent_id: str) -> list[str]:
        """Ids of the rows of `entity` whose `link` is `parent_id`, in their order."""
        return [i for i, p in self.parents.get(entity, {}).items() if p.get(link) == parent_id]

    def value(self, entity: str, row_id: str, name: str) -> Any:
        """The row's value; an input the row does not give is its declared default (None without one)."""
        row = self.rows.get(entity, {}).get(row_id, {})
        if name in row:
            return row[name]
        var = self.policy.model.entities[entity].variables.get(name)
        return var.default if var is not None and var.is_input else None


def key_parents(entity: Entity, row_id: str) -> dict[str, str]:
    """The links (and month) named by the parts of a keyed row's id ("H1|resident|2024-03")."""
    parts = [p.name for p in entity.key] or ([entity.derived.parts[0].name] if entity.derived else [])
    values = row_id.split("|") if len(parts) > 1 else [row_id]
    return dict(zip(parts, values, strict=False)) if len(values) == len(parts) else {}


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def from_folders(policy: Policy, results: Path, data: Path | None, period: str) -> Results:
    """The values `medpay settle` wrote to `results`; links of the other rows from the files in `data`."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for name in policy.model.entities:
        path = results / f"{name}.parquet"
        if name in SKIP or not path.is_file():
            continue
        table = pq.read_table(path).to_pydict()
        ids = [str(i) for i in table.pop("id")]
        rows[name] = {i: {k: _clean(v[n]) for k, v in table.items()} for n, i in enumerate(ids)}
    parents: dict[str, dict[str, dict[str, str]]] = {}
    for name, entity in policy.model.entities.items():
        if name in SKIP:
            continue
        given = read_table(path).to_pydict() if data is not None and (path := entity_file(data, name)) else {}
        if given:
            _add_inputs(entity, rows.setdefault(name, {}), given)
        if entity.key or entity.derived:
            parents[name] = {i: key_parents(entity, i) for i in rows.get(name, {})}
        elif given:
            links = [k for k in entity.links if k in given]
            parents[name] = {str(i): {k: str(given[k][n]) for k in links if given[k][n] is not None}
                             for n, i in enumerate(given["id"])}
    return Results(policy, period, rows, parents)


def _add_inputs(entity: Entity, rows: dict[str, dict[str, Any]], given: dict[str, list]) -> None:
    """The input values of an entity's data file, on the rows the run computed (a row the run made
    from no claim still shows its inputs)."""
    fields = [k for k, v in entity.variables.items() if v.is_input and k in given and k not in entity.links]
    for n, row_id in enumerate(given.get("id", [])):
        row = rows.setdefault(str(row_id), {})
        for name in fields:
            if given[name][n] is not None:
                row.setdefault(name, _clean(given[name][n]))


def from_result(policy: Policy, result: dict, situation: dict) -> Results:
    """The values of one evaluated situation; links from its rows (or the keyed ids)."""
    rows = {name: {str(r["id"]): r for r in found} for name, found in (result.get("entities") or {}).items()
            if name not in SKIP}
    given = situation.get("entities") or {}
    parents: dict[str, dict[str, dict[str, str]]] = {}
    for name, entity in policy.model.entities.items():
        if name in SKIP:
            continue
        if isinstance(given.get(name), list):
            sent = [r for r in given[name] if isinstance(r, dict) and "id" in r]
            _add_inputs(entity, rows.setdefault(name, {}), {"id": [r["id"] for r in sent], **{
                k: [r.get(k) for r in sent] for k in entity.variables}})
        if entity.key or entity.derived:
            parents[name] = {i: key_parents(entity, i) for i in rows.get(name, {})}
        elif entity.links and isinstance(given.get(name), list):
            parents[name] = {str(r.get("id")): {k: str(r[k]) for k in entity.links if r.get(k) is not None}
                             for r in given[name] if isinstance(r, dict)}
    return Results(policy, str(result.get("period", "")), rows, parents)

"""Entity columns, parent links and chain order for one evaluation (人群/实体列)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.model.model import Model


@dataclass
class ChainOrder:
    """Rows of a chained entity, ordered inside each chain: `prev` row (-1 first), 0-based position."""

    prev: np.ndarray
    position: np.ndarray
    length: int


@dataclass
class Population:
    """All columns of all entities of a run, numpy arrays of one length per entity."""

    model: Model
    sizes: dict[str, int]
    ids: dict[str, np.ndarray]
    columns: dict[str, dict[str, np.ndarray]]
    links: dict[tuple[str, str], np.ndarray]  # (entity, link) → parent row index, -1 when none
    supplied: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    row_dates: dict[str, np.ndarray | np.datetime64] = field(default_factory=dict)
    missing: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # inputs without a default: rows not given
    row_numbers: dict[str, np.ndarray] = field(default_factory=dict)  # row → its index in the request (rows left out)
    _chains: dict[str, ChainOrder] = field(default_factory=dict)

    def parent_index(self, entity: str, path: list[str], rows: np.ndarray | None = None) -> np.ndarray:
        """Row index in the ancestor reached through `path`, for each row (or for `rows`)."""
        current = entity
        idx: np.ndarray | None = None
        for link in path:
            step = self.links[(current, link)]
            if idx is None:
                idx = step if rows is None else step[rows]
            else:
                idx = np.where(idx >= 0, step[np.maximum(idx, 0)] if len(step) else -1, -1)
            current = self.model.entities[current].links[link]
        assert idx is not None
        return idx

    def chain(self, entity: str) -> ChainOrder:
        """Chain order of a chained entity, computed once: by chain, then the order fields, then input order."""
        if entity in self._chains:
            return self._chains[entity]
        spec = self.model.entities[entity].chain
        n = self.sizes[entity]
        link = self._chain_groups(entity, spec)
        prev = np.full(n, -1, dtype=np.int64)
        position = np.zeros(n, dtype=np.int64)  # a row in no chain is a chain of one
        rows = np.flatnonzero(link >= 0)  # only the chained rows need ordering
        if len(rows):
            keys = [rows]
            for name in reversed(spec.order):
                keys.append(_sortable(self.columns[entity][name][rows]))
            keys.append(link[rows])
            order = rows[np.lexsort(keys)]
            sorted_chain = link[order]
            same = np.zeros(len(order), dtype=bool)
            same[1:] = sorted_chain[1:] == sorted_chain[:-1]
            prev[order[1:][same[1:]]] = order[:-1][same[1:]]
            starts = np.flatnonzero(~same)
            run_start = starts[np.searchsorted(starts, np.arange(len(order)), side="right") - 1]
            position[order] = np.arange(len(order)) - run_start
        result = ChainOrder(prev, position, int(position.max()) + 1 if n else 0)
        self._chains[entity] = result
        return result


    def _chain_groups(self, entity: str, spec) -> np.ndarray:
        """Each row's chain: its `by` parent, split by the parents `within` names (-1: no chain)."""
        link = self.links[(entity, spec.by)]
        if not spec.within or not len(link):
            return link
        parts = [link] + [self.parent_index(entity, path) for path in spec.within]
        chained = link >= 0
        _, group = np.unique(np.stack([p[chained] for p in parts], axis=1), axis=0, return_inverse=True)
        out = np.full(len(link), -1, dtype=np.int64)
        out[chained] = group.reshape(-1)
        return out


def _sortable(col: np.ndarray) -> np.ndarray:
    if np.issubdtype(col.dtype, np.datetime64):
        as_int = col.astype("datetime64[D]").astype(np.int64)
        return np.where(np.isnat(col), np.iinfo(np.int64).max, as_int)
    return col

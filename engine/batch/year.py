"""The year-end results of a city-year in memory, with their provenance (年终清算结果): the entry
point for statements and reports built on a settlement.

    year_end(city, data, ledger=None, period=None) -> YearEnd

`city` is a policy id, a policy file or a loaded Policy; `data` the folder `medpay settle` reads;
`ledger` the monthly ledger (engine.batch.ledger; default `data/ledger.parquet` when it exists,
`False` for none); `period` e.g. "2024" (default: meta.json in the data folder). The results
are those `medpay settle` writes, read back: one Arrow table per entity (institution, account,
account_month, fund_month, fund, claim, …), money rounded to the fen.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.batch.settle import Summary, folder_period, settle
from engine.period import Period
from engine.policy.spec import Policy

LEDGER = "ledger.parquet"


@dataclass
class YearEnd:
    """Results per entity, the provenance record and the run's summary."""

    tables: dict[str, pa.Table]
    provenance: dict
    summary: Summary

    def rows(self, entity: str) -> list[dict]:
        """One entity's results as dicts (id first)."""
        table = self.tables.get(entity)
        return table.to_pylist() if table is not None else []


def default_ledger(data: Path) -> Path | None:
    """`ledger.parquet` in the data folder when the months were settled there."""
    path = data / LEDGER
    return path if path.is_file() else None


def policy_for(city: str | Policy, period: Period) -> Policy:
    """A loaded policy, a policy file, or the version of a city in force for the period."""
    if isinstance(city, Policy):
        return city
    from engine.compile.build import load_policy_file
    if city.endswith((".yaml", ".yml")) or "/" in city:
        return load_policy_file(city)
    from engine.policy.registry import Registry
    return Registry.load_city(city).pick(city, period)


def year_end(city: str | Policy, data: str | Path, ledger: str | Path | None | bool = None,
             period: str | None = None) -> YearEnd:
    """Settle the year (clearing from the ledger when there is one) and return its results."""
    data = Path(data)
    chosen = folder_period(data, period)
    policy = policy_for(city, chosen)
    if ledger is None:
        path = default_ledger(data)
    elif ledger is False:
        path = None
    else:
        path = Path(ledger)
    with tempfile.TemporaryDirectory(prefix="medpay-year-") as tmp:
        out = Path(tmp) / "out"
        summary = settle(policy, data, out, chosen, ledger=path)
        tables = {p.stem: pq.ParquetFile(p).read() for p in sorted(out.glob("*.parquet"))}
    return YearEnd(tables, summary.provenance, summary)

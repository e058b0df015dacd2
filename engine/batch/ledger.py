"""The settlement year as it happens (月度预结与台账): one month at a time into a ledger, cleared
at year end from it.

`presettle_month` computes the account_month values of one month (a monthly pre-settlement, a
monthly settlement with its withheld share, prepayments: whatever the policy computes per
institution × fund × month) from the claims discharged up to the end of that month,
and writes them to the ledger: one row per institution × fund × month, with the policy id,
version and file digest that produced it. Re-running a month replaces that month's rows.

`ledger_supply` reads the ledger back for the year-end run: its rows are supplied account_month
rows, so what was actually paid each month replaces the month computed from the claims. A month
settled under another policy version than the one clearing the year is reported.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.batch import partition, provenance
from engine.batch.io import entity_columns, entity_file, read_entities, table_faults
from engine.errors import InputFault, SituationError
from engine.period import Period
from engine.policy.spec import Policy
from engine.run import policy_checks as checks
from engine.run.columns import build_population, required_faults
from engine.run.evaluate import run_steps, warnings_of
from engine.run.frame import RunContext

BIG = "claim"
MONTHS = "account_month"
KEYS = ("month", "id", "institution", "fund")
STAMP = ("policy_id", "policy_version", "policy_digest", "run_at")
SHOWN = 6  # months named in a warning


@dataclass
class MonthSummary:
    """What one month's pre-settlement wrote."""

    policy: str
    month: str
    rows: int
    replaced: int
    months: list[str]
    amounts: dict[str, float] = field(default_factory=dict)  # column → total of the month
    warnings: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "month": self.month, "rows": self.rows, "replaced": self.replaced,
                "months": self.months, "amounts": self.amounts, "warnings": self.warnings}


def month_amounts(policy: Policy) -> list[str]:
    """The account_month variables the policy computes (those the ledger records)."""
    entity = policy.model.entities.get(MONTHS)
    if entity is None:
        return []
    return [n for n, v in entity.variables.items() if not v.is_input and v.type == "number"]


def _fault(path: str, en: str, zh: str) -> SituationError:
    return SituationError([InputFault(path, en, zh)])


def check_month(policy: Policy, month: Period) -> None:
    """A month (YYYY-MM) in force under the policy."""
    if len(month.text) != 7 or month.start.day != 1:
        raise _fault("month", f"give one month as YYYY-MM, not '{month.text}'", f"月份须为 YYYY-MM，而非“{month.text}”")
    meta = policy.meta
    if not month.overlaps(meta.effective_from, meta.effective_to):
        raise _fault("month", f"{policy.id} {meta.version} is not in force in {month.text}",
                     f"{policy.id} {meta.version} 在 {month.text} 不在有效期内")


def _claims_to(policy: Policy, folder: Path, month: Period) -> tuple[pa.Table, list[dict]]:
    """The claims discharged from 1 January to the end of the month (earlier claims of the year
    keep the referral chains whole; later ones are not known yet), and the warning for claims of
    earlier years or outside the policy's life."""
    from engine.batch.settle import _claims
    claims = _claims(policy, folder)
    date = policy.model.entities[BIG].date
    if date and date in claims.column_names and claims.num_rows:
        dates = claims[date]
        if not (pa.types.is_date(dates.type) or pa.types.is_timestamp(dates.type)):
            dates = pc.cast(dates, pa.date32())
        later = pc.greater(pc.cast(dates, pa.date32()), pa.scalar(month.end, pa.date32()))
        claims = claims.filter(pc.invert(pc.fill_null(later, False)))
    start = dt.date(month.start.year, 1, 1)
    claims, warning = partition.claims_in_period(policy, claims, BIG, start, month.end)
    return claims, [warning] if warning else []


def presettle_month(policy: Policy, folder: Path, month: Period, ledger: Path) -> MonthSummary:
    """Compute one month's account_month rows and write them to the ledger (see the module)."""
    check_month(policy, month)
    claims, warnings = _claims_to(policy, folder, month)
    small = read_entities(policy.model, folder, skip=(BIG,))
    path = entity_file(folder, BIG)
    data = {**small, BIG: entity_columns(claims, policy.model.entities[BIG], path.name)} if path else small
    pop, unknown = build_population(policy.model, data, np.datetime64(month.end, "D"))
    if unknown:
        from engine.batch.settle import file_fault
        raise SituationError([file_fault(policy, u) for u in unknown[:20]])
    wanted = {(MONTHS, n) for n in month_amounts(policy)}
    faults = required_faults(policy, pop, wanted, lambda e, r, f: f"{e}[{r}].{f}" if r >= 0 else f"{e}.{f}")
    if faults:
        raise SituationError(faults)
    steps = policy.plan.needed(wanted)
    ctx = RunContext(policy)
    run_steps(steps, pop, ctx, None)
    failures = checks.found(policy.plan.checks_for(steps), pop, ctx, json_paths=False)
    checked = checks.verdict(failures)  # an error check stops the month: nothing is written
    warnings += warnings_of(policy, ctx, steps, month) + checked
    rows = _month_rows(policy, pop, month.text)
    replaced, months = write_month(policy, ledger, month.text, rows, warnings)
    amounts = {n: round(float(pc.sum(rows[n]).as_py() or 0.0), 2) for n in month_amounts(policy)}
    return MonthSummary(policy.id, month.text, rows.num_rows, replaced, months, amounts, warnings)


def _month_rows(policy: Policy, pop, month: str) -> pa.Table:
    """The population's account_month rows of one month, as ledger rows (amounts unrounded:
    the year-end run adds them exactly as a one-run year would)."""
    ids = np.asarray(pop.ids.get(MONTHS, np.array([], dtype=str))).astype(str)
    parts = [i.rsplit("|", 2) for i in ids]
    keep = np.array([len(p) == 3 and p[2] == month for p in parts], dtype=bool)
    chosen = [p for p, k in zip(parts, keep, strict=True) if k]
    columns = {"month": pa.array([month] * len(chosen), pa.string()),
               "id": pa.array(ids[keep].tolist(), pa.string()),
               "institution": pa.array([p[0] for p in chosen], pa.string()),
               "fund": pa.array([p[1] for p in chosen], pa.string())}
    for name in month_amounts(policy):
        columns[name] = pa.array(np.asarray(pop.columns[MONTHS][name], dtype=float)[keep], pa.float64())
    stamp = {"policy_id": policy.id, "policy_version": policy.meta.version, "policy_digest": policy.digest,
             "run_at": provenance.now()}
    for name, value in stamp.items():
        columns[name] = pa.array([value] * len(chosen), pa.string())
    return pa.table(columns)


def read_ledger(ledger: Path) -> pa.Table | None:
    """The ledger's rows (None when there is no ledger yet); a file that is not one is refused."""
    if not ledger.exists():
        return None
    try:
        table = pq.ParquetFile(ledger).read()
    except (OSError, pa.ArrowInvalid) as err:
        raise _fault(str(ledger), f"not a readable Parquet ledger: {err}", "台账文件无法读取（须为 Parquet）") from None
    missing = [c for c in (*KEYS, *STAMP) if c not in table.column_names]
    if missing:
        raise _fault(str(ledger), f"not a medpay ledger: columns {', '.join(missing)} are missing",
                     f"不是 medpay 台账：缺少列 {', '.join(missing)}")
    return table


def _same_city(policy: Policy, table: pa.Table, ledger: Path) -> None:
    others = sorted(set(pc.unique(table["policy_id"]).to_pylist()) - {policy.id})
    if others:
        raise _fault(str(ledger), f"the ledger holds months of policy {', '.join(map(str, others))}, "
                                  f"not {policy.id}: use one ledger per city",
                     f"台账含其他政策（{', '.join(map(str, others))}）的月份，而非 {policy.id}：每个城市一个台账")


def write_month(policy: Policy, ledger: Path, month: str, rows: pa.Table, warnings: list[dict]) -> tuple[int, list[str]]:
    """The ledger with `month`'s rows replaced by `rows`, months in order, written atomically
    (staged beside it, then moved). Returns the rows replaced and the months now in the ledger."""
    old = read_ledger(ledger)
    replaced = 0
    if old is not None:
        _same_city(policy, old, ledger)
        same = pc.equal(old["month"], month)
        replaced = int(pc.sum(same).as_py() or 0)
        old = old.filter(pc.invert(same))
        table = pa.concat_tables([old, rows], promote_options="default") if old.num_rows else rows
    else:
        table = rows
    order = pc.sort_indices(table, [("month", "ascending")])
    table = table.take(order)
    months = sorted(set(table["month"].to_pylist()))
    prov = provenance.record(policy, month, provenance.now(), inputs={}, overrides=[], warnings=warnings,
                             checks=[], kind="month", ledger={"months": months})
    table = table.replace_schema_metadata(provenance.schema_metadata(prov))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    handle, staged = tempfile.mkstemp(prefix=f".{ledger.name}.", suffix=".partial", dir=ledger.parent)
    os.close(handle)
    try:
        pq.write_table(table, staged, compression="zstd")
        os.replace(staged, ledger)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return replaced, months


def ledger_supply(policy: Policy, ledger: Path, period: Period, folder: Path) -> tuple[dict, dict, list[dict]]:
    """The ledger's months inside the period as supplied account_month rows, a summary of the
    ledger for the provenance, and the warnings (months settled under another version)."""
    table = read_ledger(ledger)
    if table is None:
        raise _fault(str(ledger), "no ledger at this path", "该路径下没有台账")
    _same_city(policy, table, ledger)
    if entity_file(folder, MONTHS) is not None:
        raise _fault(str(ledger), f"give the months either in {MONTHS} files or in the ledger, not both",
                     f"月度数据须只来自 {MONTHS} 文件或台账之一")
    _check_keys(table, ledger)
    first, last = period.start.strftime("%Y-%m"), period.end.strftime("%Y-%m")
    inside = pc.and_(pc.greater_equal(table["month"], first), pc.less_equal(table["month"], last))
    outside = int(pc.sum(pc.invert(inside)).as_py() or 0)
    table = table.filter(inside)
    amounts = [n for n in month_amounts(policy) if n in table.column_names]
    rows = table.select(["id", *amounts])
    faults = table_faults(rows, policy.model.entities[MONTHS], ledger.name)
    if faults:
        raise SituationError(faults)
    supplied = {MONTHS: entity_columns(rows, policy.model.entities[MONTHS], ledger.name)} if rows.num_rows else {}
    warnings = version_warnings(policy, table)
    info = {"path": str(ledger), "sha256": provenance.file_digest(ledger), "rows": table.num_rows,
            "months": sorted(set(table["month"].to_pylist())), "amounts": amounts, "rows_outside_period": outside,
            "versions": sorted({f"{v}@{d[:12]}" for v, d in zip(table["policy_version"].to_pylist(),
                                                               table["policy_digest"].to_pylist(), strict=True)})}
    return supplied, info, warnings


def _check_keys(table: pa.Table, ledger: Path) -> None:
    """Each row's id is its institution|fund|month (a hand-edited row must not pay another month)."""
    made = pc.binary_join_element_wise(pc.cast(table["institution"], pa.string()), pc.cast(table["fund"], pa.string()),
                                       pc.cast(table["month"], pa.string()), "|")
    bad = pc.invert(pc.fill_null(pc.equal(made, pc.cast(table["id"], pa.string())), False))
    if pc.any(bad).as_py():
        rows = [int(i) for i in pc.indices_nonzero(bad).to_pylist()[:5]]
        raise _fault(f"{ledger.name}:id", f"rows {', '.join(map(str, rows))} (from 0): the id is not "
                                          "institution|fund|month of the row",
                     f"第 {', '.join(map(str, rows))} 行（从 0 起）：id 与该行的 institution|fund|month 不符")


def version_warnings(policy: Policy, table: pa.Table) -> list[dict]:
    """A warning when some months were settled under another version (or file) of the policy."""
    other = pc.or_(pc.not_equal(table["policy_version"], policy.meta.version),
                   pc.not_equal(table["policy_digest"], policy.digest))
    if not table.num_rows or not pc.any(other).as_py():
        return []
    found = table.filter(other)
    months = sorted(set(found["month"].to_pylist()))
    versions = sorted(set(found["policy_version"].to_pylist()))
    shown = ", ".join(months[:SHOWN]) + (f" (+{len(months) - SHOWN})" if len(months) > SHOWN else "")
    return [{"code": "ledger_policy_version", "path": "ledger", "months": months, "versions": versions,
             "rows": found.num_rows,
             "message": f"{len(months)} month(s) were settled under another version or file of {policy.id} "
                        f"({', '.join(versions)}) than the one clearing the year ({policy.meta.version}, "
                        f"{policy.digest[:12]}): {shown}",
             "message_zh": f"{len(months)} 个月的预结算所用政策版本或文件（{'、'.join(versions)}）与年终清算所用"
                           f"（{policy.meta.version}，{policy.digest[:12]}）不同：{shown}"}]

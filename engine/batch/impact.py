"""Impact of a draft: a city-year settled under the served policy and under a draft (or parameter
overrides), compared per institution and fund (草案影响测算).

Both runs go through `settle` (the batch path), into a temporary folder; the rows compared are
those of the institution×fund entity (`account`), else of `institution`. For each row: the
headline amount before and after, the difference, and every variable whose value moved.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from engine.batch.settle import settle
from engine.errors import InputFault, SituationError
from engine.period import Period
from engine.policy.spec import Parameter, ParameterVersion, Policy
from engine.policy.values import ValueProblem
from engine.run.situation import checked_override

ROW_ENTITIES = ("account", "institution")  # institution×fund first, the institution when a policy has none
RELATIVE = 1e-9  # two numbers that differ by less than this share of the larger are the same


@dataclass
class ImpactRow:
    institution: str
    fund: str
    before: float
    after: float
    moved: list[str] = field(default_factory=list)

    @property
    def difference(self) -> float:
        return round(self.after - self.before, 2)

    def to_dict(self) -> dict:
        return {"institution": self.institution, "fund": self.fund, "before": self.before, "after": self.after,
                "difference": self.difference, "moved": self.moved}


@dataclass
class Impact:
    policy: str
    served_version: str
    draft_version: str
    period: str
    entity: str
    variable: str
    rows: list[ImpactRow]
    changed: list[str]  # parameters and formulas the draft changes

    def totals(self) -> dict:
        before = round(math.fsum(r.before for r in self.rows), 2)
        after = round(math.fsum(r.after for r in self.rows), 2)
        return {"before": before, "after": after, "difference": round(after - before, 2),
                "rows_moved": sum(1 for r in self.rows if r.moved)}

    def to_dict(self) -> dict:
        return {"policy": self.policy, "served_version": self.served_version, "draft_version": self.draft_version,
                "period": self.period, "entity": self.entity, "variable": self.variable, "changed": self.changed,
                "totals": self.totals(), "rows": [r.to_dict() for r in self.rows]}


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`name=value` pairs of the command line; each value is read as YAML (5%, 0.05, {…})."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise SituationError([InputFault(f"--set {pair}", "write --set NAME=VALUE, e.g. --set risk_fund_rate=5%",
                                             "应写作 --set 名称=取值，例如 --set risk_fund_rate=5%")])
        try:
            out[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[name.strip()] = text
    return out


def with_overrides(policy: Policy, overrides: dict[str, Any]) -> Policy:
    """A copy of the policy whose named parameters take one value on every date; each value is held
    to the rules of the parameter (as a situation's `parameters`); faults name `parameters.NAME`."""
    if not overrides:
        return policy
    faults, params = [], dict(policy.parameters)
    for name, value in overrides.items():
        param = policy.parameters.get(name)
        if param is None:
            faults.append(InputFault(f"parameters.{name}", f"unknown parameter '{name}'", f"未知参数“{name}”"))
            continue
        try:
            checked = checked_override(param, value)
        except ValueProblem as err:
            faults.append(InputFault(f"parameters.{name}", f"{name}: {err.en}", f"{name}：{err.zh}"))
            continue
        params[name] = _fixed(param, checked)
    if faults:
        raise SituationError(faults)
    meta = dataclasses.replace(policy.meta, version=f"{policy.meta.version}+overrides")
    return dataclasses.replace(policy, parameters=params, meta=meta)


def _fixed(param: Parameter, value: Any) -> Parameter:
    first = param.versions[0]
    return dataclasses.replace(param, versions=[ParameterVersion(first.start, value, "override")])


def changes(served: Policy, draft: Policy) -> list[str]:
    """Names of the parameters whose values, and of the formulas whose text, differ."""
    out = []
    for name in sorted(set(served.parameters) | set(draft.parameters)):
        a, b = served.parameters.get(name), draft.parameters.get(name)
        if a is None or b is None or [(v.start, v.value) for v in a.versions] != [(v.start, v.value) for v in b.versions]:
            out.append(name)
    formulas = {(s.variable.entity, s.variable.name): " ".join(str(s.variable.formula).split())
                for s in served.plan.steps}
    for step in draft.plan.steps:
        key = (step.variable.entity, step.variable.name)
        if formulas.get(key) != " ".join(str(step.variable.formula).split()):
            out.append(f"{key[0]}.{key[1]}")
    return out


def headline(policy: Policy, entity: str) -> str:
    """The default amount shown: the last money formula of the entity, in the policy's order."""
    money = [s.variable.name for s in policy.plan.steps if s.variable.entity == entity and s.variable.is_money]
    if not money:
        raise SituationError([InputFault("variable", f"the policy has no money formula on {entity}",
                                         f"政策在 {entity} 上没有金额公式")])
    declared = list(policy.model.entities[entity].variables)
    return max(money, key=lambda n: declared.index(n) if n in declared else -1)


def row_entity(served: Policy, draft: Policy) -> str:
    for entity in ROW_ENTITIES:
        if any(s.variable.entity == entity for s in served.plan.steps) and \
                any(s.variable.entity == entity for s in draft.plan.steps):
            return entity
    raise SituationError([InputFault("policy", "neither policy computes anything per institution",
                                     "政策未按医疗机构计算任何数值")])


def impact(served: Policy, draft: Policy, data: Path, period: Period, variable: str | None = None,
           workdir: Path | None = None) -> Impact:
    """Settle the city-year of `data` under both policies and compare them (see the module); the
    results are written under `workdir` (which the caller removes), else in a temporary folder."""
    entity = row_entity(served, draft)
    variable = variable or headline(draft, entity)
    for policy in (served, draft):
        names = {s.variable.name for s in policy.plan.steps if s.variable.entity == entity}
        if variable not in names:
            raise SituationError([InputFault("variable", f"{policy.meta.version} computes no {entity}.{variable}",
                                             f"{policy.meta.version} 未计算 {entity}.{variable}")])
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="medpay-impact-") as tmp:
            return impact(served, draft, data, period, variable, Path(tmp))
    settle(served, data, workdir / "before", period)
    settle(draft, data, workdir / "after", period)
    rows = compare(workdir / "before", workdir / "after", entity, variable)
    return Impact(served.id, served.meta.version, draft.meta.version, period.text, entity, variable, rows,
                  changes(served, draft))


def _read(folder: Path, entity: str) -> dict[str, dict[str, Any]]:
    """id → {variable: value} of one entity's results (empty when the run wrote none)."""
    path = folder / f"{entity}.parquet"
    if not path.is_file():
        return {}
    columns = pq.ParquetFile(path).read().to_pydict()
    ids = columns.pop("id")
    return {rid: {n: vals[i] for n, vals in columns.items()} for i, rid in enumerate(ids)}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= RELATIVE * max(abs(a), abs(b))
    return a == b


def moved(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Variables whose value differs (present in one run only counts as moved)."""
    return sorted(n for n in set(before) | set(after) if n not in before or n not in after
                  or not same(before[n], after[n]))


def compare(before_dir: Path, after_dir: Path, entity: str, variable: str) -> list[ImpactRow]:
    """One row per institution (×fund): the amount before and after and the variables that moved,
    the institution's own moved variables included (as institution.NAME); largest changes first."""
    before, after = _read(before_dir, entity), _read(after_dir, entity)
    inst_before, inst_after = _read(before_dir, "institution"), _read(after_dir, "institution")
    rows = []
    for rid in list(before) + [r for r in after if r not in before]:
        b, a = before.get(rid, {}), after.get(rid, {})
        institution, _, fund = rid.partition("|") if entity == "account" else (rid, "", "")
        names = [f"{entity}.{n}" for n in moved(b, a)]
        if entity == "account":
            names += [f"institution.{n}" for n in moved(inst_before.get(institution, {}),
                                                        inst_after.get(institution, {}))]
        rows.append(ImpactRow(institution, fund, _amount(b.get(variable)), _amount(a.get(variable)), names))
    rows.sort(key=lambda r: (-abs(r.difference), r.institution, r.fund))
    return rows


def _amount(value: Any) -> float:
    return 0.0 if value is None else round(float(value), 2)


def render_table(result: Impact, top: int = 20) -> str:
    """The comparison as a terminal table: the `top` largest changes, then the totals."""
    totals = result.totals()
    lines = [f"impact of {result.draft_version} on {result.policy} {result.period} "
             f"({result.entity}.{result.variable}) / 草案影响（对比现行 {result.served_version}）"]
    if result.changed:
        lines.append(f"  changed / 改动: {', '.join(result.changed[:12])}"
                     + (f" (+{len(result.changed) - 12})" if len(result.changed) > 12 else ""))
    head = ("institution 机构", "fund 基金", "before 现行", "after 草案", "difference 差额", "moved 变动")
    cells = [(r.institution, r.fund, f"{r.before:,.2f}", f"{r.after:,.2f}", f"{r.difference:+,.2f}",
              _shown_moved(r.moved)) for r in result.rows[:top]]
    cells.append(("total 合计", "", f"{totals['before']:,.2f}", f"{totals['after']:,.2f}",
                  f"{totals['difference']:+,.2f}", f"{totals['rows_moved']} of {len(result.rows)} rows moved"))
    widths = [max(_width(c[i]) for c in [head, *cells]) for i in range(5)]
    for i, row in enumerate([head, *cells]):
        if i == len(cells):
            lines.append("  " + "-" * (sum(widths) + 10))
        lines.append("  " + "  ".join(_pad(row[j], widths[j], right=j >= 2) for j in range(5)) + "  " + row[5])
    if len(result.rows) > top:
        lines.insert(-2, f"  … {len(result.rows) - top} more rows in the spreadsheet / 其余 {len(result.rows) - top} 行见表格")
    return "\n".join(lines)


def _shown_moved(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" (+{len(names) - most})" if len(names) > most else "")


def _width(text: str) -> int:
    """Columns a text takes on a terminal: CJK characters take two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def write_xlsx(result: Impact, path: Path) -> None:
    """The comparison as a spreadsheet: one row per institution×fund, totals, and what changed."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    book = Workbook()
    sheet = book.active
    sheet.title = "impact 影响"
    sheet.append([f"{result.policy} {result.period}: {result.entity}.{result.variable}, "
                  f"{result.served_version} → {result.draft_version}"])
    header = ["institution 机构", "fund 基金", "before 现行", "after 草案", "difference 差额", "moved 变动的变量"]
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in result.rows:
        sheet.append([row.institution, row.fund, row.before, row.after, row.difference, ", ".join(row.moved)])
    totals = result.totals()
    sheet.append(["total 合计", "", totals["before"], totals["after"], totals["difference"],
                  f"{totals['rows_moved']} rows moved"])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for column in ("C", "D", "E"):
        for cell in sheet[column][2:]:
            cell.number_format = "#,##0.00"
    sheet.freeze_panes = "A3"
    sheet.auto_filter.ref = f"A2:F{sheet.max_row - 1}"
    for column, width in zip("ABCDEF", (18, 14, 18, 18, 16, 60), strict=True):
        sheet.column_dimensions[column].width = width
    changed = book.create_sheet("changes 改动")
    changed.append(["changed in the draft 草案改动"])
    for name in result.changed:
        changed.append([name])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)

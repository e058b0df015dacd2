"""Clearing statements (清算单): a policy's `statement:` section filled with a run's values.

Each line shows the value as the run computed it (money as the run rounds it, to the fen);
lines a statement derives itself (the amount in each band of a `bands(...)` result) say so.
The renderers (engine.report.xlsx, engine.report.html) only lay these lines out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.model.spec import Label
from engine.period import parse_period
from engine.policy.spec import Policy
from engine.policy.statement import BandsSpec, StatementLine, StatementSpec
from engine.report.results import Results
from engine.run.money import round_half_up

NO_STATEMENT = Label("本政策未定义清算单（statement）", "the policy declares no statement (statement:)")


@dataclass
class Line:
    """One filled line: labels, clause, value, unit; `formula` says what it adds up, `derived`
    marks a value the statement computed (not a value of the run)."""

    zh: str
    en: str
    clause: str
    value: Any
    unit: str = ""
    variable: str = ""
    formula: str = ""
    derived: bool = False
    level: int = 0  # 1: a detail line under the one before (a month, a band)


@dataclass
class Section:
    kind: str
    zh: str
    en: str
    lines: list[Line]


@dataclass
class Statement:
    """The statement of one row of one entity."""

    entity: str
    row_id: str
    title: Label
    entity_label: Label
    policy: dict
    period: str
    parents: dict[str, str]
    sections: list[Section] = field(default_factory=list)

    def line(self, variable: str) -> Line | None:
        return next((li for s in self.sections for li in s.lines if li.variable == variable), None)


def rows_of(results: Results, entity: str) -> list[str]:
    """Ids of the entity's rows the run computed, in order."""
    return list(results.rows.get(entity, {}))


def build(results: Results, entity: str, row_id: str) -> Statement:
    """The statement of `entity` row `row_id` (KeyError when the policy has no statement for it
    or the run has no such row)."""
    policy = results.policy
    spec: StatementSpec = policy.statements[entity]
    if row_id not in results.rows.get(entity, {}):
        raise KeyError(row_id)
    out = Statement(entity, row_id, spec.title, policy.model.entities[entity].label, policy.meta.to_dict(),
                    results.period, results.parents.get(entity, {}).get(row_id, {}))
    for section in spec.sections:
        lines: list[Line] = []
        for line in section.lines:
            lines += _lines(results, entity, row_id, line)
        out.sections.append(Section(section.kind, section.label.zh, section.label.en, lines))
    return out


def _lines(results: Results, entity: str, row_id: str, line: StatementLine) -> list[Line]:
    if line.children:
        return _children(results, entity, row_id, line)
    value = results.value(entity, row_id, line.variable)
    formula = _formula(results.policy, entity, line)
    out = [Line(line.label.zh, line.label.en, line.clause, value, line.unit, line.variable, formula)]
    if line.bands:
        out += _bands(results, entity, row_id, line.bands)
    return out


def _formula(policy: Policy, entity: str, line: StatementLine) -> str:
    """'= a + b − c' in the lines' Chinese labels, for a line that says what it adds up."""
    variables = policy.model.entities[entity].variables
    text = ""
    for sign, names in line.adds:
        label = " × ".join(_term_label(policy, variables, name) for name in names)
        text += (" − " if sign < 0 else " + ") + label if text else ("−" if sign < 0 else "") + label
    return f"= {text}" if text else ""


def _term_label(policy: Policy, variables: dict, name: str) -> str:
    """A term's Chinese label; a child's variable as the sum of its lines (Σ …)."""
    if "." in name:
        child, _, var = name.partition(".")
        found = policy.model.entities[child]
        return f"Σ {found.variables[var].label.zh or var}（{found.label.zh}）"
    return variables[name].label.zh or name


def _children(results: Results, entity: str, row_id: str, line: StatementLine) -> list[Line]:
    """One line per row of the child entity under this row, by month (then by its other key parts)."""
    child, name = line.children
    ids = results.children(child, entity, row_id)
    parents = results.parents.get(child, {})
    ids.sort(key=lambda i: (parents[i].get("month", ""), i))
    out = []
    for i in ids:
        parts = [parents[i].get("month", "")] + [v for k, v in parents[i].items() if k not in ("month", entity)]
        which = " · ".join(p for p in parts if p) or i
        out.append(Line(f"{which} {line.label.zh}", f"{which} {line.label.en}", line.clause,
                        results.value(child, i, name), line.unit, f"{child}.{i}.{name}", level=1))
    return out


def _bands(results: Results, entity: str, row_id: str, spec: BandsSpec) -> list[Line]:
    """The amount in each band and its share (rate × amount in the band), as bands() computes them."""
    param = results.policy.parameters[spec.parameter]
    table = param.versions[int(param.version_index(np.datetime64(_period_end(results.period), "D")))].value
    amount = float(results.value(entity, row_id, spec.amount) or 0.0)
    base = float(results.value(entity, row_id, spec.base) or 0.0) if spec.base else 1.0
    edges, rates = list(table["edges"]), list(table["rates"])
    out, low = [], 0.0
    for k, rate in enumerate(rates):
        high = edges[k] * base if k < len(edges) else float("inf")
        piece = max(0.0, min(amount, high) - low) if amount > low else 0.0
        zh_range = _range(edges, k, "及以上", spec.base is not None)
        en_range = _range(edges, k, "and above", spec.base is not None)
        share = float(round_half_up(piece * rate))
        out.append(Line(f"分段 {zh_range}：{_money(piece)} × {rate:.0%}", f"band {en_range}: {_money(piece)} × "
                        f"{rate:.0%}", param.source or "", share, "yuan", f"{spec.parameter}[{k}]", derived=True,
                        level=1))
        low = high
    total = sum(line.value for line in out)
    out.append(Line("分段合计（本行如有上限，以上限为准）", "total of the bands (a cap on the line, if any, applies)",
                    param.source or "", float(round_half_up(total)), "yuan", f"{spec.parameter}[total]",
                    derived=True, level=1))
    return out


def _range(edges: list[float], k: int, above: str, ratio: bool) -> str:
    shown = [f"{e:.0%}" if ratio else f"{e:,.2f}" for e in edges]
    low = "0" if k == 0 else shown[k - 1]
    return f"{low}–{shown[k]}" if k < len(edges) else f"{low} {above}"


def _money(value: float) -> str:
    return f"{float(round_half_up(value)):,.2f}"


def _period_end(text: str) -> dt.date:
    try:
        return parse_period(text).end
    except Exception:  # noqa: BLE001 - a result always has a valid period; today's date otherwise
        return dt.date.today()


RATIO_UNITS = ("ratio",)


def shown_value(value: Any, unit: str) -> str:
    """A value as printed: money to the fen with separators, ratios as percentages, yes/no in both languages."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, str):
        return value or "—"
    number = float(value)
    if unit == "yuan":
        return f"{number:,.2f}"
    if unit in RATIO_UNITS:
        return f"{number * 100:.4g}%"
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:,.6f}".rstrip("0")


def money_total(values: list[Any]) -> float:
    """The exact sum of amounts given to the fen (added in fen as integers, no float drift)."""
    fen = sum(int(round(float(v) * 100)) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    return fen / 100

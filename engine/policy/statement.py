"""The `statement:` section of a policy: what a clearing statement (清算单) lists, line by line.

Per entity (institution, community, account, fund …) a title and sections in order; each line
names a variable of that entity (its label and clause are the variable's unless the line gives
its own), or one line per row of a child entity linked to it: `monthly: account_month.presettled`
(a child keyed by month, in month order) or `each: account.recovered` (any linked child). A line
may say what it adds up (`adds: [a, -b, c*d, -account.recovered]`, a `child.variable` term being
the sum of that child's lines), and a line of a `bands(...)` result may show the amount falling in
each band (`bands: {parameter, amount, base}`). The schema checks the shape; this
module checks the names against the model and the parameters.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from engine.errors import Diagnostic
from engine.model.model import Model, label_of
from engine.model.spec import Label
from engine.policy.yaml_source import SourceText, shown

SECTION_LABELS = {
    "budget": Label("预算编制", "budget build-up"),
    "reserve": Label("风险金与调节金", "reserve and adjustment fund"),
    "buildup": Label("核算过程（病例→点数/分值→金额）", "build-up: cases → points / scores → money"),
    "routes": Label("各支付方式金额", "amounts by payment route"),
    "prepaid": Label("已预拨（预结算）", "prepaid (monthly settlements)"),
    "withheld": Label("预留", "withheld"),
    "deductions": Label("扣减（违规、拒付、保证金）", "deductions (violations, refused costs, deposits)"),
    "sharing": Label("超支分担与结余留用", "overspend shared and surplus retained"),
    "net": Label("清算结果（应付/应退）", "net due (or owed back)"),
    "monitoring": Label("考核与监测指标", "assessment and monitoring"),
}


@dataclass
class BandsSpec:
    """Show a `bands(...)` result band by band: the band table, the amount banded, the base of the edges."""

    parameter: str
    amount: str
    base: str | None = None


@dataclass
class StatementLine:
    """One line: a variable of the statement's entity, or one line per month of a child entity's variable."""

    variable: str | None
    label: Label
    clause: str
    unit: str = ""
    type: str = "number"
    children: tuple[str, str] | None = None  # (entity, variable): one line per linked child row
    adds: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # the line equals Σ sign × Π variables
    bands: BandsSpec | None = None


@dataclass
class StatementSection:
    kind: str
    label: Label
    lines: list[StatementLine]


@dataclass
class StatementSpec:
    """The statement of one entity: its title and sections."""

    entity: str
    title: Label
    sections: list[StatementSection]

    def variables(self) -> list[str]:
        """The entity's variables the statement shows, in order."""
        return [line.variable for s in self.sections for line in s.lines if line.variable]


def read_statements(data: dict, model: Model, parameters: dict, source: SourceText,
                    problems: list[Diagnostic]) -> dict[str, StatementSpec]:
    """The `statement:` section read against the model; faults go to `problems`."""
    out: dict[str, StatementSpec] = {}
    for entity, spec in (data.get("statement") or {}).items():
        path = ("statement", entity)
        if entity not in model.entities:
            problems.append(Diagnostic("unknown_entity", f"statement: '{shown(entity)}' is not an entity of the model",
                                       f"清算单：“{shown(entity)}”不是模型中的实体", source.key_location(path)))
            continue
        reader = _LineReader(model, parameters, source, problems, entity)
        sections = [StatementSection(s["kind"], label_of(s["label"]) if s.get("label") else SECTION_LABELS[s["kind"]],
                                     [line for j, raw in enumerate(s["lines"])
                                      if (line := reader.line(raw, (*path, "sections", i, "lines", j)))])
                    for i, s in enumerate(spec["sections"])]
        out[entity] = StatementSpec(entity, label_of(spec["title"]), sections)
    return out


class _LineReader:
    def __init__(self, model: Model, parameters: dict, source: SourceText, problems: list[Diagnostic], entity: str):
        self.model, self.parameters, self.source, self.problems = model, parameters, source, problems
        self.entity = entity
        self.variables = model.entities[entity].variables

    def fault(self, path: tuple, en: str, zh: str, code: str = "unknown_name") -> None:
        self.problems.append(Diagnostic(code, en, zh, self.source.location(path)))

    def known(self, name: str, path: tuple) -> bool:
        """A variable of the statement's entity (else a diagnostic with the nearest name)."""
        if name in self.variables:
            return True
        hint = difflib.get_close_matches(name, list(self.variables), n=1)
        self.fault(path, f"statement: '{shown(name)}' is not a variable of {self.entity}"
                   + (f"; did you mean '{hint[0]}'?" if hint else ""),
                   f"清算单：“{shown(name)}”不是 {self.entity} 的变量" + (f"；是否应为“{hint[0]}”？" if hint else ""))
        return False

    def line(self, raw: str | dict, path: tuple) -> StatementLine | None:
        spec = {"variable": raw} if isinstance(raw, str) else raw
        if "monthly" in spec or "each" in spec:
            return self.children(spec, path)
        name = spec["variable"]
        where = path if isinstance(raw, str) else (*path, "variable")
        if not self.known(name, where):
            return None
        var = self.variables[name]
        adds = self.adds(spec.get("adds") or [], (*path, "adds"))
        bands = self.bands(spec["bands"], (*path, "bands")) if spec.get("bands") else None
        label = label_of(spec["label"]) if spec.get("label") else var.label
        clause = spec.get("source") or var.source or ("假设 assumed" if var.assumed else "输入 input" if var.is_input else "")
        return StatementLine(name, label, clause, var.unit, var.type, None, adds, bands)

    def adds(self, terms: list[str], path: tuple) -> list[tuple[int, tuple[str, ...]]]:
        """`[a, -b, c*d]`: signed terms, each a variable or a product of variables."""
        out = []
        for k, term in enumerate(terms):
            sign, text = (-1, term[1:]) if term.startswith("-") else (1, term.lstrip("+"))
            names = tuple(text.split("*"))
            if "." in text:
                if len(names) == 1 and self.child(text, (*path, k), months=False):
                    out.append((sign, names))
            elif all([self.known(name, (*path, k)) for name in names]):
                out.append((sign, names))
        return out

    def bands(self, spec: dict, path: tuple) -> BandsSpec | None:
        param = self.parameters.get(spec["parameter"])
        if param is None or param.kind != "bands":
            self.fault((*path, "parameter"), f"statement: '{shown(spec['parameter'])}' is not a band table parameter",
                       f"清算单：“{shown(spec['parameter'])}”不是分段参数")
            return None
        ok = self.known(spec["amount"], (*path, "amount"))
        ok = (not spec.get("base") or self.known(spec["base"], (*path, "base"))) and ok
        return BandsSpec(spec["parameter"], spec["amount"], spec.get("base")) if ok else None

    def child(self, text: str, path: tuple, months: bool):
        """`child.variable` of an entity linked to this one (keyed by month when `months`); None if not."""
        child, _, name = text.partition(".")
        entity = self.model.entities.get(child)
        if entity is None or self.entity not in entity.links or months and not any(p.kind == "month" for p in entity.key):
            kind, kind_zh = ("a monthly entity", "月度实体") if months else ("an entity", "实体")
            self.fault(path, f"statement: '{shown(child)}' is not {kind} linked to {self.entity}",
                       f"清算单：“{shown(child)}”不是与 {self.entity} 关联的{kind_zh}")
            return None
        var = entity.variables.get(name)
        if var is None:
            self.fault(path, f"statement: '{shown(name)}' is not a variable of {child}",
                       f"清算单：“{shown(name)}”不是 {child} 的变量")
        return var

    def children(self, spec: dict, path: tuple) -> StatementLine | None:
        """`monthly: account_month.presettled` or `each: account.recovered`: one line per linked child row."""
        key = "monthly" if "monthly" in spec else "each"
        var = self.child(spec[key], (*path, key), months=key == "monthly")
        if var is None:
            return None
        label = label_of(spec["label"]) if spec.get("label") else var.label
        clause = spec.get("source") or var.source or ("假设 assumed" if var.assumed else "输入 input" if var.is_input else "")
        return StatementLine(None, label, clause, var.unit, var.type, (var.entity, var.name))

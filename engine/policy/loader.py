"""Read a policy file: YAML → schema → parameters, tables, variables with parsed formulas (政策读取).

Checking, compiling and planning the formulas is engine.compile.build's part. Either the whole
policy reads, or PolicyError lists every diagnostic: nothing half-read.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from engine import settings
from engine.dsl.parser import parse_formula
from engine.errors import Diagnostic, FormulaError, Location, PolicyError
from engine.model.model import MODEL_FILE, Model, field_from, label_of
from engine.model.spec import Variable, text_of
from engine.policy.grouping import read_groupings
from engine.policy.schema import schema_diagnostics
from engine.policy.spec import Policy, PolicyCheck, PolicyMeta, Reading
from engine.policy.statement import read_statements
from engine.policy.values import (
    TableReader,
    build_parameter,
    disk_tables,
    read_table,
    served_tables,
    table_budget,
)
from engine.policy.yaml_source import SourceText, load_yaml, shown
from engine.settings import LIMITS

MAX_POLICY_BYTES = LIMITS.policy_bytes


def as_date(value) -> dt.date | None:
    """A YAML date, or its ISO text, as a date."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@cache
def _base_model_data() -> dict:
    return yaml.safe_load(MODEL_FILE.read_text(encoding="utf-8"))


@dataclass
class Draft:
    """A policy as read, before its formulas are checked: the policy (no plan yet), its formula
    variables in file order, and the source text that places diagnostics."""

    policy: Policy
    formulas: list[Variable]
    source: SourceText
    problems: list[Diagnostic]
    checks: list[PolicyCheck] = field(default_factory=list)

    def formula_problem(self, var: Variable, err: FormulaError) -> None:
        """Record an error in `var`'s formula at its line and column in the file."""
        loc = self.source.location((*var.path, "formula"), err.offset)
        self.problems.append(Diagnostic(err.code, err.en, err.zh, loc))

    def fail_if_problems(self) -> None:
        if any(p.severity == "error" for p in self.problems):
            raise PolicyError(self.problems)


def read_policy_file(path: str | Path) -> Draft:
    """Read one policy file (formulas parsed, not yet checked)."""
    file = Path(path)
    if not file.is_file():
        raise PolicyError([Diagnostic("no_file", f"policy file {file} not found", f"找不到政策文件 {file}",
                                      Location(str(file)))])
    return read_policy_text(file.read_text(encoding="utf-8"), str(file), file.parent)


def read_policy_text(text: str, file: str = "<policy>", base_dir: Path | None = None,
                     tables: TableReader = disk_tables) -> Draft:
    """Read a policy from its YAML text; its tables are files of `base_dir`/tables,
    read through `tables` (from disk by default; see `served_table_reader`)."""
    if len(text) > MAX_POLICY_BYTES or len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise PolicyError([Diagnostic("file_too_large", f"policy file is larger than {MAX_POLICY_BYTES} bytes",
                                      f"政策文件超过 {MAX_POLICY_BYTES} 字节", Location(file, 1, 1))])
    source = load_yaml(text, file)
    problems = count_diagnostics(source) or schema_diagnostics(source)
    if problems:
        raise PolicyError(problems)
    return _Builder(source, base_dir or Path.cwd(), tables).build()


def served_table_reader(cities: dict[str, list[Policy]]) -> TableReader:
    """A table reader that serves only the tables the given policies loaded, by resolved path; it reads no file."""
    return served_tables({Path(t.path): t.text for versions in cities.values() for policy in versions
                          for t in policy.tables.values() if t.path})


def _entries(data: object, key: str) -> dict:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def count_diagnostics(source: SourceText) -> list[Diagnostic]:
    """Refuse a policy with more parameters, variables, tables or formula text than the limits allow,
    before anything is checked or parsed (so that loading time stays bounded)."""
    limits = settings.LIMITS
    variables = [(("variables", e, n), spec) for e, declared in _entries(source.data, "variables").items()
                 if isinstance(declared, dict) for n, spec in declared.items()]
    counted = [("parameters", list(_entries(source.data, "parameters")), limits.policy_parameters,
                "MEDPAY_MAX_POLICY_PARAMETERS", "参数"),
               ("variables", [p for p, _ in variables], limits.policy_variables, "MEDPAY_MAX_POLICY_VARIABLES", "变量"),
               ("tables", list(_entries(source.data, "tables")), limits.policy_tables, "MEDPAY_MAX_POLICY_TABLES", "表")]
    for what, names, limit, setting, zh in counted:
        if len(names) > limit:
            past = names[limit]
            where = past if isinstance(past, tuple) else (what, past)
            return [Diagnostic("too_many", f"the policy declares more than {limit} {what} ({setting})",
                               f"政策中的{zh}超过 {limit} 个（{setting}）", source.key_location(where))]
    total = 0
    for path, spec in variables:
        total += len(str(spec.get("formula", ""))) if isinstance(spec, dict) else 0
        if total > limits.policy_formula_chars:
            return [Diagnostic("too_many", f"the policy's formulas together are longer than "
                               f"{limits.policy_formula_chars} characters (MEDPAY_MAX_POLICY_FORMULA_CHARS)",
                               f"政策中公式总长超过 {limits.policy_formula_chars} 个字符"
                               "（MEDPAY_MAX_POLICY_FORMULA_CHARS）", source.location((*path, "formula")))]
    return []


class _Builder:
    def __init__(self, source: SourceText, base_dir: Path, tables: TableReader = disk_tables):
        self.source, self.base_dir, self.tables = source, base_dir, table_budget(tables)
        self.data = source.data
        self.problems: list[Diagnostic] = []

    def fail_if_problems(self) -> None:
        if any(p.severity == "error" for p in self.problems):
            raise PolicyError(self.problems)

    def build(self) -> Draft:
        meta = self.meta()
        parameters = {}
        for name, spec in (self.data.get("parameters") or {}).items():
            param = build_parameter(name, spec, self.source, meta.effective_from, self.problems)
            if param:
                parameters[name] = param
        tables = {}
        for name, spec in (self.data.get("tables") or {}).items():
            table = read_table(name, spec, self.base_dir, self.source, self.problems, self.tables)
            if table:
                tables[name] = table
        model = Model.from_data(_base_model_data())
        self.chains(model)
        formulas = self.variables(model, parameters)
        checks = self.checks(model)
        readings = self.readings(model, parameters)
        groupings = read_groupings(self.data, self.source, tables, model, self.problems)
        statements = read_statements(self.data, model, parameters, self.source, self.problems)
        self.fail_if_problems()
        policy = Policy(meta, model, parameters, tables, self.source.file,
                        hashlib.sha256(self.source.text.encode("utf-8")).hexdigest())
        policy.readings, policy.statements = readings, statements
        policy.groupings = groupings
        policy.assumptions = [(f"parameters.{n}", p.assumed) for n, p in parameters.items() if p.assumed] + \
            [(f"variables.{v.entity}.{v.name}", v.assumed) for v in formulas if v.assumed] + \
            [(f"tables.{n}", t.assumed) for n, t in tables.items() if t.assumed] + \
            [(f"checks.{c.entity}.{c.name}", c.assumed) for c in checks if c.assumed] + \
            [(f"grouping.{n}", g.assumed) for n, g in groupings.items() if g.assumed]
        policy.assumed = [f"{where}: {why}" for where, why in policy.assumptions]
        return Draft(policy, formulas, self.source, self.problems, checks)

    def chains(self, model: Model) -> None:
        """`chains: {claim: {within: [institution.community]}}`: the entity's chains stop at the
        boundary of the parents these link paths reach."""
        for entity_name, spec in (self.data.get("chains") or {}).items():
            entity = model.entities.get(entity_name)
            if entity is None or entity.chain is None:
                chained = [e.name for e in model.entities.values() if e.chain]
                self.problems.append(Diagnostic(
                    "not_chained", f"'{shown(entity_name)}' has no chains; only {', '.join(chained)} has",
                    f"“{shown(entity_name)}”没有转诊链；只有 {', '.join(chained)} 有", self.source.key_location(("chains", entity_name))))
                continue
            paths = []
            for i, text in enumerate(spec["within"]):
                path = str(text).split(".")
                current, ok = entity_name, True
                for link in path:
                    current = model.entities[current].links.get(link) if ok else None
                    ok = current is not None
                if not ok:
                    self.problems.append(Diagnostic(
                        "unknown_link", f"'{shown(str(text))}' is not a path of links from {entity_name} "
                        "(write e.g. institution.community)",
                        f"“{shown(str(text))}”不是从 {entity_name} 出发的关联路径（例如 institution.community）",
                        self.source.location(("chains", entity_name, "within", i))))
                    continue
                paths.append(path)
            entity.chain.within = paths

    def readings(self, model: Model, parameters: dict) -> list[Reading]:
        """The policy's readings of clauses the notice leaves open; each name in `affects` must be a
        parameter or an `entity.variable` of the policy."""
        out = []
        for i, spec in enumerate(self.data.get("readings") or []):
            for j, name in enumerate(spec.get("affects") or []):
                entity, _, var = str(name).partition(".")
                known = name in parameters or (var and entity in model.entities
                                               and var in model.entities[entity].variables)
                if not known:
                    self.problems.append(Diagnostic(
                        "unknown_name", f"reading {i + 1} affects '{shown(str(name))}', which is neither a parameter "
                        "nor an entity.variable of this policy",
                        f"第 {i + 1} 条理解所涉“{shown(str(name))}”既不是参数也不是本政策的“实体.变量”",
                        self.source.location(("readings", i, "affects", j))))
            out.append(Reading(str(spec["clause"]), spec["status"], label_of(spec["text"]),
                               [str(n) for n in spec.get("affects") or []]))
        return out

    def meta(self) -> PolicyMeta:
        p = self.data["policy"]
        eff = p["effective"]
        start, end = as_date(eff["from"]), as_date(eff.get("to"))
        if end and end < start:
            self.problems.append(Diagnostic("effective_order", "the policy ends before it starts (effective.to < from)",
                                            "政策失效日期早于生效日期", self.source.location(("policy", "effective", "to"))))
        return PolicyMeta(id=p["id"], name=label_of(p["name"]), notice=p["notice"], title=p.get("title", ""),
                          issuer=p["issuer"], issued=as_date(p.get("issued")), effective_from=start,
                          effective_to=end, version=str(p.get("version") or start.isoformat()))

    def variables(self, model: Model, parameters: dict) -> list[Variable]:
        """Add the policy's variables to the model; parse formulas. Returns the formula variables."""
        formulas: list[Variable] = []
        for entity_name, declared in (self.data.get("variables") or {}).items():
            if entity_name not in model.entities:
                hint = difflib.get_close_matches(entity_name, list(model.entities), n=1)
                named = shown(entity_name)
                self.problems.append(Diagnostic(
                    "unknown_entity", f"'{named}' is not an entity of the model"
                    + (f"; did you mean '{hint[0]}'?" if hint else f" ({', '.join(model.entities)})"),
                    f"“{named}”不是模型中的实体" + (f"；是否应为“{hint[0]}”？" if hint else ""),
                    self.source.key_location(("variables", entity_name))))
                continue
            entity = model.entities[entity_name]
            for name, spec in declared.items():
                path = ("variables", entity_name, name)
                if name in parameters:
                    self.problems.append(Diagnostic(
                        "ambiguous_name", f"'{name}' is both a parameter and a variable of {entity_name}; rename one",
                        f"“{name}”既是参数又是 {entity_name} 的变量；请改名其一", self.source.key_location(path)))
                    continue
                if name in entity.links:
                    self.problems.append(Diagnostic(
                        "link_redefined", f"'{name}' is the link of {entity_name} to its parent; it cannot be redefined",
                        f"“{name}”是 {entity_name} 指向上级的链接，不能重新定义", self.source.key_location(path)))
                    continue
                if spec.get("required") == "always" and ("default" in spec or "formula" in spec):
                    self.problems.append(Diagnostic(
                        "required_with_value", f"'{name}' is required on every row (required: always): it can have "
                        "neither a default nor a formula",
                        f"“{name}”声明为每行必填（required: always），不能再有默认值或公式",
                        self.source.key_location((*path, "required"))))
                    continue
                var = field_from(name, entity_name, spec, path)
                var.source, var.assumed, var.note = spec.get("source"), text_of(spec.get("assumed")), text_of(spec.get("note"))
                entity.variables[name] = var
                if "formula" not in spec:
                    continue
                if var.type == "codes":
                    self.problems.append(Diagnostic(
                        "codes_formula", f"'{name}' is a list of codes: an input of the settlement list, read by a "
                        "grouping (grouping: fields:); a formula cannot give one",
                        f"“{name}”是编码列表：来自结算清单的输入，由分组规则读取；不能由公式计算",
                        self.source.key_location((*path, "formula"))))
                    continue
                var.formula = str(spec["formula"]).lower() if isinstance(spec["formula"], bool) else \
                    self.source.text_as_written((*path, "formula"), str(spec["formula"]))
                if not (var.source or var.assumed):
                    self.problems.append(Diagnostic(
                        "missing_provenance",
                        f"variable '{name}' must cite its clause (source: 四（四）2) or say why it is assumed (assumed: …)",
                        f"变量“{name}”必须注明条款出处（source）或说明假设理由（assumed）", self.source.key_location(path)))
                try:
                    var.node = parse_formula(var.formula)
                except FormulaError as err:
                    self.formula_problem(var, err)
                    continue
                formulas.append(var)
        return formulas

    def checks(self, model: Model) -> list[PolicyCheck]:
        """The `checks:` section: per entity, named yes/no formulas with a severity, a bilingual
        message and their clause; formulas parsed (checked and compiled with the variables)."""
        out: list[PolicyCheck] = []
        for entity_name, declared in (self.data.get("checks") or {}).items():
            if self.unknown_entity(model, "checks", entity_name):
                continue
            for name, spec in (declared or {}).items():
                check = self.check(entity_name, name, spec)
                if check is not None:
                    out.append(check)
        return out

    def unknown_entity(self, model: Model, section: str, entity_name: str) -> bool:
        """Record a diagnostic if `entity_name` (a key of `section`) is not an entity of the model."""
        if entity_name in model.entities:
            return False
        hint = difflib.get_close_matches(entity_name, list(model.entities), n=1)
        self.problems.append(Diagnostic(
            "unknown_entity", f"'{entity_name}' is not an entity of the model"
            + (f"; did you mean '{hint[0]}'?" if hint else f" ({', '.join(model.entities)})"),
            f"“{entity_name}”不是模型中的实体" + (f"；是否应为“{hint[0]}”？" if hint else ""),
            self.source.key_location((section, entity_name))))
        return True

    def check(self, entity_name: str, name: str, spec: dict) -> PolicyCheck | None:
        """One check declaration, its formula parsed; None (with a diagnostic) when it cannot be read."""
        path = ("checks", entity_name, name)
        formula = str(spec["formula"]).lower() if isinstance(spec["formula"], bool) else \
            self.source.text_as_written((*path, "formula"), str(spec["formula"]))
        check = PolicyCheck(name, entity_name, formula, spec["severity"], label_of(spec["message"]),
                            spec.get("source"), text_of(spec.get("assumed")), text_of(spec.get("note")), path)
        if not (check.source or check.assumed):
            self.problems.append(Diagnostic(
                "missing_provenance",
                f"check '{name}' must cite its clause (source: 四（四）2) or say why it is assumed (assumed: …)",
                f"校验“{name}”必须注明条款出处（source）或说明假设理由（assumed）", self.source.key_location(path)))
        try:
            check.node = parse_formula(formula)
        except FormulaError as err:
            self.problems.append(Diagnostic(err.code, err.en, err.zh,
                                            self.source.location((*path, "formula"), err.offset)))
            return None
        return check

    def formula_problem(self, var: Variable, err: FormulaError) -> None:
        path = (*var.path, "formula")
        loc = self.source.location(path, err.offset)
        self.problems.append(Diagnostic(err.code, err.en, err.zh, loc))

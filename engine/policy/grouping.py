"""The `grouping:` section: rules that assign a DRG/DIP group from a claim's codes (分组规则).

A grouping reads a claim's principal diagnosis, its procedures and secondary diagnoses (lists of
codes) and tries its rules in order; each rule is a table of code patterns, one row per candidate
group. A pattern cell is read by policy staff as written:

  K35.8        the code itself            K35*          any code starting with K35
  C00-C97      a range (C97.1 is inside)  @cc_codes     a code of a code-list table
  K35*|K36*    either                     47.09*&54.21  (procedures) both, each by some procedure
  (empty)      no condition

Records only: matching runs in engine.run.grouping; the formula functions (group(dip), …) are
registered by engine.compile.grouping.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from engine.errors import Diagnostic
from engine.model.codelists import normalise
from engine.model.model import Model, label_of
from engine.model.spec import Label, text_of
from engine.policy.spec import Table
from engine.policy.values import TableUnavailable, _csv_rows
from engine.policy.yaml_source import SourceText, shown

MATCHES = ("any", "all", "highest")
CHOICES = ("first", "highest")
FIELD_TYPES = {"diagnosis": "string", "procedures": "codes", "secondary": "codes"}


@dataclass(frozen=True)
class Pattern:
    """One code pattern: kind `code`, `prefix`, `range` (low, high) or `any`."""

    kind: str
    text: str
    low: str = ""
    high: str = ""

    def matches(self, code: str) -> bool:
        if self.kind == "any":
            return True
        if self.kind == "code":
            return code == self.low
        if self.kind == "prefix":
            return code.startswith(self.low)
        return self.low <= code and code[:len(self.high)] <= self.high


Alternatives = tuple[Pattern, ...]  # any of them
Cell = tuple[Alternatives, ...]  # all of them (procedures: each by some procedure)


@dataclass
class Rule:
    """One rule: a table of candidate groups, the columns it matches and how it chooses."""

    name: str
    table: str
    group: str
    rows: int = 0
    groups: list[str] = field(default_factory=list)
    diagnosis: list[Cell] | None = None
    procedures: list[Cell] | None = None
    procedures_match: str = "any"
    treatment: list[str] | None = None
    choose: str = "first"
    scores: list[float] | None = None
    splits: list[bool] | None = None
    suffix: dict[int, str] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)  # column → cells as written (for the trace)


@dataclass
class Ranking:
    """Procedures ranked (the highest decides the treatment type): pattern, rank and kind per row."""

    patterns: list[Alternatives]
    ranks: list[float]
    kinds: list[str]
    none: str = "conservative"


@dataclass
class Complication:
    """Secondary diagnoses that raise the complication level (CC/MCC, CCI), with exclusions: a
    code does not count when the principal diagnosis matches its `excluded` cell."""

    patterns: list[Alternatives]
    levels: list[int]
    excluded: list[Alternatives]


@dataclass
class Grouping:
    name: str
    label: Label
    fields: dict[str, str]
    rules: list[Rule]
    otherwise: str = ""
    ranking: Ranking | None = None
    complication: Complication | None = None
    source: str | None = None
    assumed: str | None = None
    note: str | None = None
    path: tuple = ()


class PatternError(ValueError):
    pass


def parse_alternatives(text: str, lists: dict[str, list[str]]) -> Alternatives:
    """`K35*|C00-C97|@cc`: the patterns of one cell, any of which may match."""
    out: list[Pattern] = []
    for part in str(text).split("|"):
        raw = normalise(part)
        if raw.startswith("@"):
            if raw[1:].lower() not in lists:
                raise PatternError(f"'{part.strip()}' names no code-list table"
                                   + _hint(raw[1:].lower(), lists))
            out += [one_pattern(c) for c in lists[raw[1:].lower()]]
        else:
            out.append(one_pattern(raw))
    return tuple(out)


def one_pattern(raw: str) -> Pattern:
    raw = normalise(raw)
    if raw in ("", "*"):
        return Pattern("any", raw)
    if raw.endswith("*"):
        if "*" in raw[:-1] or "-" in raw:
            raise PatternError(f"'{raw}': a prefix pattern is a code followed by one * (K35*)")
        return Pattern("prefix", raw, raw[:-1])
    if "-" in raw:
        low, _, high = raw.partition("-")
        if not low or not high or "-" in high or "*" in raw:
            raise PatternError(f"'{raw}': a range is two codes joined by - (C00-C97)")
        if low[:len(high)] > high:
            raise PatternError(f"'{raw}': the range ends before it starts")
        return Pattern("range", raw, low, high)
    if "*" in raw:
        raise PatternError(f"'{raw}': * may only end a prefix (K35*)")
    return Pattern("code", raw, raw)


def parse_cell(text: str, lists: dict[str, list[str]], conjunction: bool) -> Cell:
    if not str(text).strip():
        return ()
    parts = str(text).split("&") if conjunction else [str(text)]
    return tuple(parse_alternatives(p, lists) for p in parts)


def _hint(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"; did you mean '@{close[0]}'?" if close else ""


class _Reader:
    """Reads the `grouping:` section, recording diagnostics at their YAML paths."""

    def __init__(self, source: SourceText, tables: dict[str, Table], model: Model, problems: list[Diagnostic]):
        self.source, self.tables, self.model, self.problems = source, tables, model, problems
        self.lists = {name: self.text_column(t, t.key[0]) for name, t in tables.items()}

    def fail(self, path: tuple, en: str, zh: str, code: str = "grouping") -> None:
        self.problems.append(Diagnostic(code, en, zh, self.source.location(path)))

    def text_column(self, table: Table, column: str) -> list[str]:
        """A column's cells as written (codes such as 47.10 must not become numbers)."""
        try:
            header, rows = _csv_rows(table.text)
        except TableUnavailable:
            return []
        at = header.index(column) if column in header else -1
        return [(cells[at] if 0 <= at < len(cells) else "").strip() for _, cells in rows] if at >= 0 else []

    def column(self, table: Table, column: object, path: tuple) -> list[str] | None:
        name = str(column)
        if name not in table.key and name not in table.columns:
            known = [*table.key, *table.columns]
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            self.fail(path, f"table '{table.name}' has no column '{shown(name)}'"
                      + (f"; did you mean '{hint[0]}'?" if hint else f" (columns: {', '.join(known)})"),
                      f"表“{table.name}”没有列“{shown(name)}”", "unknown_column")
            return None
        return self.text_column(table, name)

    def cells(self, table: Table, column: object, path: tuple, conjunction: bool = False) -> list[Cell] | None:
        texts = self.column(table, column, path)
        if texts is None:
            return None
        out = []
        for i, text in enumerate(texts):
            try:
                out.append(parse_cell(text, self.lists, conjunction))
            except PatternError as err:
                self.fail(path, f"table '{table.name}', row {i + 1}, column '{column}': {err}",
                          f"表“{table.name}”第 {i + 1} 行“{column}”列：编码模式有误（{err}）", "code_pattern")
                return None
        return out

    def table(self, name: object, path: tuple) -> Table | None:
        table = self.tables.get(str(name))
        if table is None:
            hint = difflib.get_close_matches(str(name), list(self.tables), n=1, cutoff=0.6)
            self.fail(path, f"'{shown(str(name))}' is not a table of this policy"
                      + (f"; did you mean '{hint[0]}'?" if hint else " (declare it under tables:)"),
                      f"“{shown(str(name))}”不是本政策的表（请在 tables: 中声明）", "unknown_table")
        return table

    def numbers(self, table: Table, column: object, path: tuple) -> list[float] | None:
        texts = self.column(table, column, path)
        if texts is None:
            return None
        try:
            return [float(t) if t else 0.0 for t in texts]
        except ValueError:
            self.fail(path, f"column '{column}' of table '{table.name}' must hold numbers",
                      f"表“{table.name}”的“{column}”列应为数字", "not_a_number")
            return None

    def grouping(self, name: str, spec: dict) -> Grouping | None:
        path = ("grouping", name)
        count = len(self.problems)
        fields = {k: str(v) for k, v in (spec.get("fields") or {}).items()}
        claim = self.model.entities["claim"]
        for role, fname in fields.items():
            var = claim.variables.get(fname)
            if var is None or var.type != FIELD_TYPES[role]:
                what = "codes" if FIELD_TYPES[role] == "codes" else "string"
                self.fail((*path, "fields", role), f"'{shown(fname)}' must be a claim field of type {what} "
                          f"(declare it under variables: claim:)", f"“{shown(fname)}”应为 claim 的 {what} 类型字段",
                          "unknown_name")
        rules = [self.rule(r, (*path, "rules", i)) for i, r in enumerate(spec.get("rules") or [])]
        ranking = self.ranking(spec["procedure_ranks"], (*path, "procedure_ranks")) \
            if spec.get("procedure_ranks") else None
        complication = self.complication(spec["complication"], (*path, "complication")) \
            if spec.get("complication") else None
        for i, rule in enumerate(rules):
            if rule is None:
                continue
            if (rule.procedures is not None or rule.treatment is not None) and "procedures" not in fields:
                self.fail((*path, "rules", i), "this rule matches procedures: name the claim's procedures field "
                          "under fields: procedures", "此规则匹配手术操作：请在 fields: procedures 中指明字段")
            if rule.diagnosis is not None and "diagnosis" not in fields:
                self.fail((*path, "rules", i), "this rule matches the diagnosis: name the claim's principal "
                          "diagnosis field under fields: diagnosis", "此规则匹配主要诊断：请在 fields: diagnosis 中指明字段")
            if rule.treatment is not None and ranking is None:
                self.fail((*path, "rules", i, "treatment"), "a treatment column needs procedure_ranks (which "
                          "procedure kind is surgery, therapeutic, diagnostic)",
                          "按治疗方式匹配需要 procedure_ranks（手术操作的类别）")
            if rule.splits is not None and complication is None:
                self.fail((*path, "rules", i, "split"), "a split by complication level needs a complication: "
                          "table (CC/MCC codes)", "按并发症分组需要 complication: 表（CC/MCC 编码）")
        if complication is not None and "secondary" not in fields:
            self.fail((*path, "complication"), "complication levels read the secondary diagnoses: name the field "
                      "under fields: secondary", "并发症等级读取其他诊断：请在 fields: secondary 中指明字段")
        if not (spec.get("source") or spec.get("assumed")):
            self.fail(path, f"grouping '{name}' must cite its clause (source: …) or say why it is assumed "
                      "(assumed: …)", f"分组“{name}”必须注明条款出处（source）或说明假设理由（assumed）",
                      "missing_provenance")
        if len(self.problems) > count:
            return None
        return Grouping(name, label_of(spec.get("label")), fields, [r for r in rules if r], str(spec.get("otherwise", "")),
                        ranking, complication, spec.get("source"), text_of(spec.get("assumed")), text_of(spec.get("note")), path)

    def rule(self, spec: dict, path: tuple) -> Rule | None:
        table = self.table(spec.get("table"), (*path, "table"))
        if table is None:
            return None
        count = len(self.problems)
        rule = Rule(str(spec.get("name") or f"rule {path[-1] + 1}"), table.name, str(spec.get("group")))
        groups = self.column(table, rule.group, (*path, "group"))
        rule.groups = groups or []
        rule.rows = len(rule.groups)
        rule.texts["group"] = rule.groups
        if "diagnosis" in spec:
            rule.diagnosis = self.cells(table, spec["diagnosis"], (*path, "diagnosis"))
            rule.texts["diagnosis"] = self.column(table, spec["diagnosis"], (*path, "diagnosis")) or []
        if "procedures" in spec:
            rule.procedures = self.cells(table, spec["procedures"], (*path, "procedures"), conjunction=True)
            rule.texts["procedures"] = self.column(table, spec["procedures"], (*path, "procedures")) or []
        rule.procedures_match = str(spec.get("procedures_match", "any"))
        rule.choose = str(spec.get("choose", "first"))
        for key, value, allowed in (("procedures_match", rule.procedures_match, MATCHES),
                                    ("choose", rule.choose, CHOICES)):
            if value not in allowed:
                self.fail((*path, key), f"{key} is one of {', '.join(allowed)}, not '{shown(value)}'",
                          f"{key} 应为 {', '.join(allowed)} 之一")
        if "treatment" in spec:
            rule.treatment = self.column(table, spec["treatment"], (*path, "treatment"))
        if rule.choose == "highest":
            if "score" not in spec:
                self.fail((*path, "choose"), "choose: highest needs a score: column", "choose: highest 需要 score: 列")
            else:
                rule.scores = self.numbers(table, spec["score"], (*path, "score"))
        if "split" in spec:
            split = spec["split"] if isinstance(spec["split"], dict) else {}
            flags = self.column(table, split.get("column", ""), (*path, "split", "column"))
            rule.splits = [f.lower() in ("yes", "y", "true", "1", "是") for f in flags or []]
            try:
                rule.suffix = {int(k): str(v) for k, v in (split.get("suffix") or {}).items()}
            except ValueError:
                self.fail((*path, "split", "suffix"), "suffix maps complication levels (0, 1, 2) to the text added",
                          "suffix 应为并发症等级（0、1、2）到后缀的对应")
            if 0 not in rule.suffix:
                self.fail((*path, "split", "suffix"), "suffix needs the text for level 0 (no complication)",
                          "suffix 需要等级 0（无并发症）的后缀")
        return rule if len(self.problems) == count else None

    def ranking(self, spec: dict, path: tuple) -> Ranking | None:
        table = self.table(spec.get("table"), (*path, "table"))
        if table is None:
            return None
        cells = self.cells(table, spec.get("code", table.key[0]), (*path, "code"))
        ranks = self.numbers(table, spec.get("rank", "rank"), (*path, "rank"))
        kinds = self.column(table, spec.get("kind", "kind"), (*path, "kind"))
        if cells is None or ranks is None or kinds is None:
            return None
        return Ranking([c[0] if c else (Pattern("any", ""),) for c in cells], ranks, kinds,
                       str(spec.get("none", "conservative")))

    def complication(self, spec: dict, path: tuple) -> Complication | None:
        table = self.table(spec.get("table"), (*path, "table"))
        if table is None:
            return None
        cells = self.cells(table, spec.get("code", table.key[0]), (*path, "code"))
        levels = self.numbers(table, spec.get("level", "level"), (*path, "level"))
        excluded = self.cells(table, spec["excluded"], (*path, "excluded")) if spec.get("excluded") else None
        if cells is None or levels is None or (spec.get("excluded") and excluded is None):
            return None
        return Complication([c[0] if c else (Pattern("any", ""),) for c in cells], [int(v) for v in levels],
                            [e[0] if e else () for e in excluded] if excluded else [()] * len(cells))


def read_groupings(data: dict, source: SourceText, tables: dict[str, Table], model: Model,
                   problems: list[Diagnostic]) -> dict[str, Grouping]:
    """The policy's groupings by name; problems are recorded, never raised."""
    reader = _Reader(source, tables, model, problems)
    out = {}
    for name, spec in (data.get("grouping") or {}).items():
        grouping = reader.grouping(str(name), spec)
        if grouping is not None:
            out[str(name)] = grouping
    return out

"""A situation (JSON) → checked columns of every entity; faults name their JSON path (情形输入)."""

from __future__ import annotations

import datetime as dt
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import InputFault, SituationError
from engine.model.codelists import CodeLists
from engine.model.spec import Variable
from engine.period import Period, parse_period
from engine.policy.spec import Parameter, Policy
from engine.policy.values import ValueProblem, item_type, normalize
from engine.run.checks import id_problem, joined_links, number_problem
from engine.run.columns import (
    EntityColumns,
    build_population,
    date_window,
    keep_rows,
    outside,
    outside_warning,
)
from engine.run.keyed import RowFault
from engine.run.population import Population
from engine.settings import LIMITS

MAX_ROWS = LIMITS.rows
MAX_CODES = 100  # codes in one list (a settlement list has far fewer procedures and diagnoses)
MAX_CODE_CHARS = 40  # a code of ICD-10 or ICD-9-CM-3 (医保版) is about 12 characters
TOP_LEVEL = ("period", "parameters", "entities", "outputs")

__all__ = ["Period", "Situation", "parse_period", "read_situation"]


@dataclass
class Situation:
    period: Period
    population: Population
    overrides: dict[str, Any]
    outputs: list[tuple[str, str]] | None
    warnings: list[dict] = field(default_factory=list)
    # rows left out of every computation (dated outside the period): entity → (request index, row as sent)
    excluded: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)


class _Reader:
    """Collects every fault of a situation before giving up."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.model = policy.model
        self.faults: list[InputFault] = []
        self.joined = joined_links(policy.model)

    def fault(self, path: str, en: str, zh: str) -> None:
        self.faults.append(InputFault(path, en, zh))

    def read(self, data: Any, period: Period) -> Situation:
        if not isinstance(data, dict):
            raise SituationError([InputFault("", "a situation is a JSON object", "情形必须是 JSON 对象")])
        for key in data:
            if key not in TOP_LEVEL:
                self.fault(key, f"unknown key '{key}'{_hint(key, TOP_LEVEL)}", f"未知键“{key}”")
        overrides = self.parameters(data.get("parameters") or {})
        entities = data.get("entities") or {}
        if not isinstance(entities, dict):
            self.fault("entities", "entities must be an object: entity name → list of rows",
                       "entities 应为对象：实体名 → 行列表")
            entities = {}
        rows = self.rows(entities)
        self.sent, self.excluded = entities, {}
        outputs = self.outputs(data.get("outputs"))
        left_out: list[dict] = []
        try:  # links to unknown ids are faults too: report them with the others
            pop = self.population(rows, period, left_out)
        except Exception:
            if self.faults:
                raise SituationError(self.faults) from None
            raise
        if self.faults:
            raise SituationError(self.faults)
        return Situation(period, pop, overrides, outputs, left_out, self.excluded)

    def parameters(self, given: Any) -> dict[str, Any]:
        if not isinstance(given, dict):
            self.fault("parameters", "parameters must be an object: name → value", "parameters 应为对象：名称 → 值")
            return {}
        out = {}
        for name, value in given.items():
            path = f"parameters.{name}"
            param = self.policy.parameters.get(name)
            if param is None:
                self.fault(path, f"unknown parameter '{name}'{_hint(name, self.policy.parameters)}",
                           f"未知参数“{name}”")
                continue
            try:
                out[name] = checked_override(param, value)
            except ValueProblem as err:
                self.fault(path + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in err.sub),
                           f"{name}: {err.en}", f"{name}：{err.zh}")
        return out

    def rows(self, entities: dict) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        total = 0
        for name, rows in entities.items():
            path = f"entities.{name}"
            entity = self.model.entities.get(name)
            if entity is None:
                self.fault(path, f"unknown entity '{name}'{_hint(name, self.model.entities)}", f"未知实体“{name}”")
                continue
            if not isinstance(rows, list):
                self.fault(path, "must be a list of rows", "应为行列表")
                continue
            total += len(rows)
            if total > MAX_ROWS:
                self.fault(path, f"more than {MAX_ROWS} rows in one request (MEDPAY_MAX_ROWS); use batch settlement",
                           f"单次请求超过 {MAX_ROWS} 行；请使用批量结算")
                return out
            out[name] = [self.row(entity, row, f"{path}[{i}]") for i, row in enumerate(rows)]
            seen: dict[str, int] = {}
            for i, row in enumerate(out[name]):
                rid = row.get("id")
                if rid is not None and rid in seen:
                    self.fault(f"{path}[{i}].id", f"id '{rid}' is already used by {path}[{seen[rid]}]",
                               f"id“{rid}”与 {path}[{seen[rid]}] 重复")
                elif rid is not None:
                    seen[rid] = i
        return out

    def row(self, entity, row: Any, path: str) -> dict:
        if not isinstance(row, dict):
            self.fault(path, "a row must be an object with an id", "每行应为带 id 的对象")
            return {}
        out: dict[str, Any] = {}
        rid = row.get("id")
        if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid) != "":
            problem = id_problem(str(rid))
            if problem is None:
                out["id"] = str(rid)
            else:
                self.fault(f"{path}.id", f"the id {problem[0]}", f"id {problem[1]}")
        else:
            self.fault(f"{path}.id", "every row needs an id (text or whole number)", "每行都需要 id（文本或整数）")
        for key, value in row.items():
            if key == "id":
                continue
            var = entity.variables.get(key)
            if var is None:
                self.fault(f"{path}.{key}", f"{entity.name} has no field '{key}'{_hint(key, entity.variables)}",
                           f"{entity.name} 没有字段“{key}”")
                continue
            if value is None:
                continue
            converted = self.value(var, value, f"{path}.{key}", is_link=key in entity.links)
            if converted is not None:
                out[key] = converted
        return out

    def value(self, var: Variable, value: Any, path: str, is_link: bool) -> Any:
        if is_link:
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                text = str(value)
                problem = None if text == "" else id_problem(text, (var.entity, var.name) in self.joined)
                if problem is None:
                    return text
                self.fault(path, f"the link {problem[0]}", f"链接 {problem[1]}")
                return None
            self.fault(path, "a link names the parent's id (text)", "链接字段应为上级的 id（文本）")
            return None
        if var.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fault(path, f"must be a number, not {json_kind(value)}", "应为数字")
                return None
            try:
                number = float(value)
            except OverflowError:  # a JSON integer too large for a float
                number = math.inf
            problem = number_problem(var, number)
            if problem is not None:
                self.fault(path, *problem)
                return None
            return number
        if var.type == "bool":
            if not isinstance(value, bool):
                self.fault(path, f"must be true or false, not {json_kind(value)}", "应为 true 或 false")
                return None
            return value
        if var.type == "codes":
            return self.codes(value, path)
        if var.type == "date":
            try:
                return np.datetime64(dt.date.fromisoformat(str(value)), "D")
            except ValueError:
                self.fault(path, f"must be a date written YYYY-MM-DD, not {value!r}", "应为 YYYY-MM-DD 格式的日期")
                return None
        if not isinstance(value, str):
            self.fault(path, f"must be a text, not {json_kind(value)}", "应为文本")
            return None
        if var.values and value not in var.values:
            self.fault(path, f"'{value}' is not one of {', '.join(var.values)}{_hint(value, var.values)}",
                       f"“{value}”不是允许的取值（{', '.join(var.values)}）")
            return None
        return value

    def codes(self, value: Any, path: str) -> list[str] | None:
        """A list of codes: a JSON array of texts (a claim's procedures, its secondary diagnoses)."""
        if not isinstance(value, list):
            self.fault(path, f"must be a list of codes such as [\"47.0901\"], not {json_kind(value)}",
                       "应为编码列表，例如 [\"47.0901\"]")
            return None
        if len(value) > MAX_CODES:
            self.fault(path, f"{len(value)} codes; a claim lists at most {MAX_CODES}", f"{len(value)} 个编码；每条记录最多 {MAX_CODES} 个")
            return None
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fault(f"{path}[{i}]", f"a code is a text (in quotes), not {json_kind(item)}", "编码应为文本（加引号）")
                return None
            if len(item) > MAX_CODE_CHARS or not item.isprintable():
                self.fault(f"{path}[{i}]", f"a code is printable text of at most {MAX_CODE_CHARS} characters",
                           f"编码应为不超过 {MAX_CODE_CHARS} 个字符的可打印文本")
                return None
        return value

    def outputs(self, given: Any) -> list[tuple[str, str]] | None:
        if given is None:
            return None
        if not isinstance(given, list):
            self.fault("outputs", "outputs must be a list such as [\"claim.points\"]", "outputs 应为列表")
            return None
        out = []
        for i, item in enumerate(given):
            entity, _, name = str(item).partition(".")
            ent = self.model.entities.get(entity)
            if ent is None or name not in ent.variables:
                self.fault(f"outputs[{i}]", f"unknown output '{item}' (write entity.variable)", f"未知输出“{item}”")
            else:
                out.append((entity, name))
        return out

    def population(self, rows: dict[str, list[dict]], period: Period, left_out: list[dict]) -> Population:
        """Rows → typed columns → Population; links to unknown ids become faults; rows dated outside
        the period (or the policy's life) are left out, with a warning in `left_out`."""
        data, numbers = {}, {}
        for name, entity in self.model.entities.items():
            if name not in rows:
                continue
            entity_rows = rows[name]
            n = len(entity_rows)
            cols = EntityColumns(np.array([r.get("id", "") for r in entity_rows], dtype=object))
            for vname, var in entity.variables.items():
                given = [r.get(vname) for r in entity_rows]
                if vname in entity.links:
                    cols.links[vname] = np.array(["" if g is None else g for g in given], dtype=str) if n \
                        else np.zeros(0, dtype=str)
                    continue
                mask = np.array([g is not None for g in given], dtype=bool)
                if var.is_input or mask.any():
                    cols.values[vname] = _column(var, given, n)
                    cols.given[vname] = mask
            data[name], numbers[name] = self.in_period(name, cols, period, left_out)
        pop, unknown = build_population(self.model, data, np.datetime64(period.end, "D"))
        for name, size in pop.sizes.items():  # rows derived from the claims are in no request row (-1)
            given = numbers.get(name, np.zeros(0, dtype=np.int64))
            if self.model.entities[name].derived and len(given) < size:
                numbers[name] = np.concatenate([given, np.full(size - len(given), -1)])
        pop.row_numbers.update(numbers)
        for bad in unknown:
            row = int(numbers[bad.entity][bad.row]) if bad.entity in numbers else bad.row  # its request row
            if isinstance(bad, RowFault):
                self.faults.append(InputFault(f"entities.{bad.entity}[{row}].{bad.field}", bad.en, bad.zh, bad.code))
                continue
            self.fault(f"entities.{bad.entity}[{row}].{bad.field or bad.link}",
                       f"no {self.model.entities[bad.entity].links[bad.link]} with id '{bad.value}' in this situation",
                       f"本情形中没有 id 为“{bad.value}”的 {self.model.entities[bad.entity].links[bad.link]}")
        return pop


    def in_period(self, name: str, cols: EntityColumns, period: Period,
                  left_out: list[dict]) -> tuple[EntityColumns, np.ndarray]:
        """The rows dated inside the period and the policy's life (all rows of an undated entity),
        and the request index of each row kept."""
        date = self.model.entities[name].date
        every = np.arange(len(cols))
        if not date or date not in cols.values:
            return cols, every
        window = date_window(self.policy, period.start, period.end)
        out = outside(cols.values[date], window)
        if not out.any():
            return cols, every
        left_out.append(outside_warning(name, date, window, cols.ids[out].tolist(), int(out.sum())))
        self.excluded[name] = [(int(i), self.sent[name][i]) for i in every[out].tolist()]
        return keep_rows(cols, ~out), every[~out]


def _column(var: Variable, given: list, n: int) -> np.ndarray:
    default = var.default_value()
    filled = [default if g is None else g for g in given]
    if var.type == "number":
        return np.array(filled, dtype=float) if n else np.zeros(0)
    if var.type == "bool":
        return np.array(filled, dtype=bool) if n else np.zeros(0, dtype=bool)
    if var.type == "date":
        return np.array([np.datetime64("NaT") if g is None else g for g in filled], dtype="datetime64[D]")
    if var.type == "codes":
        return CodeLists.from_lists(filled)
    return np.array(filled, dtype=str) if n else np.zeros(0, dtype=str)


RATE_UNITS = ("ratio", "percent")


def checked_override(param: Parameter, value: Any) -> Any:
    """A `parameters` override in its runtime form, held to the rules of the policy's own values:
    the parameter's kind, finite numbers within MEDPAY_MAX_AMOUNT, a map's known categories, a
    band table's increasing edges, rates not below zero (or the declared minimum/maximum)."""
    if param.kind == "string" and not isinstance(value, str):
        raise ValueProblem(f"must be a text, not {json_kind(value)}", "应为文本")
    if param.kind in ("number", "map", "bands") and isinstance(value, (list, bool)) \
            or param.kind == "number" and isinstance(value, dict):
        raise ValueProblem(f"must be a {param.kind} value, not {json_kind(value)}", "取值类型与参数不符")
    if param.kind == "bands" and isinstance(value, dict) and isinstance(value.get("edges"), list):
        for i, edge in enumerate(value["edges"]):  # before the order check, which NaN would confuse
            if isinstance(edge, (int, float)) and not isinstance(edge, bool):
                _check_number(param, float(edge), ("edges", i), bounded=False)
    out = normalize(param.kind, value)
    if param.kind == "number":
        _check_number(param, out, ())
    elif param.kind == "map":
        _check_map(param, out)
    elif param.kind == "list":
        _check_list(param, out)
    elif param.kind == "bands":
        for i, edge in enumerate(out["edges"]):
            _check_number(param, edge, ("edges", i), bounded=False)
        for i, rate in enumerate(out["rates"]):
            _check_number(param, rate, ("rates", i))
    return out


def _check_list(param: Parameter, value: list) -> None:
    """A list override holds the same kind of items as the policy's list (texts or numbers)."""
    if item_type("list", value) != param.value_type:
        en, zh = ("texts", "文本") if param.value_type == "string" else ("numbers", "数字")
        raise ValueProblem(f"must be a list of {en}, like the policy's own value", f"应为{zh}列表，与政策中的取值一致")
    for i, item in enumerate(value):
        if isinstance(item, float):
            _check_number(param, item, (i,))


def _check_map(param: Parameter, value: dict) -> None:
    known = {k for v in param.versions if isinstance(v.value, dict) for k in v.value}
    for key, item in value.items():
        if key not in known:
            raise ValueProblem(f"unknown category '{key}' (known: {', '.join(sorted(known))}){_hint(key, known)}",
                               f"未知类别“{key}”（可用：{', '.join(sorted(known))}）", (key,))
        if param.value_type == "number" and not isinstance(item, float):
            raise ValueProblem(f"must be a number, not {json_kind(item)}", "应为数字", (key,))
        if isinstance(item, float):
            _check_number(param, item, (key,))


def _check_number(param: Parameter, value: float, sub: tuple, bounded: bool = True) -> None:
    """Finite, within MEDPAY_MAX_AMOUNT, and (a rate) within the parameter's bounds."""
    if not math.isfinite(value):
        raise ValueProblem("must be a finite number", "应为有限数字", sub)
    if abs(value) > LIMITS.amount:
        raise ValueProblem(f"{value:g} is beyond the largest amount accepted ({LIMITS.amount:g})",
                           f"{value:g} 超出可接受的最大数值（{LIMITS.amount:g}）", sub)
    if not bounded:
        return
    low = getattr(param, "minimum", None)
    high = getattr(param, "maximum", None)
    if low is None and param.unit in RATE_UNITS:
        low = 0.0
    if low is not None and value < low:
        raise ValueProblem(f"must be at least {low:g}, not {value:g}", f"不能小于 {low:g}（给出 {value:g}）", sub)
    if high is not None and value > high:
        raise ValueProblem(f"must be at most {high:g}, not {value:g}", f"不能大于 {high:g}（给出 {value:g}）", sub)


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _hint(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def read_situation(policy: Policy, data: Any, period: Period) -> Situation:
    """Check a situation against a policy and build its columns; SituationError lists every fault."""
    return _Reader(policy).read(data, period)

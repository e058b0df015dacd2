"""Policy test cases as strict data: a situation, what must come out, tolerances (政策测试用例).

A case file is JSON or YAML holding one case, a list of cases, or {cases: [...]}. A case:
`city` (a policy id or a path to a policy file, relative to the case file), `situation`, and at
least one assertion: `expected` (entity → id → variable → value; `null` means "absent"),
`expected_warnings` (warning codes), or `expected_error` ({code, path, contains}) for a rejected
situation. Optional: `name`, `title`, `clauses`, `note`, `tolerance` (a number, or
{money: 0.005, other: 1e-6}). Any other key, anywhere, makes the case fail with a did-you-mean,
so that a misspelt key never passes with nothing checked. docs/language.md, "Policy test cases".
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.compile.build import load_policy_file
from engine.errors import InputFault, LimitExceeded, PolicyCheckFailed, PolicyError, SituationError
from engine.period import parse_period
from engine.policy.registry import Registry, UnknownCity
from engine.policy.spec import Policy
from engine.run.evaluate import evaluate

MONEY_TOLERANCE = 0.005
OTHER_TOLERANCE = 1e-6
ABSOLUTE_UNITS = ("yuan", "points")
CASE_KEYS = ("name", "city", "title", "clauses", "note", "situation", "expected", "expected_warnings",
             "expected_error", "tolerance")
FILE_KEYS = ("cases",)
ERROR_KEYS = ("code", "path", "contains")
TOLERANCE_KEYS = ("money", "other")
ABSENT = "absent (null)"
KNOWN_SHOWN = 12


@dataclass
class Case:
    name: str
    file: Path
    data: dict
    problems: list[InputFault] = field(default_factory=list)


@dataclass
class Outcome:
    case: Case
    faults: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.faults and self.error is None


def _hint(name: Any, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = [str(o) for o in options][:KNOWN_SHOWN]
    more = ", …" if len(options) > KNOWN_SHOWN else ""
    return f" (known: {', '.join(shown)}{more})"


def _hint_zh(name: Any, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    if close:
        return f"，是否应为“{close[0]}”？"
    shown = [str(o) for o in options][:KNOWN_SHOWN]
    return f"（可用：{'、'.join(shown)}{'…' if len(options) > KNOWN_SHOWN else ''}）"


def unknown_key(path: str, key: Any, options, what: str = "key") -> InputFault:
    """A key that the case format (or the model) does not know, with the nearest known one."""
    where = f"{path}.{key}" if path else str(key)
    zh_what = {"key": "键", "entity": "实体", "variable": "变量"}.get(what, what)
    return InputFault(where, f"unknown {what} '{key}'{_hint(key, options)}",
                      f"未知的{zh_what}“{key}”{_hint_zh(key, options)}")


def render_problems(problems: list[InputFault]) -> str:
    """Case-file faults, one a line: `at PATH: English / 中文`."""
    return "invalid case / 用例格式错误:\n" + "\n".join(f"at {p.path or '(file)'}: {p.en} / {p.zh}"
                                                         for p in problems)


def _read(file: Path) -> Any:
    text = file.read_text(encoding="utf-8")
    return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)


def _items(data: Any) -> tuple[list, list[InputFault]]:
    """The cases of a file's data, and faults in the file's own shape."""
    if isinstance(data, list):
        return data, []
    if isinstance(data, dict) and "cases" in data:
        faults = [unknown_key("", k, FILE_KEYS) for k in data if k not in FILE_KEYS]
        items = data["cases"]
        if not isinstance(items, list) or not items:
            return [], [*faults, InputFault("cases", "'cases' must be a non-empty list of cases",
                                            "“cases”必须是非空的用例列表")]
        return items, faults
    return [data], []


def collect(paths: list[str | Path]) -> list[Case]:
    """Every case in the given files and folders (recursively: *.json, *.yaml, *.yml).

    A file that cannot be read becomes one case that fails with the reason."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".json", ".yaml", ".yml")))
        else:
            files.append(p)
    cases = []
    for file in files:
        try:
            items, file_faults = _items(_read(file))
        except (ValueError, yaml.YAMLError) as err:
            cases.append(Case(file.stem, file, {}, [InputFault("", f"cannot read the file: {err}",
                                                                  "无法读取用例文件")]))
            continue
        if file_faults and not items:
            cases.append(Case(file.stem, file, {}, file_faults))
        for i, item in enumerate(items):
            case = case_of(item, file, i, len(items))
            case.problems[:0] = file_faults
            cases.append(case)
    return cases


def case_of(item: Any, file: Path, index: int, count: int) -> Case:
    """One case with the faults of its shape (unknown keys, wrong types, nothing asserted)."""
    default = file.stem if count == 1 else f"{file.stem}#{index + 1}"
    if not isinstance(item, dict):
        return Case(default, file, {}, [InputFault(f"cases[{index}]" if count > 1 else "",
                                                   "a case must be a mapping of keys", "用例必须是键值映射")])
    name = item.get("name") if isinstance(item.get("name"), str) and item.get("name") else default
    return Case(name, file, item, shape_faults(item))


def shape_faults(data: dict) -> list[InputFault]:
    """Everything wrong with a case's keys and types, before any policy is loaded."""
    out = [unknown_key("", k, CASE_KEYS) for k in data if k not in CASE_KEYS]
    for key in ("city", "situation"):
        if key not in data:
            out.append(InputFault(key, f"'{key}' is required", f"缺少必填项“{key}”"))
    for key in ("name", "title", "note", "city"):
        if key in data and not isinstance(data[key], str):
            out.append(InputFault(key, f"'{key}' must be text", f"“{key}”必须是文字"))
    if "clauses" in data and not (isinstance(data["clauses"], list)
                                  and all(isinstance(c, str) for c in data["clauses"])):
        out.append(InputFault("clauses", "'clauses' must be a list of clause texts", "“clauses”必须是条款列表"))
    if "situation" in data and not isinstance(data["situation"], dict):
        out.append(InputFault("situation", "'situation' must be a mapping", "“situation”必须是键值映射"))
    out += _expected_faults(data.get("expected"))
    out += _warning_faults(data.get("expected_warnings"))
    out += _error_faults(data.get("expected_error"))
    out += _tolerance_faults(data.get("tolerance"))
    out += _assertion_faults(data)
    return out


def _expected_faults(expected: Any) -> list[InputFault]:
    if expected is None:
        return []
    if not isinstance(expected, dict) or not expected:
        return [InputFault("expected", "'expected' must map entity → id → variable → value, and not be empty",
                           "“expected”必须是 实体 → 编号 → 变量 → 值 的非空映射")]
    out = []
    for entity, rows in expected.items():
        if not isinstance(rows, dict) or not rows:
            out.append(InputFault(f"expected.{entity}", "expected rows must map each id to its values",
                                  "应按编号列出各行的预期值"))
            continue
        for rid, values in rows.items():
            path = f"expected.{entity}.{rid}"
            if not isinstance(values, dict) or not values:
                out.append(InputFault(path, "a row must expect at least one variable: variable → value",
                                      "每行至少要有一个预期变量：变量 → 值"))
                continue
            out += [InputFault(f"{path}.{name}", "an expected value is a number, text, true/false or null",
                               "预期值只能是数值、文字、真假或 null")
                    for name, want in values.items() if isinstance(want, (list, dict))]
    return out


def _warning_faults(warnings: Any) -> list[InputFault]:
    if warnings is None:
        return []
    if not isinstance(warnings, list) or not warnings or not all(isinstance(w, str) and w for w in warnings):
        return [InputFault("expected_warnings", "'expected_warnings' must be a non-empty list of warning codes",
                           "“expected_warnings”必须是非空的警告代码列表")]
    return []


def _error_faults(error: Any) -> list[InputFault]:
    if error is None:
        return []
    if not isinstance(error, dict):
        return [InputFault("expected_error", "'expected_error' must be {code, path, contains}",
                           "“expected_error”应写作 {code, path, contains}")]
    out = [unknown_key("expected_error", k, ERROR_KEYS) for k in error if k not in ERROR_KEYS]
    for key in ("code", "path"):
        if not isinstance(error.get(key), str):
            out.append(InputFault(f"expected_error.{key}", f"'{key}' is required and must be text",
                                  f"“{key}”为必填文字"))
    if "contains" in error and not isinstance(error["contains"], str):
        out.append(InputFault("expected_error.contains", "'contains' must be text", "“contains”必须是文字"))
    return out


def _tolerance_faults(tol: Any) -> list[InputFault]:
    if tol is None:
        return []
    if isinstance(tol, dict):
        out = [unknown_key("tolerance", k, TOLERANCE_KEYS) for k in tol if k not in TOLERANCE_KEYS]
        values = [(f"tolerance.{k}", v) for k, v in tol.items() if k in TOLERANCE_KEYS]
    else:
        out, values = [], [("tolerance", tol)]
    for path, v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            out.append(InputFault(path, "a tolerance is a number ≥ 0", "容差必须是不小于 0 的数"))
    return out


def _assertion_faults(data: dict) -> list[InputFault]:
    if not any(data.get(k) for k in ("expected", "expected_warnings", "expected_error")):
        return [InputFault("expected", "the case checks nothing: give 'expected', 'expected_warnings' "
                           "or 'expected_error'", "用例没有任何断言：请写 expected、expected_warnings 或 expected_error")]
    if data.get("expected_error") and (data.get("expected") or data.get("expected_warnings")):
        return [InputFault("expected_error", "a case that expects a rejection cannot also expect values or "
                           "warnings: a rejected situation has none", "预期被拒绝的用例不能同时预期数值或警告")]
    return []


def close(got: Any, want: Any, tolerance: float) -> bool:
    """Whether a result value meets an expected one (null: absent; numbers: within tolerance)."""
    if want is None or got is None:
        return got is want
    if isinstance(want, (bool, str)) or isinstance(got, (bool, str)):
        return type(got) is type(want) and got == want
    if not isinstance(got, (int, float)):
        return False
    return abs(got - want) <= tolerance + 1e-9


class Runner:
    """Runs cases; policies by id come from the registry, by path from their file."""

    def __init__(self, registry: Registry | None = None):
        self._registry = registry
        self._files: dict[Path, Policy] = {}

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.load()
        return self._registry

    def policy_for(self, case: Case) -> Policy:
        city = str(case.data["city"])
        if city.endswith((".yaml", ".yml")) or "/" in city:
            path = (case.file.parent / city).resolve()
            if path not in self._files:
                self._files[path] = load_policy_file(path)
            return self._files[path]
        period = case.data.get("situation", {}).get("period")
        return self.registry.pick(city, parse_period(period) if period is not None else None)

    def run(self, case: Case) -> Outcome:
        outcome = Outcome(case)
        if case.problems:
            outcome.error = render_problems(case.problems)
            return outcome
        want_error = case.data.get("expected_error")
        try:
            policy = self.policy_for(case)
            problems = name_faults(policy, case.data.get("expected") or {})
            if problems:
                outcome.error = render_problems(problems)
                return outcome
            result = evaluate(policy, case.data["situation"])
        except (SituationError, PolicyError, LimitExceeded, PolicyCheckFailed, UnknownCity) as err:
            raised = raised_errors(err)
            if not (want_error and _error_matches(raised, want_error)):
                outcome.error = _describe_raised(raised, want_error)
            return outcome
        if want_error:
            outcome.faults.append(f"expected error {want_error['code']} at {want_error['path']}, "
                                  "but the situation was accepted / 预期被拒绝，但情形被接受")
            return outcome
        outcome.faults += warning_faults(result, case.data.get("expected_warnings") or [])
        outcome.faults += value_faults(policy, result, case.data.get("expected") or {}, case.data.get("tolerance"))
        return outcome


def name_faults(policy: Policy, expected: dict) -> list[InputFault]:
    """Entities and variables of `expected` that the policy's model does not have."""
    entities = policy.model.entities
    out = []
    for entity, rows in expected.items():
        if entity not in entities:
            out.append(unknown_key("expected", entity, list(entities), "entity"))
            continue
        known = entities[entity].variables
        for rid, values in rows.items():
            out += [unknown_key(f"expected.{entity}.{rid}", name, sorted(known), "variable")
                    for name in values if name not in known]
    return out


def raised_errors(err: Exception) -> list[tuple[str, InputFault]]:
    """(code, fault) for each fault an error carries; codes as the API names them."""
    if isinstance(err, SituationError):
        return [("invalid_situation", f) for f in err.faults]
    if isinstance(err, PolicyError):
        return [(d.code, InputFault(d.location.path, d.en, d.zh)) for d in err.diagnostics]
    if isinstance(err, LimitExceeded):
        return [("limit_exceeded", InputFault(err.setting, err.en, err.zh))]
    if isinstance(err, PolicyCheckFailed):  # the check's name leads its message, so `contains` can name it
        return [("policy_check_failed", InputFault(f["path"], f"{f['entity']}.{f['check']}: {f['message']}",
                                                   f["message_zh"])) for f in err.failures]
    city = err.args[0]
    return [("unknown_city", InputFault("city", f"no policy '{city}'", f"没有政策“{city}”"))]


def _error_matches(raised: list[tuple[str, InputFault]], want: dict) -> bool:
    return any(code == want["code"] and f.path == want["path"] and want.get("contains", "") in f.en
               for code, f in raised)


def _describe_raised(raised: list[tuple[str, InputFault]], want: dict | None) -> str:
    lines = "\n".join(f"{code} at {f.path or '(top)'}: {f.en} / {f.zh}" for code, f in raised)
    if want is None:
        return f"unexpected error / 意外错误:\n{lines}"
    contains = f" containing {want['contains']!r}" if want.get("contains") else ""
    return f"expected error {want['code']} at {want['path']}{contains}; got / 实际错误:\n{lines}"


def warning_faults(result: dict, codes: list[str]) -> list[str]:
    got = {w["code"] for w in result["warnings"]}
    return [f"expected warning {code}; got {', '.join(sorted(got)) or 'none'} / 缺少预期警告 {code}"
            for code in codes if code not in got]


def value_faults(policy: Policy, result: dict, expected: dict, tol: Any) -> list[str]:
    """One line per expected value the result does not meet (a missing row is one line)."""
    out = []
    for entity, rows in expected.items():
        by_id = {str(r["id"]): r for r in result["entities"].get(entity, [])}
        variables = policy.model.entities[entity].variables
        for rid, values in rows.items():
            row = by_id.get(str(rid))
            if row is None:
                out.append(f"{entity}.{rid}: no such row in the result (ids: {', '.join(by_id) or 'none'})"
                           f" / 结果中没有此行")
                continue
            for name, want in values.items():
                got = row.get(name)
                limit = _tolerance(tol, variables[name].unit)
                if not close(got, want, limit):
                    out.append(f"{entity}.{rid}.{name}: got {_shown(got)}, want {_shown(want)}"
                               f" (tolerance {limit:g}, period {result.get('period')})"
                               f" / 实际 {_shown(got, '无')}，预期 {_shown(want, '无')}")
    return out


def _shown(value: Any, absent: str = ABSENT) -> str:
    return absent if value is None else repr(value)


def _tolerance(tol: Any, unit: str) -> float:
    if isinstance(tol, (int, float)):
        return float(tol)
    tol = tol or {}
    if unit in ABSOLUTE_UNITS:
        return float(tol.get("money", MONEY_TOLERANCE))
    return float(tol.get("other", OTHER_TOLERANCE))

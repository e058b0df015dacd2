"""Policy test cases as data: a situation, expected values, tolerances (政策测试用例).

A case file is JSON or YAML holding one case, a list of cases, or {cases: [...]}. A case:
`city` (a policy id or a path to a policy file, relative to the case file), `title`,
`clauses`, `situation`, `expected` (entity → id → variable → value), optional
`tolerance` (a number, or {money: 0.005, other: 1e-6}) and `note`. A case may instead expect a
rejection, `expected_error: {path: period, contains: "not in 2025"}`, and may require
warnings by code, `expected_warnings: [division_by_zero]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.compile.build import load_policy_file
from engine.errors import PolicyCheckFailed, PolicyError, SituationError
from engine.period import parse_period
from engine.policy.registry import Registry
from engine.policy.spec import Policy
from engine.run.evaluate import evaluate

MONEY_TOLERANCE = 0.005
OTHER_TOLERANCE = 1e-6
ABSOLUTE_UNITS = ("yuan", "points")


@dataclass
class Case:
    name: str
    file: Path
    data: dict


@dataclass
class Outcome:
    case: Case
    faults: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.faults and self.error is None


def collect(paths: list[str | Path]) -> list[Case]:
    """Every case in the given files and folders (recursively: *.json, *.yaml, *.yml)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".json", ".yaml", ".yml")))
        else:
            files.append(p)
    cases = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        items = data.get("cases", [data]) if isinstance(data, dict) else data
        for i, item in enumerate(items):
            name = item.get("name") or (file.stem if len(items) == 1 else f"{file.stem}#{i + 1}")
            cases.append(Case(name, file, item))
    return cases


def close(got: Any, want: Any, tolerance: float) -> bool:
    if isinstance(want, (bool, str)) or want is None:
        return got == want
    if isinstance(got, bool) or not isinstance(got, (int, float)):
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
        want_error = case.data.get("expected_error")
        try:
            policy = self.policy_for(case)
            result = evaluate(policy, case.data["situation"])
        except SituationError as err:
            if want_error and _error_matches(err, want_error):
                return outcome
            outcome.error = f"SituationError: {err}"
            return outcome
        except PolicyCheckFailed as err:
            if want_error and any(f["check"] == want_error.get("check") and f["path"] == want_error.get("path", f["path"])
                                  for f in err.failures):
                return outcome
            outcome.error = f"PolicyCheckFailed: {err}"
            return outcome
        except (PolicyError, KeyError) as err:
            outcome.error = f"{type(err).__name__}: {err}"
            return outcome
        if want_error:
            outcome.faults.append(f"expected a rejection at {want_error.get('path')}, but the situation was accepted")
        codes = {w["code"] for w in result["warnings"]}
        for code in case.data.get("expected_warnings") or []:
            if code not in codes:
                outcome.faults.append(f"expected warning {code}; got {', '.join(sorted(codes)) or 'none'}")
        tol = case.data.get("tolerance")
        got_entities = result["entities"]
        for entity, rows in (case.data.get("expected") or {}).items():
            by_id = {r["id"]: r for r in got_entities.get(entity, [])}
            for rid, values in rows.items():
                for name, want in values.items():
                    got = by_id.get(str(rid), {}).get(name)
                    var = policy.model.entities.get(entity, None)
                    unit = var.variables[name].unit if var and name in var.variables else ""
                    limit = _tolerance(tol, unit)
                    if not close(got, want, limit):
                        outcome.faults.append(f"{entity}.{rid}.{name}: got {got!r}, want {want!r}"
                                              f" (tolerance {limit:g}, period {result.get('period')})")
        return outcome


def _error_matches(err: SituationError, want: dict) -> bool:
    return any(f.path == want.get("path", f.path) and want.get("contains", "") in f.en for f in err.faults)


def _tolerance(tol: Any, unit: str) -> float:
    if isinstance(tol, (int, float)):
        return float(tol)
    tol = tol or {}
    if unit in ABSOLUTE_UNITS:
        return float(tol.get("money", MONEY_TOLERANCE))
    return float(tol.get("other", OTHER_TOLERANCE))

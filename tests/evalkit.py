"""Small policies built in code for the evaluation tests (测试用小政策).

make_policy({"claim": {"double": "total_cost * 2"}}) gives a loaded Policy with one formula;
a variable may also be a dict (formula, unit, type, …), a parameter a plain value or a dict
with `value`/`values`. Labels and sources are filled in.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from engine.compile.build import load_policy_text
from engine.policy.spec import Policy
from engine.run.evaluate import evaluate


def make_policy(variables: dict[str, dict[str, Any]], parameters: dict[str, Any] | None = None,
                effective: tuple[str, str | None] = ("2024-01-01", None)) -> Policy:
    data: dict[str, Any] = {
        "policy": {"id": "eval_test", "name": {"zh": "测试市", "en": "Testville"}, "notice": "测〔2024〕1号",
                   "issuer": "测试市医疗保障局", "effective": {"from": effective[0], "to": effective[1]}},
    }
    if parameters:
        data["parameters"] = {}
        for name, value in parameters.items():
            spec = dict(value) if isinstance(value, dict) and ({"value", "values"} & set(value)) else {"value": value}
            spec.setdefault("label", {"zh": name, "en": name})
            if "assumed" not in spec:
                spec.setdefault("source", "一")
            data["parameters"][name] = spec
    data["variables"] = {}
    for entity, declared in variables.items():
        data["variables"][entity] = {}
        for name, spec in declared.items():
            spec = {"formula": spec} if isinstance(spec, str) else dict(spec)
            spec.setdefault("label", {"zh": name, "en": name})
            if "formula" in spec and "assumed" not in spec:
                spec.setdefault("source", "二")
            data["variables"][entity][name] = spec
    return load_policy_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "<test>")


def run(policy: Policy, entities: dict[str, list[dict]], **extra) -> dict:
    """Evaluate and return the result; `extra` adds period, parameters, outputs."""
    return evaluate(policy, {"period": "2024", "entities": entities, **extra})


def column(result: dict, entity: str, name: str) -> list:
    return [row[name] for row in result["entities"][entity]]


def by_id(result: dict, entity: str, name: str) -> dict:
    return {row["id"]: row[name] for row in result["entities"][entity]}


def warning_codes(result: dict) -> list[tuple[str, str]]:
    return [(w["code"], w["path"]) for w in result["warnings"]]


POLICIES = Path(__file__).resolve().parents[1] / "policies"


def template_folder(folder: Path) -> Path:
    """A policy folder holding the template policy and its table only (a served folder for API tests)."""
    (folder / "tables").mkdir(exist_ok=True)
    shutil.copy(POLICIES / "_template.yaml", folder / "_template.yaml")
    shutil.copy(POLICIES / "tables" / "_template_drg.csv", folder / "tables")
    return folder

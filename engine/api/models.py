"""Request and response shapes of the API, with examples from the worked examples (接口数据模型)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import LimitExceeded
from engine.settings import LIMITS

MAX_OUTPUTS = 10_000  # names in `outputs`; a policy has a few hundred variables at most

DEMO_DIR = Path(__file__).resolve().parents[2] / "docs" / "demo"


@cache
def demo_examples() -> dict[str, dict]:
    """Demo situations (the worked examples), by name, for the OpenAPI page."""
    out = {}
    for file in sorted(DEMO_DIR.glob("*.json")):
        out[file.stem] = {"summary": file.stem, "value": json.loads(file.read_text(encoding="utf-8"))}
    return out


class PeriodRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(examples=["2024-01-01"])
    end: str = Field(examples=["2024-12-31"])


def refuse_too_many_rows(entity_maps: list[Any]) -> None:
    """Count the rows of these `entities` maps before anything is copied: more than MEDPAY_MAX_ROWS
    together is a 413 naming the setting."""
    rows = sum(len(v) for entities in entity_maps if isinstance(entities, dict)
               for v in entities.values() if isinstance(v, list))
    if rows > LIMITS.rows:
        raise LimitExceeded("MEDPAY_MAX_ROWS", f"{rows} rows in one request, more than {LIMITS.rows} "
                            "(MEDPAY_MAX_ROWS); use batch settlement (medpay settle)",
                            f"单次请求 {rows} 行，超过 {LIMITS.rows} 行；请使用批量结算")


class Situation(BaseModel):
    """What is evaluated: the period, optional parameter overrides, entity rows, wanted outputs."""

    model_config = ConfigDict(extra="forbid")
    period: str | PeriodRange = Field(description="a year \"2024\", a month \"2024-06\" or {start, end}")
    parameters: dict[str, Any] | None = Field(None, description="what-if overrides of the policy's parameters")
    entities: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="rows per entity: fund, community, institution, claim; `id` required")
    outputs: list[str] | None = Field(None, max_length=MAX_OUTPUTS,
                                      description="entity.variable names; default: every variable")

    @model_validator(mode="before")
    @classmethod
    def _few_enough_rows(cls, data: Any) -> Any:
        """Count the rows before anything is copied: too many is a 413 naming MEDPAY_MAX_ROWS."""
        entities = data.get("entities") if isinstance(data, dict) else None
        refuse_too_many_rows([entities])
        return data


class Situations(BaseModel):
    """Many situations of one city, evaluated one by one in one call (each may have its own period)."""

    model_config = ConfigDict(extra="forbid")
    situations: list[Situation] = Field(min_length=1, max_length=LIMITS.situations,
                                        description="up to MEDPAY_MAX_SITUATIONS situations")

    @model_validator(mode="before")
    @classmethod
    def _few_enough_rows(cls, data: Any) -> Any:
        """All the situations' rows together count against MEDPAY_MAX_ROWS, before anything is copied."""
        items = data.get("situations") if isinstance(data, dict) else None
        if isinstance(items, list):
            refuse_too_many_rows([item.get("entities") for item in items if isinstance(item, dict)])
        return data


class PolicyInfo(BaseModel):
    id: str
    version: str
    notice: str
    name: dict[str, str]
    title: str
    issuer: str
    issued: str | None
    effective: dict[str, str | None]


class Warning(BaseModel):
    code: str
    path: str
    message: str
    message_zh: str | None = None
    rows: int | None = None
    count: int | None = Field(None, description="claims_outside_period: how many claims were left out")
    parameters: list[str] | None = None  # parameters_overridden: the names the request replaced
    check: str | None = Field(None, description="policy_check: the check's name")
    entity: str | None = None
    severity: str | None = None
    source: str | None = Field(None, description="policy_check: the clause the check cites")
    assumed: str | None = None
    ids: list[str] | None = Field(None, description="policy_check: the first failing rows' ids; claims_outside_period: the first ids left out")
    paths: list[str] | None = Field(None, description="policy_check: their JSON paths")


class Result(BaseModel):
    """Computed values per entity row, in request order; money rounded to 0.01."""

    city: str
    policy: PolicyInfo
    period: str
    entities: dict[str, list[dict[str, Any]]]
    warnings: list[Warning]
    trace: dict[str, Any] | None = None


class Fault(BaseModel):
    path: str = Field(examples=["entities.claim[3].total_cost"])
    message: str
    message_zh: str | None = None
    code: str | None = Field(default=None, examples=["community_fund_missing"])
    check: str | None = Field(None, description="policy_check_failed: the check's name; with it come entity, "
                                                 "severity, source or assumed, count, ids and paths of the "
                                                 "first failing rows")


class ErrorBody(BaseModel):
    error: str
    detail: list[Fault]


class ItemResult(BaseModel):
    """One situation's answer in an evaluate-many call: `status` as the single evaluate endpoint
    would have answered it; a result (200), or an error and its faults (422) whose paths start with
    `situations[i].`."""

    status: int
    result: Result | None = None
    error: str | None = None
    detail: list[Fault] | None = None


class ManyResults(BaseModel):
    results: list[ItemResult]


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the policy file's YAML text", max_length=2_000_000)
    file: str = Field("submitted.yaml", description="a name to show in diagnostics")


class Diagnostic(BaseModel):
    code: str
    severity: str
    message: str
    message_zh: str
    file: str | None
    line: int | None
    column: int | None
    path: str
    excerpt: str | None


class ValidateResponse(BaseModel):
    valid: bool
    policy: PolicyInfo | None
    diagnostics: list[Diagnostic]
    assumed: list[str]
    warnings: list[Diagnostic] = Field(default_factory=list,
                                       description="values that load but can hardly be meant (a ratio above 1, ...)")

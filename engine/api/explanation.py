"""`POST /v1/cities/{city}/explain`: how one value of a situation was computed, at any size —
only the steps it depends on are run, and the answer holds that one value's explanation
(单值解释接口)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.api.evaluation import INLINE_ROWS, situation_data
from engine.api.models import ErrorBody, Situation
from engine.errors import InputFault, SituationError
from engine.explain.cone import MAX_TOP, UnknownValue, explain_situation
from engine.period import parse_period
from engine.policy.registry import UnknownCity
from engine.settings import LIMITS

router = APIRouter()


class ExplainRequest(BaseModel):
    """A situation and the one value to explain."""

    model_config = ConfigDict(extra="forbid")
    situation: Situation
    target: str = Field(min_length=1, max_length=1000, description="entity.id.variable",
                        examples=["institution.H1.points_payment"])
    top: int | None = Field(None, ge=1, le=MAX_TOP,
                            description="child rows listed per aggregation, largest first (default MEDPAY_EXPLAIN_TOP)")
    depth: int = Field(1, ge=0, le=8, description="levels of values of the same or parent rows explained inside")
    version: str | None = Field(None, description="a policy version; default: the one in force in the period")


@router.post("/v1/cities/{city}/explain", summary="explain one value, computing only what it depends on",
             responses={404: {"model": ErrorBody, "description": "unknown city, version, entity, variable or id"},
                        422: {"model": ErrorBody, "description": "the situation or the target has faults"}})
async def explain(city: str, request: Request, body: Annotated[ExplainRequest, Body()]) -> Any:
    data = situation_data(body.situation)
    versions = request.app.state.store.registry.cities.get(city)
    if not versions:
        raise UnknownCity(city)
    if body.version is None:
        try:
            policy = request.app.state.store.registry.pick(city, parse_period(data.get("period")))
        except SituationError as err:
            raise _inside(err) from None
    else:
        policy = next((p for p in versions if p.meta.version == body.version), None)
        if policy is None:
            known = ", ".join(p.meta.version for p in versions)
            return _refused(404, "unknown_version", "version", f"{city} has no version '{body.version}' "
                            f"(versions: {known})", f"{city} 没有版本“{body.version}”（现有版本：{known}）")
    args = (policy, data, body.target.strip(), body.top, body.depth, LIMITS.eval_seconds)
    try:
        if sum(len(v) for v in data.get("entities", {}).values()) <= INLINE_ROWS:
            answer = explain_situation(*args)
        else:
            answer = await run_in_threadpool(explain_situation, *args)
    except UnknownValue as err:
        fault = err.faults[0]
        kind = "invalid_target" if err.status == 422 else "unknown_value"
        return _refused(err.status, kind, fault.path, fault.en, fault.zh)
    except SituationError as err:
        raise _inside(err) from None
    return JSONResponse(answer, headers={"X-Medpay-Policy": f"{policy.id}@{policy.meta.version}"})


def _refused(status: int, kind: str, path: str, en: str, zh: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind,
                                                     "detail": [{"path": path, "message": en, "message_zh": zh}]})


def _inside(err: SituationError) -> SituationError:
    """Faults of the situation, at their path inside this request's body."""
    return SituationError([InputFault(f"situation.{f.path}" if f.path else "situation", f.en, f.zh)
                           for f in err.faults])

"""One situation through one policy version, as an HTTP answer naming that version (接口求值)."""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from engine.api.models import Situation
from engine.explain.trace import build_trace
from engine.policy.spec import Policy
from engine.run.evaluate import evaluate

INLINE_ROWS = 200  # requests up to this many rows are evaluated on the event loop


def situation_data(situation: Situation) -> dict:
    """The request body as the engine reads it (a period given as text stays text)."""
    data = situation.model_dump(exclude_none=True)
    if isinstance(situation.period, str):
        data["period"] = situation.period
    return data


async def evaluated(policy: Policy, data: dict, trace: bool) -> JSONResponse:
    """The result, with the `X-Medpay-Policy: city@version` header; a few rows are quicker
    evaluated here than handed to a worker thread."""
    rows = sum(len(v) for v in data.get("entities", {}).values())
    tracer = build_trace if trace else None
    if rows <= INLINE_ROWS:
        result = evaluate(policy, data, tracer)
    else:
        result = await run_in_threadpool(evaluate, policy, data, tracer)
    return JSONResponse(result, headers={"X-Medpay-Policy": f"{policy.id}@{policy.meta.version}"})

"""One situation through one policy version, as an HTTP answer naming that version (接口求值).

The answer's size is estimated from rows × outputs before anything is computed, and refused past
MEDPAY_MAX_RESPONSE_VALUES; larger situations are computed and serialised in a worker thread, at
most MEDPAY_MAX_HEAVY_REQUESTS at a time, so that the event loop keeps answering small requests.
"""

from __future__ import annotations

from collections import Counter

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from engine.api.limits import HeavySlots
from engine.api.models import Situation
from engine.errors import LimitExceeded
from engine.explain.trace import build_trace
from engine.policy.spec import Policy
from engine.run.evaluate import evaluate
from engine.settings import LIMITS

INLINE_ROWS = 200  # requests up to this many rows are evaluated on the event loop
HEAVY = HeavySlots()  # per server process: the resource it guards (memory, cores) is the process's


def situation_data(situation: Situation) -> dict:
    """The request body as the engine reads it (a period given as text stays text); the rows are
    passed on as validated, not copied again."""
    period = situation.period if isinstance(situation.period, str) else situation.period.model_dump()
    data = {"period": period, "parameters": situation.parameters, "entities": situation.entities,
            "outputs": situation.outputs}
    return {k: v for k, v in data.items() if v is not None}


def answer_values(policy: Policy, data: dict) -> int:
    """How many values the answer would hold: per entity, rows × (outputs asked, or every variable, + id)."""
    rows = {e: len(v) for e, v in (data.get("entities") or {}).items() if isinstance(v, list)}
    outputs = data.get("outputs")
    if outputs:
        per_entity = Counter(str(name).split(".", 1)[0] for name in outputs)
    else:
        per_entity = Counter(step.variable.entity for step in policy.plan.steps)
    return sum(n * (per_entity.get(entity, 0) + 1) for entity, n in rows.items())


def check_answer_size(policy: Policy, data: dict) -> None:
    """A 413 naming MEDPAY_MAX_RESPONSE_VALUES before any work, when the answer would be too large."""
    values, most = answer_values(policy, data), LIMITS.response_values
    if values > most:
        raise LimitExceeded(
            "MEDPAY_MAX_RESPONSE_VALUES",
            f"the answer would hold about {values} values, more than {most} (MEDPAY_MAX_RESPONSE_VALUES); "
            "ask only the values needed with `outputs`, send fewer rows, or use batch settlement (medpay settle)",
            f"结果约含 {values} 个数值，超过 {most}；请用 outputs 只取所需数值、减少行数或使用批量结算")


def trace_warning(result: dict) -> None:
    """A cut trace says so among the warnings, with how many values it leaves out."""
    cut = (result.get("trace") or {}).get("_truncated")
    if cut:
        result["warnings"].append({
            "code": "trace_truncated", "path": "trace", "rows": cut["omitted"],
            "message": f"the trace explains the first {cut['limit']} values only (MEDPAY_MAX_TRACE_VALUES); "
                       "ask fewer `outputs` or rows to see the others",
            "message_zh": f"计算轨迹仅含前 {cut['limit']} 个数值；如需其余数值请减少 outputs 或行数"})


def answer(policy: Policy, data: dict, trace: bool) -> JSONResponse:
    """Evaluate and serialise (the JSON text is made here, in the caller's thread)."""
    result = evaluate(policy, data, tracer=build_trace if trace else None)
    if trace:
        trace_warning(result)
    return JSONResponse(result, headers={"X-Medpay-Policy": f"{policy.id}@{policy.meta.version}"})


async def evaluated(policy: Policy, data: dict, trace: bool) -> JSONResponse:
    """The result, with the `X-Medpay-Policy: city@version` header; a few rows are quicker
    evaluated here than handed to a worker thread."""
    check_answer_size(policy, data)
    rows = sum(len(v) for v in data.get("entities", {}).values())
    if rows <= INLINE_ROWS:
        return answer(policy, data, trace)
    with HEAVY:
        return await run_in_threadpool(answer, policy, data, trace)

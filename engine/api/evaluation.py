"""One situation through one policy version, as an HTTP answer naming that version (接口求值).

The answer's size is estimated from rows × outputs before anything is computed, and refused past
MEDPAY_MAX_RESPONSE_VALUES; larger situations are computed and serialised in a worker thread, at
most MEDPAY_MAX_HEAVY_REQUESTS at a time, so that the event loop keeps answering small requests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from engine.api.limits import HeavySlots
from engine.api.models import Situation
from engine.errors import LimitExceeded, PolicyCheckFailed, SituationError
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
    refuse_large_answer(answer_values(policy, data))


def refuse_large_answer(values: int) -> None:
    """A 413 naming MEDPAY_MAX_RESPONSE_VALUES when an answer of about `values` values is too large."""
    most = LIMITS.response_values
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


Chosen = Policy | SituationError  # the policy version a situation picks, or why it picks none


def one_of_many(chosen: Chosen, data: dict, index: int, trace: bool) -> dict:
    """One situation of an evaluate-many call, as the single endpoint would have answered it."""
    prefix = f"situations[{index}]"
    try:
        if isinstance(chosen, SituationError):
            raise chosen
        result = evaluate(chosen, data, tracer=build_trace if trace else None)
    except SituationError as err:
        return {"status": 422, "error": "invalid_situation",
                "detail": [{**f.to_dict(), "path": f"{prefix}.{f.path}" if f.path else prefix} for f in err.faults]}
    except PolicyCheckFailed as err:
        return {"status": 422, "error": "policy_check_failed",
                "detail": [{**f, "path": f"{prefix}.{f['path']}" if f.get("path") else prefix} for f in err.failures]}
    if trace:
        trace_warning(result)
    return {"status": 200, "result": result}


def answer_many(chosen: list[Chosen], items: list[dict], trace: bool) -> JSONResponse:
    """The answers in order; the whole call shares one time budget (MEDPAY_MAX_EVAL_SECONDS)."""
    deadline = time.perf_counter() + LIMITS.eval_seconds
    results = []
    for i, data in enumerate(items):
        if time.perf_counter() > deadline:
            raise LimitExceeded("MEDPAY_MAX_EVAL_SECONDS",
                                f"the situations took longer than {LIMITS.eval_seconds:g} s together "
                                f"(MEDPAY_MAX_EVAL_SECONDS; {i} of {len(items)} done); send fewer per call",
                                f"这些情形的计算合计超过 {LIMITS.eval_seconds:g} 秒（已完成 {i}/{len(items)}）；请减少每次的情形数",
                                status=503)
        results.append(one_of_many(chosen[i], data, i, trace))
    return JSONResponse({"results": results})


def _pick(pick: Callable[[dict], Policy], data: dict) -> Chosen:
    try:
        return pick(data)
    except SituationError as err:  # answered as that item's fault
        return err


async def evaluated_many(pick: Callable[[dict], Policy], items: list[dict], trace: bool) -> JSONResponse:
    """Each situation evaluated on its own (a faulty one does not stop the others); the answers
    together are held to MEDPAY_MAX_RESPONSE_VALUES before any work."""
    chosen = [_pick(pick, data) for data in items]
    refuse_large_answer(sum(answer_values(p, data) for p, data in zip(chosen, items, strict=True)
                            if not isinstance(p, SituationError)))
    rows = sum(len(v) for data in items for v in data.get("entities", {}).values())
    if rows <= INLINE_ROWS and len(items) <= 20:
        return answer_many(chosen, items, trace)
    with HEAVY:
        return await run_in_threadpool(answer_many, chosen, items, trace)

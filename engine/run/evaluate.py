"""Run a policy's plan over a situation and render the result (求值与结果)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.errors import InputFault, LimitExceeded, SituationError
from engine.model.spec import text_of
from engine.period import Period, parse_period
from engine.plan.plan import Step
from engine.policy.spec import Policy
from engine.run.columns import required_faults, required_rows
from engine.run.demand import needed_rows
from engine.run.frame import Frame, RunContext
from engine.run.money import round_half_up
from engine.run.policy_checks import settle_checks
from engine.run.population import Population
from engine.run.situation import Situation, read_situation
from engine.settings import LIMITS

DTYPES = {"number": float, "bool": bool, "string": str, "date": "datetime64[D]"}


def cast(values: Any, var_type: str, n: int) -> np.ndarray:
    """A step's result as a full column of its declared type."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = np.full(n, arr.item() if arr.dtype.kind not in "MU" else arr, dtype=arr.dtype)
    return arr.astype(DTYPES[var_type], copy=False)


def finite(column: np.ndarray, ctx: RunContext, keep_null: bool = False) -> np.ndarray:
    """No NaN or infinity ever leaves a step: such values become 0, with a warning; except that a
    formula which can give no value (pending review, `keep_null`) keeps NaN as its null."""
    if column.dtype.kind != "f":
        return column
    bad = np.isinf(column) if keep_null else ~np.isfinite(column)
    if bad.any():
        ctx.warn("non_finite", "a value was not a finite number (overflow, 0/0 or a missing date); 0 used",
                 "出现非有限数值（溢出、0/0 或缺少日期），按 0 计", int(bad.sum()))
        column = np.where(bad, 0.0, column)
    return column


def run_step(step: Step, pop: Population, ctx: RunContext) -> bool:
    """Compute one variable over all rows of its entity; a value supplied on a row wins there,
    and the formula runs only on the other rows. Returns whether the formula ran at all."""
    ctx.chain_state = {}  # accumulators of chain calls live for one step's run only
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow and 0/0 are caught by `finite`
            return _run_step(step, pop, ctx)
    finally:
        ctx.chain_state = {}


def _run_step(step: Step, pop: Population, ctx: RunContext) -> bool:
    var = step.variable
    entity, n = var.entity, pop.sizes[var.entity]
    ctx.variable = f"{entity}.{var.name}"
    given = pop.supplied.get(entity, {}).get(var.name)
    if given is not None and given[1].all():
        pop.columns[entity][var.name] = given[0]
        return False
    if n == 0:
        pop.columns[entity][var.name] = np.zeros(0, dtype=DTYPES[var.type])
        return False
    if step.recurrent:
        _run_along_chains(step, pop, ctx, given)
        return True
    if given is None:
        pop.columns[entity][var.name] = finite(cast(step.fn(Frame(pop, entity, ctx)), var.type, n), ctx,
                                               step.nullable)
        return True
    rows = np.flatnonzero(~given[1])
    computed = cast(step.fn(Frame(pop, entity, ctx, rows)), var.type, len(rows))
    column = given[0].astype(np.result_type(given[0], computed), copy=True)
    column[rows] = computed
    pop.columns[entity][var.name] = finite(column, ctx, step.nullable)
    return True


def _run_along_chains(step: Step, pop: Population, ctx: RunContext, given) -> None:
    """A variable that reads its own earlier values on the chain: one chain position at a time,
    all chains at once."""
    var = step.variable
    order = pop.chain(var.entity)
    text = var.type == "string"
    column = np.zeros(pop.sizes[var.entity], dtype=object if text else DTYPES[var.type])
    pop.columns[var.entity][var.name] = column
    by_position = np.argsort(order.position, kind="stable")
    bounds = np.searchsorted(order.position[by_position], np.arange(order.length + 1))
    for p in range(order.length):
        if p % 64 == 63:
            ctx.check_deadline()
        rows = by_position[bounds[p]:bounds[p + 1]]
        if given is not None:
            column[rows[given[1][rows]]] = given[0][rows[given[1][rows]]]
            rows = rows[~given[1][rows]]
        if len(rows):
            frame = Frame(pop, var.entity, ctx, rows)
            column[rows] = cast(frame.full(step.fn(frame)), var.type, len(rows))
    if text:
        pop.columns[var.entity][var.name] = column.astype(str)
    else:
        pop.columns[var.entity][var.name] = finite(column, ctx, step.nullable)


def evaluate_situation(policy: Policy, situation: Situation) -> tuple[Population, RunContext, list[Step]]:
    """Evaluate what the situation asks for; returns the filled population."""
    pop = situation.population
    ctx = RunContext(policy, situation.overrides)
    wanted = set(situation.outputs) if situation.outputs else {
        s.key for s in policy.plan.steps if pop.sizes.get(s.variable.entity, 0) > 0}
    steps = policy.plan.needed(wanted)
    run_required(policy, pop, ctx, steps, wanted, LIMITS.eval_seconds)
    return pop, ctx, steps


def run_required(policy: Policy, pop: Population, ctx: RunContext, steps: list[Step],
                 wanted: set[tuple[str, str]], limit: float | None) -> None:
    """Run the steps; an input missing on a row where a wanted output needs it (by branch:
    engine.run.demand) is an error naming its JSON path (SituationError), never a 0."""
    missing = required_rows(policy, pop, wanted)
    if not missing:
        run_steps(steps, pop, ctx, limit)
        return
    try:  # some inputs are missing where a formula reading them runs: are they needed by branch?
        run_steps(steps, pop, ctx, limit)
    except LimitExceeded:
        raise
    except Exception:  # a missing value broke the run: every row that might need it is reported
        raise SituationError(required_faults(policy, pop, wanted, json_path)) from None
    needed = needed_rows(policy, pop, ctx, wanted, {k for k, (reader, _) in missing.items() if reader})
    faults = required_faults(policy, pop, wanted, json_path, needed=needed)
    if faults:
        raise SituationError(faults)


def run_steps(steps: list[Step], pop: Population, ctx: RunContext, limit: float | None) -> None:
    """Run the steps in order; past `limit` seconds (None: no limit) LimitExceeded (503), checked
    between steps and inside long loops (ctx.check_deadline)."""
    if limit is not None:
        ctx.limit = limit
        ctx.deadline = time.perf_counter() + limit
    for step in steps:
        if run_step(step, pop, ctx):
            ctx.computed.add(step.key)
        ctx.check_deadline()


def json_path(entity: str, row: int, name: str) -> str:
    """Where a field of a row is in a situation (row -1: the entity's rows as a whole)."""
    return f"entities.{entity}.{name}" if row < 0 else f"entities.{entity}[{row}].{name}"


Tracer = Callable[[Policy, Population, RunContext, list[Step]], dict]


def evaluate(policy: Policy, data: dict, tracer: Tracer | None = None) -> dict:
    """A situation (JSON data) in, a result (JSON data) out, as in the contract; with a `tracer`
    (engine.explain.trace.build_trace), the result carries the trace it builds from the run."""
    situation = checked_situation(policy, data)
    pop, ctx, steps = evaluate_situation(policy, situation)
    failed_checks = settle_checks(policy.plan.checks_for(steps), pop, ctx)  # an error check raises here
    result = render(policy, pop, situation, steps)
    result["warnings"] = situation.warnings + warnings_of(policy, ctx, steps, situation.period) + failed_checks
    if tracer is not None:
        result["trace"] = tracer(policy, pop, ctx, steps)
    return result


def checked_situation(policy: Policy, data: dict) -> Situation:
    """A situation (JSON data) read against a policy: its period must be in force; every fault
    of the data is reported at once (SituationError)."""
    meta = policy.meta
    faults: list[InputFault] = []
    default_period = parse_period(str(meta.effective_from.year))
    try:
        period = parse_period(data.get("period")) if isinstance(data, dict) and "period" in data else default_period
    except SituationError as err:  # read the rest anyway, so that every fault is reported at once
        faults, period = list(err.faults), default_period
    if not period.overlaps(meta.effective_from, meta.effective_to):
        faults.append(InputFault(
            "period", f"{policy.id} {meta.version} is in force {meta.effective_from}–{meta.effective_to or '…'}, "
            f"not in {period.text}", f"{policy.id} 有效期为 {meta.effective_from}–{meta.effective_to or '…'}，"
            f"不含 {period.text}"))
    try:
        situation = read_situation(policy, data, period)
    except SituationError as err:
        raise SituationError(faults + err.faults) from None
    if faults:
        raise SituationError(faults)
    return situation


def render(policy: Policy, pop: Population, situation: Situation, steps: list[Step]) -> dict:
    """Rows in request order, money rounded half-up to the fen, nothing else rounded."""
    by_entity: dict[str, list[str]] = {}
    if situation.outputs:
        for entity, name in situation.outputs:
            by_entity.setdefault(entity, []).append(name)
    else:
        for step in steps:
            by_entity.setdefault(step.variable.entity, []).append(step.variable.name)
    entities = {}
    for entity in [e for e in policy.model.entities if e in by_entity]:
        names = by_entity[entity]
        n = pop.sizes[entity]
        excluded = situation.excluded.get(entity, [])
        if n == 0 and not excluded:
            continue
        cols = {name: to_json_list(pop.columns[entity][name],
                                   policy.model.entities[entity].variables[name].is_money) for name in names}
        ids = pop.ids[entity].tolist()
        rows = [{"id": ids[i], **{k: v[i] for k, v in cols.items()}} for i in range(n)]
        entities[entity] = with_excluded(rows, pop.row_numbers.get(entity), excluded, names) if excluded else rows
    return {"city": policy.id, "policy": policy.meta.to_dict(), "entities": entities,
            "period": situation.period.text, "warnings": [], "trace": None}


def with_excluded(rows: list[dict], numbers: np.ndarray | None, excluded: list[tuple[int, dict]],
                  names: list[str]) -> list[dict]:
    """Rows left out of the computation back in their request place: their id and the inputs they
    sent echoed, every computed value null (contract: "A result")."""
    placed = [(int(numbers[i]) if numbers is not None else i, row) for i, row in enumerate(rows)]
    placed += [(index, {"id": str(sent.get("id")), **{k: sent.get(k) for k in names}}) for index, sent in excluded]
    return [row for _, row in sorted(placed, key=lambda item: item[0])]


def to_json_list(column: np.ndarray, money: bool) -> list:
    """A column as JSON values: money to the fen, NaN as null, dates as ISO text."""
    if column.dtype.kind == "f":
        values = round_half_up(column) if money else column
        out = values.tolist()
        if np.isnan(values).any():
            out = [None if v != v else v for v in out]
        return out
    if column.dtype.kind == "M":
        return [None if np.isnat(v) else str(v) for v in column]
    return column.tolist()


def warnings_of(policy: Policy, ctx: RunContext, steps: list[Step], period: Period) -> list[dict]:
    """Assumed values the run used, then what the evaluation noticed (division by zero, …)."""
    out = []
    computed = [s for s in steps if s.key in ctx.computed]
    used = sorted({p for s in computed for p in s.checked.params})
    for name in used:
        param = policy.parameters[name]
        if param.assumed and name not in ctx.overrides:
            out.append({"code": "assumed_parameter", "path": f"parameters.{name}",
                        "message": f"{param.label.en or name} is assumed: {text_of(param.assumed).en}",
                        "message_zh": f"{param.label.zh or name}为假设值：{text_of(param.assumed).zh}"})
    for step in computed:
        var = step.variable
        if var.assumed:
            out.append({"code": "assumed_rule", "path": f"variables.{var.entity}.{var.name}",
                        "message": f"{var.label.en or var.name} follows an assumed rule: {text_of(var.assumed).en}",
                        "message_zh": f"{var.label.zh or var.name}采用假设规则：{text_of(var.assumed).zh}"})
    if ctx.overrides:
        names = sorted(ctx.overrides)
        out.append({"code": "parameters_overridden", "path": "parameters", "parameters": names,
                    "message": f"{len(names)} parameter(s) replaced by the request, not the notice's values: "
                               f"{', '.join(names)}",
                    "message_zh": f"{len(names)} 个参数由请求覆盖，未采用通知中的数值：{'、'.join(names)}"})
    meta = policy.meta
    if period.start < meta.effective_from or (meta.effective_to and period.end > meta.effective_to):
        out.append({"code": "period_partly_outside", "path": "period",
                    "message": f"the period {period.text} reaches outside {meta.effective_from}–"
                               f"{meta.effective_to or '…'}, when this policy is in force",
                    "message_zh": f"期间 {period.text} 部分超出政策有效期"})
    out.extend(ctx.warnings.values())
    return out

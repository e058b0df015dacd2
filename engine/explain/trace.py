"""Trace of a run: for each value its formula, the inputs it read and its clause (计算轨迹)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.compile.compiler import Compiler
from engine.compile.functions import FUNCTIONS
from engine.dsl import typed as T
from engine.plan.plan import Step
from engine.policy.spec import Policy
from engine.run.frame import Frame, RunContext
from engine.run.money import round_half_up
from engine.run.population import Population
from engine.settings import LIMITS

MAX_TRACE_VALUES = LIMITS.trace_values


def input_nodes(node: T.Expr) -> list[T.Expr]:
    """The sub-expressions a reader wants to see: names read on this row, and calls that
    summarise other rows (aggregations, chain values, lookups, allocations, bands): each
    built-in's registry entry says whether its call is shown and which of its arguments' own
    inputs are shown besides."""
    out: list[T.Expr] = []

    def visit(n: T.Expr) -> None:
        if isinstance(n, (T.Index, T.Var, T.Param, T.Link)):
            out.append(n)
            return
        if isinstance(n, T.Call):
            also = FUNCTIONS[n.function].trace(n)
            if also is not None:
                out.append(n)
                for arg in also:
                    visit(arg)
                return
        for child in T.children(n):
            visit(child)
    visit(node)
    unique: dict[str, T.Expr] = {}
    for n in out:
        unique.setdefault(label(n), n)
    return list(unique.values())


def label(node: T.Expr) -> str:
    """The text of a sub-expression as a reader would write it (no outer parentheses)."""
    return T.text(node)


def link_ids(pop: Population, entity: str, node: T.Link, rows: np.ndarray | None = None) -> np.ndarray:
    """The id each row's link names (None where it names nothing), as a trace shows a link."""
    idx = pop.parent_index(entity, [*node.path, node.name], rows)
    ids = pop.ids[node.target]
    out = np.full(len(idx), None, dtype=object)
    out[idx >= 0] = ids[idx[idx >= 0]]
    return out


def functions_of(node: T.Expr) -> dict[str, dict[str, str]]:
    """What each built-in the formula calls does, in English and Chinese."""
    names = sorted({n.function for n in T.walk(node) if isinstance(n, T.Call)})
    return {name: dict(zip(("en", "zh"), FUNCTIONS[name].explain, strict=True)) for name in names}


def json_value(value: Any, money: bool = False) -> Any:
    if isinstance(value, dict):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float):
        if value != value:
            return None
        return float(round_half_up(value)) if money else value
    return value


def build_trace(policy: Policy, pop: Population, ctx: RunContext, steps: list[Step]) -> dict:
    """`entity.id.variable` → {value, formula, inputs, source, assumed, note}."""
    compiler = Compiler(policy)
    trace: dict[str, dict] = {}
    omitted = 0
    for step in steps:
        var = step.variable
        total = pop.sizes[var.entity]
        n = min(total, MAX_TRACE_VALUES - len(trace))  # the first rows of each value, up to the limit
        omitted += total - n
        if n <= 0:
            continue
        frame = Frame(pop, var.entity, ctx)
        columns = {}
        for node in input_nodes(step.checked.node):
            if isinstance(node, T.Param) and (node.type in ("map", "bands") or node.type.startswith("list:")):
                columns[label(node)] = ("param", node.name)
                continue
            if isinstance(node, T.Link):
                columns[label(node)] = ("column", False, link_ids(pop, var.entity, node))
                continue
            columns[label(node)] = ("column", isinstance(node, T.Var) and bool(node.money),
                                    frame.full(compiler.expr(node)(frame)))
        functions = functions_of(step.checked.node)
        params = {p: _parameter_provenance(policy, ctx, p) for p in sorted(step.checked.params)}
        children = _children(policy, pop, step, var.entity, n)
        parents = _parents(pop, step, var.entity, n)
        supplied = pop.supplied.get(var.entity, {}).get(var.name)
        ids = pop.ids[var.entity]
        values = pop.columns[var.entity][var.name]
        chosen = {text: _version_rows(policy, ctx, frame, col[1]) for text, col in columns.items() if col[0] == "param"}
        for i in range(n):
            is_supplied = supplied is not None and bool(supplied[1][i])
            inputs = {}
            for text, col in columns.items():
                if col[0] == "param":
                    versions, idx = chosen[text]
                    inputs[text] = versions[int(idx[i]) if idx is not None else 0]
                else:
                    inputs[text] = json_value(col[2][i], col[1])
            trace[f"{var.entity}.{ids[i]}.{var.name}"] = {
                "value": json_value(values[i], var.is_money),
                "formula": None if is_supplied else " ".join(var.formula.split()),
                "inputs": {} if is_supplied else inputs,
                "source": var.source, "assumed": var.assumed,
                "note": "supplied in the situation (输入值覆盖公式)" if is_supplied else var.note,
                "label": {"zh": var.label.zh, "en": var.label.en},
                "parameters": {} if is_supplied else params,
                "children": {} if is_supplied else {text: keys[i] for text, keys in children.items() if keys[i]},
                "parents": {} if is_supplied else {text: keys[i] for text, keys in parents.items() if keys[i]},
                "functions": {} if is_supplied else functions,
            }
    if omitted:
        trace["_truncated"] = {"note": f"trace limited to {MAX_TRACE_VALUES} values (MEDPAY_MAX_TRACE_VALUES); "
                                       f"{omitted} values not explained", "limit": MAX_TRACE_VALUES, "omitted": omitted}
    return trace


def _version_rows(policy: Policy, ctx: RunContext, frame: Frame, name: str) -> tuple[list, np.ndarray | None]:
    """A dated parameter's versions and, per row, the index of the version in force (None: one version)."""
    versions = ctx.versions(name)
    if len(versions) <= 1:
        return versions, None
    idx = np.asarray(policy.parameters[name].version_index(frame.dates()))
    return versions, np.broadcast_to(idx.reshape(-1) if idx.ndim else idx, (frame.size,))


OVERRIDDEN = "overridden by the request (请求覆盖)"


def _parameter_provenance(policy: Policy, ctx: RunContext, name: str) -> dict:
    """The clause of a parameter, or that the request replaced it (then no clause is cited)."""
    if name in ctx.overrides:
        return {"source": None, "assumed": None, "overridden": True, "note": OVERRIDDEN}
    param = policy.parameters[name]
    return {"source": param.source, "assumed": param.assumed}


def _parents(pop: Population, step: Step, entity: str, rows: int) -> dict[str, list]:
    """For each parent value the formula reads (`fund.point_value`), its trace key, for the first `rows` rows."""
    out: dict[str, list] = {}
    for node in input_nodes(step.checked.node):
        if isinstance(node, T.Var) and node.path:
            idx = pop.parent_index(entity, list(node.path))[:rows]
            parent_ids = pop.ids[node.owner]
            out[label(node)] = ["" if i < 0 else f"{node.owner}.{parent_ids[i]}.{node.name}" for i in idx.tolist()]
    return out


def _children(policy: Policy, pop: Population, step: Step, entity: str, traced: int,
              most: int = 20) -> dict[str, list]:
    """For each aggregation in the formula, the trace keys of the child values it adds up, for the
    first `traced` rows (at most `most` keys each)."""
    out: dict[str, list] = {}
    for node in input_nodes(step.checked.node):
        if not (isinstance(node, T.Call) and node.kind == "aggregate"):
            continue
        ref = node.args[0]
        if not (isinstance(ref, T.Var) and not ref.path):
            continue
        groups = pop.parent_index(node.child, list(node.path))
        if node.where is not None:  # only the rows the filter lets through were added up
            child_frame = Frame(pop, node.child, RunContext(policy))
            keep = child_frame.full(Compiler(policy).expr(node.where)(child_frame)).astype(bool)
            groups = np.where(keep, groups, -1)
        child_ids = pop.ids[node.child]
        rows: list[list[str]] = [[] for _ in range(traced)]
        for child_row, parent in zip(*_first_of_each(groups, traced, most), strict=True):
            rows[parent].append(f"{node.child}.{child_ids[child_row]}.{ref.name}")
        out[label(node)] = rows
    return out


def _first_of_each(groups: np.ndarray, traced: int, most: int) -> tuple[list[int], list[int]]:
    """(child rows, parent rows): the first `most` children of each of the first `traced` parents."""
    child = np.flatnonzero((groups >= 0) & (groups < traced))
    parent = groups[child]
    order = np.argsort(parent, kind="stable")
    child, parent = child[order], parent[order]
    rank = np.arange(len(parent)) - np.searchsorted(parent, parent, side="left")
    keep = rank < most
    return child[keep].tolist(), parent[keep].tolist()

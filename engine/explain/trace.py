"""Trace of a run: for each value its formula, the inputs it read and its clause (计算轨迹)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.dsl import ast
from engine.dsl.checker import CallInfo, Ref
from engine.dsl.compiler import Compiler
from engine.plan.plan import Step
from engine.policy.spec import Policy
from engine.run.frame import Frame, RunContext
from engine.run.money import round_half_up
from engine.run.population import Population
from engine.settings import LIMITS

MAX_TRACE_VALUES = LIMITS.trace_values
WHOLE_CALLS = ("aggregate", "chain", "lookup", "allocate", "bands", "step")


def input_nodes(node: ast.Node, notes: dict) -> list[ast.Node]:
    """The sub-expressions a reader wants to see: names read on this row, and calls that
    summarise other rows (aggregations, chain values, lookups, allocations, bands)."""
    out: list[ast.Node] = []

    def visit(n: ast.Node) -> None:
        info = notes.get(id(n))
        if isinstance(n, ast.Index):
            out.append(n)
            return
        if isinstance(n, ast.Name) and isinstance(info, Ref) and info.kind in ("var", "param"):
            out.append(n)
            return
        if isinstance(n, ast.Call) and isinstance(info, CallInfo) and info.kind in WHOLE_CALLS:
            out.append(n)
            if info.kind in ("bands", "lookup", "allocate"):
                for arg in {"lookup": n.args[1:], "bands": n.args[:1], "allocate": n.args}[info.kind]:
                    visit(arg)
            return
        for child in ast.children(n):
            visit(child)
    visit(node)
    unique: dict[str, ast.Node] = {}
    for n in out:
        unique.setdefault(label(n), n)
    return list(unique.values())


def label(node: ast.Node) -> str:
    """The text of a sub-expression as a reader would write it (no outer parentheses)."""
    text = ast.to_text(node)
    return text[1:-1] if isinstance(node, ast.Binary) else text


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
    for step in steps:
        var = step.variable
        n = pop.sizes[var.entity]
        if n == 0:
            continue
        if len(trace) + n > MAX_TRACE_VALUES:
            trace["_truncated"] = {"note": f"trace limited to {MAX_TRACE_VALUES} values"}
            break
        compiler.notes = step.checked.notes
        frame = Frame(pop, var.entity, ctx)
        columns = {}
        for node in input_nodes(step.checked.node, step.checked.notes):
            info = step.checked.notes.get(id(node))
            if isinstance(info, Ref) and info.kind == "param" and policy.parameters[info.name].kind in ("map", "bands"):
                columns[label(node)] = ("param", info.name)
                continue
            columns[label(node)] = ("column", _money(policy, info),
                                                      frame.full(compiler.node(node)(frame)))
        params = {p: _parameter_provenance(policy, ctx, p) for p in sorted(step.checked.params)}
        children = _children(policy, pop, step, var.entity)
        parents = _parents(pop, step, var.entity)
        supplied = pop.supplied.get(var.entity, {}).get(var.name)
        ids = pop.ids[var.entity]
        values = pop.columns[var.entity][var.name]
        for i in range(n):
            is_supplied = supplied is not None and bool(supplied[1][i])
            inputs = {}
            for text, col in columns.items():
                if col[0] == "param":
                    versions = ctx.versions(col[1])
                    idx = policy.parameters[col[1]].version_index(frame.dates()) if len(versions) > 1 else 0
                    inputs[text] = versions[int(np.asarray(idx).reshape(-1)[i] if np.ndim(idx) else idx)]
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
            }
    return trace


OVERRIDDEN = "overridden by the request (请求覆盖)"


def _parameter_provenance(policy: Policy, ctx: RunContext, name: str) -> dict:
    """The clause of a parameter, or that the request replaced it (then no clause is cited)."""
    if name in ctx.overrides:
        return {"source": None, "assumed": None, "overridden": True, "note": OVERRIDDEN}
    param = policy.parameters[name]
    return {"source": param.source, "assumed": param.assumed}


def _parents(pop: Population, step: Step, entity: str) -> dict[str, list]:
    """For each parent value the formula reads (`fund.point_value`), its trace key, per row."""
    out: dict[str, list] = {}
    for node in input_nodes(step.checked.node, step.checked.notes):
        ref = step.checked.notes.get(id(node))
        if isinstance(node, ast.Name) and isinstance(ref, Ref) and ref.kind == "var" and ref.path:
            idx = pop.parent_index(entity, ref.path)
            parent_ids = pop.ids[ref.entity]
            out[label(node)] = ["" if i < 0 else f"{ref.entity}.{parent_ids[i]}.{ref.name}" for i in idx.tolist()]
    return out


def _children(policy: Policy, pop: Population, step: Step, entity: str, most: int = 20) -> dict[str, list]:
    """For each aggregation in the formula, the trace keys of the child values it adds up, per row."""
    out: dict[str, list] = {}
    for node in input_nodes(step.checked.node, step.checked.notes):
        info = step.checked.notes.get(id(node))
        if not (isinstance(info, CallInfo) and info.kind == "aggregate" and isinstance(node.args[0], ast.Name)):
            continue
        ref = step.checked.notes.get(id(node.args[0]))
        if not (isinstance(ref, Ref) and ref.kind == "var" and not ref.path):
            continue
        groups = pop.parent_index(info.child, info.path)
        if node.where is not None:  # only the rows the filter lets through were added up
            compiler = Compiler(policy)
            compiler.notes, compiler.key = step.checked.notes, None
            child_frame = Frame(pop, info.child, RunContext(policy))
            keep = child_frame.full(compiler.node(node.where)(child_frame)).astype(bool)
            groups = np.where(keep, groups, -1)
        child_ids = pop.ids[info.child]
        rows: list[list[str]] = [[] for _ in range(pop.sizes[entity])]
        for child_row in np.flatnonzero(groups >= 0)[: most * max(1, pop.sizes[entity])]:
            bucket = rows[groups[child_row]]
            if len(bucket) < most:
                bucket.append(f"{info.child}.{child_ids[child_row]}.{ref.name}")
        out[label(node)] = rows
    return out


def _money(policy: Policy, info) -> bool:
    if isinstance(info, Ref) and info.kind == "var":
        return policy.model.entities[info.entity].variables[info.name].is_money
    return False

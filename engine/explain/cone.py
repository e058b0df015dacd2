"""Explain one value at any size: run only the steps it depends on (its cone in the plan), then
build its explanation — formula, clause, inputs, parent values and, for aggregations, a summary
of the child rows with the few that contribute most (单值解释：只计算其依赖锥).

The whole population goes through the cone (an aggregation needs every child row), but the
explanation is built for one row: nothing here grows with the number of values explained.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.compile.compiler import Compiler
from engine.dsl import typed as T
from engine.errors import InputFault, SituationError
from engine.explain.trace import functions_of, input_nodes, json_value, label, link_ids
from engine.plan.plan import Step
from engine.policy.spec import Policy
from engine.run.evaluate import checked_situation, run_required, run_steps
from engine.run.frame import Frame, RunContext
from engine.run.money import group_sum
from engine.run.population import Population
from engine.settings import LIMITS

MAX_NODES = 60  # explanations nested in one answer, at most
MAX_TOP = 1000  # child rows listed per aggregation, at most
CLOSE_IDS = 20_000  # ids compared for a did-you-mean, at most


class UnknownValue(SituationError):
    """The value asked for does not exist (or is not written entity.id.variable); `status` is
    the HTTP status: 422 for a malformed target, 404 for an entity, variable or id not found."""

    def __init__(self, en: str, zh: str, status: int = 404, path: str = "target"):
        self.status = status
        super().__init__([InputFault(path, en, zh)])


@dataclass(frozen=True)
class Target:
    """One value: the row `row` (id `id`) of `entity`, variable `variable`."""

    entity: str
    id: str
    variable: str
    row: int

    @property
    def key(self) -> str:
        return f"{self.entity}.{self.id}.{self.variable}"


def split_target(text: str) -> tuple[str, str, str]:
    """"claim.c1.patient_paid" → (entity, id, variable); ids may hold dots ("account.H1|x.y.z")."""
    first, last = text.find("."), text.rfind(".")
    if first <= 0 or last <= first + 1 or last == len(text) - 1:
        raise UnknownValue(f"'{text}' is not a value: write entity.id.variable, e.g. institution.H1.points_payment",
                           f"“{text}”不是数值名：应写作 实体.id.变量，例如 institution.H1.points_payment", status=422)
    return text[:first], text[first + 1:last], text[last + 1:]


def _suggest(found: list[str]) -> tuple[str, str]:
    """The did-you-mean tail of a message, in English and Chinese."""
    if not found:
        return "", ""
    names = ", ".join(found)
    return f"; did you mean {names}?", f"；是否想写 {names}？"


def closest_ids(wanted: str, ids: np.ndarray) -> list[str]:
    """The ids most like `wanted`: among all ids when few, else among those sharing its longest prefix."""
    if len(ids) <= CLOSE_IDS:
        return difflib.get_close_matches(wanted, [str(i) for i in ids], 3, 0.5)
    text = ids.astype(str)
    for k in range(min(len(wanted), 12), 0, -1):
        hits = text[np.char.startswith(text, wanted[:k])]
        if len(hits):
            return difflib.get_close_matches(wanted, hits[:CLOSE_IDS].tolist(), 3, 0.5)
    return []


def ids_of(pop: Population, entity: str) -> np.ndarray:
    """The ids of an entity as a numpy array (batch files keep them in Arrow)."""
    ids = pop.ids.get(entity)
    if ids is None:
        return np.zeros(0, dtype=object)
    return ids if isinstance(ids, np.ndarray) else np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)


def resolve(policy: Policy, pop: Population, text: str) -> Target:
    """The row of `entity.id.variable`, or UnknownValue naming exactly what does not exist."""
    entity, rid, name = split_target(text)
    entities = policy.model.entities
    if entity not in entities:
        en, zh = _suggest(difflib.get_close_matches(entity, list(entities), 3, 0.5))
        raise UnknownValue(f"there is no entity '{entity}' (entities: {', '.join(entities)}){en}",
                           f"没有实体“{entity}”{zh}")
    variables = entities[entity].variables
    if name not in variables or name in entities[entity].links:
        options = [v for v in variables if v not in entities[entity].links]
        en, zh = _suggest(difflib.get_close_matches(name, options, 3, 0.5))
        raise UnknownValue(f"{entity} has no variable '{name}'{en}", f"{entity} 没有变量“{name}”{zh}")
    ids = ids_of(pop, entity)
    rows = np.flatnonzero(ids == rid) if len(ids) else np.zeros(0, dtype=np.int64)
    if not len(rows):
        en, zh = _suggest(closest_ids(rid, ids))
        raise UnknownValue(f"there is no {entity} with id '{rid}' ({len(ids):,} {entity} rows){en}",
                           f"没有 id 为“{rid}”的 {entity}（共 {len(ids):,} 行）{zh}")
    return Target(entity, rid, name, int(rows[0]))


def evaluate_cone(policy: Policy, pop: Population, ctx: RunContext, target: Target,
                  limit: float | None = None) -> list[Step]:
    """Run, over the whole population, only the steps the target depends on; returns them."""
    steps = policy.plan.cone((target.entity, target.variable))
    run_steps(steps, pop, ctx, limit)
    return steps


def explain_value(policy: Policy, pop: Population, text: str, overrides: dict | None = None,
                  top: int | None = None, depth: int = 1, limit: float | None = None) -> dict:
    """The explanation of one value (`entity.id.variable`) of a population whose inputs are read:
    its cone is computed, then the value is explained with nested explanations `depth` levels deep
    (values of the same row and of parent rows) and at most `top` child rows per aggregation."""
    target = resolve(policy, pop, text)
    ctx = RunContext(policy, dict(overrides or {}))
    steps = policy.plan.cone((target.entity, target.variable))
    # an input the value needs (by branch, as in a run) and the data lacks is an error, never a 0
    run_required(policy, pop, ctx, steps, {(target.entity, target.variable)}, limit)
    explainer = Explainer(policy, pop, ctx, LIMITS.explain_top if top is None else top)
    tree = explainer.node(target.entity, target.row, target.variable, depth)
    tree["cone"] = {"steps": [f"{s.variable.entity}.{s.variable.name}" for s in steps],
                    "plan_steps": len(policy.plan.steps)}
    tree["warnings"] = list(ctx.warnings.values())
    return tree


def explain_situation(policy: Policy, data: dict, text: str, top: int | None = None, depth: int = 1,
                      limit: float | None = None) -> dict:
    """The explanation of one value of a situation (JSON data), with the run's warnings."""
    situation = checked_situation(policy, data)
    tree = explain_value(policy, situation.population, text, situation.overrides, top, depth, limit)
    return {"city": policy.id, "policy": policy.meta.to_dict(), "period": situation.period.text,
            "target": tree["key"], "explanation": tree}


class Explainer:
    """Explanations of single values of an evaluated population; columns of expressions over a
    whole entity (aggregations, allocations, filters) are computed once and reused."""

    def __init__(self, policy: Policy, pop: Population, ctx: RunContext, top: int):
        self.policy, self.pop = policy, pop
        self.ctx = RunContext(policy, ctx.overrides)  # warnings of the explanation stay out of the run's
        self.compiler = Compiler(policy)
        self.top = max(1, min(int(top), MAX_TOP))
        self.columns: dict[tuple[str, str], np.ndarray] = {}
        self.nested = 0
        self.seen: set[str] = set()
        self._ids: dict[str, np.ndarray] = {}

    def ids(self, entity: str) -> np.ndarray:
        if entity not in self._ids:
            self._ids[entity] = ids_of(self.pop, entity)
        return self._ids[entity]

    # ---- one value -----------------------------------------------------------------------
    def key(self, entity: str, row: int, name: str) -> str:
        return f"{entity}.{self.ids(entity)[row]}.{name}"

    def node(self, entity: str, row: int, name: str, depth: int) -> dict:
        """Value, label, clause and formula of one value; its inputs when it was computed."""
        var = self.policy.model.entities[entity].variables[name]
        key = self.key(entity, row, name)
        self.seen.add(key)
        out: dict[str, Any] = {
            "key": key, "entity": entity, "id": str(self.ids(entity)[row]), "variable": name,
            "label": {"zh": var.label.zh, "en": var.label.en}, "unit": var.unit or None,
            "value": json_value(self._stored(entity, name)[row], var.is_money),
            "formula": None, "source": var.source, "assumed": var.assumed, "note": var.note,
            "supplied": False, "inputs": [], "functions": {}}
        step = self.policy.plan.by_key.get((entity, name))
        if step is None:
            out["note"] = "an input value of the situation (情形输入值)"
            return out
        given = self.pop.supplied.get(entity, {}).get(name)
        if given is not None and bool(given[1][row]):
            out["supplied"] = True
            out["note"] = "supplied in the situation (输入值覆盖公式)"
            return out
        out["formula"] = " ".join((var.formula or "").split())
        out["functions"] = functions_of(step.checked.node)
        with np.errstate(all="ignore"):
            out["inputs"] = [self.input(n, entity, row, depth) for n in input_nodes(step.checked.node)]
        return out

    def _stored(self, entity: str, name: str) -> np.ndarray:
        columns = self.pop.columns[entity]
        if name in columns:
            return columns[name]
        var = self.policy.model.entities[entity].variables[name]
        return np.full(self.pop.sizes[entity], var.default_value(), dtype=object)

    # ---- inputs --------------------------------------------------------------------------
    def input(self, node: T.Expr, entity: str, row: int, depth: int) -> dict:
        """One value the formula reads, with what it is and where it can be explained."""
        text = label(node)
        if isinstance(node, T.Param):
            return self._parameter(node.name, text, entity, row)
        item: dict[str, Any] = {"text": text, "kind": "expression",
                                "value": json_value(self.value(node, entity, row), bool(node.money))}
        if isinstance(node, T.Index):
            item.update(self._parameter(node.param, text, entity, row), value=item["value"])
        elif isinstance(node, T.Var):
            self._variable(item, node, entity, row, depth)
        elif isinstance(node, T.Link):
            item["kind"] = "link"
            item["entity"] = node.target
        elif isinstance(node, T.Call) and node.kind == "aggregate":
            item["kind"] = "aggregate"
            item["children"] = self.children(node, entity, row)
        elif isinstance(node, T.Call):
            item["kind"] = node.kind
        return item

    def _variable(self, item: dict, node: T.Var, entity: str, row: int, depth: int) -> None:
        """A variable of this row or of a parent row: its key, and its explanation nested."""
        owner_row = row
        if node.path:
            owner_row = int(self.pop.parent_index(entity, list(node.path), np.array([row]))[0])
            item["kind"] = "parent"
            if owner_row < 0:
                item["note"] = "no parent row: the default is used (无上级记录，取默认值)"
                return
        else:
            item["kind"] = "variable"
        key = self.key(node.owner, owner_row, node.name)
        item["key"] = key
        item["entity"] = node.owner
        if depth > 0 and key not in self.seen and self.nested < MAX_NODES \
                and (node.owner, node.name) in self.policy.plan.by_key:
            self.nested += 1
            item["explanation"] = self.node(node.owner, owner_row, node.name, depth - 1)

    def _parameter(self, name: str, text: str, entity: str, row: int) -> dict:
        """A parameter: the value in force on the row's date, and its clause."""
        param = self.policy.parameters[name]
        versions = self.ctx.versions(name)
        index = 0
        if len(versions) > 1:
            dates = self.pop.row_dates[entity]
            day = dates if np.ndim(dates) == 0 else dates[row]
            index = int(np.asarray(param.version_index(np.asarray([day]))).reshape(-1)[0])
        overridden = name in self.ctx.overrides
        version = param.versions[index] if not overridden else None
        return {"text": text, "kind": "parameter", "parameter": name, "value": json_value(versions[index]),
                "label": {"zh": param.label.zh, "en": param.label.en}, "unit": param.unit or None,
                "source": None if overridden else (version.source if version and version.source else param.source),
                "assumed": None if overridden else param.assumed,
                "since": version.start.isoformat() if version and len(param.versions) > 1 else None,
                "overridden": overridden}

    # ---- values of expressions -------------------------------------------------------------
    def value(self, node: T.Expr, entity: str, row: int) -> Any:
        """The value of a sub-expression on one row; expressions that need every row of an
        entity (aggregations, allocations) are computed once as whole columns."""
        if isinstance(node, T.Var) and not node.path:
            return self._stored(entity, node.name)[row]
        if isinstance(node, T.Link):
            return link_ids(self.pop, entity, node, np.array([row]))[0]
        if isinstance(node, T.Call) and (node.kind in ("aggregate", "allocate") or node.all_rows):
            return self.column(node, entity)[row]
        frame = Frame(self.pop, entity, self.ctx, np.array([row]))
        return frame.full(self.compiler.expr(node)(frame))[0]

    def column(self, node: T.Expr, entity: str) -> np.ndarray:
        """A sub-expression over every row of `entity`, computed once."""
        if isinstance(node, T.Var) and not node.path:
            return self._stored(entity, node.name)
        key = (entity, label(node) if node.syntax is not None else repr(node))
        if key not in self.columns:
            frame = Frame(self.pop, entity, self.ctx)
            with np.errstate(all="ignore"):
                self.columns[key] = frame.full(self.compiler.expr(node)(frame))
        return self.columns[key]

    # ---- aggregations ------------------------------------------------------------------------
    def children(self, node: T.Call, entity: str, row: int) -> dict:
        """The child rows an aggregation reads for this row: how many, their sum, and the `top`
        largest by absolute value (each with the key that explains it)."""
        child, arg = node.child or "", node.args[0]
        groups = self.pop.parent_index(child, list(node.path))
        picked = groups == row
        if node.where is not None:
            picked &= self.column(node.where, child).astype(bool)
        rows = np.flatnonzero(picked)
        counted = isinstance(arg, T.Rows)
        values = np.ones(len(rows)) if counted else np.asarray(self.column(arg, child))[rows].astype(float)
        total = float(group_sum(values, np.zeros(len(rows), dtype=np.int64), 1)[0]) if len(rows) else 0.0
        order = self._largest(values)
        money = bool(arg.money)
        simple = isinstance(arg, T.Var) and not arg.path
        reads = sorted({n.name for n in T.walk(arg) if isinstance(n, T.Var) and not n.path})
        ids = self.ids(child)
        top = []
        for i in order:
            cid = str(ids[rows[i]])
            entry: dict[str, Any] = {"id": cid, "value": json_value(values[i], money)}
            if simple:
                entry["key"] = f"{child}.{cid}.{arg.name}"
            elif reads:
                entry["keys"] = [f"{child}.{cid}.{name}" for name in reads]
            top.append(entry)
        return {"entity": child, "function": node.function, "expression": None if counted else label(arg),
                "variable": arg.name if simple else None,
                "where": label(node.where) if node.where is not None else None,
                "count": int(len(rows)), "sum": json_value(total, money), "top": top,
                "shown": len(top), "order": "largest absolute value first (绝对值从大到小)"}

    def _largest(self, values: np.ndarray) -> np.ndarray:
        """Positions of the `top` largest absolute values, largest first, earlier rows first on ties."""
        n = len(values)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        size = np.abs(np.nan_to_num(values))
        if n > self.top:
            cut = np.partition(size, n - self.top)[n - self.top]
            candidates = np.flatnonzero(size >= cut)
        else:
            candidates = np.arange(n)
        ranked = candidates[np.lexsort((candidates, -size[candidates]))]
        return ranked[: self.top]

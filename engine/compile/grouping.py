"""Formula functions of the `grouping:` section: group(dip), group_rule(dip), … (分组函数登记).

`group(g)` is the group grouping `g` assigns to a claim; `group_rule(g)` the rule and table row
that gave it ("ungroupable" when none did); `group_match(g)` the codes that matched which
patterns; `group_level(g)` the claim's complication level (0 none; CC/MCC, CCI levels as the
complication table numbers them); `group_treatment(g)` the treatment type of its highest-ranked
procedure. The grouping runs once per run over every claim; each function reads its part.
A claim that supplies the variable's value keeps it (as for every formula).
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from engine.compile.functions import Builtin, Fn, call, register
from engine.dsl import ast
from engine.dsl import typed as T
from engine.dsl.checker import NUMERIC, Checker, error
from engine.run import grouping as runtime
from engine.run.frame import Frame

if TYPE_CHECKING:
    from engine.compile.compiler import Compiler

ENTITY = "claim"
PARTS = {"group": ("group", "string"), "group_rule": ("rule", "string"), "group_match": ("match", "string"),
         "group_level": ("level", NUMERIC), "group_treatment": ("treatment", "string")}


def group_check(c: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call:
    """One argument, the name of a grouping of the policy; on claims only. The claim fields the
    grouping reads become the call's arguments, so that they are its dependencies."""
    c.arity(node, 1, 1)
    groupings = getattr(c, "groupings", {})
    target = node.args[0]
    name = target.parts[0] if isinstance(target, ast.Name) and len(target.parts) == 1 else None
    if name not in groupings:
        close = difflib.get_close_matches(str(name), list(groupings), n=1, cutoff=0.6)
        known = ", ".join(groupings) or "none: declare one under grouping:"
        raise error("unknown_grouping", f"{node.function}() takes the name of a grouping of this policy ({known})"
                    + (f"; did you mean '{close[0]}'?" if close else ""),
                    f"{node.function}() 的参数应为本政策 grouping: 中的分组名（{known}）", target)
    if scope != ENTITY:
        raise error("grouping_scope", f"{node.function}() assigns a claim's group: use it in a formula of claim, "
                    f"not of {scope}", f"{node.function}() 为结算记录分组：只能用于 claim 的公式", node)
    fields = tuple(c.expr(ast.Name(target.pos, (f,)), scope, in_before)
                   for f in groupings[name].fields.values())
    label = T.Literal(target.pos, "string", scope, name, "string", money=False, syntax=target)
    return call(node, PARTS[node.function][1], scope, "grouping", (label, *fields), money=False)


def group_compile(c: Compiler, node: T.Call) -> Fn:
    grouping = c.policy.groupings[node.args[0].value]
    part = PARTS[node.function][0]
    grouped = group_variables(c.policy.model.entities[ENTITY].variables, grouping.name)

    def run(frame: Frame):
        values = getattr(assigned(frame, grouping), part)
        if part in ("rule", "match"):
            values = said_supplied(frame, grouped, values, part)
        return frame.take(values)
    return run


def group_variables(variables: dict, name: str) -> list[str]:
    """The claim variables whose formula is group(name): a row supplying one was not grouped."""
    return [v.name for v in variables.values()
            if v.formula and "".join(v.formula.split()) == f"group({name})"]


def said_supplied(frame: Frame, grouped: list[str], values, part: str):
    """On rows that supply the group, the rule is "supplied" and no code matched."""
    supplied = frame.pop.supplied.get(ENTITY, {})
    return marked_supplied(values, [supplied[n][1] for n in grouped if n in supplied], part)


def marked_supplied(values, masks, part: str):
    """`values` of the rule or match part with the rows of each mask (rows supplying the group)
    marked: rule "supplied", match empty (any batch backend calls this too)."""
    for mask in masks:
        if mask is not None and np.asarray(mask).any():
            values = values.copy()
            values[np.asarray(mask, bool)] = "supplied" if part == "rule" else ""
    return values


def assigned(frame: Frame, grouping) -> runtime.Assigned:
    """The grouping over every claim of the run, computed once and kept in the run's context."""
    key = ("grouping", grouping.name, id(frame.pop))
    cached = frame.ctx.key_codes.get(key)
    if cached is None or cached[0] is not frame.pop:
        columns = frame.pop.columns[ENTITY]
        size = frame.pop.sizes[ENTITY]
        diagnosis = columns[grouping.fields["diagnosis"]] if "diagnosis" in grouping.fields else [""] * size
        procedures = columns.get(grouping.fields.get("procedures", ""))
        secondary = columns.get(grouping.fields.get("secondary", ""))
        cached = (frame.pop, runtime.assign(grouping, diagnosis, procedures, secondary))
        frame.ctx.key_codes[key] = cached
    return cached[1]


EXPLAIN = {
    "group": ("the group the policy's grouping rules assign to the claim", "按政策分组规则为结算记录确定的病组"),
    "group_rule": ("the grouping rule and table row that assigned the group", "确定病组的分组规则及表中行"),
    "group_match": ("the claim's codes that matched, and the patterns they matched", "匹配上的编码及其匹配的编码模式"),
    "group_level": ("the complication level of the claim's secondary diagnoses (0: none)",
                    "其他诊断的并发症等级（0 为无）"),
    "group_treatment": ("the treatment type of the claim's highest-ranked procedure", "最高等级手术操作对应的治疗方式"),
}

def shown_in_trace(node: T.Call) -> tuple[T.Expr, ...]:
    """A group's trace shows the codes read and, beside them, the rule and the codes that matched."""
    if node.function != "group":
        return node.args[1:]
    return (*node.args[1:], *(replace(node, function=f, type="string", syntax=replace(node.syntax, function=f))
                               for f in ("group_rule", "group_match")))


for _name, _explain in EXPLAIN.items():
    register(Builtin(_name, group_check, group_compile, _explain, trace=shown_in_trace))

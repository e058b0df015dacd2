"""Where a value is needed: demand by branch, walked back from the wanted outputs (按分支的需求分析).

After evaluation, each formula needed on some rows passes that need on to what it reads: an
`if c then a else b` needs `c` wherever it is needed, `a` only where `c` holds and `b` only where
it does not (`cases`/`elif` are nested ifs); `x and y` needs `y` only where `x` holds (`or`: where
it does not); an aggregation needs its children's values on the children of needing parents that
pass its `where`; a read of a parent's value needs the parents of needing rows. Chains, shares
(`allocate`) and totals over tables stay conservative: every row of what they read is needed.
A formula value supplied on a row stops the demand there. Conditions are evaluated on the
computed population (a missing input reads its fill value there; a condition reading a missing
input is needed where it is evaluated, so such a row is a fault of its own).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.dsl import typed as T
from engine.run.frame import Frame, RunContext
from engine.run.population import Population

Key = tuple[str, str]


class Demand:
    """Row masks of what is needed, collected while walking formulas backwards."""

    def __init__(self, policy, pop: Population, ctx: RunContext, targets: set[Key]):
        self.policy, self.pop, self.ctx = policy, pop, ctx
        self.compiled: dict[int, Callable] = {}  # id of a condition node → its closure
        self.targets = targets
        self.relevant = leads_to(policy, targets)
        self.masks: dict[Key, np.ndarray] = {}

    def add(self, key: Key, mask: np.ndarray) -> None:
        """`key` is needed on the rows of `mask` (only formulas leading to a target, and targets, are kept)."""
        if key not in self.relevant and key not in self.targets or not mask.any():
            return
        if key in self.masks:
            self.masks[key] |= mask
        else:
            self.masks[key] = mask.copy()

    def everywhere(self, node: T.Expr) -> None:
        """Conservative: every variable read anywhere under `node` is needed on all of its rows."""
        for sub in T.walk(node):
            if isinstance(sub, T.Var):
                self.add((sub.owner, sub.name), np.ones(self.pop.sizes[sub.owner], bool))

    def holds(self, node: T.Expr, mask: np.ndarray) -> np.ndarray:
        """The truth of a condition on the rows of `mask` (False elsewhere)."""
        rows = np.flatnonzero(mask)
        out = np.zeros(len(mask), bool)
        frame = Frame(self.pop, node.entity, self.ctx, rows)
        fn = self.compiled.get(id(node))
        if fn is None:
            fn = self.compiled[id(node)] = self.policy.plan.compile(node)
        with np.errstate(all="ignore"):
            out[rows] = np.asarray(frame.full(fn(frame)), bool)
        return out

    def visit(self, node: T.Expr, mask: np.ndarray) -> None:
        """Pass the need of `node` on the rows of `mask` (rows of `node.entity`) to what it reads."""
        if not mask.any():
            return
        if isinstance(node, T.Var):
            self.var(node, mask)
        elif isinstance(node, T.If):
            self.branch(node.condition, [(node.then, True), (node.otherwise, False)], mask)
        elif isinstance(node, T.Binary) and node.op in ("and", "or"):
            self.branch(node.left, [(node.right, node.op == "and")], mask)
        elif isinstance(node, T.Call) and node.kind == "aggregate":
            self.aggregate(node, mask)
        elif isinstance(node, T.Call) and (node.kind in ("chain", "allocate", "table") or node.all_rows):
            self.everywhere(node)
        else:
            for child in T.children(node):
                self.visit(child, mask)

    def var(self, node: T.Var, mask: np.ndarray) -> None:
        if not node.path:
            self.add((node.owner, node.name), mask)
            return
        parents = self.pop.parent_index(node.entity, list(node.path))[mask]
        needed = np.zeros(self.pop.sizes[node.owner], bool)
        needed[parents[parents >= 0]] = True
        self.add((node.owner, node.name), needed)

    def branch(self, condition: T.Expr, arms: list[tuple[T.Expr, bool]], mask: np.ndarray) -> None:
        """A condition needed on `mask`; each arm on the rows where the condition is `when`."""
        self.visit(condition, mask)
        if any(isinstance(s, T.Call) and s.kind == "chain" for s in T.walk(condition)):
            for arm, _ in arms:  # a chain in a condition is not evaluated twice: both arms needed
                self.visit(arm, mask)
            return
        truth = self.holds(condition, mask)
        for arm, when in arms:
            self.visit(arm, mask & (truth if when else ~truth))

    def aggregate(self, node: T.Call, mask: np.ndarray) -> None:
        """The children of needing parents (that pass the `where`) need the aggregated value."""
        child = node.child or ""
        groups = self.pop.parent_index(child, list(node.path))
        rows = np.zeros(len(groups), bool)
        rows[groups >= 0] = mask[groups[groups >= 0]]
        if node.where is not None:
            self.visit(node.where, rows)
            rows &= self.holds(node.where, rows) if rows.any() else rows
        for arg in node.args:
            self.visit(arg, rows)

    def step(self, step, supplied: Callable[[Key], np.ndarray | None]) -> None:
        """A formula needed on some rows: where its value is not supplied, its formula needs its reads."""
        key = step.key
        mask = self.masks.get(key)
        if mask is None:
            return
        given = supplied(key)
        if given is not None:
            mask = mask & ~np.asarray(given, bool)
        if not mask.any():
            return
        if step.recurrent:  # reads its own earlier values along the chain
            self.everywhere(step.checked.node)
            return
        self.visit(step.checked.node, mask)


def leads_to(policy, targets: set[Key]) -> set[Key]:
    """The formula variables whose value depends, directly or not, on one of `targets`."""
    found: set[Key] = set()
    for step in policy.plan.steps:  # evaluation order: dependencies first
        if any(d in targets or d in found for d in step.checked.deps):
            found.add(step.key)
    return found


def needed_rows(policy, pop: Population, ctx: RunContext, wanted: set[Key], targets: set[Key]) -> dict[Key, np.ndarray]:
    """For each input of `targets`, the rows where a wanted output (on every row) actually needs
    it. The population holds every computed column."""
    quiet = RunContext(policy, ctx.overrides, precomputed=ctx.precomputed)  # warnings of conditions are the run's already
    demand = Demand(policy, pop, quiet, targets)
    for key in wanted:
        if key in demand.relevant and pop.sizes.get(key[0], 0):
            demand.add(key, np.ones(pop.sizes[key[0]], bool))
    for step in reversed(policy.plan.steps):
        if step.key in demand.relevant:
            demand.step(step, lambda k: pop.supplied.get(k[0], {}).get(k[1], (None, None))[1])
    return {key: demand.masks.get(key, np.zeros(pop.sizes.get(key[0], 0), bool)) for key in targets}

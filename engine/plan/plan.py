"""Dependency graph of formula variables and its evaluation order (依赖图与求值顺序)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from engine.dsl.checker import Checked
from engine.model.spec import Variable
from engine.policy.spec import PolicyCheck

Key = tuple[str, str]  # (entity, variable)


@dataclass
class Step:
    """One formula variable, compiled, with what it needs."""

    variable: Variable
    checked: Checked
    fn: Callable[[Any], Any]
    nullable: bool = False  # the formula can give no value (pending): null is kept, not made 0

    @property
    def key(self) -> Key:
        return (self.variable.entity, self.variable.name)

    @property
    def recurrent(self) -> bool:
        return self.checked.recurrent


@dataclass
class CheckStep:
    """One policy check, compiled: a yes/no column of its entity, true where the row is fine."""

    check: PolicyCheck
    checked: Checked
    fn: Callable[[Any], Any]

    @property
    def reads(self) -> set[Key]:
        """The variables the check's formula reads (inputs and formulas)."""
        return self.checked.deps


@dataclass
class Plan:
    """Steps in an order where every step comes after what it reads; the policy's checks."""

    steps: list[Step]
    by_key: dict[Key, Step] = field(default_factory=dict)
    checks: list[CheckStep] = field(default_factory=list)
    compile: Callable[[Any], Callable[[Any], Any]] | None = None  # typed node → closure (set by the builder)
    nullable: frozenset[Key] = frozenset()  # variables whose formula can give no value (pending)

    def __post_init__(self):
        self.by_key = {s.key: s for s in self.steps}

    def checks_for(self, steps: list[Step]) -> list[CheckStep]:
        """The checks a run of `steps` makes: those whose formula variables are all computed by the
        run; a check that reads inputs only, when the run computes some variable of its entity."""
        done = {s.key for s in steps}
        entities = {k[0] for k in done}
        out = []
        for check in self.checks:
            formulas = {k for k in check.reads if k in self.by_key}
            if formulas <= done if formulas else check.check.entity in entities:
                out.append(check)
        return out

    def needed(self, wanted: set[Key]) -> list[Step]:
        """The steps required for `wanted`, in evaluation order."""
        need: set[Key] = set()
        stack = [k for k in wanted if k in self.by_key]
        while stack:
            key = stack.pop()
            if key in need:
                continue
            need.add(key)
            stack.extend(d for d in self.by_key[key].checked.deps if d in self.by_key and d not in need)
        return [s for s in self.steps if s.key in need]

    def cone(self, key: Key) -> list[Step]:
        """The steps one value depends on, itself included, in evaluation order (its cone);
        empty for an input field."""
        return self.needed({key})

    def stages(self) -> list[tuple[str, list[str]]]:
        """Consecutive runs of steps on the same entity: the stages of the pipeline."""
        out: list[tuple[str, list[str]]] = []
        for step in self.steps:
            if out and out[-1][0] == step.variable.entity:
                out[-1][1].append(step.variable.name)
            else:
                out.append((step.variable.entity, [step.variable.name]))
        return out


def order(steps: dict[Key, Step]) -> list[Key] | list[Key]:
    """Topological order of the steps; raises CycleError naming the loop."""
    graph = TopologicalSorter()
    for key, step in steps.items():
        graph.add(key, *[d for d in step.checked.deps if d in steps])
    return list(graph.static_order())


def build(steps: dict[Key, Step], checks: list[CheckStep] | None = None,
          nullable: frozenset[Key] = frozenset()) -> Plan:
    """A plan from compiled steps and checks; CycleError (args[1] is the loop) when formulas depend
    on each other."""
    return Plan([steps[k] for k in order(steps)], checks=list(checks or []), nullable=nullable)


__all__ = ["CheckStep", "CycleError", "Plan", "Step", "build"]

"""A plan split for a distributed run: passes over the big entity, small stages in between (分轮计划).

The big entity (claims) is evaluated partition by partition; every other entity is small and
evaluated on one machine. A small step that aggregates claims needs those claims' values
first; a claim step that reads a small value (a point value) needs that value first. So:

- pass r evaluates the claim steps of round r, then the claim aggregations that the small
  steps of round r need (partial sums per partition, added up by key);
- the small steps of round r then run on the driver with those aggregates;
- round 0 has no claim steps: only aggregations of claim inputs, and small steps that need
  nothing from claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.dsl import typed as T
from engine.plan.plan import Key, Plan, Step


class NotDistributable(Exception):
    """A construct that needs all claims at once inside a claim formula (allocate over claims)."""


@dataclass
class Aggregation:
    """One aggregation of claims that a small step reads: computed in partial sums per partition."""

    key: tuple  # (entity, variable, position of the call in the formula): stable across processes
    owner: Step
    node: T.Call
    path: list[str]  # links from the claim up to the owner's entity

    @property
    def parent(self) -> str:
        return self.owner.variable.entity


@dataclass
class Rounds:
    big: str
    claim_steps: list[list[Step]] = field(default_factory=list)  # by round
    small_steps: list[list[Step]] = field(default_factory=list)
    aggregations: list[list[Aggregation]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.small_steps)


def aggregations_of(step: Step, big: str) -> list[Aggregation]:
    out = []
    for node in T.walk(step.checked.node):
        if isinstance(node, T.Call) and node.kind == "aggregate" and node.child == big:
            out.append(Aggregation((step.variable.entity, step.variable.name, node.pos), step, node, list(node.path)))
    return out


def read_inside_aggregations(step: Step, big: str) -> set[Key]:
    """The formula variables of other entities that the step's aggregations of `big` rows read
    (through the rows' links, e.g. `count(claim where claim.institution.holder)`)."""
    out: set[Key] = set()
    for agg in aggregations_of(step, big):
        for node in T.walk(agg.node):
            if isinstance(node, T.Var) and node.owner != big:
                out.add((node.owner, node.name))
    return out


def split(plan: Plan, big: str = "claim", wanted: list[Step] | None = None) -> Rounds:
    """Assign each step to a round (see the module docstring)."""
    steps = wanted if wanted is not None else plan.steps
    round_of: dict[Key, int] = {}
    for step in steps:
        deps = [d for d in step.checked.deps if d in round_of]
        if step.variable.entity == big:
            if any(isinstance(n, T.Call) and n.all_rows for n in T.walk(step.checked.node)):
                raise NotDistributable(f"{big}.{step.variable.name} allocates over {big} rows; settle it locally")
            need = [round_of[d] if d[0] == big else round_of[d] + 1 for d in deps]
            round_of[step.key] = max([1, *need])
        else:
            # a small value read inside an aggregation of claims (a filter on claim.institution.x)
            # must exist before the claim pass that computes the aggregation: a round later
            inner = [k for k in read_inside_aggregations(step, big) if k in round_of]
            round_of[step.key] = max([0, *[round_of[d] for d in deps], *[round_of[k] + 1 for k in inner]])
    count = max(round_of.values(), default=0) + 1
    rounds = Rounds(big, [[] for _ in range(count)], [[] for _ in range(count)], [[] for _ in range(count)])
    for step in steps:
        r = round_of[step.key]
        if step.variable.entity == big:
            rounds.claim_steps[r].append(step)
        else:
            rounds.small_steps[r].append(step)
            rounds.aggregations[r].extend(aggregations_of(step, big))
    return rounds

"""Policy checks over the computed columns: failing rows per check (政策校验求值).

A check is a yes/no formula of one entity, true where the row is fine. A run evaluates the checks
whose variables it computed (engine.plan.plan.Plan.checks_for); an `error` check that fails stops
the run (PolicyCheckFailed), a `warning` check that fails is reported beside the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import PolicyCheckFailed
from engine.plan.plan import CheckStep
from engine.run.frame import Frame, RunContext
from engine.run.population import Population

FIRST_ROWS = 20  # failing rows named per check


@dataclass
class CheckOutcome:
    """The rows of one entity that fail one check (row indices in the population)."""

    step: CheckStep
    rows: np.ndarray

    @property
    def failed(self) -> bool:
        return len(self.rows) > 0


def failing_rows(step: CheckStep, pop: Population, ctx: RunContext) -> np.ndarray:
    """Indices of the rows where the check is not true (a NaN comparison is not true either)."""
    entity = step.check.entity
    n = pop.sizes.get(entity, 0)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ctx.variable = f"{entity}.check.{step.check.name}"
    with np.errstate(over="ignore", invalid="ignore"):
        frame = Frame(pop, entity, ctx)
        ok = np.asarray(frame.full(step.fn(frame)), dtype=bool)
    return np.flatnonzero(~ok)


def run_checks(steps: list[CheckStep], pop: Population, ctx: RunContext) -> list[CheckOutcome]:
    """Every given check over its entity's rows; the failing ones, in declaration order."""
    outcomes = [CheckOutcome(s, failing_rows(s, pop, ctx)) for s in steps]
    return [o for o in outcomes if o.failed]


def row_path(pop: Population, entity: str, row: int, json_paths: bool = True) -> str:
    """Where a row is: `entities.fund[0]` for a row of a JSON request; `account[H1|F]` for a row
    made from the claims, and for every row of a batch run (rows named by id)."""
    if json_paths and not pop.model.entities[entity].derived:
        return f"entities.{entity}[{row}]"
    return f"{entity}[{pop.ids[entity][row]}]"


def describe(outcome: CheckOutcome, pop: Population, json_paths: bool = True) -> dict:
    """A failing check as JSON: name, entity, severity, message in both languages, clause, the
    number of failing rows and the first ones (ids and paths)."""
    check = outcome.step.check
    first = outcome.rows[:FIRST_ROWS]
    paths = [row_path(pop, check.entity, int(r), json_paths) for r in first]
    return {"check": check.name, "entity": check.entity, "severity": check.severity,
            "path": paths[0], "message": check.message.en, "message_zh": check.message.zh,
            "source": check.source, "assumed": check.assumed, "count": int(len(outcome.rows)),
            "ids": [str(pop.ids[check.entity][r]) for r in first], "paths": paths}


def found(steps: list[CheckStep], pop: Population, ctx: RunContext, json_paths: bool = True) -> list[dict]:
    """Every failing check, described."""
    return [describe(o, pop, json_paths) for o in run_checks(steps, pop, ctx)]


def merge(parts: list[dict]) -> list[dict]:
    """Failures of the same check found in several parts of a run (chunks) as one: counts added,
    the first rows kept."""
    out: dict[tuple[str, str], dict] = {}
    for part in parts:
        key = (part["entity"], part["check"])
        if key not in out:
            out[key] = {**part, "ids": list(part["ids"]), "paths": list(part["paths"])}
            continue
        whole = out[key]
        whole["count"] += part["count"]
        room = FIRST_ROWS - len(whole["ids"])
        whole["ids"] += part["ids"][:room]
        whole["paths"] += part["paths"][:room]
    return list(out.values())


def as_warning(failure: dict) -> dict:
    """A failing `warning` check as a result warning (code `policy_check`)."""
    return {"code": "policy_check", "path": f"checks.{failure['entity']}.{failure['check']}",
            "rows": failure["count"], **{k: v for k, v in failure.items() if k not in ("path", "count")}}


def verdict(failures: list[dict]) -> list[dict]:
    """Raise PolicyCheckFailed naming every failing `error` check and its rows; otherwise the
    warnings of the failing `warning` checks."""
    errors = [f for f in failures if f["severity"] == "error"]
    if errors:
        raise PolicyCheckFailed(errors)
    return [as_warning(f) for f in failures]


def settle_checks(steps: list[CheckStep], pop: Population, ctx: RunContext, json_paths: bool = True) -> list[dict]:
    """Run the checks on one population and give the verdict (see `verdict`)."""
    return verdict(found(steps, pop, ctx, json_paths))

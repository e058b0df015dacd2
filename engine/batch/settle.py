"""Settle a city-year from entity files: read → every stage → write, with a summary (批量结算)."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.batch.io import entity_file, read_entity, write_entity
from engine.errors import InputFault, SituationError
from engine.policy.spec import Policy
from engine.run.columns import build_population
from engine.run.evaluate import run_step
from engine.run.frame import RunContext
from engine.run.population import Population
from engine.run.situation import Period, parse_period


@dataclass
class Summary:
    policy: str
    period: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    warnings: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "period": self.period, "rows": self.rows,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "peak_rss_mb": round(self.peak_rss_mb, 1), "warnings": self.warnings}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def folder_period(folder: Path, given: str | None) -> Period:
    """--period, else the `period` of meta.json in the data folder."""
    if given:
        return parse_period(given)
    meta = folder / "meta.json"
    if meta.is_file():
        return parse_period(json.loads(meta.read_text(encoding="utf-8")).get("period"))
    raise SituationError([InputFault("period", "give --period (e.g. 2024) or a meta.json with a period",
                                     "请用 --period 指定期间，或在数据目录放 meta.json")])


def load(policy: Policy, folder: Path, period: Period) -> Population:
    """Read every entity file present and assemble the population."""
    data = {}
    for name, entity in policy.model.entities.items():
        path = entity_file(folder, name)
        if path is None:
            continue
        if entity.derived:
            raise SituationError([InputFault(path.name, f"{name} rows are made from the {entity.derived.source} "
                                             "rows; remove this file", f"{name} 由数据自动生成，请删除此文件")])
        data[name] = read_entity(path, entity)
    if not data:
        raise SituationError([InputFault(str(folder), "no entity files (claim.parquet, institution.csv, …) found",
                                         "未找到实体文件")])
    pop, unknown = build_population(policy.model, data, np.datetime64(period.end, "D"))
    if unknown:
        raise SituationError([InputFault(f"{u.entity}[{u.row}].{u.link}",
                                         f"no {policy.model.entities[u.entity].links[u.link]} with id '{u.value}'",
                                         f"没有 id 为“{u.value}”的上级") for u in unknown[:20]])
    return pop


def evaluate_all(policy: Policy, pop: Population, ctx: RunContext,
                 on_step: Callable[[str], None] | None = None) -> list:
    for step in policy.plan.steps:  # an entity without rows still gets its (empty) columns
        run_step(step, pop, ctx)
        if on_step:
            on_step(f"{step.variable.entity}.{step.variable.name}")
    return [s for s in policy.plan.steps if pop.sizes.get(s.variable.entity, 0) > 0]


def write(policy: Policy, pop: Population, steps: list, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    by_entity: dict[str, list[str]] = {}
    for step in steps:
        by_entity.setdefault(step.variable.entity, []).append(step.variable.name)
    for entity, names in by_entity.items():
        variables = policy.model.entities[entity].variables
        money = {n for n in names if variables[n].is_money}
        write_entity(out / f"{entity}.parquet", pop.ids[entity],
                     {n: pop.columns[entity][n] for n in names}, money)


def settle(policy: Policy, folder: Path, out: Path, period: Period,
           on_step: Callable[[str], None] | None = None) -> Summary:
    """Read, evaluate every stage, write; timings of each phase and the peak memory."""
    summary = Summary(policy.id, period.text)
    started = time.perf_counter()
    pop = load(policy, folder, period)
    summary.seconds["read"] = time.perf_counter() - started
    ctx = RunContext(policy)
    t = time.perf_counter()
    steps = evaluate_all(policy, pop, ctx, on_step)
    summary.seconds["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    write(policy, pop, steps, out)
    summary.seconds["write"] = time.perf_counter() - t
    summary.seconds["total"] = time.perf_counter() - started
    summary.rows = {k: v for k, v in pop.sizes.items() if v}
    summary.peak_rss_mb = peak_rss_mb()
    summary.warnings = list(ctx.warnings.values())
    return summary

"""Settle a city-year from entity files: read → every stage → write, with a summary (批量结算)."""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.batch import partition, provenance
from engine.batch.io import (
    check_table,
    entity_columns,
    entity_file,
    read_column,
    read_entities,
    read_table,
    staged_output,
    write_entity,
)
from engine.batch.spill import Spill
from engine.errors import InputFault, LimitExceeded, SituationError
from engine.period import Period, parse_period
from engine.plan.rounds import NotDistributable, split
from engine.policy.spec import Policy
from engine.run import keyed
from engine.run import policy_checks as checks
from engine.run.checks import joined_links
from engine.run.columns import EntityColumns, UnknownLink, always_required, build_population
from engine.run.demand import needed_rows
from engine.run.evaluate import run_step, warnings_of
from engine.run.frame import RunContext
from engine.run.keyed import RowFault
from engine.run.population import Population

BIG = "claim"
CHUNK_ROWS = int(os.environ.get("MEDPAY_CHUNK_ROWS", "1000000"))


@dataclass
class Summary:
    policy: str
    period: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    warnings: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # every check made, passed or failed
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "period": self.period, "rows": self.rows,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "peak_rss_mb": round(self.peak_rss_mb, 1), "warnings": self.warnings,
                "checks": self.checks, "provenance": {k: v for k, v in self.provenance.items()
                                                      if k not in ("warnings", "checks")}}


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


def load(policy: Policy, folder: Path, period: Period, left_out: list[dict] | None = None,
         supplied: dict[str, EntityColumns] | None = None) -> Population:
    """Read every entity file present and assemble the population: claims outside the period are
    left out (a warning in `left_out`), required inputs must be there (wherever a formula reading
    them could run). `supplied`: rows of more entities (the ledger's months), beside the files."""
    pop, missing = _load(policy, folder, period, left_out, supplied)
    if missing is not None:
        raise SituationError(missing.faults())
    return pop


@dataclass
class Missing:
    """Required inputs empty on rows where a formula reading them may run: kept until the run
    tells which rows need them by branch (engine.run.demand)."""

    policy: Policy
    masks: dict
    sizes: dict[str, int]
    files: dict[str, str]

    def faults(self, needed: dict | None = None) -> list[InputFault]:
        return partition.required_faults_of_files(self.policy, self.masks, self.sizes, self.files, needed=needed)

    def check(self, pop: Population, ctx: RunContext) -> None:
        """After the run: refuse the rows that need a missing input (nothing is written)."""
        wanted = {s.key for s in self.policy.plan.steps if pop.sizes.get(s.variable.entity, 0)}
        targets = {k for k in partition.input_readers(self.policy, wanted, lambda key: False)
                   if k not in self.masks or not self.masks[k].all()}
        faults = self.faults(needed_rows(self.policy, pop, ctx, wanted, targets))
        if faults:
            raise SituationError(faults)


def _load(policy: Policy, folder: Path, period: Period, left_out: list[dict] | None = None,
          supplied: dict[str, EntityColumns] | None = None) -> tuple[Population, Missing | None]:
    small = {**read_entities(policy.model, folder, skip=(BIG,)), **(supplied or {})}
    path = entity_file(folder, BIG)
    if not small and path is None:
        raise SituationError([InputFault(str(folder), "no entity files (claim.parquet, institution.csv, …) found",
                                         "未找到实体文件")])
    claims, warning = partition.claims_in_period(policy, _claims(policy, folder), BIG, period.start, period.end)
    if warning and left_out is not None:
        left_out.append(warning)
    missing = _missing_required(policy, folder, small, claims)
    data = {**small, BIG: entity_columns(claims, policy.model.entities[BIG], path.name)} if path else small
    pop, unknown = build_population(policy.model, data, np.datetime64(period.end, "D"))
    if unknown:
        raise SituationError([file_fault(policy, u) for u in unknown[:20]])
    return pop, missing


def file_fault(policy: Policy, found: UnknownLink | RowFault) -> InputFault:
    """A fault of the population builder, at entity[row].field of the entity's file."""
    if isinstance(found, RowFault):
        return InputFault(f"{found.entity}[{found.row}].{found.field}", found.en, found.zh, found.code)
    target = policy.model.entities[found.entity].links[found.link]
    return InputFault(f"{found.entity}[{found.row}].{found.field or found.link}", f"no {target} with id '{found.value}'",
                      f"没有 id 为“{found.value}”的上级")


def evaluate_all(policy: Policy, pop: Population, ctx: RunContext,
                 on_step: Callable[[str], None] | None = None) -> list:
    for step in policy.plan.steps:  # an entity without rows still gets its (empty) columns
        run_step(step, pop, ctx)
        if on_step:
            on_step(f"{step.variable.entity}.{step.variable.name}")
    return [s for s in policy.plan.steps if pop.sizes.get(s.variable.entity, 0) > 0]


def _evaluate_all_checked(policy: Policy, pop: Population, ctx: RunContext, on_step: Callable[[str], None] | None,
                          missing: Missing | None) -> list:
    """Every stage; with inputs missing somewhere, then the rows that need them by branch are refused."""
    if missing is None:
        return evaluate_all(policy, pop, ctx, on_step)
    try:
        steps = evaluate_all(policy, pop, ctx, on_step)
    except LimitExceeded:
        raise
    except Exception:  # a missing value broke the run: every row that might need it is reported
        raise SituationError(missing.faults()) from None
    missing.check(pop, ctx)
    return steps


def write(policy: Policy, pop: Population, steps: list, out: Path,
          metadata: dict[bytes, bytes] | None = None) -> dict[str, int]:
    """One Parquet file per entity with the computed columns; the rows written per file."""
    out.mkdir(parents=True, exist_ok=True)
    by_entity: dict[str, list[str]] = {}
    for step in steps:
        by_entity.setdefault(step.variable.entity, []).append(step.variable.name)
    written = {}
    for entity, names in by_entity.items():
        variables = policy.model.entities[entity].variables
        money = {n for n in names if variables[n].is_money}
        written[f"{entity}.parquet"] = write_entity(out / f"{entity}.parquet", pop.ids[entity],
                                                    {n: pop.columns[entity][n] for n in names}, money, metadata)
    return written


@dataclass
class RunInputs:
    """What a run reads besides the policy: the data folder, the ledger's rows and what it noticed."""

    folder: Path
    supplied: dict[str, EntityColumns] = field(default_factory=dict)
    ledger: dict | None = None
    warnings: list[dict] = field(default_factory=list)


def finish(policy: Policy, inputs: RunInputs, period: Period, ctx: RunContext, steps: list,
           evaluated: list, failures: list[dict], left_out: list[dict], summary: Summary,
           given: dict[str, list[str]]) -> dict:
    """Warnings (rows left out, the ledger, assumed values, evaluation, failing warning checks),
    check results and the provenance record of a run whose error checks passed; `given`: per
    entity, the fields the run's inputs gave (from the columns already read)."""
    ctx.computed |= {s.key for s in steps}
    checked = [checks.as_warning(f) for f in failures]
    summary.warnings = left_out + inputs.warnings + warnings_of(policy, ctx, steps, period) + checked
    summary.checks = provenance.check_results(evaluated, failures)
    files = provenance.input_files(inputs.folder, list(policy.model.entities))
    summary.provenance = provenance.record(
        policy, period.text, provenance.now(), inputs={"data": str(inputs.folder), "files": files},
        overrides=provenance.overridden(policy, given), warnings=summary.warnings, checks=summary.checks,
        ledger=inputs.ledger)
    return provenance.schema_metadata(summary.provenance)


def given_fields(small: dict[str, EntityColumns], claims: pa.Table | None = None) -> dict[str, list[str]]:
    """Per entity, the fields some row gives (the claims: the columns of their file), for the provenance."""
    given = {name: [n for n, mask in cols.given.items() if np.asarray(mask).any()] for name, cols in small.items()}
    if claims is not None:
        given[BIG] = [n for n in claims.column_names if n != "id"]
    return given


def supplied_fields(pop: Population) -> dict[str, list[str]]:
    """Per entity, the fields some row of the population gives."""
    return {name: [n for n, (_, mask) in cols.items() if np.asarray(mask).any()] for name, cols in pop.supplied.items()}


BACKENDS = ("numpy", "polars")


def settle(policy: Policy, folder: Path, out: Path, period: Period,
           on_step: Callable[[str], None] | None = None, chunk_rows: int | None = None,
           ledger: Path | None = None, backend: str = "numpy") -> Summary:
    """Read, evaluate every stage, write — claims in chunks of at most `chunk_rows` (referral
    chains kept whole), so memory stays bounded; timings of each phase and the peak memory.
    Every input value is checked first; the results reach `out` only when the whole run succeeds.
    With a `ledger` (engine.batch.ledger), its months supply the account_month rows: what was
    actually paid each month replaces the months computed from the claims. Every file written
    carries the run's provenance (schema metadata `medpay`), and so does `manifest.json`.
    `backend` "polars": the claim stages as Polars expressions (engine.batch.polars_backend); a
    policy or run it cannot take (a ledger, for one) settles with numpy, with a warning saying so."""
    if backend not in BACKENDS:
        raise SituationError([InputFault("backend", f"unknown backend '{backend}' (numpy or polars)",
                                         f"未知的计算后端“{backend}”（numpy 或 polars）")])
    inputs = RunInputs(folder)
    if ledger is not None:
        from engine.batch.ledger import ledger_supply
        inputs.supplied, inputs.ledger, inputs.warnings = ledger_supply(policy, ledger, period, folder)
    with staged_output(out) as stage:
        try:
            rounds = split(policy.plan, BIG)
        except NotDistributable as err:
            summary = _settle_whole(policy, inputs, stage, period, on_step)
            if backend == "polars":
                summary.warnings.insert(0, _fallback_warning(str(err)))
            return summary
        if backend == "polars":
            from engine.batch import polars_backend
            reason = "a ledger of monthly pre-settlements" if ledger is not None else \
                polars_backend.unsupported(policy, rounds)
            if reason is None:
                try:
                    return _settle_polars(policy, folder, stage, period, rounds, on_step)
                except polars_backend.Unsupported as err:
                    reason = str(err)
                except polars_backend.PolarsError as err:  # a query Polars refuses: numpy settles it
                    reason = f"this data ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
            summary = _settle_chunks(policy, inputs, stage, period, rounds, on_step, chunk_rows)
            summary.warnings.insert(0, _fallback_warning(reason))
            return summary
        return _settle_chunks(policy, inputs, stage, period, rounds, on_step, chunk_rows)


def _fallback_warning(reason: str) -> dict:
    return {"code": "backend_fallback", "path": "backend",
            "message": f"settled with the numpy engine: the Polars backend does not cover {reason}",
            "message_zh": f"已改用 numpy 引擎结算：Polars 后端不支持 {reason}", "rows": 0}


def _settle_polars(policy: Policy, folder: Path, out: Path, period: Period, rounds,
                   on_step: Callable[[str], None] | None) -> Summary:
    """All claims in one Polars frame, the small entities on numpy between rounds (see `settle`)."""
    from engine.batch import polars_backend as pb
    summary = Summary(policy.id, period.text)
    started = time.perf_counter()
    small = _small_entities(policy, folder)
    claims, left_out = partition.claims_in_period(policy, _claims(policy, folder), BIG, period.start, period.end)
    _check_links(policy, small, claims)
    frame = pb.read_claims(policy, claims, small, str(period.end), BIG)
    if _keyed_applies(policy, small):  # what _check_keyed reports, from the claims' links read once
        faults = [file_fault(policy, f) for f in frame.found if isinstance(f, RowFault) or f.entity != BIG]
        if faults:
            raise SituationError(faults[:20])
    if _missing_required(policy, folder, small, claims) is not None:  # decided by branch, in one numpy population
        raise pb.Unsupported("inputs left empty on some rows (required by branch)")
    keys = partition.derived_keys(policy, BIG, claims.column_names)
    pop = partition.driver_population(policy, small, BIG, keys, distinct_keys(claims, keys), str(period.end))
    summary.seconds["read"] = time.perf_counter() - started
    t = time.perf_counter()
    ctx, done = RunContext(policy), []
    for r in range(rounds.count):
        state = partition.state_of(pop, BIG)
        pb.run_round(policy, frame, rounds.claim_steps[r], state, pop, ctx)
        done += [s.variable.name for s in rounds.claim_steps[r]]
        aggregations = [a.key for a in rounds.aggregations[r]]
        if aggregations:
            sums: dict[str, list[tuple]] = {}
            _add_partials(sums, pb.partials(policy, frame, aggregations, state, pop, ctx))
            for agg in rounds.aggregations[r]:
                ids = [str(x) for x in list(pop.ids[agg.parent])]
                ctx.precomputed[agg.key] = partition.combine_aggregation(
                    agg, ids, sums.get(partition.encode_key(agg.key), []))
        if on_step:
            on_step(f"claims, round {r + 1}")
        for step in rounds.small_steps[r]:
            run_step(step, pop, ctx)
            if on_step:
                on_step(f"{step.variable.entity}.{step.variable.name}")
    small_steps = [s for group in rounds.small_steps for s in group if pop.sizes.get(s.variable.entity, 0)]
    failures = checks.found([c for c in policy.plan.checks_for(small_steps) if c.check.entity != BIG], pop, ctx,
                            json_paths=False)
    ids = pc.cast(claims["id"], pa.string())
    if claims.num_rows:
        failures += pb.check_failures(policy, frame, ids, partition.state_of(pop, BIG), pop, ctx)
    failures = checks.merge(failures)
    checks.verdict(failures)  # raises on an error check: nothing is written
    summary.seconds["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    small_checks = [c for c in policy.plan.checks_for(small_steps) if c.check.entity != BIG]
    claim_checks = [c for c in policy.plan.checks if c.check.entity == BIG] if claims.num_rows else []
    claim_steps = [policy.plan.by_key[(BIG, n)] for n in done] if claims.num_rows else []
    metadata = finish(policy, RunInputs(folder), period, ctx, small_steps + claim_steps, small_checks + claim_checks,
                      failures, [left_out] if left_out else [], summary, given_fields(small, claims))
    written = write(policy, pop, small_steps, out, metadata)
    if done:  # no claims: an empty claim file with its columns, as the numpy run writes
        money = {n for n in done if policy.model.entities[BIG].variables[n].is_money}
        table = pb.results(frame, ids, done, money).replace_schema_metadata(metadata)
        pq.write_table(table, out / f"{BIG}.parquet", compression="zstd")
        written[f"{BIG}.parquet"] = table.num_rows
    provenance.write_manifest(out, summary.provenance, written)
    return _closed(summary, pop, claims.num_rows, started, t)


def _settle_chunks(policy: Policy, inputs: RunInputs, out: Path, period: Period, rounds,
                   on_step: Callable[[str], None] | None, chunk_rows: int | None) -> Summary:
    """Claims in chunks, the small entities whole on the driver (see `settle`)."""
    summary = Summary(policy.id, period.text)
    started = time.perf_counter()
    folder = inputs.folder
    small = {**_small_entities(policy, folder), **inputs.supplied}
    claims, left_out = partition.claims_in_period(policy, _claims(policy, folder), BIG, period.start, period.end)
    _check_links(policy, small, claims)
    _check_keyed(policy, small, claims, period)
    if _missing_required(policy, folder, small, claims) is not None:  # needed by branch: one population
        return _settle_whole(policy, inputs, out, period, on_step)
    keys = partition.derived_keys(policy, BIG, claims.column_names)
    rows = distinct_keys(claims, keys)
    pop = partition.driver_population(policy, small, BIG, keys, rows, str(period.end))
    chunks = chunk_rows_of(claims, chunk_rows or CHUNK_ROWS)
    with Spill(out) as spill:  # results of several chunks wait on disk, memory-mapped (engine.batch.spill)
        results: list[dict[str, pa.Array]] = [{} for _ in chunks]  # each chunk's claim results so far
        summary.seconds["read"] = time.perf_counter() - started
        t = time.perf_counter()
        ctx, done = RunContext(policy), []
        whole = None  # one chunk: its population is built once and kept across rounds
        last_claim_round = max((r for r in range(rounds.count) if rounds.claim_steps[r]), default=-1)
        claim_checks = [c for c in policy.plan.checks if c.check.entity == BIG]
        stream = len(chunks) > 1 and not claim_checks and \
            not any(rounds.aggregations[r] for r in range(last_claim_round + 1, rounds.count))
        writer = ClaimWriter(out / f"{BIG}.parquet", policy, [s.variable.name for g in rounds.claim_steps for s in g])
        for r in range(rounds.count):
            names = [s.variable.name for s in rounds.claim_steps[r]]
            aggregations = [a.key for a in rounds.aggregations[r]]
            if names or aggregations:
                state = partition.state_of(pop, BIG)
                sums: dict[str, list[tuple]] = {}
                for i, rows in enumerate(chunks):
                    if rows is None:
                        if whole is None:
                            whole = partition.population(policy, claims, state, str(period.end), BIG, [])
                        else:
                            partition.install(whole, state)
                        partition.run_steps(policy, whole, BIG, names, ctx)
                        found = partition.partials(policy, whole, BIG, aggregations, ctx)
                    else:
                        table = with_results(claims.take(rows), results[i])
                        table, found = partition.run_chunk(policy, table, state, str(period.end), BIG, done,
                                                           names, aggregations, ctx)
                        if stream and r == last_claim_round:  # nothing later needs them: write them now
                            writer.write(table)
                        else:
                            results[i].update(spill.keep({n: table[n] for n in names}))
                        del table
                    _add_partials(sums, found)
                    if on_step:
                        on_step(f"claims {i + 1}/{len(chunks)}, round {r + 1}")
                done += names
                for agg in rounds.aggregations[r]:
                    ids = [str(x) for x in list(pop.ids[agg.parent])]
                    ctx.precomputed[agg.key] = partition.combine_aggregation(
                        agg, ids, sums.get(partition.encode_key(agg.key), []))
            for step in rounds.small_steps[r]:
                run_step(step, pop, ctx)
                if on_step:
                    on_step(f"{step.variable.entity}.{step.variable.name}")
        small_steps = [s for group in rounds.small_steps for s in group if pop.sizes.get(s.variable.entity, 0)]
        small_checks = [c for c in policy.plan.checks_for(small_steps) if c.check.entity != BIG]
        failures = checks.found(small_checks, pop, ctx, json_paths=False)
        if claim_checks and claims.num_rows:
            failures += _claim_check_failures(policy, claims, chunks, results, whole, pop, period, done, ctx)
        failures = checks.merge(failures)
        checks.verdict(failures)  # raises on an error check: nothing is written
        summary.seconds["evaluate"] = time.perf_counter() - t
        t = time.perf_counter()
        claim_steps = [policy.plan.by_key[(BIG, n)] for n in done] if claims.num_rows else []
        metadata = finish(policy, inputs, period, ctx, small_steps + claim_steps,
                          small_checks + (claim_checks if claims.num_rows else []), failures,
                          [left_out] if left_out else [], summary, given_fields(small, claims))
        written = write(policy, pop, small_steps, out, metadata)
        money = {n for n in done if policy.model.entities[BIG].variables[n].is_money}
        if whole is not None:
            written[f"{BIG}.parquet"] = write_entity(out / f"{BIG}.parquet", claims["id"],
                                                     {n: whole.columns[BIG][n] for n in done}, money, metadata)
        elif not stream:
            for rows, found in zip(chunks, results, strict=True):
                writer.write(pa.table({"id": claims["id"].take(rows), **found}))
        if writer.close(metadata):
            written[f"{BIG}.parquet"] = claims.num_rows
        provenance.write_manifest(out, summary.provenance, written)
        return _closed(summary, pop, claims.num_rows, started, t)


def _closed(summary: Summary, pop: Population, claims: int, started: float, write_started: float) -> Summary:
    """The summary of a claim-wise run: write and total times, rows per entity, peak memory."""
    summary.seconds["write"] = time.perf_counter() - write_started
    summary.seconds["total"] = time.perf_counter() - started
    summary.rows = {k: v for k, v in pop.sizes.items() if v and k != BIG}
    summary.rows[BIG] = claims
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def _missing_required(policy: Policy, folder: Path, small: dict[str, EntityColumns],
                      claims: pa.Table) -> Missing | None:
    """Inputs without a default empty where a formula reading them may run (None: none); an input
    required on every row and empty is refused at once."""
    sizes = {name: len(cols) for name, cols in small.items()}
    sizes[BIG] = claims.num_rows
    files = {name: path.name for name in policy.model.entities if (path := entity_file(folder, name))}
    missing = Missing(policy, partition.given_masks(small, claims, BIG), sizes, files)
    faults = missing.faults()
    if not faults:
        return None
    always = {f"{files.get(e, e)}:{n}" for e, n in always_required(policy.model)}
    if any(f.path in always for f in faults):
        raise SituationError(faults)
    return missing


def with_results(table: pa.Table, results: dict) -> pa.Table:
    """The claims with the results of earlier rounds as columns; a column the claims supplied
    (a formula value given in the file) is replaced by its result, which already honours it."""
    for name, values in results.items():
        at = table.column_names.index(name) if name in table.column_names else -1
        table = table.set_column(at, name, values) if at >= 0 else table.append_column(name, values)
    return table


def _claim_check_failures(policy: Policy, claims: pa.Table, chunks: list, results: list[dict],
                          whole: Population | None, pop: Population, period: Period, done: list[str],
                          ctx: RunContext) -> list[dict]:
    """The claim checks over every chunk, once all claim steps have run, with the small entities'
    final values."""
    state = partition.state_of(pop, BIG)
    steps = [c for c in policy.plan.checks if c.check.entity == BIG]
    failures: list[dict] = []
    for i, rows in enumerate(chunks):
        with partition.chunk_caches(ctx):  # the last use of the claims' columns: nothing cached outlives them
            if rows is None and whole is not None:
                partition.install(whole, state)
                chunk_pop = whole
            else:
                table = with_results(claims if rows is None else claims.take(rows), results[i])
                chunk_pop = partition.population(policy, table, state, str(period.end), BIG, done)
            failures += checks.found(steps, chunk_pop, ctx, json_paths=False)
    return failures


def _settle_whole(policy: Policy, inputs: RunInputs, out: Path, period: Period,
                  on_step: Callable[[str], None] | None) -> Summary:
    """All claims in memory at once: for a policy whose claim formulas need every claim together."""
    summary = Summary(policy.id, period.text)
    started = time.perf_counter()
    left_out: list[dict] = []
    pop, missing = _load(policy, inputs.folder, period, left_out, inputs.supplied)
    summary.seconds["read"] = time.perf_counter() - started
    ctx = RunContext(policy)
    t = time.perf_counter()
    steps = _evaluate_all_checked(policy, pop, ctx, on_step, missing)
    evaluated = policy.plan.checks_for(steps)
    failures = checks.found(evaluated, pop, ctx, json_paths=False)
    checks.verdict(failures)  # raises on an error
    summary.seconds["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    metadata = finish(policy, inputs, period, ctx, steps, evaluated, failures, left_out, summary, supplied_fields(pop))
    written = write(policy, pop, steps, out, metadata)
    provenance.write_manifest(out, summary.provenance, written)
    summary.seconds["write"] = time.perf_counter() - t
    summary.seconds["total"] = time.perf_counter() - started
    summary.rows = {k: v for k, v in pop.sizes.items() if v}
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def _small_entities(policy: Policy, folder: Path) -> dict[str, EntityColumns]:
    data = read_entities(policy.model, folder, skip=(BIG,))
    if not data and entity_file(folder, BIG) is None:
        raise SituationError([InputFault(str(folder), "no entity files (claim.parquet, institution.csv, …) found",
                                         "未找到实体文件")])
    return data


def _claims(policy: Policy, folder: Path) -> pa.Table:
    path = entity_file(folder, BIG)
    if path is None:
        return pa.table({"id": pa.array([], pa.string())})
    table = read_table(path, policy.model.entities[BIG])
    check_table(table, policy.model.entities[BIG], path.name, frozenset(joined_links(policy.model)))
    return table


def _check_links(policy: Policy, small: dict[str, EntityColumns], claims: pa.Table) -> None:
    """Claims naming an institution (fund, …) that is not in its file are refused."""
    faults = []
    for link, target in policy.model.entities[BIG].links.items():
        if policy.model.entities[target].derived or link not in claims.column_names:
            continue
        known = pa.array([str(i) for i in list(small[target].ids)] if target in small else [], pa.string())
        values = pc.unique(pc.drop_null(pc.cast(claims[link], pa.string())))
        unknown = pc.filter(values, pc.and_(pc.invert(pc.is_in(values, value_set=known)), pc.not_equal(values, "")))
        faults += [InputFault(f"claim.{link}", f"no {target} with id '{v}'", f"没有 id 为“{v}”的 {target}")
                   for v in unknown.to_pylist()[:20]]
    if faults:
        raise SituationError(faults)


def _check_keyed(policy: Policy, small: dict[str, EntityColumns], claims: pa.Table, period: Period) -> None:
    """What a whole run reports on keyed entities, for chunked claims: supplied rows whose ids do
    not fit their keys, claims without the date a month entity needs, claims without their
    covering row (community_fund_missing). Built from the claims' links and dates only, and only
    when such a check applies."""
    model = policy.model
    months = _keyed_months(policy, small)
    if not _keyed_applies(policy, small):
        return
    light = EntityColumns(pc.cast(claims["id"], pa.string()))
    light.links = {k: claims[k] for k in model.entities[BIG].links if k in claims.column_names}
    for name in months & set(claims.column_names):
        light.values[name], light.given[name] = read_column(claims[name], model.entities[BIG].variables[name],
                                                            f"{BIG}:{name}")
    _, found = build_population(model, {**small, BIG: light}, np.datetime64(period.end, "D"))
    faults = [file_fault(policy, f) for f in found if isinstance(f, RowFault) or f.entity != BIG]
    if faults:
        raise SituationError(faults[:20])


def _keyed_months(policy: Policy, small: dict[str, EntityColumns]) -> set[str]:
    """The claim date fields whose months key an entity that needs its rows checked."""
    return {p.field for e in policy.model.entities.values() if e.derived and e.derived.source == BIG
            and keyed.needs_rows(e, len(small.get(e.name, ()))) for p in e.derived.parts if p.kind == "month"}


def _keyed_applies(policy: Policy, small: dict[str, EntityColumns]) -> bool:
    """Whether a whole run would report faults of keyed entities (see `_check_keyed`)."""
    supplied = any((e.key or e.derived) and len(small.get(e.name, ())) for e in policy.model.entities.values())
    return bool(_keyed_months(policy, small)) or supplied


def distinct_keys(claims: pa.Table, keys: list[str]) -> list[tuple]:
    """Distinct combinations of the key columns (a date taken as the first day of its month), in
    order of first appearance (as a JSON run orders derived rows); a missing part is None and each
    derived entity leaves out the rows missing its own parts. Integer codes only, so 10^7 rows stay light."""
    if not keys or not claims.num_rows:
        return []
    combined = np.zeros(claims.num_rows, dtype=np.int64)
    vocabularies = []
    for key in keys:
        column = claims[key]
        if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
            column = pc.cast(pc.floor_temporal(column, unit="month"), pa.date32())
        encoded = pc.dictionary_encode(column).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        vocabulary = [None if v == "" else v for v in encoded.dictionary.to_pylist()]
        combined = combined * (len(vocabulary) + 1) + (codes + 1)
        vocabularies.append(vocabulary)
    rows = []
    for code in pc.unique(pa.array(combined)).to_pylist():  # first appearance order
        parts = []
        for vocabulary in reversed(vocabularies):
            code, r = divmod(code, len(vocabulary) + 1)
            parts.append(vocabulary[r - 1] if r else None)
        rows.append(tuple(reversed(parts)))
    return rows


def chunk_rows_of(claims: pa.Table, rows: int) -> list[np.ndarray | None]:
    """The rows of each chunk of about `rows` claims, each referral chain whole in one chunk;
    [None] when the table fits in one chunk (kept in its order)."""
    n = claims.num_rows
    if n <= rows:
        return [None]
    count = -(-n // rows)
    which = np.arange(n, dtype=np.int64) % count  # claims without a chain: spread by position
    if "episode" in claims.column_names:  # a chain's claims all go where its episode code says
        codes = pc.fill_null(pc.dictionary_encode(claims["episode"]).combine_chunks().indices, -1)
        codes = codes.to_numpy(zero_copy_only=False)
        which = np.where(codes >= 0, codes % count, which)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(count + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(count)]


def _add_partials(sums: dict, partials: pa.Table) -> None:
    """Keep one chunk's partial rows by aggregation; `partition.combine` adds them up exactly."""
    for row in partials.to_pylist():
        sums.setdefault(row["key"], []).append((row["parent"], row["limb"], row["value"], row["rows"],
                                                row["low"], row["high"]))


class ClaimWriter:
    """Claim results into one Parquet file, a chunk at a time: id and results, money to the fen."""

    def __init__(self, path: Path, policy: Policy, names: list[str]):
        self.path, self.names, self.writer = path, names, None
        self.money = [n for n in names if policy.model.entities[BIG].variables[n].is_money]

    def write(self, table: pa.Table) -> None:
        if not self.names or not table.num_rows:
            return
        result = table.select(["id", *self.names])
        result = result.set_column(0, "id", pc.cast(result["id"], pa.string()))
        for batch in result.to_batches():
            batch = partition.round_money(batch, self.money)
            if self.writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.writer = pq.ParquetWriter(self.path, batch.schema, compression="zstd")
            self.writer.write_batch(batch)

    def close(self, metadata: dict[bytes, bytes] | None = None) -> bool:
        """Finish the file, with `metadata` (provenance) in its schema; whether a file was written."""
        if self.writer is None:
            return False
        if metadata:
            self.writer.add_key_value_metadata(metadata)
        self.writer.close()
        return True

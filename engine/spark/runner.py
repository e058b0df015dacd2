"""Settle a city-year on Apache Spark with the same plan and the same engine (Spark 分布式结算).

- Claims are read by Spark from Parquet and kept together by referral chain (repartition by
  `coalesce(episode, id)`), so chain rules stay inside one partition.
- Each pass runs the local engine inside every partition (`mapInArrow`) for that round's claim
  steps, with the small entities' columns broadcast.
- Aggregations of claims become partial sums per partition, added up with a Spark group-by.
- The small stages (institutions, accounts, funds, communities) run on the driver with the
  local engine; their results go back to the executors as broadcast columns.
No rule has a second implementation: Spark moves data, the engine computes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.batch import partition as part
from engine.batch.io import SHOWN_ROWS, entity_file, read_entities, staged_output, table_faults
from engine.batch.settle import RunInputs, Summary, peak_rss_mb, write
from engine.batch.settle import _settle_whole as settle_whole
from engine.compile.build import load_policy_file
from engine.errors import InputFault, SituationError
from engine.period import Period
from engine.plan.rounds import split
from engine.policy.spec import Policy
from engine.run.checks import joined_links
from engine.run.columns import always_required, date_window, outside_warning
from engine.run.evaluate import run_step
from engine.run.frame import RunContext
from engine.run.policy_checks import found, verdict

BIG = "claim"
SPARK_TYPES = {"number": "double", "bool": "boolean", "string": "string", "date": "date"}
_POLICIES: dict[str, Policy] = {}


def _policy(path: str, digest: str) -> Policy:
    """The policy inside an executor, loaded once per process (from the shipped folder on a cluster)."""
    if digest not in _POLICIES:
        file = Path(path)
        if not file.is_file():
            from pyspark import SparkFiles
            file = Path(SparkFiles.get(file.parent.name)) / file.name
        _POLICIES[digest] = load_policy_file(file)
    return _POLICIES[digest]


def session(master: str | None, app: str = "medpay"):
    """A Spark session whose Python workers use this interpreter (numpy, pyarrow, the engine);
    without `master`, the one spark-submit was given (or local[*])."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.master(master) if master else SparkSession.builder
    return (builder.appName(app)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
            .getOrCreate())


def _driver_population(policy: Policy, folder: Path, claims, period: Period):
    """The small entities from their files, and the entities derived from claims (accounts)
    from the distinct keys Spark finds; claim links to unknown ids are faults."""
    from pyspark.sql import functions as F
    model = policy.model
    data = read_entities(model, folder, skip=(BIG,))
    claim_entity = model.entities[BIG]
    faults = []
    for link, target in claim_entity.links.items():
        if model.entities[target].derived or link not in claims.columns:
            continue
        known = set(str(i) for i in list(data[target].ids)) if target in data else set()
        found = [r[0] for r in claims.select(link).where(F.col(link).isNotNull()).distinct().collect()]
        faults += [InputFault(f"claim.{link}", f"no {target} with id '{v}'", f"没有 id 为“{v}”的 {target}")
                   for v in sorted(set(found) - known)[:20]]
    if faults:
        raise SituationError(faults)
    _check_required(policy, folder, data, claims)
    keys = part.derived_keys(policy, BIG, claims.columns)
    rows = [tuple(r) for r in claims.select(*keys).distinct().orderBy(*keys).collect()] if keys else []
    return part.driver_population(policy, data, BIG, keys, rows, str(period.end))


def check_claims(policy: Policy, claim_file: Path, claims) -> None:
    """The checks of a local run on the claim file: values batch by batch on the driver (memory
    stays bounded), ids used twice with a Spark group-by."""
    entity, joined = policy.model.entities[BIG], frozenset(joined_links(policy.model))
    faults, offset = [], 0
    for batch in pq.ParquetFile(claim_file).iter_batches(batch_size=1_000_000):
        faults += table_faults(pa.Table.from_batches([batch]), entity, claim_file.name, joined, offset, unique=False)
        offset += batch.num_rows
        if faults:
            raise SituationError(faults)
    twice = [r[0] for r in claims.groupBy("id").count().where("count > 1").limit(SHOWN_ROWS).collect()]
    if twice:
        shown = ", ".join(repr(str(i)) for i in twice)
        raise SituationError([InputFault(f"{claim_file.name}:id", f"ids used by more than one row: {shown}",
                                         f"以下 id 被多行使用：{shown}")])


def _claims_in_period(policy: Policy, claims, period: Period):
    """The claims dated inside the period and the policy's effective dates; the warning for the others."""
    from pyspark.sql import functions as F
    date = policy.model.entities[BIG].date
    if not date or date not in claims.columns:
        return claims, None
    first, last = date_window(policy, period.start, period.end)
    column = F.col(date).cast("date")
    out = column.isNotNull() & ((column < F.lit(str(first)).cast("date")) | (column > F.lit(str(last)).cast("date")))
    count = claims.where(out).count()
    if not count:
        return claims, None
    ids = [str(r[0]) for r in claims.where(out).select("id").limit(20).collect()]
    return claims.where(~out), outside_warning(BIG, date, (first, last), ids, count)


def _check_required(policy: Policy, folder: Path, small: dict, claims) -> None:
    """Inputs without a default that the settlement needs: in the small files on every row, and in
    the claims (null cells counted by Spark, with the first ids)."""
    from pyspark.sql import functions as F
    nulls = claims.select(F.count(F.lit(1)).alias("__rows"),
                          *[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in claims.columns]).first()
    masks = {(name, var): mask for name, cols in small.items() for var, mask in cols.given.items()}
    masks.update({(BIG, c): np.array([not nulls[c]]) for c in claims.columns})
    sizes = {name: len(cols) for name, cols in small.items()}
    sizes[BIG] = min(1, nulls["__rows"])  # claims are checked through `nulls` below: this marks them present
    files = {name: path.name for name in policy.model.entities if (path := entity_file(folder, name))}
    faults = []
    for fault in part.required_faults_of_files(policy, masks, sizes, files):
        entity, _, column = fault.path.partition(":")
        if entity == files.get(BIG, BIG) and column in claims.columns:
            ids = [str(r[0]) for r in claims.where(F.col(column).isNull()).select("id").limit(5).collect()]
            fault = InputFault(fault.path, f"claim.{column} is required and has no default: {nulls[column]} claim(s) "
                               f"without it, e.g. {', '.join(ids)}",
                               f"claim.{column} 为必填项且没有默认值：{nulls[column]} 条记录缺少，如 {', '.join(ids)}")
        faults.append(fault)
    always = {f"{files.get(e, e)}:{n}" for e, n in always_required(policy.model)}
    if faults and not any(f.path in always for f in faults):
        raise NeededByBranch()
    if faults:
        raise SituationError(faults)


def settle_spark(policy: Policy, folder: Path, out: Path, period: Period, master: str | None = "local[2]",
                 partitions: int | None = None) -> Summary:
    """Settle on Spark; writes the same files as `settle` (claims as a Parquet folder), and only
    when the whole run succeeds (see `staged_output`)."""
    with staged_output(out) as stage:
        try:
            return _settle_spark(policy, folder, stage, period, master, partitions)
        except NeededByBranch:  # inputs empty on some rows: which rows need them is decided on one population
            return settle_whole(policy, RunInputs(folder), stage, period, None)


class NeededByBranch(Exception):
    """Required inputs are empty on rows where a formula reading them may run."""


def _settle_spark(policy: Policy, folder: Path, out: Path, period: Period, master: str | None,
                  partitions: int | None) -> Summary:
    from pyspark.sql import functions as F
    started = time.perf_counter()
    summary = Summary(policy.id, period.text)
    spark = session(master)
    sc = spark.sparkContext
    sc.addFile(str(Path(policy.file).resolve().parent), recursive=True)
    claim_file = entity_file(folder, BIG)
    if claim_file is None or claim_file.suffix != ".parquet":
        raise SituationError([InputFault(str(folder), "Spark settlement reads claim.parquet", "Spark 结算需要 claim.parquet")])
    claims = spark.read.parquet(str(claim_file))
    check_claims(policy, claim_file, claims)
    chain_key = F.coalesce(F.col("episode"), F.col("id")) if "episode" in claims.columns else F.col("id")
    claims = claims.repartition(partitions or max(2, sc.defaultParallelism), chain_key)
    claims, left_out = _claims_in_period(policy, claims, period)
    pop = _driver_population(policy, folder, claims, period)
    summary.seconds["read"] = time.perf_counter() - started
    rounds = split(policy.plan)
    ctx = RunContext(policy)
    policy_path, digest, period_end = str(Path(policy.file).resolve()), policy.digest, str(period.end)
    done: list[str] = []
    for r in range(rounds.count):
        names = [s.variable.name for s in rounds.claim_steps[r]]
        if names:
            state = sc.broadcast(part.state_of(pop, BIG))
            schema = claims.schema
            for name in names:
                var = policy.model.entities[BIG].variables[name]
                schema = _with_field(schema, name, SPARK_TYPES[var.type])
            evaluate = _per_partition(part.evaluate_round, policy_path, digest, state, period_end, list(done), names)
            claims = claims.mapInArrow(evaluate, schema).persist()
            done += names
        if rounds.aggregations[r]:
            state = sc.broadcast(part.state_of(pop, BIG))
            keys = [a.key for a in rounds.aggregations[r]]
            partials = _per_partition(part.partial_aggregates, policy_path, digest, state, period_end, list(done), keys)
            sums = (claims.mapInArrow(partials, part.PARTIAL_SPARK_SCHEMA)
                    .groupBy("key", "parent", "limb")  # limb sums add up as integers: exact
                    .agg(F.sum(F.col("value").cast("decimal(38,0)")).alias("value"), F.sum("rows").alias("rows"),
                         F.min("low").alias("low"), F.max("high").alias("high")).collect())
            by_key: dict[str, list] = {}
            for row in sums:
                by_key.setdefault(row["key"], []).append((row["parent"], row["limb"], int(row["value"]),
                                                          row["rows"], row["low"], row["high"]))
            for agg in rounds.aggregations[r]:
                ids = [str(i) for i in list(pop.ids[agg.parent])]
                ctx.precomputed[agg.key] = part.combine_aggregation(agg, ids, by_key.get(part.encode_key(agg.key), []))
        for step in rounds.small_steps[r]:
            run_step(step, pop, ctx)
    summary.seconds["evaluate"] = time.perf_counter() - started - summary.seconds["read"]
    t = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    small = [s for group in rounds.small_steps for s in group if pop.sizes.get(s.variable.entity, 0)]
    checked = verdict(found([c for c in policy.plan.checks_for(small) if c.check.entity != BIG], pop, ctx,
                            json_paths=False))  # an error check stops the run before anything is written
    checked += [{"code": "policy_check_not_run", "path": f"checks.{BIG}.{c.check.name}", "rows": 0,
                 "message": "claim checks are not evaluated on Spark; settle locally to check them",
                 "message_zh": "Spark 结算不执行结算记录级校验；请用本地结算执行"}
                for c in policy.plan.checks if c.check.entity == BIG]
    write(policy, pop, small, out)
    money = [n for n in done if policy.model.entities[BIG].variables[n].is_money]
    result = claims.select("id", *done)

    def finish(batches, money=money):
        for batch in batches:
            yield part.round_money(batch, money)
    result.mapInArrow(finish, result.schema).write.mode("overwrite").parquet(str(out / f"{BIG}.parquet"))
    summary.rows = {k: v for k, v in pop.sizes.items() if v and k != BIG}
    summary.rows[BIG] = claims.count()
    summary.seconds["write"] = time.perf_counter() - t
    summary.seconds["total"] = time.perf_counter() - started
    summary.peak_rss_mb = peak_rss_mb()
    summary.warnings = ([left_out] if left_out else []) + list(ctx.warnings.values()) + checked
    claims.unpersist()
    return summary


def _per_partition(work, policy_path: str, digest: str, state, period_end: str, done: list[str], what: list):
    """A `mapInArrow` function: the whole partition as one table (chains stay whole) through
    `work(policy, table, small state, period end, big entity, earlier results, what)`."""
    def run(batches):
        batches = list(batches)
        if batches and sum(b.num_rows for b in batches):
            table = pa.Table.from_batches(batches)
            yield from work(_policy(policy_path, digest), table, state.value, period_end, BIG, done,
                            what).to_batches()
    return run


def _with_field(schema, name: str, spark_type: str):
    from pyspark.sql.types import BooleanType, DateType, DoubleType, StringType, StructField, StructType
    kind = {"double": DoubleType(), "boolean": BooleanType(), "string": StringType(), "date": DateType()}[spark_type]
    fields = [f for f in schema.fields if f.name != name]
    return StructType([*fields, StructField(name, kind, True)]) if name not in schema.names else \
        StructType([StructField(f.name, kind, True) if f.name == name else f for f in schema.fields])


def read_claims(path: Path) -> pa.Table:
    """A Spark output folder (or a local file) of claims as one table sorted by id."""
    table = pq.read_table(path)
    return table.sort_by("id")

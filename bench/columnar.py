"""Hand-written columnar settlements of the Zibo claims, in Polars and in DuckDB SQL (列式手写参考).

The claim stage of policies/zibo.yaml — routing, DIP group score, case type and score, adjusted
score, patient share, fund payable — written by hand twice, each end to end from the synthetic
Parquet files (read → compute → write Parquet), as a data engineer would write it:

- `zibo_polars`: one lazy Polars query (scan, join the institution coefficient, expressions, sink);
- `zibo_duckdb`: one DuckDB SQL statement (read_parquet, joins on the small tables, COPY TO).

Both are checked equal to `medpay settle`'s claim.parquet (money to the fen, other numbers to
1e-9, text exactly) by `compare` here and by tests/test_bench_reference.py. Then

    python bench/columnar.py --data DIR [--repeats 3]

times each reference and `medpay settle --backend numpy|polars` on the same folder, each in a
fresh process (start-up included), and prints medpay's ratio to each reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.reference import ZIBO, dip_catalogue, zibo_rate_tables  # noqa: E402

CLAIM_COLUMNS = ["payment_method", "bed_days", "standard", "group_avg_cost", "group_score", "case_type",
                 "case_score", "score", "adjusted_score", "cost_base", "self_pay_paid", "deductible_due",
                 "coinsurance", "patient_paid", "fund_payable"]
MONEY = {"standard", "group_avg_cost", "cost_base", "self_pay_paid", "deductible_due", "patient_paid", "fund_payable"}
DEDUCTIBLE = {1.0: 300.0, 2.0: 600.0, 3.0: 900.0}
COINSURANCE = {1.0: 0.10, 2.0: 0.15, 3.0: 0.20}


def _tables():
    """The small tables as rows: DIP catalogue, per-diem rates, fixed standards."""
    catalogue = dip_catalogue()
    per_diem, standards = zibo_rate_tables()
    return catalogue, per_diem, standards


# ---- Polars ---------------------------------------------------------------------------------------

def _div(x, constant: float):
    """x / constant as IEEE division. Polars computes `x / 100` as `x * 0.01`, an ulp off on 13% of
    values (so not equal to the fen-exact results): the division is left to numpy."""
    import numpy as np
    import polars as pl
    return x.map_batches(lambda s: pl.Series(np.divide(s.to_numpy(), constant)), return_dtype=pl.Float64)


def zibo_polars(folder: Path, out: Path) -> None:
    """The Zibo claim stage as one lazy Polars query, Parquet in, Parquet out."""
    import polars as pl
    p = ZIBO
    catalogue, per_diem, standards = _tables()
    base_avg = catalogue[p["base_group"]][0]
    inst = pl.scan_parquet(folder / "institution.parquet").select(
        pl.col("id").alias("institution"), pl.col("level").fill_null(0.0).alias("level"),
        pl.col("grade_a").fill_null(False), pl.col("kind").fill_null(""), pl.col("key_discipline").fill_null(False))
    general = pl.col("grade_a") & (pl.col("kind") == "general")
    inst_class = (pl.when(pl.col("kind") == "township")
                  .then(pl.when(pl.col("grade_a")).then(pl.lit("township_a")).otherwise(pl.lit("township_other")))
                  .when(pl.col("level") == 3)
                  .then(pl.when(general).then(pl.lit("tertiary_general_a")).otherwise(pl.lit("tertiary_other")))
                  .when(pl.col("level") == 2)
                  .then(pl.when(general).then(pl.lit("secondary_general_a")).otherwise(pl.lit("secondary_other")))
                  .otherwise(pl.lit("primary_community")))
    classes = list(p["basic_coefficient"])
    inst = inst.with_columns(inst_class.alias("class")).with_columns(
        (pl.col("class").replace_strict(classes, [p["basic_coefficient"][k] for k in classes], return_dtype=pl.Float64)
         + pl.when(pl.col("class").is_in(["primary_community", "township_a", "township_other"]))
         .then(p["bonus_primary"]).otherwise(0.0)
         + pl.when(pl.col("kind") == "tcm").then(p["bonus_tcm"]).otherwise(0.0)
         + pl.when(pl.col("key_discipline")).then(p["bonus_key_discipline"]).otherwise(0.0)).alias("coefficient"))
    claims = pl.scan_parquet(folder / "claim.parquet").join(
        inst.select("institution", "level", "coefficient"), on="institution", how="left")
    c = claims.with_columns(
        pl.col("level").fill_null(0.0), pl.col("coefficient").fill_null(0.0),
        pl.col("category").fill_null(""), pl.col("setting").fill_null("inpatient"),
        pl.col("self_pay_items").fill_null(0.0), pl.col("expert_score").fill_null(0.0),
        pl.col("los_days").fill_null(0.0), pl.col("dip_group").fill_null(""),
        pl.col("single_disease_code").fill_null(""),
        (pl.col("out_of_area").fill_null(False) | pl.col("manual_reimbursement").fill_null(False)).alias("ffs"))
    method = (pl.when(pl.col("ffs")).then(pl.lit("fee_for_service"))
              .when(pl.col("category").is_in(["hemodialysis", "peritoneal_dialysis"])).then(pl.lit("fixed_standard"))
              .when(pl.col("category") == "single_disease").then(pl.lit("single_disease"))
              .when(pl.col("category").is_in(["psychiatric", "hospice"]) & (pl.col("setting") == "inpatient"))
              .then(pl.lit("per_diem"))
              .when(pl.col("setting").is_in(["outpatient", "chronic_outpatient"])).then(pl.lit("capitation"))
              .otherwise(pl.lit("dip")))
    c = c.with_columns(method.alias("payment_method"))
    m = pl.col("payment_method")
    dip, pdm, single, fixed = m == "dip", m == "per_diem", m == "single_disease", m == "fixed_standard"
    days = (pl.col("discharge_date") - pl.col("admit_date")).dt.total_days().cast(pl.Float64).fill_null(0.0)
    keys = list(per_diem)
    c = c.with_columns(
        pl.max_horizontal(pl.lit(1.0), pl.when(pl.col("los_days") > 0).then(pl.col("los_days")).otherwise(days))
        .alias("bed_days"),
        pl.concat_str([pl.col("category"), pl.col("level").cast(pl.String)], separator="|").replace_strict(
            [f"{k}|{float(v)}" for k, v in keys], [per_diem[k] for k in keys], default=0.0,
            return_dtype=pl.Float64).alias("pd_rate"),
        pl.col("single_disease_code").replace_strict(list(standards), list(standards.values()), default=0.0,
                                                     return_dtype=pl.Float64).alias("sd_std"),
        pl.col("category").replace_strict(list(standards), list(standards.values()), default=0.0,
                                          return_dtype=pl.Float64).alias("fx_std"),
        pl.col("dip_group").replace_strict(list(catalogue), [v[0] for v in catalogue.values()], default=0.0,
                                           return_dtype=pl.Float64).alias("table_avg"))
    c = c.with_columns(
        pl.when(pdm).then(pl.col("pd_rate") * pl.col("bed_days")).when(single).then(pl.col("sd_std"))
        .when(fixed).then(pl.col("fx_std")).otherwise(0.0).alias("standard"),
        pl.when(dip).then(pl.col("table_avg")).otherwise(0.0).alias("group_avg_cost"),
        pl.when(pdm).then(pl.col("pd_rate") > 0).when(single).then(pl.col("sd_std") > 0)
        .when(fixed).then(pl.col("fx_std") > 0).otherwise(True).alias("fixed_priced"))
    c = c.with_columns(pl.when((pl.col("group_avg_cost") > 0) & (base_avg > 0))
                       .then(_div(pl.col("group_avg_cost"), base_avg) * p["base_score"]).otherwise(0.0)
                       .alias("group_score"))
    by_group = (pl.col("group_score") > 0) & (pl.col("group_avg_cost") > 0)
    ratio = pl.when(dip & (pl.col("group_avg_cost") > 0)).then(pl.col("total_cost") / pl.col("group_avg_cost")) \
        .otherwise(0.0)
    c = c.with_columns(ratio.alias("ratio"), by_group.alias("by_group"))
    low = dip & pl.col("by_group") & (pl.col("ratio") <= p["low_cost_ratio"])
    high = dip & pl.col("by_group") & ~low & (pl.col("ratio") >= p["high_cost_ratio"])
    c = c.with_columns(
        pl.when(~dip).then(pl.lit("none")).when(pl.col("expert_score") > 0).then(pl.lit("expert"))
        .when(~pl.col("by_group")).then(pl.lit("pending")).when(low).then(pl.lit("low"))
        .when(high).then(pl.lit("high")).otherwise(pl.lit("normal")).alias("case_type"))
    ct = pl.col("case_type")
    c = c.with_columns(
        pl.when(ct == "low").then(pl.col("group_score") * pl.col("ratio"))
        .when(ct == "high").then(pl.col("group_score") * (pl.col("ratio") - 1))
        .when(ct == "normal").then(pl.col("group_score")).otherwise(0.0).alias("case_score"))
    c = c.with_columns(pl.when(ct == "expert").then(pl.col("expert_score")).otherwise(pl.col("case_score"))
                       .alias("score"))
    fixed_route = pdm | single | fixed
    outpatient = pl.col("setting").is_in(["outpatient", "chronic_outpatient"])
    lv = pl.col("level")
    c = c.with_columns(
        (pl.col("score") * pl.col("coefficient")).alias("adjusted_score"),
        pl.when(fixed_route).then(pl.col("standard"))
        .otherwise(pl.max_horizontal(pl.lit(0.0), pl.col("total_cost") - pl.col("self_pay_items"))).alias("cost_base"),
        pl.when(fixed_route).then(pl.col("self_pay_items"))
        .otherwise(pl.min_horizontal(pl.col("self_pay_items"), pl.col("total_cost"))).alias("self_pay_paid"),
        pl.when(outpatient).then(0.0).otherwise(lv.replace_strict(list(DEDUCTIBLE), list(DEDUCTIBLE.values()),
                                                                  default=0.0, return_dtype=pl.Float64))
        .alias("deductible_standard"),
        lv.replace_strict(list(COINSURANCE), list(COINSURANCE.values()), default=0.0, return_dtype=pl.Float64)
        .alias("coinsurance"))
    c = c.with_columns(pl.min_horizontal(pl.col("cost_base"), pl.col("deductible_standard")).alias("deductible_due"))
    rest = (pl.col("cost_base") - pl.col("deductible_due")) * pl.col("coinsurance")
    c = c.with_columns(
        (pl.col("self_pay_paid") + pl.col("deductible_due") + rest).alias("patient_paid"),
        (pl.col("cost_base") - pl.col("deductible_due") - rest).alias("fund_payable"))
    money = [_div(((pl.col(n) * 100).abs() + 0.5 + 1e-6).floor().mul(pl.col(n).sign()), 100.0).alias(n)
             for n in sorted(MONEY)]  # half up to the fen (values here are far from float noise)
    c.select("id", *CLAIM_COLUMNS).with_columns(money).sink_parquet(out)


# ---- DuckDB ---------------------------------------------------------------------------------------

def zibo_duckdb(folder: Path, out: Path) -> None:
    """The Zibo claim stage as one DuckDB SQL statement, Parquet in, Parquet out."""
    import duckdb
    p = ZIBO
    catalogue, per_diem, standards = _tables()
    base_avg = catalogue[p["base_group"]][0]
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("CREATE TABLE dip(code VARCHAR, avg DOUBLE)")
    con.executemany("INSERT INTO dip VALUES (?, ?)", [(k, v[0]) for k, v in catalogue.items()])
    con.execute("CREATE TABLE pd(category VARCHAR, level DOUBLE, rate DOUBLE)")
    con.executemany("INSERT INTO pd VALUES (?, ?, ?)", [(k, lv, r) for (k, lv), r in per_diem.items()])
    con.execute("CREATE TABLE std(code VARCHAR, standard DOUBLE)")
    con.executemany("INSERT INTO std VALUES (?, ?)", list(standards.items()))
    coef = " ".join(f"WHEN '{k}' THEN {v}" for k, v in p["basic_coefficient"].items())
    ded = " ".join(f"WHEN {k} THEN {v}" for k, v in DEDUCTIBLE.items())
    coins = " ".join(f"WHEN {k} THEN {v}" for k, v in COINSURANCE.items())
    fen = "sign({0}) * floor(abs({0}) * 100 + 0.5 + 1e-6) / 100 AS {0}"
    sql = f"""
    COPY (
    WITH inst AS (
      SELECT id AS institution, coalesce(level, 0) AS level,
        CASE WHEN kind = 'township' THEN CASE WHEN grade_a THEN 'township_a' ELSE 'township_other' END
             WHEN level = 3 THEN CASE WHEN grade_a AND kind = 'general' THEN 'tertiary_general_a' ELSE 'tertiary_other' END
             WHEN level = 2 THEN CASE WHEN grade_a AND kind = 'general' THEN 'secondary_general_a' ELSE 'secondary_other' END
             ELSE 'primary_community' END AS class,
        coalesce(kind, '') AS kind, coalesce(key_discipline, false) AS key_discipline
      FROM read_parquet('{folder / "institution.parquet"}')),
    coefs AS (
      SELECT institution, level,
        (CASE class {coef} END)
        + CASE WHEN class IN ('primary_community', 'township_a', 'township_other') THEN {p["bonus_primary"]} ELSE 0 END
        + CASE WHEN kind = 'tcm' THEN {p["bonus_tcm"]} ELSE 0 END
        + CASE WHEN key_discipline THEN {p["bonus_key_discipline"]} ELSE 0 END AS coefficient
      FROM inst),
    c0 AS (
      SELECT c.id, c.total_cost, coalesce(c.self_pay_items, 0) AS self_pay_items,
        coalesce(c.expert_score, 0) AS expert, coalesce(c.category, '') AS category,
        coalesce(c.setting, 'inpatient') AS setting, coalesce(k.level, 0) AS level,
        coalesce(k.coefficient, 0) AS coefficient,
        greatest(1.0, CASE WHEN coalesce(c.los_days, 0) > 0 THEN c.los_days
                      ELSE coalesce(date_diff('day', c.admit_date, c.discharge_date), 0) END) AS bed_days,
        CASE WHEN coalesce(c.out_of_area, false) OR coalesce(c.manual_reimbursement, false) THEN 'fee_for_service'
             WHEN coalesce(c.category, '') IN ('hemodialysis', 'peritoneal_dialysis') THEN 'fixed_standard'
             WHEN coalesce(c.category, '') = 'single_disease' THEN 'single_disease'
             WHEN coalesce(c.category, '') IN ('psychiatric', 'hospice')
                  AND coalesce(c.setting, 'inpatient') = 'inpatient' THEN 'per_diem'
             WHEN coalesce(c.setting, 'inpatient') IN ('outpatient', 'chronic_outpatient') THEN 'capitation'
             ELSE 'dip' END AS payment_method,
        coalesce(pd.rate, 0) AS pd_rate, coalesce(sd.standard, 0) AS sd_std, coalesce(fx.standard, 0) AS fx_std,
        coalesce(dip.avg, 0) AS table_avg
      FROM read_parquet('{folder / "claim.parquet"}') c
      LEFT JOIN coefs k ON k.institution = c.institution
      LEFT JOIN pd ON pd.category = coalesce(c.category, '') AND pd.level = coalesce(k.level, 0)
      LEFT JOIN std sd ON sd.code = coalesce(c.single_disease_code, '')
      LEFT JOIN std fx ON fx.code = coalesce(c.category, '')
      LEFT JOIN dip ON dip.code = coalesce(c.dip_group, '')),
    c1 AS (
      SELECT *,
        CASE payment_method WHEN 'per_diem' THEN pd_rate * bed_days WHEN 'single_disease' THEN sd_std
             WHEN 'fixed_standard' THEN fx_std ELSE 0 END AS standard,
        CASE WHEN payment_method = 'dip' THEN table_avg ELSE 0 END AS group_avg_cost,
        payment_method IN ('per_diem', 'single_disease', 'fixed_standard') AS fixed_route,
        CASE WHEN setting IN ('outpatient', 'chronic_outpatient') THEN 0 ELSE coalesce(CASE level {ded} END, 0) END
          AS deductible_standard,
        coalesce(CASE level {coins} END, 0) AS coinsurance
      FROM c0),
    c2 AS (
      SELECT *,
        CASE WHEN group_avg_cost > 0 AND {base_avg} > 0 THEN group_avg_cost / {base_avg} * {p["base_score"]}
             ELSE 0 END AS group_score,
        CASE WHEN payment_method = 'dip' AND group_avg_cost > 0 THEN total_cost / group_avg_cost ELSE 0 END AS ratio,
        CASE WHEN fixed_route THEN standard ELSE greatest(0, total_cost - self_pay_items) END AS cost_base,
        CASE WHEN fixed_route THEN self_pay_items ELSE least(self_pay_items, total_cost) END AS self_pay_paid
      FROM c1),
    c3 AS (
      SELECT *,
        CASE WHEN payment_method <> 'dip' THEN 'none' WHEN expert > 0 THEN 'expert'
             WHEN NOT (group_score > 0 AND group_avg_cost > 0) THEN 'pending'
             WHEN ratio <= {p["low_cost_ratio"]} THEN 'low' WHEN ratio >= {p["high_cost_ratio"]} THEN 'high'
             ELSE 'normal' END AS case_type,
        least(cost_base, deductible_standard) AS deductible_due
      FROM c2),
    c4 AS (
      SELECT *,
        CASE case_type WHEN 'low' THEN group_score * ratio WHEN 'high' THEN group_score * (ratio - 1)
             WHEN 'normal' THEN group_score ELSE 0 END AS case_score,
        (cost_base - deductible_due) * coinsurance AS rest
      FROM c3),
    c5 AS (
      SELECT *, CASE WHEN case_type = 'expert' THEN expert ELSE case_score END AS score FROM c4)
    SELECT id, payment_method, bed_days, {fen.format("standard")}, {fen.format("group_avg_cost")}, group_score,
      case_type,
      case_score, score, score * coefficient AS adjusted_score, {fen.format("cost_base")},
      {fen.format("self_pay_paid")}, {fen.format("deductible_due")}, coinsurance,
      sign(self_pay_paid + deductible_due + rest) * floor(abs(self_pay_paid + deductible_due + rest) * 100 + 0.5 + 1e-6)
        / 100 AS patient_paid,
      sign(cost_base - deductible_due - rest) * floor(abs(cost_base - deductible_due - rest) * 100 + 0.5 + 1e-6)
        / 100 AS fund_payable
    FROM c5
    ) TO '{out}' (FORMAT parquet)"""
    con.execute(sql)
    con.close()


# ---- comparison and timing -------------------------------------------------------------------------

def compare(reference: Path, settled: Path) -> list[str]:
    """Differences between a reference's claim results and medpay's claim.parquet (empty: equal).
    Rows are matched by id; money to the fen, other numbers within 1e-9 relative, text exactly."""
    import pyarrow.parquet as pq
    ref = pq.read_table(reference).sort_by("id")
    got = pq.read_table(settled).select(["id", *CLAIM_COLUMNS]).sort_by("id")
    problems = []
    if ref["id"].to_pylist() != got["id"].to_pylist():
        return ["the claim ids differ"]
    for name in CLAIM_COLUMNS:
        a, b = ref[name].to_pylist(), got[name].to_pylist()
        bad = 0
        for x, y in zip(a, b, strict=True):
            if isinstance(y, float):
                tolerance = 0.0 if name in MONEY else 1e-9 * max(1.0, abs(y))
                bad += abs(float(x) - y) > tolerance + 1e-12
            else:
                bad += x != y
        if bad:
            problems.append(f"{name}: {bad} rows differ")
    return problems


def _peak(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `code` in a fresh interpreter (GNU time)."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, sys.executable, "-c", code],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return seconds, int(report.read().split()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a `medpay synth zibo` folder")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    data = Path(args.data).resolve()
    out = Path(tempfile.mkdtemp(prefix="medpay-columnar-"))
    runs = {
        "medpay numpy": f"from engine.cli import main; main(['settle', 'zibo', '--data', '{data}', "
                        f"'--out', '{out}/numpy', '--backend', 'numpy', '--json'])",
        "medpay polars": f"from engine.cli import main; main(['settle', 'zibo', '--data', '{data}', "
                         f"'--out', '{out}/polars', '--backend', 'polars', '--json'])",
        "polars (hand-written)": f"from pathlib import Path; from bench.columnar import zibo_polars; "
                                 f"zibo_polars(Path('{data}'), Path('{out}/ref_polars.parquet'))",
        "duckdb (hand-written)": f"from pathlib import Path; from bench.columnar import zibo_duckdb; "
                                 f"zibo_duckdb(Path('{data}'), Path('{out}/ref_duckdb.parquet'))",
    }
    figures: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved, so that a busy moment hits every run alike
        for name, code in runs.items():
            seconds, peak = _peak(code)
            figures.setdefault(name, {"seconds": [], "peak_mb": []})
            figures[name]["seconds"].append(round(seconds, 3))
            figures[name]["peak_mb"].append(round(peak, 1))
    checks = {ref: {mine: compare(out / f"ref_{ref.split()[0]}.parquet", out / mine.split()[1] / "claim.parquet")
                    for mine in ("medpay numpy", "medpay polars")} for ref in ("polars (hand-written)",
                                                                                   "duckdb (hand-written)")}
    print(f"{'run':24} {'median s':>9} {'best s':>8} {'peak MiB':>9}")
    for name, f in figures.items():
        f["median"] = sorted(f["seconds"])[len(f["seconds"]) // 2]
        print(f"{name:24} {f['median']:9.2f} {min(f['seconds']):8.2f} {max(f['peak_mb']):9.0f}")
    for mine in ("medpay numpy", "medpay polars"):
        for ref in ("polars (hand-written)", "duckdb (hand-written)"):
            print(f"{mine} / {ref}: {figures[mine]['median'] / figures[ref]['median']:.2f}×"
                  f"  (equal: {'yes' if not checks[ref][mine] else '; '.join(checks[ref][mine])})")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": str(data), "figures": figures, "checks": checks}, indent=2))
    return 0 if not any(v for c in checks.values() for v in c.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

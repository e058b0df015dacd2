"""Child processes of bench/run.py: one measurement per process, its result as JSON on the last
line of stdout, so that the peak memory (ru_maxrss) of each process belongs to one city.

    python -m bench.worker settle CITY DATA OUT
    python -m bench.worker reference CITY DATA --repeats 3 --zen-sample 20000
    python -m bench.worker registry
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pick_policy(city: str, data: Path):
    """The policy as `medpay settle` picks it: the registry's version in force for the data's period."""
    from engine.batch.settle import folder_period
    from engine.policy.registry import Registry
    period = folder_period(data, None)
    return Registry.load().pick(city, period), period


def cmd_settle(args) -> dict:
    """read → every stage → write with engine.batch.settle.settle, the code of `medpay settle`."""
    from engine.batch.settle import settle
    started = time.perf_counter()
    policy, period = pick_policy(args.city, Path(args.data))
    policy_s = time.perf_counter() - started
    before = peak_rss_mb()
    t = time.perf_counter()
    summary = settle(policy, Path(args.data), Path(args.out), period)
    wall = time.perf_counter() - t
    return {"seconds": summary.seconds, "wall_s": wall, "rows": summary.rows, "policy_s": policy_s,
            "peak_rss_mb": peak_rss_mb(), "rss_before_settle_mb": before,
            "warnings": [f"{w['code']} {w['path']} ({w['rows']} rows)" for w in summary.warnings]}


def computed_columns(policy, pop, steps) -> dict:
    out: dict = {}
    for step in steps:
        var = step.variable
        out.setdefault(var.entity, {})[var.name] = pop.columns[var.entity][var.name]
    return out


def money_columns(policy) -> dict:
    return {e: {n for n, v in ent.variables.items() if v.is_money} for e, ent in policy.model.entities.items()}


def timed(fn, *args):
    """fn(*args) with its wall-clock and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def stats(runs: list[float]) -> dict:
    return {"median": statistics.median(runs), "min": min(runs), "runs": runs}


def engine_vs_numpy(city: str, data: Path, repeats: int, hand, label: str) -> tuple[dict, tuple]:
    """Engine evaluation (its read untimed here) and the hand-written numpy settlement, on numpy
    text columns (the engine's form) and on dictionary codes, interleaved in one process; the
    reference values compared with the engine's."""
    from bench import reference as ref
    from engine.batch.settle import evaluate_all, load
    from engine.run.frame import RunContext
    policy, period = pick_policy(city, data)
    inp, read_s, _ = timed(ref.read_inputs, data)
    inp_codes, read_codes_s, _ = timed(ref.read_inputs, data, "codes")
    runs: dict[str, list[float]] = {k: [] for k in ("engine_read", "engine_eval", "engine_eval_cpu", "numpy_eval",
                                                    "numpy_eval_cpu", "codes_eval", "codes_eval_cpu")}
    pop = steps = out = out_codes = None
    for _ in range(repeats):
        pop = steps = out = out_codes = None
        gc.collect()
        pop, wall, _ = timed(load, policy, data, period)
        runs["engine_read"].append(wall)
        steps, wall, cpu = timed(evaluate_all, policy, pop, RunContext(policy))
        runs["engine_eval"].append(wall)
        runs["engine_eval_cpu"].append(cpu)
        gc.collect()
        out, wall, cpu = timed(hand, inp)
        runs["numpy_eval"].append(wall)
        runs["numpy_eval_cpu"].append(cpu)
        out_codes = None
        gc.collect()
        out_codes, wall, cpu = timed(hand, inp_codes)
        runs["codes_eval"].append(wall)
        runs["codes_eval_cpu"].append(cpu)
    engine_cols = computed_columns(policy, pop, steps)
    money = money_columns(policy)
    check = ref.compare_with_engine(label, out, inp.ids, engine_cols, pop.ids, money)
    check_codes = ref.compare_with_engine(label + " (text as codes)", out_codes, inp.ids, engine_cols, pop.ids, money)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {"claims": inp.size("claim"), "repeats": repeats,
              **{k: stats(v) for k, v in runs.items()},
              "numpy_read_s": read_s, "codes_read_s": read_codes_s,
              "ratio_engine_to_numpy": med["engine_eval"] / med["numpy_eval"],
              "ratio_engine_to_numpy_cpu": med["engine_eval_cpu"] / med["numpy_eval_cpu"],
              "ratio_engine_to_codes": med["engine_eval"] / med["codes_eval"],
              "ratio_engine_to_codes_cpu": med["engine_eval_cpu"] / med["codes_eval_cpu"],
              "check_numpy": check.to_dict(), "check_numpy_line": check.line(),
              "check_codes": check_codes.to_dict(), "check_codes_line": check_codes.line()}
    return result, (policy, pop, engine_cols, inp, out)


def written(folder: Path) -> tuple[dict, dict]:
    """The Parquet files `medpay settle` wrote: columns and ids per entity."""
    import pyarrow.parquet as pq
    columns, ids = {}, {}
    for file in sorted(folder.glob("*.parquet")):
        table = pq.read_table(file)
        ids[file.stem] = table["id"].to_numpy(zero_copy_only=False)
        columns[file.stem] = {n: table[n].to_numpy(zero_copy_only=False) for n in table.column_names if n != "id"}
    return columns, ids


def check_files(result: dict, label: str, out, inp, folder: str | None, money: dict) -> None:
    """The reference compared with what `medpay settle` wrote for the same data (its batch path)."""
    from bench import reference as ref
    if not folder or not Path(folder).is_dir():
        return
    columns, ids = written(Path(folder))
    check = ref.compare_with_engine(label, out, inp.ids, columns, ids, money)
    result["check_files"], result["check_files_line"] = check.to_dict(), check.line()


def cmd_reference(args) -> dict:
    import numpy as np

    from bench import reference as ref
    data = Path(args.data)
    catalogue = ref.dip_catalogue()
    if args.city == "zibo":
        result, (policy, pop, engine_cols, inp, out) = engine_vs_numpy(
            "zibo", data, args.repeats, lambda i: ref.zibo_numpy(i, catalogue), "zibo numpy vs engine")
        check_files(result, "zibo numpy vs `medpay settle` output files", out, inp, args.engine_out,
                    money_columns(policy))
        del out
        claims = engine_cols["claim"]
        # the same check on a variant in which accounts overspend (the adjustment fund shares it)
        variant = data.parent / f"{data.name}-overspend"
        counts = ref.overspend_variant(data, variant)
        vres, (_, _, vcols, _, _) = engine_vs_numpy("zibo", variant, 1, lambda i: ref.zibo_numpy(i, catalogue),
                                                 "zibo numpy vs engine, overspending variant")
        counts.update({"accounts_overspent": int((vcols["account"]["overspend"] > 0).sum()),
                       "accounts": len(vcols["account"]["overspend"]),
                       "funds_paying_pro_rata": int((vcols["fund"]["overspend_share_ratio"] < 1).sum())})
        result.update({"check_variant": vres["check_numpy"], "check_variant_line": vres["check_numpy_line"],
                       "check_variant_codes_line": vres["check_codes_line"], "variant": counts})
        del vres, vcols
        gc.collect()
        # (b) plain Python, claim by claim
        lists, lists_s, _ = timed(ref.zibo_claim_lists, inp)
        loop, loop_s, loop_cpu = timed(ref.zibo_loop, lists, catalogue)
        del lists
        check = ref.Check("zibo Python loop vs engine")
        at = np.arange(inp.size("claim"))
        check.rows = len(at)
        for col in ("payment_method", "group_avg_cost", "group_annual_cases", "group_score", "group_kind",
                    "cost_ratio", "case_type", "case_score", "score", "adjusted_score"):
            ref.compare_column(check, f"claim.{col}", loop[col], claims[col][at], money=False)
        acct = np.zeros(inp.size("account"))
        for k, v in loop["account_score"].items():
            acct[k] = v
        ids = {v: k for k, v in enumerate(np.asarray(pop.ids["account"]).astype(str).tolist())}
        order = np.array([ids[v] for v in inp.ids["account"].astype(str).tolist()])
        ref.compare_column(check, "account.total_adjusted_score", acct,
                           engine_cols["account"]["total_adjusted_score"][order], money=False)
        result.update({"loop_claims": inp.size("claim"), "loop_s": loop_s, "loop_cpu_s": loop_cpu,
                       "loop_lists_s": lists_s, "check_loop": check.to_dict(),
                       "check_loop_line": check.line()})
        # (c) zen-engine, claim by claim, on a sample
        try:
            zen = ref.ZenZibo()
        except ImportError:
            result["zen"] = "zen-engine not installed (pip install -e '.[bench]')"
            return result
        rng = np.random.default_rng(args.seed)
        rows = np.sort(rng.choice(inp.size("claim"), size=min(args.zen_sample, inp.size("claim")), replace=False))
        contexts = ref.ZenZibo.contexts(ref.zibo_claim_lists(inp, rows))
        zen.evaluate(contexts[:200])  # warm-up, not timed
        results, zen_s, zen_cpu = timed(zen.evaluate, contexts)
        zcheck = ref.Check("zibo zen-engine vs engine", rows=len(rows))
        for col, values in ref.ZenZibo.columns(results).items():
            ref.compare_column(zcheck, f"claim.{col}", values, claims[col][rows], money=False)
        result.update({"zen_claims": len(rows), "zen_s": zen_s, "zen_cpu_s": zen_cpu,
                       "zen_claims_per_s": len(rows) / zen_s,
                       "check_zen": zcheck.to_dict(), "check_zen_line": zcheck.line()})
        return result
    if args.city == "jingdezhen":
        result, (policy, pop, engine_cols, inp, out) = engine_vs_numpy(
            "jingdezhen", data, args.repeats, ref.jingdezhen_numpy, "jingdezhen numpy vs engine")
        check_files(result, "jingdezhen numpy vs `medpay settle` output files", out, inp, args.engine_out,
                    money_columns(policy))
        del out
        lists, lists_s, _ = timed(ref.jingdezhen_claim_lists, inp)
        loop, loop_s, loop_cpu = timed(ref.jingdezhen_loop, lists)
        del lists
        check = ref.Check("jingdezhen Python loop vs engine", rows=inp.size("claim"))
        claims = engine_cols["claim"]
        ref.compare_column(check, "claim.applicable_standard", loop["applicable_standard"],
                           claims["applicable_standard"], money=True)
        ref.compare_column(check, "claim.fund_payable", loop["fund_payable"], claims["fund_payable"], money=True)
        spending = np.zeros(inp.size("community"))
        for k, v in loop["spending"].items():
            spending[k] = v
        ref.compare_column(check, "community.actual_spending", spending + inp.cols["community"]["actual_out_of_county"],
                           engine_cols["community"]["actual_spending"], money=True)
        result.update({"loop_claims": inp.size("claim"), "loop_s": loop_s, "loop_cpu_s": loop_cpu,
                       "loop_lists_s": lists_s, "check_loop": check.to_dict(),
                       "check_loop_line": check.line()})
        # the same check on a variant whose communities meet the package preconditions
        del pop, engine_cols, inp
        gc.collect()
        variant = data.parent / f"{data.name}-eligible"
        counts = ref.eligible_variant(data, variant)
        vres, (_, _, vcols, _, _) = engine_vs_numpy("jingdezhen", variant, 1, ref.jingdezhen_numpy,
                                                    "jingdezhen numpy vs engine, package-eligible variant")
        counts.update(ref.band_counts(vcols["community"]))
        result.update({"check_variant": vres["check_numpy"], "check_variant_line": vres["check_numpy_line"],
                       "check_variant_codes_line": vres["check_codes_line"],
                       "variant": counts})
        return result
    raise SystemExit(f"no reference for {args.city}")


def cmd_registry(args) -> dict:
    t = time.perf_counter()
    from engine.policy.registry import Registry
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    reg = Registry.load()
    load_s = time.perf_counter() - t
    import engine
    return {"import_s": import_s, "load_s": load_s, "policies": sum(len(v) for v in reg.cities.values()),
            "engine_file": engine.__file__,
            "cities": sorted(reg.cities), "problems": sorted(reg.problems)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.worker")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("settle")
    p.add_argument("city")
    p.add_argument("data")
    p.add_argument("out")
    p.set_defaults(fn=cmd_settle)
    p = sub.add_parser("reference")
    p.add_argument("city")
    p.add_argument("data")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--zen-sample", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engine-out", help="results `medpay settle` wrote for this data, to compare as well")
    p.set_defaults(fn=cmd_reference)
    p = sub.add_parser("registry")
    p.set_defaults(fn=cmd_registry)
    args = ap.parse_args()
    result = args.fn(args)
    result["peak_rss_mb"] = result.get("peak_rss_mb", peak_rss_mb())
    sys.stdout.write("\n" + json.dumps(result, default=float) + "\n")


if __name__ == "__main__":
    main()

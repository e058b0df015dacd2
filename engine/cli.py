"""The `medpay` command line (命令行)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.compile.build import load_policy_file
from engine.errors import PolicyCheckFailed, PolicyError, SituationError
from engine.explain.trace import build_trace
from engine.period import parse_period
from engine.policy.registry import POLICY_DIR, Registry, UnknownCity, policy_files
from engine.policy.spec import Policy
from engine.run.evaluate import checked_situation, evaluate
from engine.run.population import Population

EXIT_POLICY, EXIT_INPUT, EXIT_CHECK = 1, 2, 3
DEFAULT_CASES = ("tests/cases", "tests/worked_examples")


def resolve_policy(city: str, situation: dict | None = None, version: str | None = None) -> Policy:
    """CITY is a policy id under policies/ or a path to a policy file; `version` names one version
    of the policy (an unknown one is an error, never the latest)."""
    if city.endswith((".yaml", ".yml")) or "/" in city:
        policy = load_policy_file(city)
        return _check_version(city, [policy], version) if version else policy
    period = situation.get("period") if isinstance(situation, dict) else None
    registry = Registry.load_city(city)
    try:
        if version is not None:
            if city not in registry.cities:
                raise UnknownCity(city)
            return _check_version(city, registry.cities[city], version)
        return registry.pick(city, parse_period(period) if period is not None else None)
    except UnknownCity:
        broken = [f for f in registry.problems if Path(f).stem == city]
        if broken:
            raise PolicyError(registry.problems[broken[0]]) from None
        known = ", ".join(sorted(registry.cities))
        raise SystemExit(f"unknown city '{city}' (known: {known}) / 未知城市“{city}”") from None


def _check_version(city: str, versions: list[Policy], version: str) -> Policy:
    chosen = next((p for p in versions if p.meta.version == version), None)
    if chosen is None:
        known = ", ".join(p.meta.version for p in versions)
        raise SystemExit(f"{city} has no version '{version}' (versions: {known}) / "
                         f"{city} 没有版本“{version}”（现有版本：{known}）")
    return chosen


def cmd_run(args) -> int:
    situation = _load_situation(args.situation)
    policy = resolve_policy(args.city, situation, args.policy_version)
    result = evaluate(policy, situation, build_trace if args.trace else None)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    elif sys.stdout.isatty() and not args.json:
        from engine.cli_view import print_result
        print_result(result)
    else:
        print(text)
    return 0


def cmd_explain(args) -> int:
    """One value, computing only what it depends on: from a situation file or from batch data."""
    from engine.explain.cone import UnknownValue, explain_value
    from engine.explain.tree import render_explanation
    given = args.values
    if len(given) != (1 if args.data else 2):
        print("give CITY SITUATION ENTITY.ID.VARIABLE, or CITY --data DIR ENTITY.ID.VARIABLE / "
              "参数应为 城市 情形文件 实体.id.变量，或 城市 --data 目录 实体.id.变量", file=sys.stderr)
        return EXIT_INPUT
    policy, population, overrides = _batch_input(args) if args.data else _situation_input(args)
    try:
        tree = explain_value(policy, population, given[-1], overrides, args.top, args.depth)
    except UnknownValue as err:
        fault = err.faults[0]
        print(f"{fault.en} / {fault.zh}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps(tree, ensure_ascii=False, indent=2))
    else:
        print(render_explanation(tree))
    return 0


def _situation_input(args) -> tuple[Policy, Population, dict]:
    """The policy, population and parameter overrides of a situation file."""
    situation = _load_situation(args.values[0])
    policy = resolve_policy(args.city, situation, args.policy_version)
    read = checked_situation(policy, situation)
    return policy, read.population, read.overrides


def _batch_input(args) -> tuple[Policy, Population, dict]:
    """The policy and population of a batch data folder (Parquet/CSV per entity, as `medpay settle` reads)."""
    from engine.batch.settle import folder_period, load
    data = Path(args.data)
    period = folder_period(data, args.period)
    policy = resolve_policy(args.city, {"period": period.text}, args.policy_version)
    return policy, load(policy, data, period), {}


def cmd_validate(args) -> int:
    files = [Path(p) for p in args.policies] or policy_files(POLICY_DIR)
    if not files:
        print(f"no policy files in {POLICY_DIR.resolve()}: set MEDPAY_POLICIES, or run where a policies/ folder is"
              f" / {POLICY_DIR.resolve()} 中没有政策文件：请设置 MEDPAY_POLICIES，或在含 policies/ 的目录中运行",
              file=sys.stderr)
        return EXIT_POLICY
    failed = 0
    for file in files:
        started = time.perf_counter()
        try:
            policy = load_policy_file(file)
        except PolicyError as err:
            failed += 1
            for diag in err.diagnostics + getattr(err, "warnings", []):
                print(diag.render(), file=sys.stderr)
            print(f"✗ {file}: {len(err.diagnostics)} problem(s) / {len(err.diagnostics)} 处问题", file=sys.stderr)
            continue
        ms = (time.perf_counter() - started) * 1000
        print(f"✓ {file}: {policy.id} {policy.meta.version} — {len(policy.plan.steps)} formulas, "
              f"{len(policy.parameters)} parameters, {len(policy.tables)} tables ({ms:.0f} ms)")
        for warning in policy.warnings:
            print(warning.render())
        if policy.warnings:
            print(f"  {len(policy.warnings)} warning(s): values that are hardly meant / "
                  f"{len(policy.warnings)} 处提示：取值可能有误")
        if policy.checks:
            print(f"  checks / 校验 ({len(policy.checks)}):")
            for check in policy.checks:
                print(f"    - {check.entity}.{check.name} ({check.severity}, {check.clause}): "
                      f"{' '.join(check.formula.split())}")
        if policy.assumed:
            print(f"  assumed values / 假设值 ({len(policy.assumed)}):")
            for line in policy.assumed:
                print(f"    - {line}")
        open_readings = [r for r in policy.readings if r.status == "open"]
        if open_readings:
            print(f"  open readings / 待定理解 ({len(open_readings)}):")
            for r in open_readings:
                affects = f" [{', '.join(r.affects)}]" if r.affects else ""
                print(f"    - {r.clause}: {r.text.en} / {r.text.zh}{affects}")
    return EXIT_POLICY if failed else 0


def cmd_test(args) -> int:
    from engine.testing.cases import Runner, collect
    paths = args.cases or [p for p in DEFAULT_CASES if Path(p).exists()]
    runner = Runner()
    passed = failed = 0
    for case in collect(paths):
        outcome = runner.run(case)
        if outcome.passed:
            passed += 1
            print(f"ok   {case.name}")
            continue
        failed += 1
        print(f"FAIL {case.name} ({case.file})")
        if outcome.error:
            print("  " + outcome.error.replace("\n", "\n  "))
        for fault in outcome.faults:
            print(f"  {fault}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_synth(args) -> int:
    from engine.batch.synth import synthesize
    policy = resolve_policy(args.city)
    meta = synthesize(policy, args.claims, Path(args.out), args.seed)
    print(f"wrote {meta['claims']:,} claims, {meta['institutions']} institutions, {meta['communities']} "
          f"communities for {policy.id}, period {meta['period']}, to {args.out}")
    return 0


def cmd_settle(args) -> int:
    from engine.batch.settle import folder_period, settle
    data = Path(args.data)
    period = folder_period(data, args.period)
    policy = resolve_policy(args.city, {"period": period.text}, getattr(args, "policy_version", None))
    if args.engine == "spark":
        from engine.spark.runner import settle_spark
        summary = settle_spark(policy, data, Path(args.out), period, master=args.master)
    elif sys.stderr.isatty():
        from rich.progress import Progress
        with Progress(transient=True) as progress:
            task = progress.add_task("settling", total=len(policy.plan.steps))
            summary = settle(policy, data, Path(args.out), period,
                             lambda name: progress.update(task, advance=1, description=name))
    else:
        summary = settle(policy, data, Path(args.out), period)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return 0
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    secs = ", ".join(f"{k} {v:.2f}s" for k, v in summary.seconds.items())
    print(f"settled {policy.id} {period.text}: {rows}\n  {secs}; peak memory {summary.peak_rss_mb:,.0f} MB"
          f"\n  results in {args.out}")
    for w in summary.warnings:
        print(f"  warning {w['code']} {w['path']}: {w['message']} ({w['rows']} rows)")
    return 0


def cmd_impact(args) -> int:
    """Settle a city-year under the served policy and under a draft (or overrides); compare them."""
    from engine.batch.impact import impact, parse_assignments, render_table, with_overrides, write_xlsx
    from engine.batch.settle import folder_period
    if not args.draft and not args.set:
        print("give --draft FILE or --set NAME=VALUE / 请给出 --draft 草案文件或 --set 参数=取值", file=sys.stderr)
        return EXIT_INPUT
    data = Path(args.data)
    period = folder_period(data, args.period)
    served = resolve_policy(args.city, {"period": period.text}, args.policy_version)
    draft = load_policy_file(args.draft) if args.draft else served
    draft = with_overrides(draft, parse_assignments(args.set or []))
    result = impact(served, draft, data, period, args.variable)
    out = Path(args.xlsx or f"impact-{served.id}-{period.text}.xlsx")
    write_xlsx(result, out)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(render_table(result, args.top))
    print(f"  spreadsheet / 表格: {out}")
    return 0


def cmd_serve(args) -> int:
    import uvicorn
    uvicorn.run("engine.api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=False)  # medpay logs requests itself, without ids
    return 0


def print_check_failures(err: PolicyCheckFailed) -> None:
    """Each failing error check: name, clause, message in both languages, the first failing rows."""
    print("a policy check failed; nothing was settled / 政策校验未通过，未作结算:", file=sys.stderr)
    for f in err.failures:
        clause = f["source"] or f"assumed: {f['assumed']}"
        print(f"  {f['entity']}.{f['check']} [{clause}]: {f['message']} / {f['message_zh']}", file=sys.stderr)
        more = f" (+{f['count'] - len(f['ids'])} more)" if f["count"] > len(f["ids"]) else ""
        print(f"    {f['count']} row(s) / 行: {', '.join(f['ids'])}{more}", file=sys.stderr)


def _load_situation(path: str) -> dict:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _BadJson(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}) / JSON 格式错误") from None


class _BadJson(Exception):
    pass


VERSION_HELP = "one version of the policy (e.g. 2024-07-09); default: the version in force for the period"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="medpay", description="medpay — medical-insurance payment rules engine (医保支付规则引擎)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="evaluate one situation / 计算一个情形")
    p.add_argument("city", help="policy id (a file name under policies/) or path to a policy file")
    p.add_argument("situation", help="situation JSON file, or - for standard input")
    p.add_argument("--trace", action="store_true", help="include how each value was computed")
    p.add_argument("-o", "--output", help="write the result to this file")
    p.add_argument("--json", action="store_true", help="print JSON even on a terminal")
    p.add_argument("--policy-version", help=VERSION_HELP)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("explain", help="show how one value was computed / 解释一个值的计算过程")
    p.add_argument("city")
    p.add_argument("values", nargs="+", metavar="[SITUATION] ENTITY.ID.VARIABLE",
                   help="a situation JSON file (or - for standard input; none with --data), then the value, "
                        "e.g. institution.A.points_payment")
    p.add_argument("--data", help="folder with claim.parquet, institution.csv, … (as for settle) instead of a situation")
    p.add_argument("--period", help="with --data: e.g. 2024 (default: meta.json in the data folder)")
    p.add_argument("--top", type=int, default=None, help="child rows listed per aggregation (default MEDPAY_EXPLAIN_TOP)")
    p.add_argument("--depth", type=int, default=3, help="levels of nested explanations (default 3)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.add_argument("--policy-version", help=VERSION_HELP)
    p.set_defaults(fn=cmd_explain)
    p = sub.add_parser("validate", help="check policy files / 校验政策文件")
    p.add_argument("policies", nargs="*", help="policy files (default: all under policies/)")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("test", help="run policy test cases / 运行政策测试用例")
    p.add_argument("cases", nargs="*", help="case files or folders (default: tests/cases, tests/worked_examples)")
    p.set_defaults(fn=cmd_test)
    p = sub.add_parser("synth", help="write a synthetic city-year / 生成合成数据")
    p.add_argument("city")
    p.add_argument("--claims", type=int, default=100_000)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(fn=cmd_synth)
    p = sub.add_parser("settle", help="settle a city-year from files / 批量结算")
    p.add_argument("city")
    p.add_argument("--data", required=True, help="folder with claim.parquet, institution.csv, …")
    p.add_argument("--out", required=True, help="folder for the results (Parquet per entity)")
    p.add_argument("--period", help="e.g. 2024 (default: meta.json in the data folder)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local (default) or spark: claim stages on Apache Spark (pip install '.[spark]')")
    p.add_argument("--master", default=None,
                   help="Spark master URL with --engine spark (default: spark-submit's, else local[*])")
    p.set_defaults(fn=cmd_settle)
    p = sub.add_parser("impact", help="money per institution and fund under a draft / 草案影响测算")
    p.add_argument("city", help="the served policy: a policy id or a policy file")
    p.add_argument("--draft", help="the draft policy file (YAML)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a parameter of the draft (or of the served policy) set to one value, e.g. risk_fund_rate=5%%; "
                        "may be repeated")
    p.add_argument("--data", required=True, help="folder with claim.parquet, institution.csv, … (as for settle)")
    p.add_argument("--period", help="e.g. 2024 (default: meta.json in the data folder)")
    p.add_argument("--variable", help="the amount compared (default: the policy's last money formula per account)")
    p.add_argument("--xlsx", help="spreadsheet written (default: impact-CITY-PERIOD.xlsx)")
    p.add_argument("--top", type=int, default=20, help="rows printed, largest changes first (default 20)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--policy-version", help=VERSION_HELP)
    p.set_defaults(fn=cmd_impact)
    p = sub.add_parser("serve", help="start the API / 启动服务")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (one per core serves most)")
    p.set_defaults(fn=cmd_serve)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except PolicyError as err:
        for diag in err.diagnostics:
            print(diag.render(), file=sys.stderr)
        return EXIT_POLICY
    except PolicyCheckFailed as err:
        print_check_failures(err)
        return EXIT_CHECK
    except SituationError as err:
        print("the situation was rejected / 情形输入有误:", file=sys.stderr)
        for fault in err.faults:
            print(f"  {fault.path or '(top)'}: {fault.en} / {fault.zh}", file=sys.stderr)
        return EXIT_INPUT
    except (_BadJson, FileNotFoundError) as err:
        print(str(err), file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

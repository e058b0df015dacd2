"""The `medpay` command line (命令行)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.compile.build import load_policy_file
from engine.errors import InputFault, PolicyCheckFailed, PolicyError, SituationError
from engine.explain.trace import build_trace
from engine.period import parse_period
from engine.policy.registry import POLICY_DIR, Registry, UnknownCity, policy_files
from engine.policy.spec import Policy
from engine.run.evaluate import checked_situation, evaluate
from engine.run.population import Population

# exit codes (docs/cli.md): 0 done; 1 a policy did not load or a policy check failed; 2 bad input
EXIT_POLICY, EXIT_INPUT = 1, 2
EXIT_CHECK = EXIT_POLICY
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
        raise BadInput(f"unknown city '{city}' (known: {known}) / 未知城市“{city}”") from None


def _check_version(city: str, versions: list[Policy], version: str) -> Policy:
    chosen = next((p for p in versions if p.meta.version == version), None)
    if chosen is None:
        known = ", ".join(p.meta.version for p in versions)
        raise BadInput(f"{city} has no version '{version}' (versions: {known}) / "
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
    data = data_folder(args.data)
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
    meta = synthesize(policy, args.claims, Path(args.out), args.seed, args.with_groups)
    print(f"wrote {meta['claims']:,} claims, {meta['institutions']} institutions, {meta['communities']} "
          f"communities for {policy.id}, period {meta['period']}, to {args.out}")
    return 0


def cmd_settle(args) -> int:
    from engine.batch.settle import folder_period, settle
    from engine.batch.year import default_ledger
    data = data_folder(args.data)
    if args.month:
        return _settle_month(args, data)
    if not args.out:
        print("give --out DIR for the results (or --month YYYY-MM to pre-settle one month) / "
              "请用 --out 指定结果目录（或用 --month 预结算一个月）", file=sys.stderr)
        return EXIT_INPUT
    period = folder_period(data, args.period)
    policy = resolve_policy(args.city, {"period": period.text}, getattr(args, "policy_version", None))
    ledger = None if args.no_ledger else (Path(args.ledger) if args.ledger else default_ledger(data))
    if args.engine == "spark" and ledger is not None:
        print(f"the Spark engine does not clear from a ledger yet ({ledger}): use --engine local, or --no-ledger "
              f"/ Spark 引擎暂不支持按台账清算：请用 --engine local 或 --no-ledger", file=sys.stderr)
        return EXIT_INPUT
    if args.engine == "spark":
        from engine.spark.runner import settle_spark
        summary = settle_spark(policy, data, Path(args.out), period, master=args.master)
    elif sys.stderr.isatty():
        from rich.progress import Progress
        with Progress(transient=True) as progress:
            task = progress.add_task("settling", total=len(policy.plan.steps))
            summary = settle(policy, data, Path(args.out), period,
                             lambda name: progress.update(task, advance=1, description=name), ledger=ledger, backend=args.backend)
    else:
        summary = settle(policy, data, Path(args.out), period, ledger=ledger, backend=args.backend)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return 0
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    secs = ", ".join(f"{k} {v:.2f}s" for k, v in summary.seconds.items())
    print(f"settled {policy.id} {policy.meta.version} {period.text}: {rows}\n  {secs}; "
          f"peak memory {summary.peak_rss_mb:,.0f} MB\n  results in {args.out}")
    if ledger is not None and args.engine != "spark":
        months = summary.provenance.get("ledger") or {}
        print(f"  cleared from the ledger {ledger}: {len(months.get('months', []))} month(s) / 按台账清算")
    _print_warnings(summary.warnings, getattr(summary, "checks", []))
    return 0


def cmd_statement(args) -> int:
    """Clearing statements: settle the data (or read the results of an earlier `medpay settle`),
    then one .xlsx and one printable .html per row of each entity the policy's `statement:` lists,
    and fund-summary.xlsx."""
    from engine.batch.settle import folder_period, settle
    from engine.report.files import write_statements
    from engine.report.results import from_folders
    data, out = Path(args.data), Path(args.out)
    period = folder_period(data, args.period)
    policy = resolve_policy(args.city, {"period": period.text}, args.policy_version)
    if not policy.statements:
        print(f"{policy.id} declares no statement (a `statement:` section) / {policy.id} 未定义清算单（statement）",
              file=sys.stderr)
        return EXIT_POLICY
    results = Path(args.results) if args.results else out / "results"
    if not args.results:
        settle(policy, data, results, period)
    written = write_statements(from_folders(policy, results, data, period.text), out)
    print(f"wrote {len(written)} files for {policy.id} {period.text} to {out} (results in {results})")
    return 0


def _settle_month(args, data: Path) -> int:
    """--month: pre-settle one month into the ledger (replacing that month's rows)."""
    from engine.batch.ledger import presettle_month
    from engine.period import parse_period
    month = parse_period(args.month, "month")
    policy = resolve_policy(args.city, {"period": month.text}, getattr(args, "policy_version", None))
    ledger = Path(args.ledger) if args.ledger else data / "ledger.parquet"
    summary = presettle_month(policy, data, month, ledger)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return 0
    amounts = ", ".join(f"{k} {v:,.2f}" for k, v in summary.amounts.items()) or "no monthly amounts in this policy"
    again = f", replacing {summary.replaced:,} earlier row(s)" if summary.replaced else ""
    print(f"pre-settled {policy.id} {policy.meta.version} {month.text}: {summary.rows:,} account-month row(s){again}"
          f"\n  {amounts}\n  ledger {ledger}: months {', '.join(summary.months)}")
    _print_warnings(summary.warnings, [])
    return 0


def _print_warnings(warnings: list[dict], checks: list[dict]) -> None:
    """Every warning of a batch run, then the checks made (passed and failed)."""
    for w in warnings:
        rows = f" ({w['rows']} rows)" if "rows" in w else ""
        print(f"  warning {w['code']} {w['path']}: {w['message']}{rows}")
    if checks:
        failed = [c for c in checks if not c["passed"]]
        print(f"  checks / 校验: {len(checks) - len(failed)} passed, {len(failed)} failed"
              + "".join(f"\n    ✗ {c['entity']}.{c['check']} ({c['severity']}): {c['failing_rows']} row(s)"
                        for c in failed))


def cmd_catalogue(args) -> int:
    from engine.batch.catalogue import build_catalogue, spec_of
    situation = {"period": args.period} if args.period else None
    policy = resolve_policy(args.city, situation, getattr(args, "policy_version", None))
    weights = None
    if args.weights:
        try:
            weights = tuple(int(w) for w in args.weights.split(":"))
        except ValueError:
            raise SituationError([InputFault("--weights", "weights are whole numbers joined by ':' (1:2:7)",
                                             "权重应为以“:”连接的整数（1:2:7）")]) from None
        if len(weights) < 1 or any(w <= 0 for w in weights):
            raise SituationError([InputFault("--weights", "weights are positive (1:2:7)", "权重应为正数（1:2:7）")])
    spec = spec_of(policy, args.grouping, args.base_group, args.base_score, args.core_min, weights)
    made = build_catalogue(policy, Path(args.history), Path(args.out), spec)
    print(f"built the {policy.id} catalogue for {made['for_year']}: {made['groups']} groups from {made['claims']:,} "
          f"claims of {made['years'][0]}–{made['years'][-1]} → {args.out} (provenance in {args.out}.json)")
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


class BadInput(Exception):
    """Input the command cannot use (a file, folder, city or version): exit 2 with its message."""


class _BadJson(BadInput):
    pass


def data_folder(given: str) -> Path:
    """The --data folder, which must exist and be a folder."""
    folder = Path(given)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise BadInput(f"--data {given}: the folder {what} / 数据目录 {given} "
                       f"{'不是目录' if folder.exists() else '不存在'}")
    return folder


class VersionAction(argparse.Action):
    """`medpay --version`: the engine's version, the policy folder, and each policy's versions."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit(0)


def version_text() -> str:
    """What `--version` prints (policies that do not load are named, with a count of their problems)."""
    from engine import __version__
    registry = Registry.load(POLICY_DIR, include_template=False)
    lines = [f"medpay {__version__}", f"policies / 政策目录: {POLICY_DIR.resolve()}"]
    for city, versions in sorted(registry.cities.items()):
        lines.append(f"  {city}: " + ", ".join(f"{p.meta.version} ({p.meta.notice})" for p in versions))
    for file, diagnostics in sorted(registry.problems.items()):
        lines.append(f"  {Path(file).name}: does not load / 无法加载 ({len(diagnostics)} problem(s) / 处问题)")
    return "\n".join(lines)


VERSION_HELP = "one version of the policy (e.g. 2024-07-09); default: the version in force for the period"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="medpay", description="medpay — medical-insurance payment rules engine (医保支付规则引擎)",
                                 epilog="exit codes / 退出码: 0 done 完成; 1 a policy did not load or a policy check "
                                        "failed 政策无法加载或政策校验未通过; 2 bad input 输入有误")
    ap.add_argument("--version", action=VersionAction, help="the engine's version, the policy folder and the "
                                                            "policy versions in it / 版本与政策版本")
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
    p.add_argument("--with-groups", action="store_true",
                   help="also write each claim's group (supplied), besides the codes it is grouped from")
    p.set_defaults(fn=cmd_synth)
    p = sub.add_parser("settle", help="settle a city-year from files / 批量结算")
    p.add_argument("city")
    p.add_argument("--data", required=True, help="folder with claim.parquet, institution.csv, …")
    p.add_argument("--out", help="folder for the results (Parquet per entity, manifest.json)")
    p.add_argument("--period", help="e.g. 2024 (default: meta.json in the data folder)")
    p.add_argument("--month", help="pre-settle one month (YYYY-MM) into the ledger instead of settling the year")
    p.add_argument("--ledger", help="the monthly ledger (default: ledger.parquet in the data folder; the year-end "
                                    "run clears from it when it exists)")
    p.add_argument("--no-ledger", action="store_true", help="settle the year from the claims alone, ignoring a ledger")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local (default) or spark: claim stages on Apache Spark (pip install '.[spark]')")
    p.add_argument("--master", default=None,
                   help="Spark master URL with --engine spark (default: spark-submit's, else local[*])")
    p.add_argument("--backend", choices=["numpy", "polars"], default="numpy",
                   help="local engine for the claim stages: numpy (default) or polars (docs/scale.md)")
    p.set_defaults(fn=cmd_settle)
    p = sub.add_parser("statement", help="clearing statements (.xlsx and printable .html) / 生成清算单")
    p.add_argument("city")
    p.add_argument("--data", required=True, help="folder with claim.parquet, institution.csv, … (as for settle)")
    p.add_argument("--out", required=True, help="folder for the statements (and the results, under results/)")
    p.add_argument("--results", help="the folder an earlier `medpay settle` wrote for this data (not settled again)")
    p.add_argument("--period", help="e.g. 2024 (default: meta.json in the data folder)")
    p.add_argument("--policy-version", help=VERSION_HELP)
    p.set_defaults(fn=cmd_statement)
    p = sub.add_parser("catalogue", help="build next year's DIP catalogue from three years of claims / 测算病种目录")
    p.add_argument("city")
    p.add_argument("--history", required=True, help="folder of past claims (claim.parquet or claim.csv, e.g. one "
                                                     "folder per year, institution files beside them)")
    p.add_argument("--out", required=True, help="the catalogue CSV to write, e.g. tables/dip_groups_2025.csv")
    p.add_argument("--period", help="pick the policy version in force in this period (default: the latest)")
    p.add_argument("--grouping", help="the grouping whose group is catalogued (default: the policy's first)")
    p.add_argument("--base-group", help="default: the policy's base_group parameter")
    p.add_argument("--base-score", type=float, help="default: the policy's base_score parameter, else 1000")
    p.add_argument("--core-min", type=float, help="yearly cases of a core group (inclusive); default: the "
                                                  "policy's core_group_min_cases, else 15")
    p.add_argument("--weights", help="weights by year, oldest first (default 1:2:7, assumed)")
    p.set_defaults(fn=cmd_catalogue)
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
    except (BadInput, FileNotFoundError) as err:
        print(str(err), file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

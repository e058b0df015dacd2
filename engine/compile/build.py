"""Build a policy: read (engine.policy) → check into typed trees (engine.dsl) → compile → plan (政策构建).

Either the whole policy builds, or PolicyError lists every diagnostic: nothing half-built.
"""

from __future__ import annotations

from pathlib import Path

from engine.compile import grouping as _grouping  # noqa: F401  (registers group(), group_rule(), …)
from engine.compile.compiler import Compiler
from engine.compile.functions import FUNCTIONS
from engine.dsl import typed as T
from engine.dsl.checker import Checker
from engine.errors import Diagnostic, FormulaError, PolicyError
from engine.plan import plan as planning
from engine.policy.loader import Draft, read_policy_file, read_policy_text
from engine.policy.plausibility import warnings_of
from engine.policy.spec import Policy, PolicyCheck
from engine.policy.values import TableReader, disk_tables


def load_policy_file(path: str | Path) -> Policy:
    """Read, check, compile and plan one policy file."""
    return build(read_policy_file(path))


def load_policy_text(text: str, file: str = "<policy>", base_dir: Path | None = None,
                     tables: TableReader = disk_tables) -> Policy:
    """Read, check, compile and plan a policy from its YAML text; its tables are files of
    `base_dir`/tables, read through `tables` (from disk by default)."""
    return build(read_policy_text(text, file, base_dir, tables))


def build(draft: Draft) -> Policy:
    """The policy of a draft with its plan attached."""
    found = warnings_of(draft.policy, draft.source)
    try:
        draft.policy.plan = plan(draft)
    except PolicyError as err:  # a draft that fails still says its warnings, apart from its errors
        err.warnings = found
        raise
    draft.policy.checks = [c.check for c in draft.policy.plan.checks]
    draft.policy.warnings = found
    return draft.policy


def plan(draft: Draft) -> planning.Plan:
    """Check every formula, find those that can give no value (pending), then compile and order
    them; every formula error is reported at once."""
    policy = draft.policy
    checker = Checker(policy.model, policy.parameters, policy.tables, FUNCTIONS)
    checker.groupings = policy.groupings  # read by group() and the other grouping functions
    checked: dict[planning.Key, tuple] = {}
    for var in draft.formulas:
        try:
            checked[(var.entity, var.name)] = (var, checker.check(var))
        except FormulaError as err:
            draft.formula_problem(var, err)
    nullable = T.nullable_variables({key: c.node for key, (_, c) in checked.items()})
    compiler = Compiler(policy, nullable)
    steps = {key: planning.Step(var, c, compiler.compile(c, key), nullable=key in nullable)
             for key, (var, c) in checked.items()}
    checks = [c for c in (compile_check(draft, checker, compiler, check) for check in draft.checks) if c]
    draft.fail_if_problems()
    try:
        built = planning.build(steps, checks, nullable)
        built.compile = Compiler(policy).expr  # conditions evaluated again by the demand analysis (engine.run.demand)
        return built
    except planning.CycleError as err:
        loop = err.args[1][::-1]  # graphlib lists each step before the one that uses it
        first = steps[loop[0]].variable
        names = " → ".join(f"{e}.{n}" for e, n in loop)
        draft.problems.append(Diagnostic(
            "cycle", f"these formulas depend on each other in a loop: {names} (each uses the next); "
            "break the loop",
            f"以下公式相互依赖形成循环：{names}（每一项都用到下一项）；请打破循环",
            draft.source.key_location(first.path)))
        raise PolicyError(draft.problems) from None


def compile_check(draft: Draft, checker: Checker, compiler: Compiler, check: PolicyCheck) -> planning.CheckStep | None:
    """Check and compile one policy check like a formula variable; its formula must give yes/no."""
    var = check.as_variable()
    try:
        checked = checker.check(var)
    except FormulaError as err:
        if err.code == "wrong_result_type":
            gives_en = err.en.split(" but ")[0].removeprefix("the formula ")  # "gives a number"
            gives_zh = err.zh.split("，")[0].removeprefix("公式")  # "结果是数字"
            err = FormulaError("check_not_boolean",
                               f"the check '{check.name}' must be a yes/no formula (true where the row is "
                               f"fine), e.g. points_budget >= 0; this one {gives_en}",
                               f"校验“{check.name}”必须是结果为是/否的公式（行无误时为真），例如 points_budget >= 0；"
                               f"此公式{gives_zh}", 0)
        draft.formula_problem(var, err)
        return None
    return planning.CheckStep(check, checked, compiler.compile(checked, (check.entity, var.name)))

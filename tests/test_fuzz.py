"""Fuzzing: whatever comes in, the answer is a medpay diagnostic or a result — never another
exception, never a hang, never NaN or infinity. MEDPAY_FUZZ_EXAMPLES raises the example counts."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.compile.build import load_policy_file, load_policy_text
from engine.compile.compiler import Compiler
from engine.compile.functions import FUNCTIONS
from engine.dsl.checker import Checker
from engine.dsl.parser import parse_formula
from engine.errors import FormulaError, PolicyError, SituationError
from engine.model.spec import Label, Variable
from engine.plan.plan import Step
from engine.run.evaluate import evaluate, evaluate_situation, run_step
from engine.run.frame import RunContext
from engine.run.situation import parse_period, read_situation

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_FILE = ROOT / "policies" / "_template.yaml"
TEMPLATE_TEXT = TEMPLATE_FILE.read_text(encoding="utf-8")
POLICY = load_policy_file(TEMPLATE_FILE)
SITUATION = yaml.safe_load((ROOT / "tests" / "cases" / "_template" / "basics.yaml").read_text(encoding="utf-8"))["situation"]
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))
FUZZ = settings(max_examples=60 * SCALE, deadline=2000, suppress_health_check=list(HealthCheck), derandomize=True)

TOKENS = ["1", "2.5", "5%", "1_000", '"inpatient"', "2024-03-01", "true", "false", "(", ")", "[", "]", ",",
          "+", "-", "*", "/", "==", "!=", "<", ">=", "and", "or", "not", "if", "then", "else", "in", "where",
          "=", ".", "total_cost", "points", "claim", "institution", "level", "fund", "point_value", "sum",
          "min", "max", "bands", "step", "lookup", "drg", "weight", "allocate", "chain_max", "chain_sum_before",
          "deductible_due", "deductible_by_level", "risk_fund_rate", "overspend_fund_share", "base=", "$", "如果", "则"]


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_random_token_soup_gives_only_formula_errors(tokens):
    try:
        parse_formula(" ".join(tokens))
    except FormulaError as err:
        assert err.en and err.zh and 0 <= err.offset <= len(" ".join(tokens))


@FUZZ
@given(st.text(max_size=60))
def test_random_text_gives_only_formula_errors(text):
    try:
        parse_formula(text)
    except FormulaError as err:
        assert err.code and err.en and err.zh


NUMBERS = ["total_cost", "self_pay_items", "points", "group_weight", "deductible_due", "coinsurance",
           "institution.level", "fund.point_value", "risk_fund_rate", "0", "1", "2.5", "5%", "-3"]
BOOLS = ["out_of_area", "referral_approved", "true", "false", 'setting == "inpatient"']


def numeric():
    leaf = st.sampled_from(NUMBERS)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"min({t[0]}, {t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"clamp({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(BOOLS), inner, inner).map(lambda t: f"(if {t[0]} then {t[1]} else {t[2]})"),
        inner.map(lambda t: f"bands({t}, [10, 100], [1, 50%, 0])"),
        inner.map(lambda t: f"bands({t}, overspend_fund_share, base=100)"),
        inner.map(lambda t: f"chain_sum_before({t})"),
        inner.map(lambda t: f"chain_max({t})"),
        inner.map(lambda t: f"round({t}, 2)"),
        inner.map(lambda t: f'step({t}, [0, 10], [1, 2, 3], closed="right")'),
    ), max_leaves=8)


def run_formula(text: str, entity: str = "claim") -> None:
    """Check, compile and evaluate a formula on the template's basic situation."""
    node = parse_formula(text)
    checker = Checker(POLICY.model, POLICY.parameters, POLICY.tables, FUNCTIONS)
    checked, var = None, None
    for typ in ("number", "bool", "string", "date"):
        var = Variable("fuzz_value", entity, type=typ, label=Label("模糊", "fuzz"), formula=text, node=node)
        try:
            checked = checker.check(var)
            break
        except FormulaError as err:
            if err.code != "wrong_result_type":
                raise
    assert checked is not None
    POLICY.model.entities[entity].variables["fuzz_value"] = var
    try:
        situation = read_situation(POLICY, copy.deepcopy(SITUATION), parse_period("2024"))
        pop, ctx, _ = evaluate_situation(POLICY, situation)
        run_step(Step(var, checked, Compiler(POLICY).compile(checked)), pop, RunContext(POLICY))
        column = pop.columns[entity]["fuzz_value"]
        if column.dtype.kind == "f":
            assert all(math.isfinite(v) for v in column.tolist())
    finally:
        POLICY.model.entities[entity].variables.pop("fuzz_value", None)


@FUZZ
@given(numeric())
def test_generated_formulas_check_and_evaluate_or_explain_why(text):
    try:
        run_formula(text)
    except FormulaError as err:
        assert err.en and err.zh


@FUZZ
@given(numeric())
def test_generated_formulas_on_a_parent_entity(text):
    try:
        run_formula(f"sum(claim.total_cost where claim.total_cost > 0) + 0 * max({text}, 0)", entity="institution")
    except FormulaError as err:
        assert err.code in ("needs_aggregation", "no_chain", "unknown_name", "type", "aggregate_needs_child")


MUTATIONS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "dup", "swap", "indent", "dedent"]),
                               st.integers(0, 10_000), st.sampled_from(list(":-{}[]#'\" \t\nx1%\x1f\x00\ufeff&*!|>"))),
                     min_size=1, max_size=4)


def mutate(text: str, edits) -> str:
    lines = text.splitlines()
    for kind, at, ch in edits:
        i = at % len(lines)
        if kind == "delete" and lines[i]:
            j = at % len(lines[i])
            lines[i] = lines[i][:j] + lines[i][j + 1:]
        elif kind == "insert":
            j = at % (len(lines[i]) + 1)
            lines[i] = lines[i][:j] + ch + lines[i][j:]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        elif kind == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i]
    return "\n".join(lines) + "\n"


@settings(max_examples=40 * SCALE, deadline=5000, suppress_health_check=list(HealthCheck), derandomize=True)
@given(MUTATIONS)
def test_mutated_policies_load_or_give_located_diagnostics(edits):
    text = mutate(TEMPLATE_TEXT, edits)
    try:
        load_policy_text(text, "mutant.yaml", ROOT / "policies")
    except PolicyError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert d.en and d.zh and d.location.file == "mutant.yaml"


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=6)
FIELDS = ["id", "total_cost", "self_pay_items", "setting", "institution", "fund", "episode", "admit_date",
          "discharge_date", "out_of_area", "drg_group", "points", "deductible_due", "bogus"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["claim", "institution", "fund", "community"]),
                          st.integers(0, 3), st.sampled_from(FIELDS), JSONISH), max_size=4),
       st.sampled_from(["2024", "2024-06", "1999", "x", {"start": "2024-01-01", "end": "2024-03-31"}]))
def test_random_situations_give_a_result_or_paths(changes, period):
    data = copy.deepcopy(SITUATION)
    data["period"] = period
    for entity, row, field, value in changes:
        rows = data["entities"].setdefault(entity, [])
        if rows:
            rows[row % len(rows)][field] = value
    try:
        result = evaluate(POLICY, json.loads(json.dumps(data, allow_nan=True)))
    except SituationError as err:
        assert err.faults and all(f.en and f.zh for f in err.faults)
        return
    for rows in result["entities"].values():
        for row in rows:
            for value in row.values():
                assert not (isinstance(value, float) and not math.isfinite(value))

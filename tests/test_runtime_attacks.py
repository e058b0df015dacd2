"""Formulas and situations that used to crash a run (HTTP 500): out-of-range constants of
built-ins, a link read as a value, totals too large to allocate to the fen. Each is now a
located policy diagnostic or a result with a warning. Then a fuzz over the built-ins with
edge constants, empty tables, zero-row entities and one-band tables: a diagnostic or finite
values, never another exception. MEDPAY_FUZZ_EXAMPLES > 1 makes the fuzz bigger."""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from evalkit import by_id, make_policy, run, template_folder, warning_codes
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.app import create_app
from engine.compile.build import load_policy_text
from engine.errors import PolicyError, SituationError

ROOT = Path(__file__).resolve().parents[1]
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))


def diagnostic(variables: dict, parameters: dict | None = None):
    """The single diagnostic a policy with these variables gets."""
    with pytest.raises(PolicyError) as caught:
        make_policy(variables, parameters=parameters)
    assert len(caught.value.diagnostics) == 1
    return caught.value.diagnostics[0]


# ---- round(x, digits) -----------------------------------------------------------------

FORMULA_COLUMN = len("      formula: ") + 1  # where a one-line formula starts in the policy text


@pytest.mark.parametrize("formula, at", [
    ("round(total_cost, 400)", "400"),      # 10**400 overflowed: OverflowError, a 500
    ("round(total_cost, -400)", "-400"),    # 10**-400 is 0: x / 0
    ("round(total_cost, -2)", "-2"),
    ("round(total_cost, 2.5)", "2.5"),
    ("round(total_cost, digits=11)", "11"),
    ("round(total_cost, digits)", "digits)"),  # digits from a column differ by row
    ("round(total_cost, p)", "p)"),            # a parameter may be overridden per request
])
def test_round_digits_out_of_range_are_refused_where_written(formula, at):
    d = diagnostic({"claim": {"digits": "2", "v": formula}}, parameters={"p": 400})
    assert d.code == "round_digits" and "from 0 to 10" in d.en and "0 至 10" in d.zh
    assert d.location.column == FORMULA_COLUMN + formula.index(at)
    assert d.location.path == "variables.claim.v.formula"


def test_round_digits_given_twice_is_refused():
    d = diagnostic({"claim": {"v": "round(total_cost, 2, digits=3)"}})  # crashed with a TypeError
    assert d.code == "round_digits" and "once" in d.en


def test_round_digits_in_range_still_round_half_up():
    result = run(make_policy({"claim": {"a": "round(total_cost, 10)", "b": "round(total_cost, digits=0)",
                                        "c": "round(total_cost)"}}),
                 {"claim": [{"id": "x", "total_cost": 2.5}, {"id": "y", "total_cost": 0.125}]})
    assert by_id(result, "claim", "b") == {"x": 3.0, "y": 0.0}
    assert by_id(result, "claim", "c") == {"x": 3.0, "y": 0.0}
    assert by_id(result, "claim", "a") == {"x": 2.5, "y": 0.125}


def test_a_number_beyond_float_range_is_refused():
    d = diagnostic({"claim": {"v": "total_cost * 1e400"}})
    assert d.code in ("not_finite", "number_too_large") and "过大" in d.zh
    assert d.location.column == FORMULA_COLUMN + len("total_cost * ")


# ---- a link read as a value -------------------------------------------------------------

@pytest.mark.parametrize("formula, typ, example", [
    ("institution", "string", "institution.level"),
    ("claim.institution", "string", "claim.institution.level"),
    ('institution == "H1"', "bool", "institution.level"),
    ("episode", "string", "episode.<field>"),
])
def test_a_link_used_as_a_value_is_refused(formula, typ, example):
    d = diagnostic({"claim": {"v": {"formula": formula, "type": typ}}})
    assert d.code == "link_as_value" and d.location.column == FORMULA_COLUMN
    assert "is a link" in d.en and example in d.en and "关联" in d.zh and example in d.zh


def test_a_link_inside_an_aggregation_is_refused():
    d = diagnostic({"institution": {"n": 'count(claim where claim.fund == "F")'}})
    assert d.code == "link_as_value" and "claim.fund" in d.en


def test_reading_through_a_link_still_works():
    result = run(make_policy({"claim": {"lvl": "institution.level * 2"}}),
                 {"institution": [{"id": "H1", "level": 3}], "claim": [{"id": "c", "institution": "H1"}]})
    assert by_id(result, "claim", "lvl") == {"c": 6.0}


# ---- allocation beyond 9e13 yuan --------------------------------------------------------

ALLOCATE = {"institution": {"budget": {"formula": "sum(claim.total_cost) * scale", "unit": "yuan"}},
            "claim": {"share": {"formula": "allocate(institution.budget, total_cost)", "unit": "yuan"}}}
ALLOCATION_DATA = {"institution": [{"id": "H1", "level": 3}, {"id": "H2", "level": 3}],
                   "claim": [{"id": "c1", "institution": "H1", "total_cost": 1e8},
                             {"id": "c2", "institution": "H1", "total_cost": 3e8},
                             {"id": "c3", "institution": "H2", "total_cost": 10},
                             {"id": "c4", "institution": "H2", "total_cost": 20}]}


def test_a_total_above_9e13_is_split_in_proportion_with_a_warning():
    """H1's budget, 4e8 × 1e6 = 4e14 yuan, is too large for fen arithmetic (it raised
    OverflowError, a 500): it is split 1 : 3. H2's 3e7 is still allocated to the fen."""
    result = run(make_policy(ALLOCATE, parameters={"scale": 1e6}), ALLOCATION_DATA)
    share = by_id(result, "claim", "share")
    assert share == {"c1": float(Fraction(4 * 10**14, 4)), "c2": float(Fraction(3 * 4 * 10**14, 4)),
                     "c3": 10_000_000.0, "c4": 20_000_000.0}
    assert ("allocation_out_of_range", "variables.claim.share") in warning_codes(result)
    warning = next(w for w in result["warnings"] if w["code"] == "allocation_out_of_range")
    assert warning["rows"] == 1 and "9e13" in warning["message"] and "9e13" in warning["message_zh"]


def test_a_total_that_overflows_to_infinity_gives_zero_and_warnings():
    """H1's budget overflows to infinity: its shares are 0 with `non_finite`; H2's, 3e306,
    is split 1 : 2 and rendered as a number (rounding 2e306 to the fen overflowed to
    infinity, which JSON cannot carry: a 500 in the API)."""
    huge = {**ALLOCATE, "institution": {"budget": {"formula": "sum(claim.total_cost) * 1e305", "unit": "yuan"}}}
    result = run(make_policy(huge, parameters={"scale": 1}), ALLOCATION_DATA)
    share = by_id(result, "claim", "share")
    assert share["c1"] == share["c2"] == 0.0
    assert math.isclose(share["c3"], 1e306, rel_tol=1e-12) and math.isclose(share["c4"], 2e306, rel_tol=1e-12)
    assert {"non_finite", "allocation_out_of_range"} <= {c for c, _ in warning_codes(result)}
    json.dumps(result, allow_nan=False)


def test_a_total_below_the_limit_is_still_exact_to_the_fen():
    result = run(make_policy(ALLOCATE, parameters={"scale": 1 / 3}), ALLOCATION_DATA)
    share = by_id(result, "claim", "share")
    assert round(share["c1"] + share["c2"], 2) == 133333333.33  # 4e8 / 3, to the fen
    assert share["c3"] + share["c4"] == 10.0
    assert "allocation_out_of_range" not in {c for c, _ in warning_codes(result)}


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    template_folder(tmp_path)
    return TestClient(create_app(tmp_path, watch=False), base_url="http://localhost")


TEMPLATE_CASE = yaml.safe_load((ROOT / "tests" / "cases" / "_template" / "basics.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("rate", [-100, -1e300])
def test_the_api_refuses_the_override_that_made_an_oversized_allocation(client, rate):
    """The template allocates the fund's points budget, revenue × (1 − risk_fund_rate); with
    the largest revenue accepted (1e13) a rate of −100 made a budget of 1.01e15 yuan and −1e300
    an infinite one (each a 500 before). A negative rate is now refused at its path, so no
    request can reach allocation beyond 9e13 yuan (engine-level tests above cover that path)."""
    body = json.loads(json.dumps(TEMPLATE_CASE["situation"]))
    body["entities"]["fund"][0]["revenue"] = 1e13
    body["parameters"] = {"risk_fund_rate": rate}
    r = client.post("/v1/cities/_template/evaluate", json=body)
    assert r.status_code == 422, r.text[:300]
    [fault] = r.json()["detail"]
    assert fault["path"] == "parameters.risk_fund_rate" and fault["message_zh"]


def test_validate_locates_a_round_with_400_digits(client):
    text = (ROOT / "policies" / "_template.yaml").read_text(encoding="utf-8")
    old = "formula: days_between(admit_date, discharge_date)"
    line = text[:text.index(old)].count("\n") + 1
    text = text.replace(old, "formula: round(days_between(admit_date, discharge_date), 400)")
    r = client.post("/v1/validate", json={"text": text, "file": "_template.yaml"})
    assert r.status_code == 200 and r.json()["valid"] is False
    (d,) = r.json()["diagnostics"]
    assert d["code"] == "round_digits" and d["line"] == line and d["file"] == "_template.yaml"
    assert text.splitlines()[line - 1][d["column"] - 1:].startswith("400")


# ---- found by the fuzz below ---------------------------------------------------------------

def test_money_near_the_float_limit_renders_as_a_number():
    """1e308 yuan rounded to the fen was scaled by 100 first: infinity, which JSON cannot
    carry (a 500 in the API). A value with no fraction left is kept as it is."""
    result = run(make_policy({"claim": {"v": {"formula": "1.0e+308 + total_cost", "unit": "yuan"},
                                        "w": {"formula": "-1.7e+308", "unit": "yuan"}}}),
                 {"claim": [{"id": "c", "total_cost": 1}]})
    assert by_id(result, "claim", "v") == {"c": 1e308} and by_id(result, "claim", "w") == {"c": -1.7e308}
    json.dumps(result, allow_nan=False)


def test_step_with_more_than_32_text_values():
    """Past 32 bands `step` used np.select with a numeric default: a TypeError for texts."""
    n = 40
    edges = ", ".join(str(i) for i in range(1, n))
    values = ", ".join(f'"v{i}"' for i in range(n))
    result = run(make_policy({"claim": {"band": {"formula": f"step(total_cost, [{edges}], [{values}])",
                                                 "type": "string"}}}),
                 {"claim": [{"id": "low", "total_cost": 0}, {"id": "mid", "total_cost": 17.5},
                            {"id": "edge", "total_cost": 39}, {"id": "top", "total_cost": 1e6}]})
    assert by_id(result, "claim", "band") == {"low": "v0", "mid": "v17", "edge": "v39", "top": "v39"}


def test_day_arithmetic_on_a_missing_date_is_refused_at_its_path():
    """A missing date (NaT) stood for −9.2e18 days; year() and month() gave nonsense too. A date a
    formula reads is a required input (no default): a missing one is a fault at its JSON path."""
    policy = make_policy({"claim": {"stay": "days_between(admit_date, discharge_date)",
                                    "gap": "discharge_date - admit_date",
                                    "y": "year(discharge_date)", "m": "month(discharge_date)"}})
    result = run(policy, {"claim": [{"id": "full", "admit_date": "2024-02-27", "discharge_date": "2024-03-02"}]})
    assert by_id(result, "claim", "stay") == {"full": 4.0}  # 2024 is a leap year
    assert by_id(result, "claim", "gap") == {"full": 4.0}
    assert by_id(result, "claim", "y") == {"full": 2024.0} and by_id(result, "claim", "m") == {"full": 3.0}
    with pytest.raises(SituationError) as err:
        run(policy, {"claim": [{"id": "full", "admit_date": "2024-02-27", "discharge_date": "2024-03-02"},
                               {"id": "open", "admit_date": "2024-02-27"}]})
    assert {f.path for f in err.value.faults} == {"entities.claim[1].discharge_date"}


# ---- fuzz over the built-ins with edge constants ----------------------------------------

POLICY = """
policy:
  id: attack
  name: {zh: 测试市, en: Testville}
  notice: 测〔2024〕1号
  issuer: 测试市医疗保障局
  effective: {from: 2024-01-01}
tables:
  empty: {file: tables/empty.csv, key: [code], label: {zh: 空表, en: empty}, assumed: empty on purpose}
  one: {file: tables/one.csv, key: [code], label: {zh: 单行表, en: one row}, assumed: one row}
parameters:
  zero: {value: 0, label: {zh: 零, en: zero}, source: 一}
  minus_one: {value: -1, label: {zh: 负一, en: minus one}, source: 一}
  huge: {value: 1.0e+308, label: {zh: 极大, en: huge}, source: 一}
  tiny: {value: 1.0e-308, label: {zh: 极小, en: tiny}, source: 一}
  one_band: {value: {edges: [], rates: [50%]}, label: {zh: 单段, en: one band}, source: 一}
  by_level: {value: {"1": 0, "2": -1, "3": 1.0e+308}, label: {zh: 按等级, en: by level}, source: 一}
  by_date:
    label: {zh: 分期, en: by date}
    values:
      - {from: 2024-01-01, value: 0}
      - {from: 2024-07-01, value: 1.0e+308}
    source: 一
variables:
  institution:
    fuzz_total: {formula: 'TOTAL', label: {zh: 总额, en: total}, source: 二, unit: yuan}
  claim:
    drg_group: {type: string, label: {zh: 分组, en: group}}
    fuzz: {formula: 'FORMULA', label: {zh: 模糊, en: fuzz}, source: 二, unit: yuan}
"""

EDGES = ["0", "-1", "1", "1e308", "1e-308", "0.000001", "5%", "999999999999999999999",
         "zero", "minus_one", "huge", "tiny", "by_date"]
LEAVES = ["total_cost", "self_pay_items", "institution.level", "institution.fuzz_total",
          "by_level[institution.level]", "chain_position()", "days_between(admit_date, discharge_date)",
          "year(admit_date)", "month(discharge_date)", "lookup(one.value, drg_group)",
          "lookup(empty.value, drg_group, default=-1)", "lookup(one.value, drg_group, default=huge)", *EDGES]
CONDITIONS = ["out_of_area", 'setting == "inpatient"', "admit_date < 2024-06-01", "total_cost > 0",
              "institution.level in [1, 3]", "not referral_approved"]


def _number(inner):
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        pair.map(lambda t: f"min({t[0]}, {t[1]})"), pair.map(lambda t: f"max({t[0]}, {t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: "clamp({}, {}, {})".format(*t)),
        st.tuples(st.sampled_from(["abs", "floor", "ceil", "round", "-"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(["0", "2", "10"])).map(lambda t: f"round({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(CONDITIONS), inner, inner).map(lambda t: f"(if {t[0]} then {t[1]} else {t[2]})"),
        st.tuples(st.sampled_from(["chain_max", "chain_sum", "chain_max_before", "chain_sum_before"]), inner)
        .map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(EDGES), st.sampled_from(EDGES)).map(
            lambda t: f"bands({t[0]}, [{t[1]}], [1, {t[2]}])"),
        st.tuples(inner, inner).map(lambda t: f"bands({t[0]}, one_band, base={t[1]})"),
        inner.map(lambda t: f"bands({t}, one_band)"),
        st.tuples(inner, st.sampled_from(EDGES), inner).map(lambda t: f"step({t[0]}, [{t[1]}], [{t[2]}, 1])"),
        st.tuples(inner, inner).map(lambda t: f"allocate(institution.fuzz_total * 0 + {t[0]}, {t[1]})"),
    )


FORMULAS = st.recursive(st.sampled_from(LEAVES), _number, max_leaves=6)
TOTALS = st.sampled_from(["sum(claim.total_cost)", "count(claim)", "mean(claim.total_cost where claim.out_of_area)",
                          "min(claim.total_cost)", "max(claim.self_pay_items) * huge", "sum(claim.total_cost) * 1e6",
                          "0", "huge", "-1"])
CLAIM = {"id": "c", "institution": "H1", "episode": "E", "drg_group": "A", "total_cost": 100,
         "admit_date": "2024-03-01", "discharge_date": "2024-03-05"}
SITUATIONS = [
    {"institution": [{"id": "H1", "level": 3}, {"id": "H2", "level": 2}]},  # zero claims
    {"institution": [{"id": "H1", "level": 1}], "claim": [{"id": "lone", "total_cost": 0}]},  # no dates, no links
    {"institution": [{"id": "H1", "level": 3}, {"id": "H2", "level": 2}],
     "claim": [{**CLAIM, "id": f"c{i}", "institution": f"H{1 + i % 2}", "total_cost": [0, 1e13, 5, 0.01][i],
                "out_of_area": i == 2, "admit_date": f"2024-0{2 + 2 * i}-01", "discharge_date": f"2024-0{2 + 2 * i}-09"}
               for i in range(4)]},
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("attack")
    (root / "tables").mkdir()
    (root / "tables" / "empty.csv").write_text("code,value\n", encoding="utf-8")
    (root / "tables" / "one.csv").write_text("code,value\nA,1e308\n", encoding="utf-8")
    return root


def settle(folder: Path, formula: str, total: str) -> None:
    """Load the attack policy with these formulas and evaluate it on every situation: a
    located diagnostic, a fault with a path, or finite values; anything else fails."""
    text = POLICY.replace("FORMULA", formula).replace("TOTAL", total)
    try:
        policy = load_policy_text(text, "attack.yaml", folder)
    except PolicyError as err:
        assert all(d.en and d.zh and d.location.line for d in err.diagnostics), err
        return
    for entities in SITUATIONS:
        try:
            result = run(policy, json.loads(json.dumps(entities)))
        except SituationError as err:
            assert all(f.path and f.en and f.zh for f in err.faults)
            continue
        for rows in result["entities"].values():
            for row in rows:
                assert all(not isinstance(v, float) or math.isfinite(v) for v in row.values()), (formula, row)


@settings(max_examples=30 * SCALE, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(FORMULAS, TOTALS)
def test_built_ins_with_edge_constants_give_a_diagnostic_or_finite_values(folder, formula, total):
    settle(folder, formula, total)


@pytest.mark.parametrize("formula", [
    "bands(total_cost, one_band)", "bands(total_cost, one_band, base=huge)", "lookup(empty.value, drg_group)",
    "lookup(one.value, drg_group) * huge", "allocate(institution.fuzz_total, 0)", "allocate(huge, total_cost)",
    "chain_sum(huge) + chain_max_before(-huge)", "step(total_cost, [1e308], [huge, -huge])",
    "days_between(admit_date, discharge_date) / zero", "year(admit_date) * month(discharge_date)",
])
def test_chosen_edge_formulas(folder, formula):
    settle(folder, formula, "max(claim.self_pay_items) * huge")

"""Supplied values, dated parameters and run overrides, lazy if, money rounding at the output
boundary, situation faults with their JSON path, and the trace (输入、参数、舍入、错误与轨迹)."""

from __future__ import annotations

import math

import pytest
from evalkit import by_id, make_policy, run, warning_codes

from engine.errors import SituationError
from engine.explain.trace import build_trace
from engine.run.evaluate import evaluate

# ---- supplied values 输入值覆盖公式 ---------------------------------------------------------


def test_a_supplied_value_replaces_the_formula_on_its_row_only():
    policy = make_policy({"claim": {
        "covered": {"formula": "total_cost - self_pay_items", "unit": "yuan"},
        "fund_paid": {"formula": "covered * 90%", "unit": "yuan"},
    }, "institution": {"covered": {"formula": "sum(claim.covered)", "unit": "yuan"}}})
    result = run(policy, {"institution": [{"id": "H"}], "claim": [
        {"id": "a", "institution": "H", "total_cost": 1000, "self_pay_items": 100},
        {"id": "b", "institution": "H", "total_cost": 1000, "self_pay_items": 100, "covered": 500},
        {"id": "c", "institution": "H", "total_cost": 2000},
    ]})
    assert by_id(result, "claim", "covered") == {"a": 900.0, "b": 500.0, "c": 2000.0}
    assert by_id(result, "claim", "fund_paid") == {"a": 810.0, "b": 450.0, "c": 1800.0}
    assert by_id(result, "institution", "covered") == {"H": 3400.0}


def test_supplied_on_every_row_and_in_the_trace():
    policy = make_policy({"claim": {"covered": "total_cost - self_pay_items", "half": "covered / 2"}})
    result = evaluate(policy, {"period": "2024", "entities": {"claim": [
        {"id": "a", "total_cost": 10, "covered": 4}, {"id": "b", "total_cost": 10, "covered": 6}]}}, tracer=build_trace)
    assert by_id(result, "claim", "half") == {"a": 2.0, "b": 3.0}
    supplied = result["trace"]["claim.a.covered"]
    assert supplied["value"] == 4.0 and supplied["formula"] is None and supplied["inputs"] == {}


# ---- dated parameters and run overrides 按日期取值与本次覆盖 ------------------------------------

DATED = {"penalty": {"values": [{"from": "2024-01-01", "value": "10%"},
                                {"from": "2024-07-01", "value": "15%", "source": "补充通知"}]},
         "deductible": {"values": [{"from": "2024-01-01", "value": {"1": 300, "2": 600}},
                                   {"from": "2024-07-01", "value": {"1": 400, "2": 800}}]}}


def dated_policy():
    return make_policy({"claim": {"penalty_rate": "penalty",
                                  "deductible_due": {"formula": "deductible[institution.level]", "unit": "yuan"}}},
                       parameters=DATED)


def dated_claims():
    return {"institution": [{"id": "H1", "level": 1}, {"id": "H2", "level": 2}], "claim": [
        {"id": "june", "institution": "H1", "discharge_date": "2024-06-30"},
        {"id": "july", "institution": "H1", "discharge_date": "2024-07-01"},
        {"id": "dec", "institution": "H2", "admit_date": "2024-06-20", "discharge_date": "2024-12-31"},
        {"id": "admitted_before", "institution": "H2", "admit_date": "2024-06-01", "discharge_date": "2024-07-02"},
        {"id": "undated", "institution": "H2"},  # no date: the end of the period (2024-12-31)
    ]}


def test_a_value_switching_inside_the_year_follows_the_discharge_date():
    result = run(dated_policy(), dated_claims())
    assert by_id(result, "claim", "penalty_rate") == {"june": 0.1, "july": 0.15, "dec": 0.15,
                                                      "admitted_before": 0.15, "undated": 0.15}
    assert by_id(result, "claim", "deductible_due") == {"june": 300.0, "july": 400.0, "dec": 800.0,
                                                        "admitted_before": 800.0, "undated": 800.0}
    # a period ending before the switch: the undated claim takes the first value
    result = evaluate(dated_policy(), {"period": "2024-06", "entities": dated_claims()})
    assert by_id(result, "claim", "penalty_rate")["undated"] == 0.1


def test_a_run_level_override_replaces_every_version():
    result = run(dated_policy(), dated_claims(), parameters={"penalty": "20%", "deductible": {"1": 1, "2": 2}})
    assert set(by_id(result, "claim", "penalty_rate").values()) == {0.2}
    assert by_id(result, "claim", "deductible_due") == {"june": 1.0, "july": 1.0, "dec": 2.0,
                                                        "admitted_before": 2.0, "undated": 2.0}


def test_an_unknown_category_gives_zero_and_a_warning():
    result = run(dated_policy(), {"institution": [{"id": "H9", "level": 9}],
                                  "claim": [{"id": "x", "institution": "H9", "discharge_date": "2024-03-01"}]})
    assert by_id(result, "claim", "deductible_due") == {"x": 0.0}
    assert ("category_missing", "variables.claim.deductible_due") in warning_codes(result)


# ---- lazy if 惰性条件 -----------------------------------------------------------------------


def test_division_by_zero_in_the_branch_not_taken_gives_no_warning():
    policy = make_policy({"claim": {
        "guarded": "if total_cost > 0 then 1000 / total_cost else -1",
        "guarded_scalar": "if 1 > 2 then 1 / 0 else 7",
    }})
    result = run(policy, {"claim": [{"id": "a", "total_cost": 0}, {"id": "b", "total_cost": 8}]})
    assert by_id(result, "claim", "guarded") == {"a": -1.0, "b": 125.0}
    assert by_id(result, "claim", "guarded_scalar") == {"a": 7.0, "b": 7.0}
    assert result["warnings"] == []


def test_division_by_zero_taken_gives_zero_and_a_warning():
    policy = make_policy({"claim": {"ratio": "1000 / total_cost", "inside_if": "if out_of_area then 1 / total_cost else 2"}})
    result = run(policy, {"claim": [{"id": "a", "total_cost": 0, "out_of_area": True},
                                    {"id": "b", "total_cost": 8},
                                    {"id": "c", "total_cost": 0}]})
    assert by_id(result, "claim", "ratio") == {"a": 0.0, "b": 125.0, "c": 0.0}
    assert by_id(result, "claim", "inside_if") == {"a": 0.0, "b": 2.0, "c": 2.0}
    warnings = {(w["code"], w["path"]): w["rows"] for w in result["warnings"]}
    assert warnings == {("division_by_zero", "variables.claim.ratio"): 2,
                        ("division_by_zero", "variables.claim.inside_if"): 1}


# ---- money rounding at the output boundary only 仅在输出时舍入到分 -----------------------------


@pytest.mark.parametrize("value,money", [(0.125, 0.13), (1.005, 1.01), (2.675, 2.68), (0.124999, 0.12),
                                         (-0.125, -0.13), (-1.005, -1.01), (-0.001, 0.0), (1e8 + 0.125, 1e8 + 0.13),
                                         (85412793.365, 85412793.37), (-642879968.185, -642879968.19)])
def test_money_rounds_half_up_rates_do_not(value, money):
    policy = make_policy({"claim": {
        "value": {"unit": "ratio"},  # an input of this policy, any sign
        "amount": {"formula": "value", "unit": "yuan"},
        "rate": {"formula": "value", "unit": "ratio"},
        "amount_times_1000": {"formula": "amount * 1000", "unit": "yuan"},
    }})
    result = run(policy, {"claim": [{"id": "x", "value": value}]})
    row = result["entities"]["claim"][0]
    assert row["amount"] == money
    assert math.copysign(1, row["amount"]) == (1 if money >= 0 else -1)  # no "-0.0"
    assert row["rate"] == value
    # downstream formulas read the unrounded value: 0.125 × 1000 = 125, not 130
    assert row["amount_times_1000"] == round(value * 1000, 2)


def test_round_in_a_formula_is_half_up_too():
    policy = make_policy({"claim": {"value": {"unit": "ratio"}, "r": "round(value, 2)", "r0": "round(value)",
                                    "r1": "round(value, digits=1)"}})
    result = run(policy, {"claim": [{"id": "a", "value": 2.675}, {"id": "b", "value": -0.5},
                                    {"id": "c", "value": 0.25}]})
    assert by_id(result, "claim", "r") == {"a": 2.68, "b": -0.5, "c": 0.25}
    assert by_id(result, "claim", "r0") == {"a": 3.0, "b": -1.0, "c": 0.0}
    assert by_id(result, "claim", "r1") == {"a": 2.7, "b": -0.5, "c": 0.3}


# ---- situation faults 情形错误 ---------------------------------------------------------------


def faults_of(policy, data) -> dict[str, str]:
    with pytest.raises(SituationError) as caught:
        evaluate(policy, data)
    faults = caught.value.faults
    assert all(f.en and f.zh for f in faults)
    return {f.path: f.en for f in faults}


def test_every_fault_of_a_situation_is_reported_at_once():
    policy = make_policy({"claim": {"double": "total_cost * 2"}},
                         parameters={"rate": "5%", "levels": {"1": 10, "2": 20}})
    faults = faults_of(policy, {
        "period": "2024-13",
        "parameters": {"rat": 0.1, "levels": "x"},
        "entitees": {},
        "outputs": ["claim.nope"],
        "entities": {
            "claim": [
                {"id": "a", "total_cots": 1, "institution": "H9"},
                {"id": "a", "total_cost": "abc"},
                {"id": "b", "total_cost": float("nan")},
                {"id": "c", "total_cost": float("inf"), "setting": "inpatent", "out_of_area": "yes",
                 "admit_date": "2024-02-30"},
                {"total_cost": 1},
                5,
            ],
            "claims": [],
            "account": [{"id": "H1"}],  # an account id is <institution>|<fund>
        },
    })
    assert set(faults) == {
        "period", "entitees", "parameters.rat", "parameters.levels", "outputs[0]",
        "entities.claim[0].total_cots", "entities.claim[0].institution", "entities.claim[1].id",
        "entities.claim[1].total_cost", "entities.claim[2].total_cost", "entities.claim[3].total_cost",
        "entities.claim[3].setting", "entities.claim[3].out_of_area", "entities.claim[3].admit_date",
        "entities.claim[4].id", "entities.claim[5]", "entities.claims", "entities.account[0].id",
    }
    assert "did you mean 'total_cost'?" in faults["entities.claim[0].total_cots"]
    assert "did you mean 'entities'?" in faults["entitees"]
    assert "did you mean 'rate'?" in faults["parameters.rat"]
    assert "did you mean 'claim'?" in faults["entities.claims"]
    assert "did you mean 'inpatient'?" in faults["entities.claim[3].setting"]
    assert "'H9'" in faults["entities.claim[0].institution"]
    assert "entities.claim[0]" in faults["entities.claim[1].id"]
    assert "the text 'abc'" in faults["entities.claim[1].total_cost"]
    assert "finite" in faults["entities.claim[2].total_cost"] and "finite" in faults["entities.claim[3].total_cost"]


def test_an_unknown_link_alone_and_a_period_outside_the_policy():
    policy = make_policy({"claim": {"double": "total_cost * 2"}}, effective=("2024-01-01", "2024-12-31"))
    assert set(faults_of(policy, {"period": "2024", "entities": {"claim": [{"id": "a", "fund": "F"}]}})) == \
        {"entities.claim[0].fund"}
    assert set(faults_of(policy, {"period": "2025", "entities": {"claim": [{"id": "a", "total_cost": "x"}]}})) == \
        {"period", "entities.claim[0].total_cost"}


def test_a_good_situation_has_no_faults():
    policy = make_policy({"claim": {"double": "total_cost * 2"}})
    result = evaluate(policy, {"period": {"start": "2024-03-01", "end": "2024-03-31"},
                               "entities": {"claim": [{"id": 1, "total_cost": 2}]}})
    assert result["entities"]["claim"] == [{"id": "1", "double": 4.0}]
    assert result["period"] == "2024-03-01/2024-03-31"


# ---- trace 计算轨迹 ---------------------------------------------------------------------------


def test_trace_gives_formula_inputs_and_clause():
    policy = make_policy({
        "claim": {
            "standard": {"formula": "deductible[institution.level]", "unit": "yuan", "source": "三（一）"},
            "due": {"formula": "max(0, chain_max(standard) - chain_sum_before(due))", "unit": "yuan",
                    "source": "三（二）2"},
            "paid": {"formula": "due + (total_cost - due) * penalty", "unit": "yuan", "assumed": "as in 2023",
                     "note": "个人负担"},
        },
        "institution": {"count": {"formula": 'count(claim where claim.setting == "inpatient")', "source": "四"}},
    }, parameters={"deductible": {"1": 300, "3": 900}, "penalty": "10%"})
    result = evaluate(policy, {"period": "2024", "entities": {
        "institution": [{"id": "H1", "level": 1}, {"id": "H3", "level": 3}],
        "claim": [{"id": "c1", "institution": "H1", "episode": "E", "total_cost": 1000.005, "admit_date": "2024-01-01"},
                  {"id": "c2", "institution": "H3", "episode": "E", "total_cost": 5000, "admit_date": "2024-01-05"}],
    }}, tracer=build_trace)
    trace = result["trace"]
    due = trace["claim.c2.due"]
    assert due["value"] == 600.0
    assert due["formula"] == "max(0, chain_max(standard) - chain_sum_before(due))"
    assert due["source"] == "三（二）2" and due["assumed"] is None
    assert due["inputs"] == {"chain_max(standard)": 900.0, "chain_sum_before(due)": 300.0}
    paid = trace["claim.c1.paid"]
    assert paid["inputs"] == {"due": 300.0, "total_cost": 1000.01, "penalty": 0.1}  # money shown to the fen
    assert paid["value"] == 370.0 and paid["assumed"] == "as in 2023" and paid["note"] == "个人负担"
    assert trace["claim.c1.standard"]["inputs"]["deductible[institution.level]"] == 300.0
    assert trace["institution.H1.count"]["inputs"] == {'count(claim where (claim.setting == "inpatient"))': 1.0}
    assert trace["institution.H1.count"]["source"] == "四"
    # no trace unless asked
    assert evaluate(policy, {"period": "2024", "entities": {"claim": [{"id": "x", "total_cost": 0}]}})["trace"] is None

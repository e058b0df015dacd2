"""Policy checks (政策校验): invariants declared per entity in `checks:`; `error` stops the run and
names the failing rows (API 422 policy_check_failed, batch settlement writes nothing), `warning`
is reported beside the result. Every expected figure below is computed by hand in its comment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import EXIT_CHECK, main
from engine.compile.build import load_policy_text
from engine.errors import PolicyCheckFailed
from engine.policy.registry import Registry
from engine.run.evaluate import evaluate
from engine.run.policy_checks import FIRST_ROWS, merge

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = Registry.load()
BIG = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1")) > 1  # full-size attacks only when asked


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")


def budget_fund(fid: str, revenue: float, last_year: float, growth: float = 0.0, share: float = 0.5) -> dict:
    return {"id": fid, "revenue": revenue, "last_year_spending": last_year, "proposed_growth": growth,
            "inpatient_share": share}


# Panzhihua: a level-3 out-of-area stay of 100 000 is paid by item (四（三）4):
# deductible 900, coinsurance 20% + 10% = 30%, fund 99 100 × 70% = 69 370 (taken off the
# inpatient budget). Fund F: 100 000 × (1 + 0) × 50% = 50 000 − 69 370 = −19 370 < 0.
OUT_OF_AREA_STAY = {"id": "c1", "institution": "A", "fund": "F", "out_of_area": True, "total_cost": 100000,
                    "admit_date": "2019-03-01", "discharge_date": "2019-03-05", "los_days": 4,
                    "drg_group": "ZZ"}  # required fields (paid by item: the group plays no part)


def negative_budget_situation() -> dict:
    return {"period": "2019", "entities": {
        "fund": [budget_fund("E", 10_000_000, 1_000_000), budget_fund("F", 1_000_000, 100_000)],
        "institution": [{"id": "A", "level": 3, "capitation_rate": 0, "prepaid": 0, "referrals_up": 0,
                         "signed_residents": 0}],  # required inputs, not part of this check
        "claim": [OUT_OF_AREA_STAY]}}


def test_error_check_is_a_422_naming_the_check_and_its_rows(client):
    r = client.post("/v1/cities/panzhihua/evaluate", json=negative_budget_situation())
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "policy_check_failed"
    [failure] = body["detail"]  # E passes (no claims: 500 000 ≥ 0); F's point value check passes (no points)
    assert failure["check"] == "points_budget_not_negative"
    assert failure["severity"] == "error" and failure["entity"] == "fund"
    assert failure["source"] == "四（二）2"
    assert failure["message"].startswith("the points budget is negative")
    assert failure["message_zh"].startswith("点数法预算为负数")
    assert failure["count"] == 1 and failure["ids"] == ["F"]
    assert failure["path"] == "entities.fund[1]" and failure["paths"] == ["entities.fund[1]"]


def test_error_check_in_a_direct_run_raises_and_names_the_rows():
    with pytest.raises(PolicyCheckFailed) as caught:
        evaluate(REGISTRY.pick("panzhihua", None), negative_budget_situation())
    assert [(f["check"], f["ids"]) for f in caught.value.failures] == [("points_budget_not_negative", ["F"])]


def test_a_check_runs_only_when_the_run_computes_what_it_reads():
    """Asking for a claim's patient share does not compute the fund's budget: no check on it.
    patient_paid = 900 + 99 100 × 30% = 30 630."""
    situation = {**negative_budget_situation(), "outputs": ["claim.patient_paid"]}
    result = evaluate(REGISTRY.pick("panzhihua", None), situation)
    assert result["entities"]["claim"][0]["patient_paid"] == pytest.approx(30630, abs=0.005)
    assert not [w for w in result["warnings"] if w["code"] == "policy_check"]


@pytest.mark.parametrize(("supplied", "fails"), [(0, False), (-0.01, True), (0.01, False)])
def test_points_budget_on_its_edge(supplied, fails):
    """A supplied value replaces the formula and is checked: 0 is not negative, −0.01 is."""
    situation = {"period": "2019", "entities": {"fund": [{**budget_fund("F", 1000, 1000), "points_budget": supplied}]}}
    policy = REGISTRY.pick("panzhihua", None)
    if fails:
        with pytest.raises(PolicyCheckFailed) as caught:
            evaluate(policy, situation)
        assert caught.value.failures[0]["check"] == "points_budget_not_negative"
    else:
        evaluate(policy, situation)


def test_warning_check_is_reported_beside_the_result_with_its_rows(client):
    """Budgets 1 000 × (1 + 50%) = 1 500: equal to revenue 1 500 is no deficit (edge included);
    above revenue 1 499.99 is (原则上不编制赤字预算, a warning)."""
    situation = {"period": "2019", "entities": {"fund": [budget_fund("A", 1500, 1000, 0.5),
                                                         budget_fund("B", 1499.99, 1000, 0.5)]}}
    r = client.post("/v1/cities/panzhihua/evaluate", json=situation)
    assert r.status_code == 200
    body = r.json()
    assert [f["budget_total"] for f in body["entities"]["fund"]] == [1500, 1500]
    [warning] = [w for w in body["warnings"] if w["code"] == "policy_check"]
    assert warning["check"] == "no_deficit_budget" and warning["path"] == "checks.fund.no_deficit_budget"
    assert warning["rows"] == 1 and warning["ids"] == ["B"] and warning["paths"] == ["entities.fund[1]"]
    assert warning["source"] == "四（一）1" and warning["message_zh"] and warning["message"]


def test_budget_equal_to_revenue_passes_in_the_template():
    """Template: points_budget = round(revenue × (1 − risk_fund_rate), 2) ≤ revenue; with the
    rate overridden to 0 the budget equals the revenue exactly and the check passes."""
    situation = {"period": "2024", "parameters": {"risk_fund_rate": 0},
                 "entities": {"fund": [{"id": "F", "revenue": 1234567.89}]}, "outputs": ["fund.points_budget"]}
    result = evaluate(REGISTRY.pick("_template", None), situation)
    assert result["entities"]["fund"][0]["points_budget"] == 1234567.89


def test_budget_equal_to_revenue_after_growth_is_no_deficit():
    """900 000 000 × 1.1 is 990 000 000.0000001 in float64; exact edges (C5) make it equal."""
    situation = {"period": "2019", "entities": {"fund": [budget_fund("F", 990_000_000, 900_000_000, 0.1)]}}
    result = evaluate(REGISTRY.pick("panzhihua", None), situation)
    assert not [w for w in result["warnings"] if w["code"] == "policy_check"]


def test_parts_that_do_not_add_up_stop_the_run():
    """Zibo 二（一）6: reserve 10% × 1 000 000 = 100 000; items 1–5 are 0; a supplied DIP budget
    of 950 000 makes 1 050 000 ≠ revenue 1 000 000; the computed one (900 000) adds up."""
    items = ("chronic_cost_growth", "chronic_incidence_change", "critical_illness_premium", "insured_persons",
             "last_year_chronic_outpatient", "last_year_other_methods", "last_year_out_of_area",
             "other_methods_growth", "out_of_area_growth", "outpatient_quota", "signed_persons")
    fund = {"id": "F", "revenue": 1_000_000, **dict.fromkeys(items, 0)}  # required inputs, all 0 here
    policy = REGISTRY.pick("zibo", None)
    ok = evaluate(policy, {"period": "2022", "entities": {"fund": [fund]}, "outputs": ["fund.points_budget"]})
    assert ok["entities"]["fund"][0]["points_budget"] == 900_000
    with pytest.raises(PolicyCheckFailed) as caught:
        evaluate(policy, {"period": "2022", "entities": {"fund": [{**fund, "points_budget": 950_000}]},
                          "outputs": ["fund.points_budget"]})
    assert [f["check"] for f in caught.value.failures] == ["budget_parts_add_up"]


def test_every_city_declares_its_checks(client):
    """domain.md revision 2, C3 and each city's section, with the names the policies use today."""
    want = {"hangzhou": {"points_budget_not_negative", "point_value_positive", "pool_has_points",
                         "payment_not_negative"},
            "panzhihua": {"points_budget_not_negative", "point_value_positive", "pool_has_points",
                          "payment_not_negative", "no_deficit_budget"},
            "zibo": {"points_budget_not_negative", "point_value_positive", "pool_has_points"},
            "jingdezhen": {"package_spending_known"},
            "tianjin": {"capitation_payment_not_negative"},
            "_template": {"points_budget_not_negative", "point_value_positive", "budget_within_revenue"}}
    for city, names in want.items():
        checks = client.get(f"/v1/cities/{city}").json()["checks"]
        assert names <= {c["name"] for c in checks}, city
        for c in checks:
            assert c["severity"] in ("error", "warning") and c["message"]["zh"] and c["message"]["en"]
            assert c["source"] or c["assumed"], (city, c["name"])


def test_validate_lists_the_checks(capsys):
    assert main(["validate", str(ROOT / "policies" / "panzhihua.yaml")]) == 0
    out = capsys.readouterr().out
    assert "checks / 校验 (10)" in out  # with points_budget_plausible and account_input_on_institution
    assert "fund.no_deficit_budget (warning, 四（一）1): not deficit_budget" in out


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(rows[0])
    path.write_text("\n".join([",".join(keys)] + [",".join(str(r[k]).lower() if isinstance(r[k], bool)
                                                            else str(r[k]) for k in keys) for r in rows]) + "\n",
                    encoding="utf-8")


def test_settle_exits_non_zero_names_the_rows_and_writes_nothing(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    situation = negative_budget_situation()["entities"]
    write_csv(data / "fund.csv", situation["fund"])
    write_csv(data / "institution.csv", situation["institution"])
    write_csv(data / "claim.csv", situation["claim"])
    code = main(["settle", "panzhihua", "--data", str(data), "--out", str(out), "--period", "2019"])
    assert code == EXIT_CHECK
    err = capsys.readouterr().err
    assert "fund.points_budget_not_negative [四（二）2]" in err and "点数法预算为负数" in err
    assert "1 row(s) / 行: F" in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_failures_found_in_chunks_are_merged():
    part = {"entity": "claim", "check": "c", "count": 15, "ids": [str(i) for i in range(15)],
            "paths": [f"claim[{i}]" for i in range(15)], "severity": "warning"}
    [merged] = merge([part, {**part, "ids": ["a"] * 15, "paths": ["p"] * 15}])
    assert merged["count"] == 30 and len(merged["ids"]) == FIRST_ROWS == len(merged["paths"])
    assert merged["ids"][:15] == part["ids"] and part["count"] == 15  # the parts are not changed


CLAIM_CHECK = """  # appended to the template's `checks:`, its last section
  claim:
    self_pay_within_cost:
      formula: self_pay_items <= total_cost
      severity: warning
      message: {zh: 自费项目超过总费用, en: self-pay items exceed the cost}
      assumed: a test check on claims
"""


def test_claim_checks_name_the_first_rows_in_request_order():
    """A warning check on claims: self-pay 6 > 5 (b) and 8 > 7 (d) fail; 0 ≤ 0 (c) is on the edge
    and passes: 2 rows, ids b and d."""
    text = (ROOT / "policies" / "_template.yaml").read_text(encoding="utf-8") + CLAIM_CHECK
    policy = load_policy_text(text, "t.yaml", ROOT / "policies")
    claims = [{"id": i, "total_cost": c, "self_pay_items": s, "institution": "H", "fund": "F",
               "admit_date": "2024-02-01", "discharge_date": "2024-02-03"}
              for i, c, s in zip("abcd", [10, 5, 0, 7], [0, 6, 0, 8], strict=True)]
    situation = {"period": "2024", "entities": {"fund": [{"id": "F", "revenue": 1000}],
                                                "institution": [{"id": "H", "level": 1}], "claim": claims},
                 "outputs": ["claim.fund_payable"]}
    result = evaluate(policy, json.loads(json.dumps(situation)))
    [warning] = [w for w in result["warnings"] if w["code"] == "policy_check"]
    assert (warning["rows"], warning["ids"]) == (2, ["b", "d"])
    assert warning["paths"] == ["entities.claim[1]", "entities.claim[3]"]
    assert warning["assumed"] == "a test check on claims"


@pytest.mark.parametrize("rows", [2_000] + ([100_000] if BIG else []))
def test_every_row_failing_gives_a_bounded_answer(rows):
    """Every claim fails a warning check: the warning counts them all and names the first 20
    (request order), quickly; the answer does not grow with the rows."""
    text = (ROOT / "policies" / "_template.yaml").read_text(encoding="utf-8") + CLAIM_CHECK
    policy = load_policy_text(text, "t.yaml", ROOT / "policies")
    claims = [{"id": f"c{i}", "total_cost": 1, "self_pay_items": 2, "institution": "H", "fund": "F",
               "admit_date": "2024-02-01", "discharge_date": "2024-02-03"} for i in range(rows)]
    situation = {"period": "2024", "entities": {"fund": [{"id": "F", "revenue": 1000}],
                                                "institution": [{"id": "H", "level": 1}], "claim": claims},
                 "outputs": ["claim.fund_payable"]}
    started = time.perf_counter()
    result = evaluate(policy, situation)
    [warning] = [w for w in result["warnings"] if w["code"] == "policy_check"]
    assert warning["rows"] == rows and warning["ids"] == [f"c{i}" for i in range(FIRST_ROWS)]
    assert len(json.dumps(warning)) < 2_000
    assert time.perf_counter() - started < (2 if rows <= 2_000 else 60)

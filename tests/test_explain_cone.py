"""Explaining one value by computing only its cone: at thousands of claims (past the full trace's
limit), from a situation, from batch files, through the API; values recomputed here with
fractions.Fraction from the inputs, never copied from the engine (单值解释)."""

from __future__ import annotations

import json
import os
import random
import time
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.compile.build import load_policy_text
from engine.errors import SituationError
from engine.explain.cone import UnknownValue, explain_situation, explain_value
from engine.explain.tree import render_explanation
from engine.run.evaluate import checked_situation, evaluate

SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))
CLAIMS = 3_000
DEDUCTIBLE, COINSURANCE = Fraction(500), Fraction(20, 100)
BUDGETS = {"H1": Fraction(10**9), "H2": Fraction(123_456_78, 100), "H3": Fraction(10**9)}

POLICY = """
policy:
  id: toy_cone
  name: {zh: 依赖锥测试市, en: Cone test city}
  notice: 测医保〔2024〕9号
  issuer: 测试市医疗保障局
  effective: {from: 2024-01-01}

parameters:
  deductible:
    label: {zh: 起付线, en: deductible}
    unit: yuan
    value: 500
    source: 第二条
  coinsurance:
    label: {zh: 自付比例, en: coinsurance}
    unit: ratio
    value: 20%
    source: 第三条

variables:
  claim:
    covered:
      unit: yuan
      label: {zh: 合规费用, en: covered cost}
      formula: max(0, total_cost - self_pay_items - deductible)
      source: 第二条
    fund_payable:
      unit: yuan
      label: {zh: 基金应付, en: fund payable}
      formula: covered * (1 - coinsurance)
      source: 第三条
    doubled:
      unit: yuan
      label: {zh: 无关值, en: unrelated}
      formula: total_cost * 2
      source: 第九条
    fund_share:
      unit: ratio
      label: {zh: 占基金比例, en: share of the fund}
      formula: fund_payable / fund.total_payable
      source: 第八条
  institution:
    budget:
      unit: yuan
      label: {zh: 预算, en: budget}
    payable:
      unit: yuan
      label: {zh: 应付合计, en: payable}
      formula: sum(claim.fund_payable)
      source: 第四条
    payment:
      unit: yuan
      label: {zh: 支付额, en: payment}
      formula: min(payable, budget)
      source: 第五条
    claims:
      unit: count
      label: {zh: 病例数, en: claims}
      formula: count(claim)
      source: 第六条
  fund:
    total_payable:
      unit: yuan
      label: {zh: 基金应付合计, en: fund total payable}
      formula: sum(claim.fund_payable)
      source: 第七条
"""


@pytest.fixture(scope="module")
def policy():
    return load_policy_text(POLICY, "toy_cone.yaml")


def claims_data(n: int, seed: int = 7) -> list[dict]:
    """Claims with costs in fen, over three institutions."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cost = rng.randint(0, 5_000_000)  # fen
        out.append({"id": f"c{i}", "institution": f"H{1 + i % 3}", "fund": "F",
                    "total_cost": cost / 100, "self_pay_items": rng.randint(0, cost // 4) / 100})
    return out


def situation(n: int = CLAIMS) -> dict:
    return {"period": "2024", "entities": {
        "fund": [{"id": "F"}],
        "institution": [{"id": h, "budget": float(b)} for h, b in BUDGETS.items()],
        "claim": claims_data(n)}}


def fen(x: Fraction) -> float:
    """Half up to the fen (amounts here are never negative)."""
    return float(Fraction(int(x * 100 + Fraction(1, 2)), 100))


def fund_payable(claim: dict) -> Fraction:
    cost, self_pay = Fraction(str(claim["total_cost"])), Fraction(str(claim["self_pay_items"]))
    return max(Fraction(0), cost - self_pay - DEDUCTIBLE) * (1 - COINSURANCE)


def expected_payment(claims: list[dict], institution: str) -> Fraction:
    payable = sum((fund_payable(c) for c in claims if c["institution"] == institution), Fraction(0))
    return min(payable, BUDGETS[institution])


def explain(policy, data: dict, target: str, **kw) -> dict:
    read = checked_situation(policy, data)
    return explain_value(policy, read.population, target, read.overrides, **kw)


def test_institution_payment_at_3000_claims_is_explained_with_the_value_the_result_shows(policy):
    data = situation()
    tree = explain(policy, data, "institution.H2.payment")
    want = expected_payment(data["entities"]["claim"], "H2")
    assert want == BUDGETS["H2"]  # H2 is capped at its budget; H1 is not
    assert tree["value"] == fen(want)
    shown = {r["id"]: r for r in evaluate(policy, data)["entities"]["institution"]}
    assert shown["H2"]["payment"] == tree["value"]
    assert tree["formula"] == "min(payable, budget)" and tree["source"] == "第五条"
    inputs = {i["text"]: i for i in tree["inputs"]}
    assert inputs["budget"]["kind"] == "variable" and inputs["budget"]["value"] == float(BUDGETS["H2"])
    payable = inputs["payable"]["explanation"]
    assert payable["key"] == "institution.H2.payable"
    want_payable = sum((fund_payable(c) for c in data["entities"]["claim"] if c["institution"] == "H2"), Fraction(0))
    assert payable["value"] == fen(want_payable)
    h1 = explain(policy, data, "institution.H1.payment")
    assert h1["value"] == fen(expected_payment(data["entities"]["claim"], "H1")) == shown["H1"]["payment"]


def test_an_aggregation_summarises_its_children_and_lists_the_largest(policy):
    data = situation()
    tree = explain(policy, data, "institution.H3.payable", top=5)
    summary = tree["inputs"][0]["children"]
    mine = [c for c in data["entities"]["claim"] if c["institution"] == "H3"]
    assert summary["count"] == len(mine) == CLAIMS // 3
    assert summary["sum"] == fen(sum((fund_payable(c) for c in mine), Fraction(0)))
    largest = sorted(mine, key=lambda c: (-fund_payable(c), int(c["id"][1:])))[:5]
    assert [c["id"] for c in summary["top"]] == [c["id"] for c in largest]
    assert [c["value"] for c in summary["top"]] == [fen(fund_payable(c)) for c in largest]
    assert summary["shown"] == 5 and len(summary["top"]) == 5
    # each child is explainable in turn by the same call
    first = summary["top"][0]
    assert first["key"] == f"claim.{largest[0]['id']}.fund_payable"
    child = explain(policy, data, first["key"])
    assert child["value"] == first["value"]


def test_a_claim_value_is_explained_with_its_inputs_clauses_and_parent(policy):
    data = situation()
    claim = data["entities"]["claim"][1234]
    tree = explain(policy, data, f"claim.{claim['id']}.fund_payable")
    assert tree["value"] == fen(fund_payable(claim))
    assert tree["formula"] == "covered * (1 - coinsurance)" and tree["source"] == "第三条"
    inputs = {i["text"]: i for i in tree["inputs"]}
    assert inputs["coinsurance"]["kind"] == "parameter" and inputs["coinsurance"]["value"] == 0.2
    assert inputs["coinsurance"]["source"] == "第三条"
    covered = inputs["covered"]["explanation"]
    want_covered = max(Fraction(0), Fraction(str(claim["total_cost"])) - Fraction(str(claim["self_pay_items"])) - 500)
    assert covered["value"] == fen(want_covered)
    assert {i["text"]: i["value"] for i in covered["inputs"]}["total_cost"] == claim["total_cost"]
    share = explain(policy, data, f"claim.{claim['id']}.fund_share")
    parent = {i["text"]: i for i in share["inputs"]}["fund.total_payable"]
    assert parent["kind"] == "parent" and parent["key"] == "fund.F.total_payable"
    total = sum((fund_payable(c) for c in data["entities"]["claim"]), Fraction(0))
    assert parent["value"] == fen(total)
    assert share["value"] == pytest.approx(float(fund_payable(claim) / total), rel=1e-12)


def test_the_cone_computes_fewer_steps_than_the_whole_plan(policy):
    tree = explain(policy, situation(30), "institution.H1.payment")
    assert tree["cone"]["steps"] == ["claim.covered", "claim.fund_payable", "institution.payable",
                                     "institution.payment"]
    assert tree["cone"]["plan_steps"] == len(policy.plan.steps) == 8
    assert [s.variable.name for s in policy.plan.cone(("claim", "covered"))] == ["covered"]
    assert policy.plan.cone(("claim", "total_cost")) == []  # an input depends on nothing


def test_a_missing_id_or_variable_is_named_with_a_suggestion(policy):
    data = situation(30)
    with pytest.raises(UnknownValue) as err:
        explain(policy, data, "claim.c1x.fund_payable")
    fault = err.value.faults[0]
    assert fault.path == "target" and "'c1x'" in fault.en and "c1x" in fault.zh and "did you mean c1" in fault.en
    with pytest.raises(UnknownValue) as err:
        explain(policy, data, "institution.H1.paymnt")
    assert "no variable 'paymnt'" in err.value.faults[0].en and "payment" in err.value.faults[0].zh
    with pytest.raises(UnknownValue) as err:
        explain(policy, data, "clam.c1.covered")
    assert "no entity 'clam'" in err.value.faults[0].en and "claim" in err.value.faults[0].en
    with pytest.raises(UnknownValue) as err:
        explain(policy, data, "payment")
    assert err.value.status == 422 and "entity.id.variable" in err.value.faults[0].en


def test_a_missing_id_among_many_still_gets_a_suggestion(policy):
    with pytest.raises(UnknownValue) as err:
        explain(policy, situation(CLAIMS if SCALE == 1 else 30_000), "claim.c2999x.covered")
    assert "did you mean c2999" in err.value.faults[0].en


def test_input_and_supplied_values_are_explained_as_such(policy):
    data = situation(30)
    data["entities"]["claim"][0]["covered"] = 42
    tree = explain(policy, data, "claim.c0.fund_payable")
    covered = {i["text"]: i for i in tree["inputs"]}["covered"]
    assert covered["value"] == 42 and covered["explanation"]["supplied"] is True
    assert covered["explanation"]["formula"] is None and covered["explanation"]["inputs"] == []
    assert tree["value"] == fen(Fraction(42) * (1 - COINSURANCE))
    assert explain(policy, data, "claim.c0.covered")["supplied"] is True
    given = explain(policy, data, "claim.c3.total_cost")
    assert given["formula"] is None and given["value"] == data["entities"]["claim"][3]["total_cost"]


def test_cli_explains_from_a_situation_and_from_batch_files(policy, tmp_path, capsys):
    (tmp_path / "toy_cone.yaml").write_text(POLICY, encoding="utf-8")
    data = situation()
    (tmp_path / "situation.json").write_text(json.dumps(data), encoding="utf-8")
    want = fen(expected_payment(data["entities"]["claim"], "H2"))
    assert main(["explain", str(tmp_path / "toy_cone.yaml"), str(tmp_path / "situation.json"),
                 "institution.H2.payment"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"institution.H2.payment = {want:,.2f}".rstrip("0").rstrip("."))
    assert "1,000 claim rows" in out and "institution.H2.payable" in out
    folder = tmp_path / "data"
    folder.mkdir()
    claims = data["entities"]["claim"]
    pq.write_table(pa.table({k: [c[k] for c in claims] for k in claims[0]}), folder / "claim.parquet")
    (folder / "institution.csv").write_text("id,budget\n" + "".join(f"{h},{float(b)}\n" for h, b in BUDGETS.items()))
    (folder / "fund.csv").write_text("id\nF\n")
    assert main(["explain", str(tmp_path / "toy_cone.yaml"), "--data", str(folder), "--period", "2024",
                 "institution.H2.payment", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == want
    assert main(["explain", str(tmp_path / "toy_cone.yaml"), "--data", str(folder), "--period", "2024",
                 "institution.H7.payment"]) == 2
    assert "no institution with id 'H7'" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "toy_cone.yaml"), str(tmp_path / "situation.json")]) == 2


def test_the_text_tree_lists_children_and_nested_values(policy):
    text = render_explanation(explain(policy, situation(30), "institution.H1.payment", top=2, depth=3))
    lines = text.splitlines()
    assert lines[0].startswith("institution.H1.payment = ") and "[第五条]" in lines[0]
    assert "    = min(payable, budget)" in lines
    assert any("10 claim rows" in line for line in lines)
    assert sum(".fund_payable = " in line and line.strip().startswith("claim.") for line in lines) == 2


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    folder = tmp_path_factory.mktemp("cone")
    (folder / "toy_cone.yaml").write_text(POLICY, encoding="utf-8")
    return TestClient(create_app(folder, watch=False), base_url="http://localhost")


def test_api_explains_one_value(client):
    data = situation()
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "institution.H2.payment",
                                                         "top": 3})
    assert r.status_code == 200, r.text
    assert r.headers["x-medpay-policy"] == "toy_cone@2024-01-01"
    tree = r.json()["explanation"]
    assert tree["value"] == fen(expected_payment(data["entities"]["claim"], "H2"))
    payable = {i["text"]: i for i in tree["inputs"]}["payable"]["explanation"]
    assert len(payable["inputs"][0]["children"]["top"]) == 3


def test_api_names_what_is_wrong(client):
    data = situation(30)
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "institution.H9.payment"})
    assert r.status_code == 404 and r.json()["detail"][0]["path"] == "target"
    assert "'H9'" in r.json()["detail"][0]["message"] and r.json()["detail"][0]["message_zh"]
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "H9"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_target"
    data["entities"]["claim"][3]["total_cost"] = "lots"
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "claim.c1.covered"})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "situation.entities.claim[3].total_cost"
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": {**data, "period": "1999"},
                                                         "target": "claim.c1.covered"})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "situation.period"
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "claim.c1.covered",
                                                         "top": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "top"
    r = client.post("/v1/cities/nowhere/explain", json={"situation": data, "target": "claim.c1.covered"})
    assert r.status_code == 404
    r = client.post("/v1/cities/toy_cone/explain", json={"situation": data, "target": "claim.c1.covered",
                                                         "version": "1999"})
    assert r.status_code == 404 and r.json()["detail"][0]["path"] == "version"


@pytest.mark.skipif(SCALE <= 1, reason="large: set MEDPAY_FUZZ_EXAMPLES > 1")
def test_large_explanation_stays_quick(policy):
    data = situation(200_000)
    started = time.perf_counter()
    answer = explain_situation(policy, data, "institution.H2.payable", top=10)
    assert time.perf_counter() - started < 60
    want = sum((fund_payable(c) for c in data["entities"]["claim"] if c["institution"] == "H2"), Fraction(0))
    assert answer["explanation"]["value"] == fen(want)
    assert len(answer["explanation"]["inputs"][0]["children"]["top"]) == 10


def test_an_overridden_parameter_cites_no_clause_and_a_missing_input_is_refused(policy):
    """A value the request replaced is "overridden", never the notice's clause; an input the value
    needs and the situation lacks is a fault at its JSON path, not a 0."""
    data = {**situation(10), "parameters": {"coinsurance": 0.3}}
    claim = data["entities"]["claim"][3]
    tree = explain(policy, data, f"claim.{claim['id']}.fund_payable")
    coinsurance = {i["text"]: i for i in tree["inputs"]}["coinsurance"]
    assert coinsurance["value"] == 0.3 and coinsurance["overridden"] and coinsurance["source"] is None
    del data["entities"]["claim"][3]["total_cost"]
    with pytest.raises(SituationError) as err:
        explain(policy, data, f"claim.{claim['id']}.fund_payable")
    assert [f.path for f in err.value.faults] == ["entities.claim[3].total_cost"]

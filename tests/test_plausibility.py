"""Plausibility warnings: values that load but can hardly be meant are flagged, never refused."""

from __future__ import annotations

import yaml
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.compile.build import load_policy_file, load_policy_text
from engine.policy.registry import POLICY_DIR

SHIPPED = ("hangzhou", "jingdezhen", "panzhihua", "tianjin", "zibo")


def policy_text(parameters: dict, issued: str = "2024-01-01", start: str = "2024-01-01") -> str:
    """A small policy with these parameters and a formula reading each number."""
    data = {"policy": {"id": "plaus", "name": {"zh": "测试市", "en": "Testville"}, "notice": "测〔2024〕1号",
                       "issuer": "测试市医疗保障局", "issued": issued, "effective": {"from": start, "to": None}},
            "parameters": {n: {"label": {"zh": n, "en": n}, "source": "一", **spec} for n, spec in parameters.items()},
            "variables": {"claim": {"paid": {"label": {"zh": "支付", "en": "paid"}, "source": "二",
                                             "formula": "total_cost * 1"}}}}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def warnings(parameters: dict, **dates) -> list:
    return load_policy_text(policy_text(parameters, **dates), "draft.yaml").warnings


def test_a_risk_fund_rate_of_5_is_flagged_at_its_line():
    found = warnings({"risk_fund_rate": {"unit": "ratio", "value": 5}})
    assert [w.code for w in found] == ["ratio_out_of_range"]
    w = found[0]
    assert w.severity == "warning" and w.location.path == "parameters.risk_fund_rate.value"
    assert w.location.line is not None and "500%" in w.en and "0.05" in w.en and "比例" in w.zh


def test_ratios_in_range_are_quiet_and_percent_is_read_as_a_ratio():
    assert warnings({"rate": {"unit": "ratio", "value": "85%"}, "edge": {"unit": "ratio", "value": 1},
                     "amount": {"unit": "yuan", "value": 5000}}) == []


def test_a_negative_ratio_a_map_entry_and_a_band_rate_above_one():
    found = warnings({"neg": {"unit": "ratio", "value": -0.1},
                      "by_level": {"unit": "ratio", "value": {"1": "90%", "2": 1.5}},
                      "shares": {"unit": "ratio", "value": {"edges": ["5%"], "rates": ["80%", 6]}}})
    assert [(w.code, w.location.path) for w in found] == [
        ("ratio_out_of_range", "parameters.neg.value"),
        ("ratio_out_of_range", "parameters.by_level.value.2"),
        ("ratio_out_of_range", "parameters.shares.value.rates[1]")]


def test_each_dated_version_is_judged():
    found = warnings({"rate": {"unit": "ratio", "values": [{"from": "2024-01-01", "value": "90%"},
                                                           {"from": "2024-07-01", "value": 80}]}})
    assert [w.location.path for w in found] == ["parameters.rate.values[1].value"]


def test_an_issue_date_after_the_start_date():
    found = warnings({}, issued="2024-03-01", start="2024-01-01")
    assert [(w.code, w.location.path) for w in found] == [("issued_after_start", "policy.issued")]
    assert warnings({}, issued="2023-12-20", start="2024-01-01") == []


def test_dates_far_from_the_notice():
    found = warnings({"cutoff": {"value": "2042-01-01"},
                      "rate": {"unit": "ratio", "values": [{"from": "2024-01-01", "value": "90%"},
                                                           {"from": "2204-07-01", "value": "80%"}]},
                      "near": {"value": "2028-12-31"}})
    assert [(w.code, w.location.path) for w in found] == [
        ("date_far_from_notice", "parameters.cutoff.value"),
        ("date_far_from_notice", "parameters.rate.values[1].from")]


def test_an_empty_band_and_a_single_band():
    found = warnings({"empty": {"unit": "ratio", "value": {"edges": [0, "10%"], "rates": ["80%", "60%", 0]}},
                      "single": {"unit": "ratio", "value": {"edges": [], "rates": ["80%"]}},
                      "fine": {"unit": "ratio", "value": {"edges": ["5%", "10%"], "rates": ["80%", "60%", 0]}}})
    assert [(w.code, w.location.path) for w in found] == [("empty_band", "parameters.empty.value.edges[0]"),
                                                          ("single_band", "parameters.single.value")]


def test_shipped_policies_warn_only_where_a_ratio_is_a_multiple():
    """Two shipped parameters are declared `unit: ratio` but are multiples, not shares: the high-cost
    limit is 2 × the group average and the tilt weight is 1.05; they are named here, nothing else."""
    found = {c: [(w.code, w.location.path) for w in load_policy_file(POLICY_DIR / f"{c}.yaml").warnings]
             for c in SHIPPED}
    assert found == {"hangzhou": [], "jingdezhen": [], "panzhihua": [],
                     "tianjin": [("ratio_out_of_range", "parameters.budget_tilt_weight.value")],
                     "zibo": [("ratio_out_of_range", "parameters.high_cost_ratio.value")]}


def test_validate_prints_warnings_and_still_passes(tmp_path, capsys):
    path = tmp_path / "draft.yaml"
    path.write_text(policy_text({"risk_fund_rate": {"unit": "ratio", "value": 5}}), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning[ratio_out_of_range]" in out and "risk_fund_rate" in out and "1 warning(s)" in out


def test_the_api_lists_warnings_beside_a_valid_answer(tmp_path):
    client = TestClient(create_app(POLICY_DIR, watch=False), base_url="http://localhost")
    r = client.post("/v1/validate", json={"text": policy_text({"risk_fund_rate": {"unit": "ratio", "value": 5}}),
                                          "file": "draft.yaml"})
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is True and body["diagnostics"] == []
    assert [(w["code"], w["severity"], w["path"]) for w in body["warnings"]] == [
        ("ratio_out_of_range", "warning", "parameters.risk_fund_rate.value")]
    assert body["warnings"][0]["line"] is not None


def test_a_draft_with_an_error_still_lists_its_warnings():
    client = TestClient(create_app(POLICY_DIR, watch=False), base_url="http://localhost")
    text = policy_text({"risk_fund_rate": {"unit": "ratio", "value": 5}}).replace("total_cost * 1", "total_cots * 1")
    body = client.post("/v1/validate", json={"text": text, "file": "draft.yaml"}).json()
    assert body["valid"] is False
    assert [(d["severity"], d["code"]) for d in body["diagnostics"]] == [("error", "unknown_name")]
    assert [(d["severity"], d["code"], d["path"]) for d in body["warnings"]] == [
        ("warning", "ratio_out_of_range", "parameters.risk_fund_rate.value")]

"""Impact of a draft over a city-year: per institution×fund, before and after, by hand."""

from __future__ import annotations

import json
import os
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import pytest
import yaml
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.settings import LIMITS

# claims: (id, institution, fund, total_cost); the policy pays total_cost × fund_rate per claim and
# sums it per account (institution×fund) and per institution
CLAIMS = [("c1", "H1", "resident", "1000.10"), ("c2", "H1", "resident", "2345.67"),
          ("c3", "H1", "employee", "999.99"), ("c4", "H2", "resident", "500.00")]


def policy_yaml(rate: str, version_from: str = "2024-01-01") -> str:
    data = {"policy": {"id": "impactville", "name": {"zh": "测算市", "en": "Impactville"}, "notice": "测〔2024〕2号",
                       "issuer": "测算市医疗保障局", "issued": version_from,
                       "effective": {"from": version_from, "to": None}},
            "parameters": {"fund_rate": {"label": {"zh": "基金支付比例", "en": "fund rate"}, "unit": "ratio",
                                         "value": rate, "source": "一"},
                           "flat_fee": {"label": {"zh": "固定费用", "en": "flat fee"}, "unit": "yuan",
                                        "value": 0, "source": "一"}},
            "variables": {
                "claim": {"fund_paid": {"label": {"zh": "基金支付", "en": "fund paid"}, "unit": "yuan",
                                        "formula": "total_cost * fund_rate + flat_fee", "source": "二"}},
                "account": {"claims": {"label": {"zh": "人次", "en": "claims"}, "formula": "count(claim)",
                                       "source": "二"},
                            "fund_total": {"label": {"zh": "基金支付合计", "en": "fund total"}, "unit": "yuan",
                                           "formula": "sum(claim.fund_paid)", "source": "二"}},
                "institution": {"fund_total": {"label": {"zh": "机构基金合计", "en": "institution fund total"},
                                               "unit": "yuan", "formula": "sum(claim.fund_paid)", "source": "二"}}}}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def fen(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def account_total(institution: str, fund: str, rate: str) -> Decimal:
    return fen(sum(Decimal(c[3]) for c in CLAIMS if c[1] == institution and c[2] == fund) * Decimal(rate))


@pytest.fixture()
def city(tmp_path: Path) -> dict:
    policies, data = tmp_path / "policies", tmp_path / "data"
    policies.mkdir()
    data.mkdir()
    (policies / "impactville.yaml").write_text(policy_yaml("90%"), encoding="utf-8")
    (tmp_path / "draft.yaml").write_text(policy_yaml("80%"), encoding="utf-8")
    (data / "fund.csv").write_text("id\nresident\nemployee\n", encoding="utf-8")
    (data / "community.csv").write_text("id\nC1\n", encoding="utf-8")
    (data / "institution.csv").write_text("id,community\nH1,C1\nH2,C1\n", encoding="utf-8")
    (data / "claim.csv").write_text("id,institution,fund,discharge_date,total_cost\n" + "".join(
        f"{c[0]},{c[1]},{c[2]},2024-03-0{i + 1},{c[3]}\n" for i, c in enumerate(CLAIMS)), encoding="utf-8")
    (data / "meta.json").write_text(json.dumps({"period": "2024"}), encoding="utf-8")
    return {"policy": policies / "impactville.yaml", "policies": policies, "draft": tmp_path / "draft.yaml",
            "data": data, "tmp": tmp_path}


def test_cli_impact_of_one_rate_by_hand(city, capsys):
    out = city["tmp"] / "impact.xlsx"
    code = main(["impact", str(city["policy"]), "--draft", str(city["draft"]), "--data", str(city["data"]),
                 "--xlsx", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["entity"] == "account" and result["variable"] == "fund_total"
    assert result["changed"] == ["fund_rate"]
    rows = {(r["institution"], r["fund"]): r for r in result["rows"]}
    h1 = rows[("H1", "resident")]
    before, after = account_total("H1", "resident", "0.9"), account_total("H1", "resident", "0.8")
    assert (before, after) == (Decimal("3011.19"), Decimal("2676.62"))  # 3345.77 × 0.9 and × 0.8, to the fen
    assert Decimal(str(h1["before"])) == before and Decimal(str(h1["after"])) == after
    assert Decimal(str(h1["difference"])) == after - before == Decimal("-334.57")
    assert h1["moved"] == ["account.fund_total", "institution.fund_total"]  # the count did not move
    assert [r["institution"] for r in result["rows"]][0] == "H1"  # the largest change first
    accounts = {(c[1], c[2]) for c in CLAIMS}
    assert Decimal(str(result["totals"]["difference"])) == sum(
        account_total(i, f, "0.8") - account_total(i, f, "0.9") for i, f in accounts)
    sheet = openpyxl.load_workbook(out).active
    values = {(r[0], r[1]): r for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert Decimal(str(values[("H1", "resident")][4])) == Decimal("-334.57")
    assert Decimal(str(values[("total 合计", None)][4])) == Decimal(str(result["totals"]["difference"]))


def test_cli_impact_with_an_override_prints_a_table(city, capsys, monkeypatch):
    monkeypatch.chdir(city["tmp"])
    code = main(["impact", str(city["policy"]), "--set", "flat_fee=10", "--data", str(city["data"])])
    assert code == 0
    out = capsys.readouterr().out
    # two claims of H1|resident gain 10 each: +20.00; H1|employee and H2|resident one claim: +10.00
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("H1", "H2"))]
    assert lines[0][:5] == ["H1", "resident", "3,011.19", "3,031.19", "+20.00"]
    assert {tuple(line[:2]): line[4] for line in lines} == {("H1", "resident"): "+20.00",
                                                            ("H1", "employee"): "+10.00",
                                                            ("H2", "resident"): "+10.00"}
    assert "+40.00" in out and (city["tmp"] / "impact-impactville-2024.xlsx").is_file()


def test_cli_impact_refuses_a_bad_override_and_writes_nothing(city, capsys, monkeypatch):
    monkeypatch.chdir(city["tmp"])
    assert main(["impact", str(city["policy"]), "--set", "fund_rate=-5", "--data", str(city["data"])]) == 2
    assert main(["impact", str(city["policy"]), "--set", "no_such=1", "--data", str(city["data"])]) == 2
    err = capsys.readouterr().err
    assert "parameters.fund_rate" in err and "parameters.no_such" in err and "未知参数" in err
    assert not list(city["tmp"].glob("*.xlsx"))


def client(city, monkeypatch) -> TestClient:
    monkeypatch.setenv("MEDPAY_IMPACT_DATA", str(city["data"]))
    return TestClient(create_app(city["policies"], watch=False), base_url="http://localhost")


def test_api_impact_of_a_draft(city, monkeypatch):
    r = client(city, monkeypatch).post("/v1/cities/impactville/impact", json={"text": policy_yaml("80%")})
    assert r.status_code == 200, r.text
    rows = {(x["institution"], x["fund"]): x for x in r.json()["rows"]}
    assert Decimal(str(rows[("H2", "resident")]["difference"])) == Decimal("-50.00")  # 500 × (0.8 − 0.9)
    assert Decimal(str(rows[("H1", "employee")]["after"])) == account_total("H1", "employee", "0.8")


def test_api_impact_as_a_spreadsheet_and_with_overrides(city, monkeypatch):
    r = client(city, monkeypatch).post("/v1/cities/impactville/impact?format=xlsx",
                                       json={"parameters": {"fund_rate": "85%"}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
    path = city["tmp"] / "got.xlsx"
    path.write_bytes(r.content)
    rows = {(x[0], x[1]): x for x in openpyxl.load_workbook(path).active.iter_rows(min_row=3, values_only=True)}
    assert Decimal(str(rows[("H2", "resident")][3])) == Decimal("425.00")


def test_api_impact_faults_name_their_path(city, monkeypatch):
    c = client(city, monkeypatch)
    r = c.post("/v1/cities/impactville/impact", json={"parameters": {"fund_rate": [1, 2]}})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "parameters.fund_rate"
    r = c.post("/v1/cities/impactville/impact", json={"text": "policy: ["})
    assert r.status_code == 422 and r.json()["error"] == "draft_invalid"
    r = c.post("/v1/cities/impactville/impact", json={"data": "/etc"})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "data"  # no path from the request
    assert c.post("/v1/cities/nowhere/impact", json={}).status_code == 404


def test_api_impact_without_a_data_folder(city, monkeypatch):
    monkeypatch.delenv("MEDPAY_IMPACT_DATA", raising=False)
    c = TestClient(create_app(city["policies"], watch=False), base_url="http://localhost")
    r = c.post("/v1/cities/impactville/impact", json={})
    assert r.status_code == 409 and r.json()["detail"][0]["path"] == "MEDPAY_IMPACT_DATA"


def test_api_source_opens_the_served_file(city, monkeypatch):
    r = client(city, monkeypatch).get("/v1/cities/impactville/source")
    assert r.status_code == 200
    assert r.json()["text"] == city["policy"].read_text(encoding="utf-8") and r.json()["file"] == "impactville.yaml"
    assert client(city, monkeypatch).get("/v1/cities/impactville/source?version=1999").status_code == 404


def test_api_draft_tried_beside_the_served_version(city, monkeypatch):
    situation = {"period": "2024", "entities": {
        "fund": [{"id": "resident"}], "community": [{"id": "C1"}], "institution": [{"id": "H1", "community": "C1"}],
        "claim": [{"id": "c1", "institution": "H1", "fund": "resident", "discharge_date": "2024-03-01",
                   "total_cost": 1000.10}]}}
    r = client(city, monkeypatch).post("/v1/cities/impactville/draft/evaluate",
                                       json={"text": policy_yaml("80%"), "situation": situation})
    assert r.status_code == 200, r.text
    body = r.json()
    paid = {side: body[side]["result"]["entities"]["claim"][0]["fund_paid"] for side in ("served", "draft")}
    assert Decimal(str(paid["served"])) == fen(Decimal("1000.10") * Decimal("0.9"))  # 900.09
    assert Decimal(str(paid["draft"])) == fen(Decimal("1000.10") * Decimal("0.8"))  # 800.08
    assert body["changed"] == ["fund_rate"] and body["warnings"] == []
    bad = client(city, monkeypatch).post("/v1/cities/impactville/draft/evaluate",
                                         json={"text": policy_yaml("80%"), "situation": {"period": "2024",
                                                                                          "entities": {"claim": 3}}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["path"].startswith("situation")


# ---- attacks on the workspace endpoints: bounded, a clear 4xx/503, nothing changed -----------------

FULL = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1")) > 1


def laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_as_a_draft_is_refused_quickly(city, monkeypatch):
    c = client(city, monkeypatch)
    text = policy_yaml("80%") + laughs(9 if FULL else 5)
    for path, body in (("impact", {"text": text}),
                       ("draft/evaluate", {"text": text, "situation": {"period": "2024", "entities": {}}})):
        started = time.perf_counter()
        r = c.post(f"/v1/cities/impactville/{path}", json=body)
        assert time.perf_counter() - started < 2.0
        assert r.status_code == 422 and r.json()["error"] == "draft_invalid"
        assert r.json()["detail"][0]["code"] == "yaml_alias" and r.json()["detail"][0]["line"]


def test_a_draft_over_the_size_limit_is_413(city, monkeypatch):
    big = policy_yaml("80%") + "# " + "x" * (LIMITS.validate_bytes + 10) + "\n"
    r = client(city, monkeypatch).post("/v1/cities/impactville/impact", json={"text": big})
    assert r.status_code == 413 and r.json()["detail"][0]["path"] == "MEDPAY_MAX_VALIDATE_BYTES"


def test_an_impact_over_its_time_budget_is_503_and_leaves_no_files(city, monkeypatch):
    monkeypatch.setenv("MEDPAY_MAX_IMPACT_SECONDS", "0.001")
    before = sorted(p.name for p in Path(tempfile.gettempdir()).glob("medpay-impact-*"))
    r = client(city, monkeypatch).post("/v1/cities/impactville/impact", json={"parameters": {"fund_rate": "85%"}})
    assert r.status_code == 503 and r.json()["detail"][0]["path"] == "MEDPAY_MAX_IMPACT_SECONDS"
    assert r.headers.get("retry-after")
    time.sleep(0.2)
    assert sorted(p.name for p in Path(tempfile.gettempdir()).glob("medpay-impact-*")) == before


def test_overrides_are_bounded_like_a_situations(city, monkeypatch):
    c = client(city, monkeypatch)
    r = c.post("/v1/cities/impactville/impact", json={"parameters": {"fund_rate": "1e999"}})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "parameters.fund_rate"
    many = {f"p{i}": 1 for i in range(5000 if FULL else 200)}
    r = c.post("/v1/cities/impactville/impact", json={"parameters": many})
    assert r.status_code == 422 and len(r.json()["detail"]) == len(many)

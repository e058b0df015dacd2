"""The HTTP API: every endpoint and error case, live reload, and one real server over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from evalkit import template_folder
from fastapi.testclient import TestClient

from engine.api.app import create_app

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
CASE = json.loads(json.dumps(__import__("yaml").safe_load(
    (ROOT / "tests" / "cases" / "_template" / "basics.yaml").read_text(encoding="utf-8"))))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A private policy folder holding only the template, so tests may edit it."""
    template_folder(tmp_path)
    return tmp_path


@pytest.fixture()
def client(folder: Path) -> TestClient:
    return TestClient(create_app(folder, watch=False), base_url="http://localhost")


def test_healthz_lists_versions(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["policies"] == {"_template": ["2024-01-01"]}


def test_cities_and_city_detail(client):
    cities = client.get("/v1/cities").json()
    assert [c["id"] for c in cities] == ["_template"]
    assert cities[0]["versions"][0]["effective"] == {"from": "2024-01-01", "to": "2025-12-31"}
    detail = client.get("/v1/cities/_template").json()
    assert detail["parameters"]["risk_fund_rate"]["values"][0]["value"] == 0.05
    assert detail["parameters"]["penalty_unreferred"]["values"][1] == {
        "from": "2024-07-01", "value": 0.15, "source": "二（三）补充通知"}
    points = next(v for v in detail["variables"] if v["entity"] == "claim" and v["name"] == "points")
    assert points["source"] == "二（二）2" and "group_weight" in points["formula"]


def test_evaluate_matches_the_case_and_names_the_version(client):
    r = client.post("/v1/cities/_template/evaluate", json=CASE["situation"])
    assert r.status_code == 200
    assert r.headers["x-medpay-policy"] == "_template@2024-01-01"
    rows = {row["id"]: row for row in r.json()["entities"]["institution"]}
    assert rows["H1"]["points_payment"] == 65053.78
    assert rows["H2"]["points_payment"] == 17730.0


def test_evaluate_with_trace_cites_the_clause(client):
    r = client.post("/v1/cities/_template/evaluate?trace=true", json=CASE["situation"])
    step = r.json()["trace"]["claim.c2.deductible_due"]
    assert step["value"] == 600.0 and step["source"] == "二（三）1"
    assert step["inputs"]["chain_max(deductible_standard)"] == 900.0
    assert step["inputs"]["chain_sum_before(deductible_due)"] == 300.0


def test_what_if_parameter_override(client):
    situation = {**CASE["situation"], "parameters": {"risk_fund_rate": "10%"},
                 "outputs": ["fund.points_budget"]}
    r = client.post("/v1/cities/_template/evaluate", json=situation)
    assert r.json()["entities"]["fund"][0]["points_budget"] == round(105263.16 * 0.9, 2)


@pytest.mark.parametrize("body, path", [
    ({"period": "2024", "entities": {"claim": [{"id": "a", "total_cost": "x"}]}}, "entities.claim[0].total_cost"),
    ({"period": "2024", "entities": {"claim": [{"id": "a", "total_cots": 1}]}}, "entities.claim[0].total_cots"),
    ({"period": "2024", "entities": {"claim": [{"total_cost": 1}]}}, "entities.claim[0].id"),
    ({"period": "2024", "entities": {"claim": [{"id": "a", "institution": "nope"}]}}, "entities.claim[0].institution"),
    ({"period": "20x4"}, "period"),
    ({"period": "2024", "parameters": {"nope": 1}}, "parameters.nope"),
    ({"period": "2024", "entities": {"patients": []}}, "entities.patients"),
    ({"period": "2024", "bogus": 1}, "bogus"),
    ({"period": "2024", "entities": {"claim": "rows"}}, "entities.claim"),
    ({"period": "2030"}, "period"),
])
def test_bad_situations_get_422_with_the_path(client, body, path):
    r = client.post("/v1/cities/_template/evaluate", json=body)
    assert r.status_code == 422, r.text
    assert path in [f["path"] for f in r.json()["detail"]]


def test_malformed_json_is_422_not_500(client):
    r = client.post("/v1/cities/_template/evaluate", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_unknown_city_is_404(client):
    assert client.post("/v1/cities/atlantis/evaluate", json={"period": "2024"}).status_code == 404
    assert client.get("/v1/cities/atlantis").status_code == 404


def test_validate_reports_positions_and_loads_nothing(client):
    text = TEMPLATE.read_text(encoding="utf-8").replace("formula: sum(claim.points)\n",
                                                        "formula: sum(claim.pionts)\n", 1)
    body = client.post("/v1/validate", json={"text": text, "file": "draft.yaml"}).json()
    assert body["valid"] is False
    diag = body["diagnostics"][0]
    assert diag["code"] == "unknown_name" and "did you mean 'points'" in diag["message"]
    assert diag["file"] == "draft.yaml" and diag["line"] > 1 and diag["column"] > 1
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01"]}
    good = client.post("/v1/validate", json={"text": TEMPLATE.read_text(encoding="utf-8")}).json()
    assert good["valid"] is True and good["policy"]["id"] == "_template"


def test_reload_needs_the_token(client, monkeypatch):
    monkeypatch.delenv("MEDPAY_ADMIN_TOKEN", raising=False)
    assert client.post("/v1/admin/reload").status_code == 403
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "s3cret")
    assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_edit_on_disk_good_is_served_broken_is_refused(client, folder, monkeypatch):
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "t")
    auth = {"Authorization": "Bearer t"}
    policy = folder / "_template.yaml"
    situation = {**CASE["situation"], "outputs": ["fund.points_budget"]}

    def budget():
        return client.post("/v1/cities/_template/evaluate", json=situation).json()["entities"]["fund"][0]["points_budget"]
    assert budget() == 100000.0
    policy.write_text(policy.read_text(encoding="utf-8").replace("value: 5%", "value: 10%"), encoding="utf-8")
    report = client.post("/v1/admin/reload", headers=auth).json()
    assert report["loaded"] == ["_template.yaml"] and report["refused"] == []
    assert budget() == round(105263.16 * 0.9, 2)
    policy.write_text(policy.read_text(encoding="utf-8").replace("formula: sum(claim.points)", "formula: sum(claim.points"),
                      encoding="utf-8")
    report = client.post("/v1/admin/reload", headers=auth).json()
    assert report["refused"][0]["file"] == "_template.yaml"
    assert report["refused"][0]["diagnostics"][0]["code"] == "unclosed_paren"
    assert budget() == round(105263.16 * 0.9, 2)  # the last good version still answers
    assert client.get("/healthz").json()["refused_files"] == ["_template.yaml"]


def test_watcher_swaps_a_changed_file(folder):
    app = create_app(folder, watch=False)
    store = app.state.store
    store.watch(interval=0.05)
    try:
        policy = folder / "_template.yaml"
        policy.write_text(policy.read_text(encoding="utf-8").replace("version", "version", 1).replace(
            "value: 5%", "value: 7%"), encoding="utf-8")
        deadline = time.time() + 5
        while time.time() < deadline:
            if store.registry.cities["_template"][0].parameters["risk_fund_rate"].versions[0].value == 0.07:
                break
            time.sleep(0.05)
        assert store.registry.cities["_template"][0].parameters["risk_fund_rate"].versions[0].value == 0.07
    finally:
        store.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_over_http(folder):
    port = _free_port()
    env = {"MEDPAY_POLICIES": str(folder), "PATH": ""}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.post(f"{base}/v1/cities/_template/evaluate", json=CASE["situation"], timeout=10)
        assert r.status_code == 200
        assert r.headers["x-medpay-policy"] == "_template@2024-01-01"
        fund = r.json()["entities"]["fund"][0]
        assert fund["total_points"] == 370.0
        assert httpx.get(f"{base}/openapi.json", timeout=5).json()["info"]["title"] == "medpay"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_two_versions_of_a_city_the_period_picks(folder):
    """A new notice replaces an old one from a date: both are served, the period chooses."""
    text = (folder / "_template.yaml").read_text(encoding="utf-8")
    newer = text.replace("effective: {from: 2024-01-01, to: 2025-12-31}", "effective: {from: 2026-01-01, to: null}", 1)
    newer = newer.replace("    value: 5%                          # percent literal", "    value: 6%  #", 1)
    (folder / "_template_2026.yaml").write_text(newer, encoding="utf-8")
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01", "2026-01-01"]}
    body = {"entities": {"fund": [{"id": "F", "revenue": 1000}]}, "outputs": ["fund.points_budget"]}
    old = client.post("/v1/cities/_template/evaluate", json={**body, "period": "2025"})
    new = client.post("/v1/cities/_template/evaluate", json={**body, "period": "2026"})
    assert old.headers["x-medpay-policy"] == "_template@2024-01-01"
    assert new.headers["x-medpay-policy"] == "_template@2026-01-01"
    assert old.json()["entities"]["fund"][0]["points_budget"] == 950.0
    assert new.json()["entities"]["fund"][0]["points_budget"] == 940.0

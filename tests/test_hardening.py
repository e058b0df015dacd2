"""Bad input, limits, publishing and load: errors are clear, nothing is lost, the service stays up."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from evalkit import template_folder
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.compile.build import load_policy_text
from engine.run.evaluate import evaluate
from engine.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
SITUATION = yaml.safe_load((ROOT / "tests" / "cases" / "_template" / "basics.yaml").read_text(encoding="utf-8"))["situation"]
TOKEN = {"Authorization": "Bearer test-token"}


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "test-token")
    monkeypatch.delenv("MEDPAY_ARCHIVE", raising=False)
    template_folder(tmp_path)
    return tmp_path


def variant(rate: str, version: str) -> str:
    """The template with another risk-fund rate and version name."""
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("    value: 5%                          # percent literal", f"    value: {rate}  #", 1)
    return text.replace("  effective: {from: 2024-01-01", f"  version: \"{version}\"\n  effective: {{from: 2024-01-01", 1)


def test_publish_needs_the_token_and_a_good_policy(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    good = variant("8%", "v8")
    assert client.put("/v1/admin/policies/_template.yaml", json={"text": good}).status_code == 403
    broken = good.replace("formula: sum(claim.points)", "formula: sum(claim.points", 1)
    r = client.put("/v1/admin/policies/_template.yaml", json={"text": broken}, headers=TOKEN)
    assert r.status_code == 422 and r.json()["detail"][0]["message"].startswith("a '(' is not closed")
    assert "version: \"v8\"" not in (folder / "_template.yaml").read_text(encoding="utf-8")  # nothing written
    r = client.put("/v1/admin/policies/_template.yaml", json={"text": good}, headers=TOKEN)
    assert r.status_code == 200 and r.json()["version"] == "v8"
    assert (folder / "_template.yaml").read_text(encoding="utf-8") == good
    out = client.post("/v1/cities/_template/evaluate", json={**SITUATION, "outputs": ["fund.points_budget"]})
    assert out.headers["x-medpay-policy"] == "_template@v8"
    assert out.json()["entities"]["fund"][0]["points_budget"] == round(105263.16 * 0.92, 2)
    everything = client.get("/v1/admin/audit", headers=TOKEN).json()["entries"]
    assert [(e["action"], e["outcome"]) for e in everything[:1]] == [("auth", "forbidden")]  # the call without token
    log = [e for e in everything if e["action"] == "publish"]
    assert [e["accepted"] for e in log] == [False, True]
    assert log[0]["diagnostics"][0]["code"] == "unclosed_paren"
    assert len(log[1]["sha256"]) == 64 and (folder / ".published" / log[1]["archived"]).read_text(encoding="utf-8") == good
    bad_name = client.put("/v1/admin/policies/..%2Fescape.yaml", json={"text": good}, headers=TOKEN)
    assert bad_name.status_code in (404, 422)


def test_restart_serves_the_last_good_version(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    assert client.put("/v1/admin/policies/_template.yaml", json={"text": variant("7%", "v7")},
                      headers=TOKEN).status_code == 200
    (folder / "_template.yaml").write_text("policy: [broken", encoding="utf-8")  # hand-edited on disk
    restarted = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    health = restarted.get("/healthz").json()
    assert health["policies"] == {"_template": ["v7"]}
    assert health["refused_files"] == ["_template.yaml"]


def test_body_size_limit(folder, monkeypatch):
    monkeypatch.setattr("engine.api.limits.LIMITS", Limits(body_bytes=2_000))
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    big = {**SITUATION, "entities": {"claim": [{"id": f"c{i}", "total_cost": 1} for i in range(200)]}}
    r = client.post("/v1/cities/_template/evaluate", json=big)
    assert r.status_code == 413 and "MEDPAY_MAX_BODY_BYTES" in r.json()["detail"][0]["message"]
    assert client.post("/v1/cities/_template/evaluate", json=SITUATION).status_code == 200


def test_rows_and_time_limits(folder, monkeypatch):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    monkeypatch.setattr("engine.run.situation.MAX_ROWS", 2)
    r = client.post("/v1/cities/_template/evaluate", json=SITUATION)
    fault = r.json()["detail"][0]
    assert r.status_code == 422 and fault["path"] == "entities.institution"  # fund 1 + community 1 + institution 2 > 2
    assert "MEDPAY_MAX_ROWS" in fault["message"]
    monkeypatch.setattr("engine.run.situation.MAX_ROWS", 1000)
    monkeypatch.setattr("engine.run.evaluate.LIMITS", Limits(eval_seconds=0.0))
    r = client.post("/v1/cities/_template/evaluate", json=SITUATION)
    assert r.status_code == 503 and r.json()["detail"][0]["path"] == "MEDPAY_MAX_EVAL_SECONDS"


@pytest.mark.parametrize("field, value, words", [
    ("total_cost", -5, "at least 0"),
    ("total_cost", 1e20, "largest amount"),
    ("discharge_date", "2024-02-30", "YYYY-MM-DD"),
    ("out_of_area", "yes", "true or false"),
    ("setting", "inpatent", "did you mean 'inpatient'"),
])
def test_bad_values_are_named_at_their_path(folder, field, value, words):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    claims = [dict(c) for c in SITUATION["entities"]["claim"]]
    claims[1][field] = value
    r = client.post("/v1/cities/_template/evaluate", json={**SITUATION, "entities": {**SITUATION["entities"], "claim": claims}})
    assert r.status_code == 422
    fault = r.json()["detail"][0]
    assert fault["path"] == f"entities.claim[1].{field}" and words in fault["message"]


def test_overflow_becomes_zero_with_a_warning():
    text = TEMPLATE.read_text(encoding="utf-8").replace(
        "formula: round(revenue * (1 - risk_fund_rate), 2)",
        "formula: revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue"
        " * revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue * revenue"
        " * revenue * revenue * revenue * revenue * revenue * revenue", 1)
    policy = load_policy_text(text, "overflow.yaml", ROOT / "policies")
    result = evaluate(policy, {"period": "2024", "entities": {"fund": [{"id": "F", "revenue": 1e12}]},
                               "outputs": ["fund.points_budget", "fund.point_value"]})
    assert result["entities"]["fund"][0] == {"id": "F", "points_budget": 0.0, "point_value": 0.0}
    assert {"non_finite", "division_by_zero"} <= {w["code"] for w in result["warnings"]}


def test_logs_hold_no_identifiers_or_amounts(folder, caplog):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    secret = {**SITUATION, "entities": {**SITUATION["entities"], "claim": [
        {**SITUATION["entities"]["claim"][0], "id": "PATIENT-4711", "total_cost": 98765.43, "episode": "CHAIN-0815"}]}}
    with caplog.at_level(logging.DEBUG):
        assert client.post("/v1/cities/_template/evaluate", json=secret).status_code == 200
        bad = {**secret, "entities": {"claim": [{"id": "PATIENT-4711", "total_cost": "x"}]}}
        assert client.post("/v1/cities/_template/evaluate", json=bad).status_code == 422
    text = caplog.text
    assert "evaluate" in text  # the request was logged
    assert "PATIENT-4711" not in text and "CHAIN-0815" not in text and "98765" not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_concurrent_requests_while_versions_swap(folder):
    """Every response is computed by exactly one version, named in its header; none fails."""
    expected = {"_template@v5": 100000.0, "_template@v9": round(105263.16 * 0.91, 2)}
    (folder / "_template.yaml").write_text(variant("5%", "v5"), encoding="utf-8")
    app = create_app(folder, watch=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    body = json.dumps({**SITUATION, "outputs": ["fund.points_budget"]})
    seen, failures, stop = [], [], threading.Event()

    def caller():
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(60):
                r = http.post("/v1/cities/_template/evaluate", content=body, headers={"content-type": "application/json"})
                if r.status_code != 200:
                    failures.append(r.status_code)
                    continue
                seen.append((r.headers["x-medpay-policy"], r.json()["entities"]["fund"][0]["points_budget"]))

    def swapper():
        with httpx.Client(base_url=base, timeout=10) as http:
            i = 0
            while not stop.is_set():
                rate, version = ("9%", "v9") if i % 2 == 0 else ("5%", "v5")
                r = http.put("/v1/admin/policies/_template.yaml", json={"text": variant(rate, version)}, headers=TOKEN)
                assert r.status_code == 200
                i += 1
    try:
        swap = threading.Thread(target=swapper)
        swap.start()
        callers = [threading.Thread(target=caller) for _ in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=120)
        stop.set()
        swap.join(timeout=30)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert failures == []
    assert len(seen) == 240
    assert {h for h, _ in seen} == set(expected)  # both versions were served during the run
    assert all(value == expected[header] for header, value in seen)

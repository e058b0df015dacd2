"""Readings of clauses the notice leaves open (政策理解): listed by `medpay validate`, described by the API."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.compile.build import load_policy_file

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"


def test_the_template_declares_an_open_and_a_settled_reading():
    readings = load_policy_file(TEMPLATE).readings
    assert [(r.clause, r.status) for r in readings] == [("二（二）2", "open"), ("二（一）2", "settled")]
    assert readings[0].affects == ["fund.point_value"] and readings[0].text.zh and readings[0].text.en


def test_validate_lists_the_open_readings_only(capsys):
    assert main(["validate", str(TEMPLATE)]) == 0
    out = capsys.readouterr().out
    assert "open readings / 待定理解 (1):" in out
    assert "二（二）2: the point value is on the whole cost" in out and "[fund.point_value]" in out
    assert "after the risk fund is set aside" not in out  # settled: not listed as open


def test_the_api_describes_the_readings():
    client = TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")
    body = client.get("/v1/cities/_template").json()
    assert [r["status"] for r in body["readings"]] == ["open", "settled"]
    assert body["readings"][0]["affects"] == ["fund.point_value"]

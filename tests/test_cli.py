"""The `medpay` command line: run, validate, test, explain — outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
CASE_FILE = ROOT / "tests" / "cases" / "_template" / "basics.yaml"


def situation_file(tmp_path: Path) -> Path:
    case = yaml.safe_load(CASE_FILE.read_text(encoding="utf-8"))
    path = tmp_path / "situation.json"
    path.write_text(json.dumps(case["situation"]), encoding="utf-8")
    return path


def test_run_prints_the_contract_json(tmp_path, capsys):
    assert main(["run", str(TEMPLATE), str(situation_file(tmp_path))]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["city"] == "_template"
    assert result["policy"]["effective"] == {"from": "2024-01-01", "to": "2025-12-31"}
    claims = {r["id"]: r for r in result["entities"]["claim"]}
    assert [r["id"] for r in result["entities"]["claim"]] == ["c1", "c2", "c3"]
    assert claims["c2"]["deductible_due"] == 600.0
    assert result["trace"] is None


def test_run_with_trace_cites_clauses_and_writes_a_file(tmp_path):
    out = tmp_path / "out.json"
    assert main(["run", str(TEMPLATE), str(situation_file(tmp_path)), "--trace", "-o", str(out)]) == 0
    trace = json.loads(out.read_text(encoding="utf-8"))["trace"]
    step = trace["institution.H2.points_payment"]
    assert step["source"] == "二（二）1（7）"
    assert step["inputs"]["actual_fund_cost"] == 17730.0
    assert step["value"] == 17730.0


def test_run_rejects_a_bad_situation_with_paths(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"period": "2024", "entities": {"claim": [{"id": "a", "total_cost": "lots"}]}}))
    assert main(["run", str(TEMPLATE), str(bad)]) == 2
    assert "entities.claim[0].total_cost" in capsys.readouterr().err


def test_run_rejects_invalid_json_with_position(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"period": "2024",\n  "entities": }')
    assert main(["run", str(TEMPLATE), str(bad)]) == 2
    assert "bad.json:2:" in capsys.readouterr().err


def test_validate_good_lists_assumed_values(capsys):
    assert main(["validate", str(TEMPLATE)]) == 0
    out = capsys.readouterr().out
    assert "✓" in out and "parameters.deductible_by_level" in out


def test_validate_bad_names_file_line_column(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "_template_drg.csv").write_text(
        (ROOT / "policies" / "tables" / "_template_drg.csv").read_text(encoding="utf-8"), encoding="utf-8")
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("formula: sum(claim.points)\n", "formula: sum(claim.pionts)\n", 1)
    broken.write_text(text, encoding="utf-8")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "claim.pionts" in ln)
    column = text.splitlines()[line - 1].index("pionts") + 1
    assert main(["validate", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:{line}:{column}: error[unknown_name]" in err
    assert "did you mean 'points'" in err and "未知名称" in err


def test_test_command_reports_failures(tmp_path, capsys):
    case = yaml.safe_load(CASE_FILE.read_text(encoding="utf-8"))
    case["city"] = str(TEMPLATE)
    case["expected"]["claim"]["c2"]["deductible_due"] = 601
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(case, allow_unicode=True), encoding="utf-8")
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "claim.c2.deductible_due: got 600.0, want 601" in out
    assert "0 passed, 1 failed" in out


def test_test_command_passes_the_template_case(capsys):
    assert main(["test", str(CASE_FILE)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_explain_prints_a_tree_with_clauses(tmp_path, capsys):
    assert main(["explain", str(TEMPLATE), str(situation_file(tmp_path)), "claim.c2.patient_paid"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("claim.c2.patient_paid = 12,480")
    assert "claim.c2.deductible_due = 600" in out and "[二（三）1]" in out
    assert main(["explain", str(TEMPLATE), str(situation_file(tmp_path)), "claim.c2.patient_paid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 12480.0

"""The analyst's command line: --version, the exit codes (0 done, 1 policy or check failed, 2 bad input),
and result tables that fit the terminal without cutting a number (命令行约定)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from engine.cli import EXIT_CHECK, EXIT_INPUT, EXIT_POLICY, main
from engine.cli_view import print_result
from engine.policy.registry import POLICY_DIR

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "docs" / "demo"


def test_exit_codes_are_the_documented_three():
    assert (EXIT_POLICY, EXIT_CHECK, EXIT_INPUT) == (1, 1, 2)
    documented = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for line in ("| 0 |", "| 1 |", "| 2 |"):
        assert line in documented


def test_version_names_the_engine_the_folder_and_each_policy_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    from engine import __version__
    assert out.startswith(f"medpay {__version__}\n")
    assert str(POLICY_DIR.resolve()) in out
    for file in sorted(POLICY_DIR.glob("[!_]*.yaml")):
        meta = yaml.safe_load(file.read_text(encoding="utf-8"))["policy"]
        version = str(meta.get("version") or meta["effective"]["from"])  # a version is its start date unless named
        assert re.search(rf"^  {meta['id']}: .*{re.escape(version)} \({re.escape(meta['notice'])}", out, re.M), (file.name, out)


def test_bad_input_is_exit_2_with_a_message(tmp_path, capsys):
    situation = DEMO / "zibo-dip-settlement.json"
    assert main(["run", "no_such_city", str(situation)]) == EXIT_INPUT
    assert "unknown city 'no_such_city'" in capsys.readouterr().err
    assert main(["run", "zibo", str(situation), "--policy-version", "1999-01-01"]) == EXIT_INPUT
    assert "no version '1999-01-01'" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["settle", "zibo", "--data", str(missing), "--out", str(tmp_path / "out")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert f"--data {missing}: the folder does not exist" in err and "不存在" in err
    assert not (tmp_path / "out").exists()
    a_file = tmp_path / "claims.csv"
    a_file.write_text("id\n", encoding="utf-8")
    assert main(["explain", "zibo", "--data", str(a_file), "institution.H1.points_payment"]) == EXIT_INPUT
    assert "is not a folder" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    assert main(["run", "zibo", str(broken)]) == EXIT_INPUT


def wide_result() -> dict:
    names = {f"a_rather_long_variable_name_{i}": 123456789.12 + i for i in range(12)}
    return {"policy": {"name": {"zh": "测试", "en": "test"}, "notice": "n", "version": "v"}, "period": "2024",
            "entities": {"institution": [{"id": "医院甲", **names}, {"id": "H2", **{k: -v for k, v in names.items()}}]},
            "warnings": []}


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_tables_fit_the_terminal_and_never_cut_a_number(width):
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    result = wide_result()
    print_result(result, console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, max(lines, key=len)
    for row in result["entities"]["institution"]:
        for name, value in row.items():
            if name != "id":
                assert f"{value:,.2f}" in text, (name, value)  # every number whole, on one line

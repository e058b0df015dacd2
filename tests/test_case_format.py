"""Policy test cases are strict data: a case that checks nothing, or checks the wrong thing, fails.

tests/case_format/must_fail/NAME.yaml must fail, and its failure message (error, then faults, one a
line) must equal NAME.expected. tests/case_format/must_pass/ shows each kind of assertion passing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.policy.registry import Registry
from engine.testing.cases import Runner, close, collect

FOLDER = Path(__file__).parent / "case_format"
MUST_FAIL = sorted((FOLDER / "must_fail").glob("*.yaml"))
RUNNER = Runner(Registry())  # fixtures name their policy by path; an id is unknown here


def failure_text(file: Path) -> str:
    (case,) = collect([file])
    outcome = RUNNER.run(case)
    assert not outcome.passed, f"{file.name} passed but must fail"
    return "\n".join(([outcome.error] if outcome.error else []) + outcome.faults) + "\n"


def test_every_failing_fixture_has_its_message():
    assert len(MUST_FAIL) >= 15
    assert {f.stem for f in MUST_FAIL} == {f.stem for f in (FOLDER / "must_fail").glob("*.expected")}


@pytest.mark.parametrize("fixture", MUST_FAIL, ids=lambda f: f.stem)
def test_case_must_fail(fixture):
    assert failure_text(fixture) == fixture.with_suffix(".expected").read_text(encoding="utf-8")


def test_passing_forms():
    cases = collect([FOLDER / "must_pass"])
    assert [c.name for c in cases] == ["absent_when_not_requested", "rejected_period", "warning_only",
                                       "tolerance_number"]
    for case in cases:
        outcome = RUNNER.run(case)
        assert outcome.passed, (case.name, outcome.error, outcome.faults)


def test_misspelt_key_is_named_with_its_nearest():
    text = failure_text(FOLDER / "must_fail" / "misspelt_expected.yaml")
    assert "unknown key 'expectd'; did you mean 'expected'?" in text
    assert "the case checks nothing" in text


@pytest.mark.parametrize(("got", "want", "ok"), [
    (None, None, True), (0.0, None, False), (None, 0, False), (0.0, False, False), (False, 0, False),
    (True, True, True), ("a", "a", True), (1, "1", False), (950.004, 950, True), (950.006, 950, False),
])
def test_close(got, want, ok):
    assert close(got, want, 0.005) is ok


def test_unreadable_file_is_one_failing_case(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("city: x\nsituation: {period: [\n", encoding="utf-8")
    (case,) = collect([bad])
    outcome = RUNNER.run(case)
    assert outcome.error and "cannot read the file" in outcome.error


def test_cli_test_exit_codes(capsys):
    assert main(["test", str(FOLDER / "must_pass")]) == 0
    assert main(["test", str(FOLDER / "must_fail" / "wrong_value.yaml")]) == 1
    out = capsys.readouterr().out
    assert "fund.F.points_budget: got 950.0, want 951" in out and "1 passed" not in out.splitlines()[-1]

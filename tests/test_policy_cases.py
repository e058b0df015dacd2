"""Every policy test case kept as data (tests/cases, tests/worked_examples) runs under pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.testing.cases import Runner, collect

ROOT = Path(__file__).resolve().parent
CASES = collect([ROOT / "cases", ROOT / "worked_examples"])
RUNNER = Runner()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file.parent.name}/{c.name}" for c in CASES])
def test_policy_case(case):
    outcome = RUNNER.run(case)
    assert outcome.error is None, outcome.error
    assert not outcome.faults, "\n".join(outcome.faults)

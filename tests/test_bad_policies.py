"""Policies with one mistake each, and the exact diagnostics they must give (错误政策用例).

tests/bad_policies/NAME.yaml is loaded as "tests/bad_policies/NAME.yaml" (tables beside it),
and its diagnostics, each rendered by Diagnostic.render() and joined by newlines, must equal
tests/bad_policies/NAME.expected. After a deliberate change of wording, regenerate with
MEDPAY_UPDATE_EXPECTED=1 and review the diff. The switch is refused when env CI is set: CI
checks the messages, it never rewrites them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.compile.build import load_policy_text
from engine.errors import PolicyError

FOLDER = Path(__file__).parent / "bad_policies"
FIXTURES = sorted(FOLDER.glob("*.yaml"))
UPDATE_SWITCH = "MEDPAY_UPDATE_EXPECTED"


def update_requested(env=os.environ) -> bool:
    """Whether to rewrite the .expected files; a failure when CI is set, so CI cannot bless new text."""
    on = env.get(UPDATE_SWITCH) == "1"
    if on and "CI" in env:
        pytest.fail(f"{UPDATE_SWITCH}=1 is set under CI: the expected messages would be rewritten instead of "
                    f"checked. Unset it; regenerate locally and review the diff.", pytrace=False)
    return on


def rendered(fixture: Path) -> str:
    text = fixture.read_text(encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, f"tests/bad_policies/{fixture.name}", FOLDER)
    return "\n".join(d.render() for d in caught.value.diagnostics) + "\n"


def test_enough_fixtures():
    assert len(FIXTURES) >= 20
    assert {f.stem for f in FIXTURES} == {f.stem for f in FOLDER.glob("*.expected")}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.stem)
def test_bad_policy(fixture):
    got = rendered(fixture)
    expected = fixture.with_suffix(".expected")
    if update_requested():
        expected.write_text(got, encoding="utf-8")
    assert got == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.stem)
def test_excerpt_and_caret_point_into_the_file(fixture):
    """Every located diagnostic quotes the very line it names, and the caret is inside it."""
    lines = fixture.read_text(encoding="utf-8").splitlines()
    with pytest.raises(PolicyError) as caught:
        load_policy_text(fixture.read_text(encoding="utf-8"), str(fixture), FOLDER)
    for d in caught.value.diagnostics:
        loc = d.location
        assert loc.line is not None and loc.column is not None, d.render()
        assert loc.excerpt == lines[loc.line - 1]
        assert 1 <= loc.column <= len(loc.excerpt) + 1


def test_one_mistake_one_diagnostic():
    several = [f.stem for f in FIXTURES if rendered(f).count(": error[") != 1]
    assert several == ["several_mistakes"]


def test_update_switch_refused_under_ci():
    with pytest.raises(pytest.fail.Exception, match="MEDPAY_UPDATE_EXPECTED=1 is set under CI"):
        update_requested({"CI": "true", UPDATE_SWITCH: "1"})
    assert update_requested({UPDATE_SWITCH: "1"}) is True
    assert update_requested({"CI": "true"}) is False
    assert update_requested({}) is False


def test_update_switch_off_when_ci_is_set():
    """The run itself: under CI the switch must be off (this fails loudly when it is on)."""
    update_requested()

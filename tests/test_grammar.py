"""The formula grammar, case by case from tests/grammar/cases.yaml (公式语法用例)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.dsl import ast
from engine.dsl.parser import MAX_DEPTH, MAX_FORMULA_LENGTH, parse_expression, parse_formula
from engine.dsl.syntax_messages import NO_NULL, SYNTAX_MESSAGES
from engine.errors import FormulaError

CASES = yaml.safe_load((Path(__file__).parent / "grammar" / "cases.yaml").read_text(encoding="utf-8"))


def formula_of(case: dict) -> str:
    f = case["formula"]
    if isinstance(f, list):
        prefix, times, suffix = f
        return prefix * times + suffix
    return f


def case_id(case: dict) -> str:
    text = formula_of(case)
    return text if len(text) < 40 else f"{text[:20]}…({len(text)} chars)"


@pytest.mark.parametrize("case", CASES["parse"], ids=case_id)
def test_parse(case):
    node = parse_expression(formula_of(case))
    text = ast.to_text(node)
    assert text == case["text"]
    # the normalised text reads back as the same tree, and renders the same again
    again = parse_expression(text)
    assert again == node
    assert ast.to_text(again) == text


@pytest.mark.parametrize("case", CASES["errors"], ids=case_id)
def test_error(case):
    with pytest.raises(FormulaError) as caught:
        parse_formula(formula_of(case))
    err = caught.value
    assert (err.code, err.offset) == (case["code"], case["offset"]), err.en
    assert err.en and err.zh
    if err.code in SYNTAX_MESSAGES:
        assert (err.en, err.zh) == SYNTAX_MESSAGES[err.code][:2]


def test_every_syntax_message_has_a_case():
    covered = {c["code"] for c in CASES["errors"]}
    assert set(SYNTAX_MESSAGES) <= covered
    assert {"unknown_character", "bad_date", "formula_too_long", "too_deep"} <= covered


@pytest.mark.parametrize("code,example", [(code, ex) for code, spec in SYNTAX_MESSAGES.items() for ex in spec[2]])
def test_each_message_example_gets_its_own_message(code, example):
    """The bad examples that teach the parser its messages must themselves get that message."""
    with pytest.raises(FormulaError) as caught:
        parse_formula(example)
    assert caught.value.code == code


def test_limits_are_inclusive():
    assert isinstance(parse_formula("a" * MAX_FORMULA_LENGTH), ast.Name)
    node = parse_formula("-" * (MAX_DEPTH - 1) + "a")
    depth = 0
    while isinstance(node, ast.Unary):
        node, depth = node.operand, depth + 1
    assert depth == MAX_DEPTH - 1


def test_positions_point_into_the_formula():
    node = parse_formula("a + sum(claim.x where claim.y > 1)")
    assert isinstance(node, ast.Binary) and node.pos == 2
    call = node.right
    assert isinstance(call, ast.Call) and call.pos == 4
    assert call.args[0].pos == 8 and call.where.pos == 30  # the '>' of the filter
    assert parse_formula("如果 a 则 b 否则 c").then.pos == 7


def test_percent_and_underscore_values():
    assert parse_formula("12.5%").value == pytest.approx(0.125, abs=0)
    assert parse_formula("1_000_000").value == 1_000_000.0
    assert parse_formula("-5%").value == -0.05


@pytest.mark.parametrize(("formula", "offset", "half"), [
    ("min（a, b)", 3, "("), ("min(a, b）", 8, ")"), ("min(a，b)", 5, ","), ("f(a：1)", 3, ":"),
    ("a ＞ 1", 2, ">"), ("a ＜ 1", 2, "<"), ("a ＝＝ 1", 2, "="), ("0。5", 1, "."),
])
def test_full_width_punctuation_names_the_half_width_character(formula, offset, half):
    with pytest.raises(FormulaError) as caught:
        parse_formula(formula)
    err = caught.value
    full = formula[offset]
    assert (err.code, err.offset) == ("full_width", offset)
    assert err.en.startswith(f"'{full}' is a full-width character (Chinese input mode): type the half-width '{half}'")
    assert f"请改用半角“{half}”" in err.zh


def test_null_words_in_text_and_comments_are_fine():
    assert parse_formula('"null" == setting').right == ast.Name(0, ("setting",))
    assert parse_formula("nullable + none_left # None").left == ast.Name(0, ("nullable",))
    with pytest.raises(FormulaError) as caught:
        parse_formula("x == null")
    assert (caught.value.en, caught.value.zh) == NO_NULL


def test_lists_where_the_language_takes_them():
    assert isinstance(parse_formula("x in [1, 2]"), ast.InList)
    assert isinstance(parse_formula('step(x, [1], ["a", "b"], closed="left")'), ast.Call)
    assert isinstance(parse_formula("bands(x, [30, 90], [260, 220, 180])"), ast.Call)

"""Comparing two links (`signed_institution == institution`): identities, not attributes (关联比较).

Each expected value is read off the rows by hand: a claim is at its signing institution when both
links name the same institution row; a missing link is equal to nothing; `!=` is the negation.
"""

from __future__ import annotations

import pytest
from evalkit import by_id, make_policy, run

from engine.errors import PolicyError
from engine.explain.trace import build_trace
from engine.run.evaluate import evaluate

INSTITUTIONS = [{"id": "A", "level": 1}, {"id": "A2", "level": 1}, {"id": "B", "level": 3}]
CLAIMS = [
    {"id": "c1", "institution": "A", "signed_institution": "A"},
    {"id": "c2", "institution": "B", "signed_institution": "A"},
    {"id": "c3", "institution": "A2", "signed_institution": "A"},  # same attributes as A, another row
    {"id": "c4", "institution": "A"},  # no signed institution
]


def _policy():
    return make_policy({"institution": {"level": {"type": "number"}},
                        "claim": {"at_home": {"type": "bool", "formula": "signed_institution == institution"},
                                  "away": {"type": "bool", "formula": "institution != signed_institution"},
                                  "same_fund": {"type": "bool", "formula": "institution.fund == fund"},
                                  "home_visits": {"formula": "if signed_institution == institution then 1 else 0"}}})


def test_links_compare_as_identities():
    result = run(_policy(), {"institution": INSTITUTIONS, "claim": CLAIMS},
                 outputs=["claim.at_home", "claim.away"])
    assert by_id(result, "claim", "at_home") == {"c1": True, "c2": False, "c3": False, "c4": False}
    # != is the negation of ==: a claim with no signed institution is "away"
    assert by_id(result, "claim", "away") == {"c1": False, "c2": True, "c3": True, "c4": True}


def test_link_through_a_parent():
    """`institution.fund == fund`: the institution's fund link against the claim's own."""
    institutions = [{"id": "A", "level": 1, "fund": "resident"}, {"id": "B", "level": 3}]
    claims = [{"id": "c1", "institution": "A", "fund": "resident"},
              {"id": "c2", "institution": "A", "fund": "employee"},
              {"id": "c3", "institution": "B", "fund": "resident"}]  # B names no fund: never equal
    result = run(_policy(), {"fund": [{"id": "resident"}, {"id": "employee"}], "institution": institutions,
                             "claim": claims}, outputs=["claim.same_fund"])
    assert by_id(result, "claim", "same_fund") == {"c1": True, "c2": False, "c3": False}


def test_trace_shows_the_linked_ids():
    policy = _policy()
    data = {"period": "2024", "entities": {"institution": INSTITUTIONS, "claim": CLAIMS},
            "outputs": ["claim.home_visits"]}
    trace = evaluate(policy, data, tracer=build_trace)["trace"]
    entry = trace["claim.c3.home_visits"]
    assert entry["formula"] == "if signed_institution == institution then 1 else 0"
    assert entry["value"] == 0
    assert entry["inputs"] == {"signed_institution": "A", "institution": "A2"}
    assert trace["claim.c4.home_visits"]["inputs"] == {"signed_institution": None, "institution": "A"}


@pytest.mark.parametrize(("formula", "link"), [
    ("signed_institution == 1", "signed_institution"),
    ('"A" != institution', "institution"),
    ("institution == institution.level", "institution =="),
])
def test_a_link_compared_with_a_value_is_a_located_bilingual_diagnostic(formula, link):
    with pytest.raises(PolicyError) as caught:
        make_policy({"institution": {"level": {"type": "number"}},
                     "claim": {"bad": {"type": "bool", "formula": formula}}})
    [diag] = caught.value.diagnostics
    assert diag.code == "link_as_value"
    assert "is a link" in diag.en and "compare it with another link to a institution" in diag.en
    assert "关联" in diag.zh and "signed_institution == institution" in diag.zh
    where = diag.location
    assert where.excerpt[where.column - 1:].startswith(link)  # points at the link itself


def test_links_to_different_entities_are_refused():
    with pytest.raises(PolicyError) as caught:
        make_policy({"claim": {"bad": {"type": "bool", "formula": "institution == fund"}}})
    [diag] = caught.value.diagnostics
    assert diag.code == "compare_link" and "links to different entities" in diag.en
    assert "指向不同实体" in diag.zh and diag.location is not None

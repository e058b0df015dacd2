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


@pytest.mark.parametrize(("formula", "fragment_en", "fragment_zh"), [
    ("signed_institution == 1", "compares the link 'signed_institution' (a institution) with a number",
     "关联只能与指向同一实体"),
    ('"A" != institution', "compares the link 'institution' (a institution) with a text", "关联只能与指向同一实体"),
    ("institution == fund", "compares links to different entities", "比较指向不同实体的关联"),
    ("institution == institution.level", "with a number", "关联只能与指向同一实体"),
])
def test_bad_link_comparisons_are_located_bilingual_diagnostics(formula, fragment_en, fragment_zh):
    with pytest.raises(PolicyError) as caught:
        make_policy({"institution": {"level": {"type": "number"}},
                     "claim": {"bad": {"type": "bool", "formula": formula}}})
    [diag] = caught.value.diagnostics
    assert diag.code == "compare_link"
    assert fragment_en in diag.en and fragment_zh in diag.zh
    assert diag.location is not None and diag.location.line > 0


def test_a_link_is_still_no_value_elsewhere():
    """`signed_institution < institution` or `signed_institution + 1`: a link has no order or amount."""
    with pytest.raises(PolicyError) as caught:
        make_policy({"claim": {"bad": {"type": "bool", "formula": "signed_institution < institution"}}})
    assert caught.value.diagnostics[0].code == "link_as_value"

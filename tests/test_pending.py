"""Values with no value: pending("reason") and is_pending() (待审核：无值).

A claim without a price has no share: its `share` is null in JSON and Parquet, never 0. Every
expected number is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evalkit import POLICIES, by_id, make_policy, run

from engine.batch.settle import folder_period, settle
from engine.compile.build import load_policy_file
from engine.errors import PolicyError
from engine.explain.trace import build_trace
from engine.run.evaluate import evaluate

CLAIM = {
    "price": {"unit": "yuan", "default": 0},
    "share": {"unit": "yuan", "formula": 'if price > 0 then price * 0.1 else pending("no price")'},
    "doubled": {"unit": "yuan", "formula": "share * 2 + 1"},
    "capped": {"unit": "yuan", "formula": "min(share, 50)"},
    "band": {"formula": "if share > 100 then 1 else 2"},
    "big": {"type": "bool", "formula": "share > 100"},
    "not_100": {"type": "bool", "formula": "share != 100"},
    "known": {"type": "bool", "formula": "not is_pending(share)"},
    "share_or_zero": {"unit": "yuan", "formula": "if is_pending(share) then 0 else share"},
}
INSTITUTION = {
    "total": {"unit": "yuan", "formula": "sum(claim.share)"},
    "priced_total": {"unit": "yuan", "formula": "sum(claim.share where claim.price > 0)"},
    "known_total": {"unit": "yuan", "formula": "sum(claim.share where not is_pending(claim.share))"},
    "largest": {"unit": "yuan", "formula": "max(claim.share)"},
    "claims": {"unit": "count", "formula": "count(claim)"},
}
ROWS = {"institution": [{"id": "A"}, {"id": "B"}],
        "claim": [{"id": "a1", "institution": "A", "price": 2000},   # share 200
                  {"id": "a2", "institution": "A"},                   # no price: pending
                  {"id": "b1", "institution": "B", "price": 1000}]}   # share 100


@pytest.fixture(scope="module")
def result() -> dict:
    return run(make_policy({"claim": CLAIM, "institution": INSTITUTION}), ROWS)


def test_pending_is_null_and_propagates_through_arithmetic(result):
    assert by_id(result, "claim", "share") == {"a1": 200, "a2": None, "b1": 100}
    assert by_id(result, "claim", "doubled") == {"a1": 401, "a2": None, "b1": 201}
    assert by_id(result, "claim", "capped") == {"a1": 50, "a2": None, "b1": 50}


def test_a_condition_on_no_value_has_no_answer(result):
    # a number chosen by a comparison with no value has none; a yes/no comparison does not hold
    assert by_id(result, "claim", "band") == {"a1": 1, "a2": None, "b1": 2}
    assert by_id(result, "claim", "big") == {"a1": True, "a2": False, "b1": False}
    assert by_id(result, "claim", "not_100") == {"a1": True, "a2": False, "b1": False}


def test_is_pending_guards(result):
    assert by_id(result, "claim", "known") == {"a1": True, "a2": False, "b1": True}
    assert by_id(result, "claim", "share_or_zero") == {"a1": 200, "a2": 0, "b1": 100}


def test_totals_are_null_unless_the_pending_rows_are_filtered_out(result):
    assert by_id(result, "institution", "total") == {"A": None, "B": 100}        # 200 + no value
    assert by_id(result, "institution", "largest") == {"A": None, "B": 100}
    assert by_id(result, "institution", "priced_total") == {"A": 200, "B": 100}  # a2 filtered out
    assert by_id(result, "institution", "known_total") == {"A": 200, "B": 100}
    assert by_id(result, "institution", "claims") == {"A": 2, "B": 1}            # rows still count


def test_no_value_is_not_a_non_finite_warning(result):
    assert "non_finite" not in [w["code"] for w in result["warnings"]]


def test_the_plan_knows_which_values_can_be_missing():
    policy = make_policy({"claim": CLAIM, "institution": INSTITUTION})
    nullable = policy.plan.nullable
    assert {("claim", "share"), ("claim", "doubled"), ("institution", "total")} <= nullable
    # yes/no values and counts always have a value
    assert not {("claim", "big"), ("claim", "known"), ("institution", "claims")} & nullable


def test_trace_renders_pending():
    policy = make_policy({"claim": CLAIM, "institution": INSTITUTION})
    trace = evaluate(policy, {"period": "2024", "entities": ROWS, "outputs": ["claim.share"]},
                     tracer=build_trace)["trace"]
    entry = trace["claim.a2.share"]
    assert entry["formula"] == 'if price > 0 then price * 0.1 else pending("no price")'
    assert entry["value"] is None and entry["inputs"] == {"price": 0}
    assert "pending" in entry["functions"]


@pytest.mark.parametrize(("formula", "code"), [
    ("pending(1)", "pending_reason"),
    ('pending("a", "b")', "arity"),
    ('is_pending("x")', "type"),
])
def test_bad_pending_calls_are_located_bilingual_diagnostics(formula, code):
    with pytest.raises(PolicyError) as caught:
        make_policy({"claim": {"x": {"formula": formula}}})
    [diag] = caught.value.diagnostics
    assert diag.code == code and diag.en and diag.zh and diag.location is not None


def test_a_pending_value_cannot_be_a_text_or_yes_no():
    with pytest.raises(PolicyError) as caught:
        make_policy({"claim": {"x": {"type": "string", "formula": 'if total_cost > 0 then "a" else pending()'}}})
    assert caught.value.diagnostics[0].code == "branch_types"


def test_parquet_writes_null_not_zero(tmp_path):
    """Batch settlement: the pending claim's share is a Parquet null; the total that takes it too."""
    policy = make_policy({"claim": CLAIM, "institution": INSTITUTION})
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": ["A", "B"]}), data / "institution.parquet")
    pq.write_table(pa.table({"id": ["a1", "a2", "b1"], "institution": ["A", "A", "B"],
                             "price": [2000.0, 0.0, 1000.0],
                             "discharge_date": pa.array([dt.date(2024, 3, 1)] * 3)}), data / "claim.parquet")
    for chunk in (None, 2):
        out = tmp_path / f"out{chunk}"
        settle(policy, data, out, folder_period(data, "2024"), chunk_rows=chunk)
        claims = pq.read_table(out / "claim.parquet").to_pydict()
        assert dict(zip(claims["id"], claims["share"], strict=True)) == {"a1": 200.0, "a2": None, "b1": 100.0}
        institutions = pq.read_table(out / "institution.parquet").to_pydict()
        assert dict(zip(institutions["id"], institutions["total"], strict=True)) == {"A": None, "B": 100.0}
        assert dict(zip(institutions["id"], institutions["priced_total"], strict=True)) == {"A": 200.0, "B": 100.0}


def test_zibo_pending_fixed_standard_has_no_patient_share():
    """淄博 C12: a single disease without a standard. H1 level 2 (deductible 600, 15%, assumed).
    s1 SD002 standard 6 500: patient 600 + 5 900 × 15% = 1 485; fund 6 500 − 600 − 885 = 5 015.
    s2 no code, no standard: cost base, deductible, patient and fund shares all null; the account's
    standard payments count s1 only (5 015)."""
    policy = load_policy_file(POLICIES / "zibo.yaml")
    claims = [{"id": "s1", "institution": "H1", "fund": "resident", "category": "single_disease",
               "single_disease_code": "SD002", "total_cost": 7000, "fund_cost": 0,
               "admit_date": "2022-05-01", "discharge_date": "2022-05-06"},
              {"id": "s2", "institution": "H1", "fund": "resident", "category": "single_disease",
               "total_cost": 5000, "fund_cost": 0, "admit_date": "2022-05-01", "discharge_date": "2022-05-06"}]
    result = evaluate(policy, {"period": "2022", "outputs": [
        "claim.cost_base", "claim.deductible_due", "claim.patient_paid", "claim.fund_payable",
        "account.standard_payments"], "entities": {"fund": [{"id": "resident"}],
                                                   "institution": [{"id": "H1", "level": 2}], "claim": claims}})
    rows = {r["id"]: r for r in result["entities"]["claim"]}
    assert rows["s1"] == {"id": "s1", "cost_base": 6500, "deductible_due": 600, "patient_paid": 1485,
                          "fund_payable": 5015}
    assert rows["s2"] == {"id": "s2", "cost_base": None, "deductible_due": None, "patient_paid": None,
                          "fund_payable": None}
    assert result["entities"]["account"] == [{"id": "H1|resident", "standard_payments": 5015}]

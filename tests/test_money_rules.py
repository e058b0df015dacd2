"""Money that never guesses: required inputs, claims outside the period, exact sums, exact edges,
overridden parameters and unknown versions (金额规则：必填输入、期间外记录、精确求和、精确边界、覆盖与版本).

Expected values are computed here by hand or with fractions.Fraction, never copied from the engine.
MEDPAY_FUZZ_EXAMPLES > 1 runs the property tests at full size (10,000 examples and more).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evalkit import by_id, make_policy, run
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.app import create_app
from engine.batch import partition
from engine.batch.settle import settle
from engine.cli import main
from engine.errors import SituationError
from engine.period import parse_period
from engine.run import exact

ROOT = Path(__file__).resolve().parents[1]
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))
PROPERTY = settings(max_examples=120 if SCALE <= 1 else 10_000 * SCALE, deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=True)


def faults(policy, entities, **extra) -> dict[str, tuple[str, str]]:
    with pytest.raises(SituationError) as err:
        run(policy, entities, **extra)
    return {f.path: (f.en, f.zh) for f in err.value.faults}


# ---- 1. required inputs ----------------------------------------------------------------------

PAID = make_policy({"claim": {"paid": {"formula": "total_cost * 0.9", "unit": "yuan"},
                              "flag": {"formula": "not out_of_area", "type": "bool"},
                              "fee": {"formula": "extra_fee + 1", "unit": "yuan"},
                              "extra_fee": {"unit": "yuan", "default": 5, "label": {"zh": "附加费", "en": "fee"}}}})


def test_a_missing_input_an_output_needs_is_a_fault_naming_its_json_path():
    found = faults(PAID, {"claim": [{"id": "a", "total_cost": 100}, {"id": "b"}, {"id": "c", "total_cost": None}]})
    assert set(found) == {"entities.claim[1].total_cost", "entities.claim[2].total_cost"}
    en, zh = found["entities.claim[1].total_cost"]
    assert "required" in en and "claim.paid" in en and "必填" in zh


def test_an_input_no_requested_output_needs_may_be_left_out():
    result = run(PAID, {"claim": [{"id": "a"}]}, outputs=["claim.fee", "claim.flag"])
    assert by_id(result, "claim", "fee") == {"a": 6.0}  # the policy's default 5, plus 1
    assert by_id(result, "claim", "flag") == {"a": True}  # the model's default: not out of area


def test_a_value_supplied_on_every_row_needs_none_of_its_inputs():
    result = run(PAID, {"claim": [{"id": "a", "paid": 7}]}, outputs=["claim.paid"])
    assert by_id(result, "claim", "paid") == {"a": 7.0}


def test_an_input_is_required_only_on_the_rows_whose_formula_runs():
    """`paid` supplied on row a: its formula runs on b only, so only b needs a total cost (0.9 × 50 = 45)."""
    result = run(PAID, {"claim": [{"id": "a", "paid": 7}, {"id": "b", "total_cost": 50}]}, outputs=["claim.paid"])
    assert by_id(result, "claim", "paid") == {"a": 7.0, "b": 45.0}
    found = faults(PAID, {"claim": [{"id": "a", "paid": 7}, {"id": "b"}]}, outputs=["claim.paid"])
    assert set(found) == {"entities.claim[1].total_cost"}


def test_a_second_formula_reading_the_input_keeps_it_required():
    """`paid` is supplied on a, but `kept` reads total_cost too and is not: a still needs it."""
    two = make_policy({"claim": {"paid": {"formula": "total_cost * 0.9", "unit": "yuan"},
                                 "kept": {"formula": "total_cost * 0.1", "unit": "yuan"}}})
    found = faults(two, {"claim": [{"id": "a", "paid": 7}]}, outputs=["claim.paid", "claim.kept"])
    assert set(found) == {"entities.claim[0].total_cost"}


def test_a_missing_date_a_formula_needs_is_a_fault_not_a_huge_negative_stay():
    policy = make_policy({"claim": {"bed_days": {"formula": "days_between(admit_date, discharge_date)", "unit": "days"},
                                    "pay": {"formula": "bed_days * 300", "unit": "yuan"}}})
    found = faults(policy, {"claim": [{"id": "a", "admit_date": "2024-03-01"}]})
    assert list(found) == ["entities.claim[0].discharge_date"]
    result = run(policy, {"claim": [{"id": "a", "admit_date": "2024-03-01", "discharge_date": "2024-03-11"}]})
    assert by_id(result, "claim", "pay") == {"a": 3000.0}  # 10 days × 300


def test_the_api_answers_a_missing_input_with_422_and_the_path(tmp_path):
    client = TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")
    body = {"period": "2024", "entities": {"institution": [{"id": "H1", "level": 1, "community": "C1"}],
                                           "community": [{"id": "C1"}]}}
    answer = client.post("/v1/cities/jingdezhen/evaluate", json=body)
    assert answer.status_code == 422
    paths = [d["path"] for d in answer.json()["detail"]]
    assert "entities.community[0].assessment_score" in paths


def test_batch_names_the_file_column_and_first_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "c"], "total_cost": [1.0, None, None]}), data / "claim.parquet")
    with pytest.raises(SituationError) as err:
        settle(PAID, data, tmp_path / "out", parse_period("2024"))
    (fault,) = err.value.faults
    assert fault.path == "claim.parquet:total_cost" and "2 row(s) empty, first rows 1, 2" in fault.en
    pq.write_table(pa.table({"id": ["a"]}), data / "claim.parquet")
    with pytest.raises(SituationError) as err:
        settle(PAID, data, tmp_path / "out", parse_period("2024"))
    assert "the column is missing" in err.value.faults[0].en


# ---- 2. claims outside the period or the policy's life ----------------------------------------

COUNT = make_policy({"institution": {"cost": {"formula": "sum(claim.total_cost)", "unit": "yuan"}}},
                    effective=("2024-03-01", None))


def claims_dated(*dates):
    return [{"id": f"c{i}", "institution": "H1", "total_cost": 100.0 * (i + 1), "discharge_date": d}
            for i, d in enumerate(dates)]


def test_claims_outside_the_period_or_the_policy_life_are_left_out_with_a_warning():
    claims = claims_dated("2024-02-29", "2024-03-01", None, "2024-06-30", "2024-07-01")
    result = run(COUNT, {"institution": [{"id": "H1"}], "claim": claims},
                 period={"start": "2024-01-01", "end": "2024-06-30"})
    # kept: c1 (200), c2 (no date: 300), c3 (400); out: c0 before the policy, c4 after the period
    assert by_id(result, "institution", "cost") == {"H1": 200.0 + 300.0 + 400.0}
    (warning,) = [w for w in result["warnings"] if w["code"] == "claims_outside_period"]
    assert warning["rows"] == 2 and warning["ids"] == ["c0", "c4"]
    assert "2024-03-01–2024-06-30" in warning["message"] and "未参与" in warning["message_zh"]


def test_a_claim_left_out_keeps_its_row_with_inputs_echoed_and_computed_values_null():
    """Contract ("A result"): rows keep the request order; a claim excluded by the period keeps its
    row, its inputs echoed and every computed value null. Kept: 0.5 × 200 = 100, 0.5 × 300 = 150."""
    half = make_policy({"claim": {"half": {"formula": "total_cost * 0.5", "unit": "yuan"}}},
                       effective=("2024-03-01", None))
    claims = claims_dated("2024-02-29", "2024-03-01", "2024-06-30", "2024-07-01")
    result = run(half, {"institution": [{"id": "H1"}], "claim": claims},
                 period={"start": "2024-01-01", "end": "2024-06-30"}, outputs=["claim.half", "claim.total_cost"])
    assert result["entities"]["claim"] == [
        {"id": "c0", "half": None, "total_cost": 100.0}, {"id": "c1", "half": 100.0, "total_cost": 200.0},
        {"id": "c2", "half": 150.0, "total_cost": 300.0}, {"id": "c3", "half": None, "total_cost": 400.0}]


def test_a_fault_on_a_kept_claim_names_its_index_in_the_request():
    claims = claims_dated("2023-12-31", "2024-05-01")
    claims[1]["institution"] = "nope"
    with pytest.raises(SituationError) as err:
        run(COUNT, {"institution": [{"id": "H1"}], "claim": claims})
    assert [f.path for f in err.value.faults] == ["entities.claim[1].institution"]


def test_batch_summary_warns_of_claims_outside_the_period(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": ["H1"]}), data / "institution.parquet")
    pq.write_table(pa.Table.from_pylist(claims_dated("2024-02-01", "2024-04-01", "2025-01-01")), data / "claim.parquet")
    summary = settle(COUNT, data, tmp_path / "out", parse_period("2024"))
    assert summary.rows["claim"] == 1
    left_out = [w for w in summary.warnings if w["code"] == "claims_outside_period"]
    assert [(w["rows"], w["ids"]) for w in left_out] == [(2, ["c0", "c2"])]
    # as in a JSON run, the batch summary also says the year reaches outside the policy's life
    assert [w["code"] for w in summary.warnings] == ["claims_outside_period", "period_partly_outside"]
    assert pq.read_table(tmp_path / "out" / "institution.parquet")["cost"].to_pylist() == [200.0]


# ---- 3. exact sums ------------------------------------------------------------------------------

def test_a_sum_of_millionths_of_millionths_is_not_rounded_away():
    policy = make_policy({"institution": {"tiny": {"formula": "sum(claim.total_cost / 1000000)", "unit": "ratio"}}})
    claims = [{"id": f"c{i}", "institution": "H1", "total_cost": 0.4} for i in range(10)]
    result = run(policy, {"institution": [{"id": "H1"}], "claim": claims})
    want = float(sum([Fraction(0.4 / 1000000)] * 10, Fraction(0)))
    assert by_id(result, "institution", "tiny") == {"H1": want}  # about 4e-6, not 0


MAGNITUDES = st.builds(lambda m, e, s: s * m * 10.0 ** e, st.floats(1.0, 9.999), st.integers(-9, 11),
                       st.sampled_from([1.0, -1.0]))


@PROPERTY
@given(st.lists(st.tuples(MAGNITUDES, st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=60))
def test_sums_are_exact_and_the_same_for_any_partitioning(rows):
    """Each row: (value, parent 0-3, partition 0-4). The sum per parent equals the Fraction sum rounded
    once, on one machine and from the partitions' partial rows combined as Spark and chunks do."""
    values = np.array([v for v, _, _ in rows])
    groups = np.array([g for _, g, _ in rows], dtype=np.int64)
    want = [float(sum((Fraction(v) for v, g, _ in rows if g == k), Fraction(0))) for k in range(4)]
    assert exact.group_sum(values, groups, 4).tolist() == want
    ids = ["P0", "P1", "P2", "P3"]
    parts = []
    for p in range(5):
        mine = np.array([part == p for _, _, part in rows])
        if mine.any():
            table = partition._partial_table("k", ids, values[mine], groups[mine], 4)
            parts += [(r["parent"], r["limb"], r["value"], r["rows"], r["low"], r["high"]) for r in table.to_pylist()]
    assert partition.combine("sum", ids, parts).tolist() == want


# ---- 4. exact edges -----------------------------------------------------------------------------

def test_a_ratio_exactly_on_a_step_edge_takes_the_side_the_rule_states():
    assert 5001.55 / 1000.31 != 5.0  # binary floating point alone would put it above the edge
    policy = make_policy({"claim": {
        "ratio": {"formula": "total_cost / group_avg", "unit": "ratio"},
        "band": {"formula": 'step(ratio, [5], ["normal", "high"], closed="right")', "type": "string"},
        "at_least": {"formula": "ratio >= 5", "type": "bool"},
        "above": {"formula": "ratio > 5", "type": "bool"},
        "group_avg": {"unit": "yuan", "label": {"zh": "均费", "en": "average"}}}})
    result = run(policy, {"claim": [{"id": "a", "total_cost": 5001.55, "group_avg": 1000.31}]})
    assert by_id(result, "claim", "band") == {"a": "normal"}  # x > 5 only: exactly 5 stays below
    assert by_id(result, "claim", "at_least") == {"a": True} and by_id(result, "claim", "above") == {"a": False}


def test_a_budget_times_a_rate_equals_the_revenue_it_is_mathematically_equal_to():
    assert 700_000_000 * 1.10 != 770_000_000.0
    policy = make_policy({"fund": {"budget": {"formula": "last * 1.10", "unit": "yuan"},
                                   "balanced": {"formula": "revenue == budget", "type": "bool"},
                                   "overspent": {"formula": "budget > revenue", "type": "bool"},
                                   "over": {"formula": "bands(revenue, [770000000], [0, 1])", "unit": "yuan"},
                                   "last": {"unit": "yuan", "label": {"zh": "上年", "en": "last year"}}}})
    result = run(policy, {"fund": [{"id": "F", "revenue": 770_000_000, "last": 700_000_000}]})
    assert by_id(result, "fund", "balanced") == {"F": True} and by_id(result, "fund", "overspent") == {"F": False}
    assert by_id(result, "fund", "over") == {"F": 0.0}


FEN_PAIRS = st.integers(1, 1000).flatmap(lambda k: st.tuples(st.just(k), st.integers(1, 10**14 // max(k, 100))))


@PROPERTY
@given(FEN_PAIRS)
def test_ratios_and_products_of_fen_amounts_on_an_edge(pair):
    """b = 100·units fen, edge e = k/100 (0.01 … 10), a = e·b = k·units fen exactly. a/b and b·e are on
    the edge; one fen away they are on the other side (amounts a and b up to 1e12 yuan)."""
    k, units = pair
    b_fen, a_fen, e = 100 * units, k * units, k / 100
    assert Fraction(a_fen, b_fen) == Fraction(k, 100)
    ratio = (a_fen / 100) / (b_fen / 100)
    assert exact.equal(ratio, e) and exact.greater_equal(ratio, e) and exact.less_equal(ratio, e)
    assert not exact.less(ratio, e) and not exact.greater(ratio, e)
    below, above = ((a_fen - 1) / 100) / (b_fen / 100), ((a_fen + 1) / 100) / (b_fen / 100)
    assert exact.less(below, e) and not exact.greater_equal(below, e)
    assert exact.greater(above, e) and not exact.less_equal(above, e)
    product = (b_fen / 100) * e
    assert exact.equal(product, a_fen / 100)
    assert exact.less(product, (a_fen + 1) / 100) and exact.greater(product, (a_fen - 1) / 100)


def test_text_yes_no_and_dates_still_compare_exactly():
    assert exact.equal(np.array(["a", "b"]), "a").tolist() == [True, False]
    assert exact.less(np.datetime64("2024-01-01"), np.datetime64("2024-01-02"))
    assert exact.equal(np.array([True, False]), True).tolist() == [True, False]


# ---- 5. overrides and versions -----------------------------------------------------------------

def test_overridden_parameters_are_listed_and_the_trace_cites_no_clause_for_them():
    policy = make_policy({"claim": {"paid": {"formula": "total_cost * rate + fee", "unit": "yuan"}}},
                         parameters={"rate": "90%", "fee": 10})
    from engine.explain.trace import build_trace
    from engine.run.evaluate import evaluate
    result = evaluate(policy, {"period": "2024", "parameters": {"rate": 0.5},
                               "entities": {"claim": [{"id": "a", "total_cost": 100}]}}, tracer=build_trace)
    assert by_id(result, "claim", "paid") == {"a": 60.0}  # 100 × 0.5 + 10
    (warning,) = [w for w in result["warnings"] if w["code"] == "parameters_overridden"]
    assert warning["parameters"] == ["rate"] and "覆盖" in warning["message_zh"]
    params = result["trace"]["claim.a.paid"]["parameters"]
    assert params["rate"]["overridden"] and params["rate"]["source"] is None
    assert "overridden by the request" in params["rate"]["note"]
    assert params["fee"] == {"source": "一", "assumed": None}


def test_an_unknown_version_is_404_naming_the_versions():
    client = TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")
    answer = client.get("/v1/cities/jingdezhen", params={"version": "1999-01-01"})
    assert answer.status_code == 404
    assert "2024-07-09" in answer.json()["detail"][0]["message"]
    assert client.get("/v1/cities/jingdezhen", params={"version": "2024-07-09"}).status_code == 200
    answer = client.post("/v1/cities/jingdezhen/versions/1999-01-01/evaluate", json={"period": "2024"})
    assert answer.status_code == 404


def test_the_command_line_refuses_an_unknown_version(tmp_path, capsys):
    situation = tmp_path / "s.json"
    situation.write_text(json.dumps({"period": "2024", "entities": {}}), encoding="utf-8")
    assert main(["run", "jingdezhen", str(situation), "--policy-version", "1999-01-01"]) == 2  # bad input
    assert "2024-07-09" in capsys.readouterr().err
    assert main(["run", "jingdezhen", str(situation), "--policy-version", "2024-07-09", "--json",
                 "-o", str(tmp_path / "r.json")]) == 0

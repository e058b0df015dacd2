"""Required inputs decided by the branch a row takes (按分支判定必填输入).

An input without a default is needed only where a wanted output actually reads it: in the branch
of an `if` the row takes, on the children of an aggregation that pass its `where`, on the parents
of the rows that read them. Missing where needed: a fault naming the place (JSON path, or file and
column in batch); missing elsewhere: no fault, and the value appears in no output. Expected
values are computed here by hand.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evalkit import by_id, make_policy, run

from engine.batch.settle import settle
from engine.errors import SituationError
from engine.explain.cone import explain_situation
from engine.period import parse_period

RATE = {"unit": "ratio", "label": {"zh": "费率", "en": "rate"}}


def fee(name: str) -> dict:
    """A money input without a default (each declaration its own dict: no YAML aliases)."""
    return {"unit": "yuan", "label": {"zh": name, "en": name}}


POLICY = make_policy({
    "institution": {
        "rate": RATE,
        "out_of_area_fees": {"formula": "sum(claim.extra_fee where claim.out_of_area)", "unit": "yuan"},
        "big_pay": {"formula": "sum(claim.pay where claim.total_cost > 1000)", "unit": "yuan"},
    },
    "claim": {
        "extra_fee": fee("extra fee"),
        "bonus": fee("bonus"),
        "pay": {"formula": "if out_of_area then extra_fee * 2 else total_cost * 0.5", "unit": "yuan"},
        "tier": {"formula": "if total_cost > 1000 then (if out_of_area then bonus else 10) "
                            "else if total_cost > 500 then 5 else 0", "unit": "yuan"},
        "levy": {"formula": "if total_cost > 100 then institution.rate * total_cost else 0", "unit": "yuan"},
        "flagged": {"formula": "out_of_area and extra_fee > 10", "type": "bool"},
    },
})


def faults(policy, entities, **extra) -> set[str]:
    with pytest.raises(SituationError) as err:
        run(policy, entities, **extra)
    return {f.path for f in err.value.faults}


def at_h1(rows: list[dict]) -> dict:
    """A situation: the claims at one institution H1 (no rate given)."""
    return {"institution": [{"id": "H1"}], "claim": rows}


def claims(*rows: dict) -> list[dict]:
    return [{"id": f"c{i}", "institution": "H1", "discharge_date": "2024-05-01", **r} for i, r in enumerate(rows)]


def test_an_input_read_in_one_branch_is_not_needed_on_rows_taking_the_other():
    rows = claims({"total_cost": 80}, {"total_cost": 60, "out_of_area": True, "extra_fee": 7})
    result = run(POLICY, at_h1(rows), outputs=["claim.pay"])
    assert by_id(result, "claim", "pay") == {"c0": 40.0, "c1": 14.0}  # 80 × 0.5; 7 × 2


def test_an_input_missing_on_a_row_taking_its_branch_is_a_fault_naming_the_path():
    rows = claims({"total_cost": 80}, {"total_cost": 60, "out_of_area": True})
    assert faults(POLICY, at_h1(rows), outputs=["claim.pay"]) == {"entities.claim[1].extra_fee"}


def test_a_condition_is_needed_wherever_its_if_is():
    rows = claims({"out_of_area": False, "extra_fee": 3})
    assert faults(POLICY, at_h1(rows), outputs=["claim.pay"]) == {"entities.claim[0].total_cost"}


def test_nested_ifs_and_else_if_chains_need_only_the_arm_taken():
    rows = claims({"total_cost": 2000}, {"total_cost": 700}, {"total_cost": 20},
                  {"total_cost": 3000, "out_of_area": True, "bonus": 42})
    result = run(POLICY, at_h1(rows), outputs=["claim.tier"])
    assert by_id(result, "claim", "tier") == {"c0": 10.0, "c1": 5.0, "c2": 0.0, "c3": 42.0}
    rows[3] = {**rows[3], "bonus": None}
    assert faults(POLICY, at_h1(rows), outputs=["claim.tier"]) == {"entities.claim[3].bonus"}


def test_and_needs_its_right_side_only_where_the_left_holds():
    rows = claims({"total_cost": 1}, {"total_cost": 1, "out_of_area": True, "extra_fee": 11})
    result = run(POLICY, at_h1(rows), outputs=["claim.flagged"])
    assert by_id(result, "claim", "flagged") == {"c0": False, "c1": True}


def test_an_aggregation_needs_its_value_only_on_children_passing_the_where():
    entities = {"institution": [{"id": "H1"}],
                "claim": claims({"total_cost": 1}, {"total_cost": 1, "out_of_area": True, "extra_fee": 30},
                                {"total_cost": 1, "out_of_area": True, "extra_fee": 12.5})}
    result = run(POLICY, entities, outputs=["institution.out_of_area_fees"])
    assert by_id(result, "institution", "out_of_area_fees") == {"H1": 42.5}
    entities["claim"][2] = {**entities["claim"][2], "extra_fee": None}
    assert faults(POLICY, entities, outputs=["institution.out_of_area_fees"]) == {"entities.claim[2].extra_fee"}


def test_demand_flows_through_an_aggregated_formula_and_its_branches():
    """big_pay sums pay over claims above 1000 only: a small out-of-area claim needs no extra_fee."""
    entities = {"institution": [{"id": "H1"}],
                "claim": claims({"total_cost": 50, "out_of_area": True}, {"total_cost": 1200},
                                {"total_cost": 1500, "out_of_area": True, "extra_fee": 9})}
    result = run(POLICY, entities, outputs=["institution.big_pay"])
    assert by_id(result, "institution", "big_pay") == {"H1": 618.0}  # 1200 × 0.5 + 9 × 2
    entities["claim"][2] = {**entities["claim"][2], "extra_fee": None}
    assert faults(POLICY, entities, outputs=["institution.big_pay"]) == {"entities.claim[2].extra_fee"}


def test_a_parent_value_is_needed_only_by_parents_of_rows_that_read_it():
    entities = {"institution": [{"id": "H1"}, {"id": "H2", "rate": 0.1}],
                "claim": [{"id": "a", "institution": "H1", "total_cost": 90, "discharge_date": "2024-05-01"},
                          {"id": "b", "institution": "H2", "total_cost": 300, "discharge_date": "2024-05-01"}]}
    result = run(POLICY, entities, outputs=["claim.levy"])
    assert by_id(result, "claim", "levy") == {"a": 0.0, "b": 30.0}
    entities["claim"][0] = {**entities["claim"][0], "total_cost": 200}
    assert faults(POLICY, entities, outputs=["claim.levy"]) == {"entities.institution[0].rate"}


def test_a_supplied_formula_value_stops_the_demand_on_its_row():
    rows = claims({"total_cost": 60, "out_of_area": True, "pay": 5})
    result = run(POLICY, at_h1(rows), outputs=["claim.pay"])
    assert by_id(result, "claim", "pay") == {"c0": 5.0}


def test_every_output_wanted_keeps_every_reader():
    """No `outputs`: flagged also reads extra_fee on out-of-area claims, pay too; rate where levy runs."""
    entities = {"institution": [{"id": "H1", "rate": 0.5}],
                "claim": claims({"total_cost": 80}, {"total_cost": 60, "out_of_area": True, "extra_fee": 1, "bonus": 0})}
    result = run(POLICY, entities)
    assert by_id(result, "claim", "pay") == {"c0": 40.0, "c1": 2.0}
    assert by_id(result, "institution", "out_of_area_fees") == {"H1": 1.0}
    assert by_id(result, "claim", "levy") == {"c0": 0.0, "c1": 0.0}  # neither is above 100


ALWAYS = make_policy({"claim": {"pay": {"formula": "total_cost * 0.5", "unit": "yuan"},
                                "ward": {"type": "string", "required": "always",
                                         "label": {"zh": "病区", "en": "ward"}}}})


def test_an_input_required_always_is_needed_on_every_row_even_unread():
    rows = [{"id": "a", "total_cost": 10, "ward": "W1"}, {"id": "b", "total_cost": 10}]
    with pytest.raises(SituationError) as err:
        run(ALWAYS, {"claim": rows}, outputs=["claim.pay"])
    (fault,) = err.value.faults
    assert fault.path == "entities.claim[1].ward" and "every claim row" in fault.en and "每一行" in fault.zh


# ---- batch: the same rule on files ---------------------------------------------------------------

def write_claims(folder, table: dict) -> None:
    folder.mkdir(exist_ok=True)
    pq.write_table(pa.table(table), folder / "claim.parquet")
    pq.write_table(pa.table({"id": ["H1"]}), folder / "institution.parquet")


BATCH = make_policy({"claim": {
    "extra_fee": fee("extra fee"),
    "pay": {"formula": "if out_of_area then extra_fee * 2 else total_cost * 0.5", "unit": "yuan"}}})


@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_batch_settle_needs_an_input_only_where_its_branch_runs(tmp_path, chunk_rows):
    data = tmp_path / "data"
    write_claims(data, {"id": ["a", "b", "c"], "institution": ["H1"] * 3, "discharge_date": ["2024-02-01"] * 3,
                        "total_cost": [100.0, 40.0, 10.0], "out_of_area": [False, True, False],
                        "extra_fee": [None, 6.0, None]})
    settle(BATCH, data, tmp_path / "out", parse_period("2024"), chunk_rows=chunk_rows)
    paid = pq.read_table(tmp_path / "out" / "claim.parquet").to_pydict()
    assert dict(zip(paid["id"], paid["pay"], strict=True)) == {"a": 50.0, "b": 12.0, "c": 5.0}


@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_batch_settle_names_the_column_and_only_the_rows_that_need_it(tmp_path, chunk_rows):
    data = tmp_path / "data"
    write_claims(data, {"id": ["a", "b", "c"], "institution": ["H1"] * 3, "discharge_date": ["2024-02-01"] * 3,
                        "total_cost": [100.0, 40.0, 10.0], "out_of_area": [False, True, True],
                        "extra_fee": [None, 6.0, None]})
    with pytest.raises(SituationError) as err:
        settle(BATCH, data, tmp_path / "out", parse_period("2024"), chunk_rows=chunk_rows)
    (fault,) = err.value.faults
    assert fault.path == "claim.parquet:extra_fee" and "1 row(s) empty, first rows 2" in fault.en
    assert not (tmp_path / "out").exists()


def test_explaining_a_value_needs_the_same_inputs_as_a_run():
    rows = claims({"total_cost": 80}, {"total_cost": 60, "out_of_area": True, "extra_fee": 7})
    answer = explain_situation(POLICY, {"period": "2024", "entities": at_h1(rows)}, "claim.c0.pay")
    assert answer["explanation"]["value"] == 40.0  # 80 × 0.5: c0 takes the branch without extra_fee
    rows[1] = {**rows[1], "extra_fee": None}
    with pytest.raises(SituationError) as err:
        explain_situation(POLICY, {"period": "2024", "entities": at_h1(rows)}, "claim.c0.pay")
    assert [f.path for f in err.value.faults] == ["entities.claim[1].extra_fee"]


def test_spark_settlement_follows_the_same_rule(tmp_path):
    """A required column empty on some rows: Spark hands the run to one population (the local
    engine), so the rows that need it are told apart as in every other run."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    from engine.spark.runner import settle_spark
    data = tmp_path / "data"
    write_claims(data, {"id": ["a", "b", "c"], "institution": ["H1"] * 3, "discharge_date": ["2024-02-01"] * 3,
                        "total_cost": [100.0, 40.0, 10.0], "out_of_area": [False, True, False],
                        "extra_fee": [None, 6.0, None]})
    settle_spark(BATCH, data, tmp_path / "out", parse_period("2024"), master="local[1]")
    paid = pq.read_table(tmp_path / "out" / "claim.parquet").to_pydict()
    assert dict(zip(paid["id"], paid["pay"], strict=True)) == {"a": 50.0, "b": 12.0, "c": 5.0}
    write_claims(data, {"id": ["a", "b"], "institution": ["H1"] * 2, "discharge_date": ["2024-02-01"] * 2,
                        "total_cost": [100.0, 40.0], "out_of_area": [True, False], "extra_fee": [None, None]})
    with pytest.raises(SituationError) as err:
        settle_spark(BATCH, data, tmp_path / "out2", parse_period("2024"), master="local[1]")
    assert [(f.path, "first rows 0" in f.en) for f in err.value.faults] == [("claim.parquet:extra_fee", True)]


def test_conditions_evaluated_again_add_no_warning():
    """A division by zero in a condition is warned once per row, as in a run, although the
    demand analysis evaluates that condition again (units 0 on c0: 0/0 → 0, not above 2)."""
    policy = make_policy({"claim": {
        "units": {"unit": "count", "default": 0, "label": {"zh": "单位", "en": "units"}},
        "bonus": fee("bonus"),
        "pay": {"formula": "if total_cost / units > 2 then bonus else 1", "unit": "yuan"}}})
    rows = claims({"total_cost": 0}, {"total_cost": 30, "units": 3, "bonus": 4})
    result = run(policy, at_h1(rows), outputs=["claim.pay"])
    assert by_id(result, "claim", "pay") == {"c0": 1.0, "c1": 4.0}
    assert [w["rows"] for w in result["warnings"] if w["code"] == "division_by_zero"] == [1]

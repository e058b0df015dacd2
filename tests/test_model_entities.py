"""Keyed entities of the model (实体模型): supplied rows of derived entities with inputs, months,
community_fund rows only when given, a second link to the same entity, aggregation via a link.
Expected values are worked out by hand from the claims below."""

from __future__ import annotations

import csv
import os
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from evalkit import by_id, make_policy, run

from engine.batch.settle import settle
from engine.errors import PolicyError, SituationError
from engine.model.model import Model
from engine.period import parse_period
from engine.run.columns import EntityColumns, build_population

POLICY = make_policy({
    "account": {"settled": {"unit": "yuan", "default": 0}, "cost": "sum(claim.total_cost)", "due": "cost - settled"},
    "fund_month": {"cost": "sum(claim.total_cost)", "claims": "count(claim)"},
    "account_month": {"adjust": {"unit": "yuan", "default": 0}, "cost": "sum(claim.total_cost) + adjust",
                      "account_settled": "account.settled", "fund_month_cost": "fund_month.cost"},
    "institution": {"signed_cost": "sum(claim.total_cost, via=signed_institution)",
                    "own_cost": "sum(claim.total_cost)"},
    "community": {"signed_cost": "sum(claim.total_cost, via=claim.signed_institution)"},
    "fund": {"institutions": "count(institution)"},
    "claim": {"signed_level": "claim.signed_institution.level", "level": "institution.level"},
})

BASE = {
    "fund": [{"id": "F"}, {"id": "G"}],
    "community": [{"id": "C1"}, {"id": "C2"}],
    "institution": [{"id": "H1", "community": "C1", "level": 1, "fund": "F"},
                    {"id": "H2", "community": "C2", "level": 3},
                    {"id": "H3", "community": "C1", "level": 2}],
    "claim": [
        {"id": "a", "institution": "H2", "fund": "F", "total_cost": 100, "discharge_date": "2024-03-05",
         "signed_institution": "H1"},
        {"id": "b", "institution": "H1", "fund": "F", "total_cost": 40, "discharge_date": "2024-03-31"},
        {"id": "c", "institution": "H2", "fund": "G", "total_cost": 25, "discharge_date": "2024-04-01",
         "signed_institution": "H3"},
        {"id": "d", "institution": "H2", "fund": "F", "total_cost": 10.5, "discharge_date": "2024-04-30",
         "signed_institution": "H1"},
        {"id": "e", "institution": "H1", "fund": "F", "total_cost": 2, "discharge_date": "2024-01-15"},
    ],
}
ACCOUNTS = [{"id": "H3|G", "settled": 5},  # H3 has no claims: kept
            {"id": "H1|F", "institution": "H1", "fund": "F", "settled": 30}]


def faults(policy, entities: dict) -> dict[str, object]:
    with pytest.raises(SituationError) as caught:
        run(policy, entities)
    for f in caught.value.faults:
        assert f.en and f.zh, f.path  # bilingual
    return {f.path: f for f in caught.value.faults}


def test_supplied_account_rows_carry_inputs_and_come_first():
    result = run(POLICY, {**BASE, "account": ACCOUNTS})
    rows = result["entities"]["account"]
    # supplied in their order, then derived by first appearance: a → H2|F, b → H1|F (given), c → H2|G
    assert [r["id"] for r in rows] == ["H3|G", "H1|F", "H2|F", "H2|G"]
    assert by_id(result, "account", "cost") == {"H3|G": 0, "H1|F": 42, "H2|F": 110.5, "H2|G": 25}
    assert by_id(result, "account", "due") == {"H3|G": -5, "H1|F": 12, "H2|F": 110.5, "H2|G": 25}


def test_accounts_without_supplied_rows_are_derived_as_before():
    result = run(POLICY, BASE)
    assert [r["id"] for r in result["entities"]["account"]] == ["H2|F", "H1|F", "H2|G"]
    assert by_id(result, "account", "due") == {"H2|F": 110.5, "H1|F": 42, "H2|G": 25}


def test_a_required_input_missing_on_derived_rows_names_the_entity():
    policy = make_policy({"account": {"settled": {"unit": "yuan"}, "due": "sum(claim.total_cost) - settled"}})
    found = faults(policy, {**BASE, "account": [{"id": "H1|F", "settled": 30}]})
    # H2|F and H2|G are made from the claims: they are in no request row
    assert set(found) == {"entities.account.settled"}
    assert run(policy, {**BASE, "account": [{"id": "H1|F", "settled": 30}, {"id": "H2|F", "settled": 0},
                                            {"id": "H2|G", "settled": 1}]})["entities"]["account"][2]["due"] == 24


def test_fund_month_and_account_month_sum_per_month():
    month_rows = [{"id": "H1|F|2024-02", "adjust": 7}]  # no claim in February: kept, first
    result = run(POLICY, {**BASE, "account": ACCOUNTS, "account_month": month_rows})
    assert [r["id"] for r in result["entities"]["fund_month"]] == ["F|2024-03", "G|2024-04", "F|2024-04", "F|2024-01"]
    assert by_id(result, "fund_month", "cost") == {"F|2024-03": 140, "G|2024-04": 25, "F|2024-04": 10.5,
                                                   "F|2024-01": 2}
    assert by_id(result, "fund_month", "claims") == {"F|2024-03": 2, "G|2024-04": 1, "F|2024-04": 1, "F|2024-01": 1}
    assert [r["id"] for r in result["entities"]["account_month"]] == [
        "H1|F|2024-02", "H2|F|2024-03", "H1|F|2024-03", "H2|G|2024-04", "H2|F|2024-04", "H1|F|2024-01"]
    assert by_id(result, "account_month", "cost") == {"H1|F|2024-02": 7, "H2|F|2024-03": 100, "H1|F|2024-03": 40,
                                                      "H2|G|2024-04": 25, "H2|F|2024-04": 10.5, "H1|F|2024-01": 2}
    # the month row links its account (settled 30 on H1|F); no fund month F|2024-02 exists: none
    assert by_id(result, "account_month", "account_settled")["H1|F|2024-02"] == 30
    assert by_id(result, "account_month", "fund_month_cost") == {
        "H1|F|2024-02": 0, "H2|F|2024-03": 140, "H1|F|2024-03": 140, "H2|G|2024-04": 25, "H2|F|2024-04": 10.5,
        "H1|F|2024-01": 2}


def test_a_claim_without_its_date_cannot_be_placed_in_a_month():
    claims = [dict(c) for c in BASE["claim"]]
    del claims[3]["discharge_date"]
    found = faults(POLICY, {**BASE, "claim": claims})
    assert set(found) == {"entities.claim[3].discharge_date"}
    assert "month" in found["entities.claim[3].discharge_date"].en
    only_accounts = make_policy({"account": {"cost": "sum(claim.total_cost)"}})  # no month entity needed
    result = run(only_accounts, {**BASE, "claim": claims})
    assert by_id(result, "account", "cost") == {"H2|F": 110.5, "H1|F": 42, "H2|G": 25}


@pytest.mark.parametrize(("entity", "row", "path"), [
    ("account", {"id": "H1|F", "institution": "H2"}, "entities.account[0].institution"),
    ("account", {"id": "H1|F", "fund": "G"}, "entities.account[0].fund"),
    ("account", {"id": "H1"}, "entities.account[0].id"),
    ("account", {"id": "H1|F|2024-01"}, "entities.account[0].id"),
    ("account", {"id": "H9|F"}, "entities.account[0].id"),  # no institution H9
    ("account", {"id": "H9|F", "institution": "H9"}, "entities.account[0].institution"),
    ("fund_month", {"id": "F|2024-13"}, "entities.fund_month[0].id"),
    ("fund_month", {"id": "F|2024-3"}, "entities.fund_month[0].id"),
    ("fund_month", {"id": "F|2024-03", "month": "2024-04"}, "entities.fund_month[0].month"),
    ("account_month", {"id": "H1|F"}, "entities.account_month[0].id"),
    ("community_fund", {"id": "C1|F", "community": "C2"}, "entities.community_fund[0].community"),
])
def test_an_id_that_does_not_match_its_key_is_refused_at_its_path(entity, row, path):
    found = faults(POLICY, {**BASE, entity: [row]})
    assert path in found


def test_community_fund_rows_exist_only_when_given():
    policy = make_policy({
        "community_fund": {"last_year": {"unit": "yuan", "default": 0}, "spent": "sum(claim.total_cost)",
                           "package": "last_year + spent"},
        "community": {"package": "sum(community_fund.package)"},
        "claim": {"package_last_year": "community_fund.last_year"},
    })
    without = run(policy, BASE)
    assert not without["entities"].get("community_fund")
    assert by_id(without, "community", "package") == {"C1": 0, "C2": 0}
    # C1 (H1, H3) has rows for F and G; C2 (H2) has none, so its claims need none
    rows = [{"id": "C1|F", "last_year": 1000}, {"id": "C1|G", "community": "C1", "fund": "G", "last_year": 10}]
    result = run(policy, {**BASE, "community_fund": rows})
    assert [r["id"] for r in result["entities"]["community_fund"]] == ["C1|F", "C1|G"]
    assert by_id(result, "community_fund", "spent") == {"C1|F": 42, "C1|G": 0}  # b 40 + e 2
    assert by_id(result, "community", "package") == {"C1": 1000 + 42 + 10, "C2": 0}
    assert by_id(result, "claim", "package_last_year") == {"a": 0, "b": 1000, "c": 0, "d": 0, "e": 1000}


def test_a_member_claim_whose_fund_has_no_row_is_community_fund_missing():
    policy = make_policy({"community_fund": {"spent": "sum(claim.total_cost)"}})
    found = faults(policy, {**BASE, "community_fund": [{"id": "C1|G"}]})
    assert list(found) == ["entities.claim[1].fund"]  # b and e (H1, fund F): the first is b
    fault = found["entities.claim[1].fund"]
    assert fault.code == "community_fund_missing"
    assert "'C1|F'" in fault.en and "2 claim" in fault.en and "C1|F" in fault.zh


def test_signed_institution_is_read_and_aggregated_through_its_link():
    result = run(POLICY, BASE)
    levels = by_id(result, "claim", "signed_level")
    assert (levels["a"], levels["c"], levels["d"]) == (1, 2, 1)
    assert by_id(result, "claim", "level") == {"a": 3, "b": 1, "c": 3, "d": 3, "e": 1}
    assert by_id(result, "institution", "signed_cost") == {"H1": 110.5, "H2": 0, "H3": 25}  # a + d; c
    assert by_id(result, "institution", "own_cost") == {"H1": 42, "H2": 135.5, "H3": 0}
    assert by_id(result, "community", "signed_cost") == {"C1": 135.5, "C2": 0}  # H1 and H3 are in C1
    assert by_id(result, "fund", "institutions") == {"F": 1, "G": 0}  # institution.fund


def test_a_signed_institution_that_does_not_exist_is_refused():
    claims = [dict(c) for c in BASE["claim"]]
    claims[2]["signed_institution"] = "H7"
    assert "entities.claim[2].signed_institution" in faults(POLICY, {**BASE, "claim": claims})


@pytest.mark.parametrize("formula", ["sum(claim.total_cost, via=episode)", "sum(claim.total_cost, via=nope)",
                                     "sum(claim.total_cost, via=claim.total_cost)"])
def test_via_names_a_link_leading_to_the_entity(formula):
    with pytest.raises(PolicyError) as caught:
        make_policy({"institution": {"bad": formula}})
    assert "via_link" in str(caught.value)
    assert "signed_institution" in str(caught.value)  # the links that do lead there are listed


def test_excluded_rows_derive_no_row():
    model = make_policy({"account": {"cost": "sum(claim.total_cost)"}}).model
    claims = EntityColumns(np.array(["a", "b", "c"], dtype=object))
    claims.links = {"institution": np.array(["H1", "H2", "H1"]), "fund": np.array(["F", "F", "G"])}
    claims.active = np.array([True, False, True])
    data = {"fund": EntityColumns(np.array(["F", "G"], dtype=object)),
            "institution": EntityColumns(np.array(["H1", "H2"], dtype=object)), "claim": claims}
    pop, found = build_population(model, data, np.datetime64("2024-12-31"))
    assert not found
    assert list(pop.ids["account"]) == ["H1|F", "H1|G"]
    assert pop.links[("claim", "account")].tolist() == [0, -1, 1]


def test_the_model_refuses_a_key_part_that_is_not_a_link():
    with pytest.raises(ValueError, match="key part"):
        Model.from_data({"entities": {"fund": {}, "x": {"key": ["fund"], "links": {}}}})
    with pytest.raises(ValueError, match="month"):
        Model.from_data({"entities": {"fund": {}, "c": {"links": {"fund": "fund"}, "fields": {"d": {}}},
                                      "m": {"derived": {"from": "c", "key": ["fund", "month(d)"]},
                                            "links": {"fund": "fund"}}}})


# ---- batch files ------------------------------------------------------------------------------
def write_csv(folder, name: str, rows: list[dict]) -> None:
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "id", k))
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


def batch_folder(tmp_path, extra: dict) -> object:
    folder = tmp_path / "data"
    folder.mkdir()
    for name, rows in {**BASE, **extra}.items():
        write_csv(folder, name, rows)
    return folder


@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_batch_files_supply_account_rows(tmp_path, chunk_rows):
    folder = batch_folder(tmp_path, {"account": ACCOUNTS})
    settle(POLICY, folder, tmp_path / "out", parse_period("2024"), chunk_rows=chunk_rows)
    accounts = pq.read_table(tmp_path / "out" / "account.parquet").to_pydict()
    assert accounts["id"] == ["H3|G", "H1|F", "H2|F", "H2|G"]
    assert accounts["due"] == [-5, 12, 110.5, 25]
    months = pq.read_table(tmp_path / "out" / "fund_month.parquet").to_pydict()
    assert dict(zip(months["id"], months["cost"], strict=True)) == {"F|2024-03": 140, "G|2024-04": 25,
                                                                   "F|2024-04": 10.5, "F|2024-01": 2}


@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_batch_files_are_checked_like_a_situation(tmp_path, chunk_rows):
    folder = batch_folder(tmp_path, {"account": [{"id": "H1|F", "institution": "H2"}, {"id": "H9|F"}]})
    only_accounts = make_policy({"account": {"settled": {"unit": "yuan", "default": 0}, "due": "sum(claim.total_cost) - settled"}})
    for policy in (POLICY, only_accounts):
        with pytest.raises(SituationError) as caught:
            settle(policy, folder, tmp_path / "out", parse_period("2024"), chunk_rows=chunk_rows)
        assert [f.path for f in caught.value.faults] == ["account[0].institution", "account[1].id"]
    policy = make_policy({"community_fund": {"spent": "sum(claim.total_cost)"}})
    folder = tmp_path / "cf"
    folder.mkdir()
    for name, rows in {**BASE, "community_fund": [{"id": "C1|G"}]}.items():
        write_csv(folder, name, rows)
    with pytest.raises(SituationError) as caught:
        settle(policy, folder, tmp_path / "out2", parse_period("2024"), chunk_rows=chunk_rows)
    assert [(f.path, f.code) for f in caught.value.faults] == [("claim[1].fund", "community_fund_missing")]
    assert not (tmp_path / "out2").exists()  # nothing written


# ---- size ---------------------------------------------------------------------------------------
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))


def test_many_supplied_rows_and_months_stay_fast_and_exact():
    """Every account of 200 institutions supplied, one malformed; claims over 12 months: the bad
    id is named, then the good situation sums per account month as plain Python does. Larger
    with MEDPAY_FUZZ_EXAMPLES > 1."""
    institutions, claims_n = 200 * SCALE, 2000 * SCALE
    entities = {"fund": [{"id": "F"}], "institution": [{"id": f"H{i}"} for i in range(institutions)],
                "account": [{"id": f"H{i}|F", "settled": i} for i in range(institutions)],
                "claim": [{"id": f"c{k}", "institution": f"H{k % institutions}", "fund": "F", "total_cost": k % 97,
                           "discharge_date": f"2024-{k % 12 + 1:02d}-{k % 28 + 1:02d}"} for k in range(claims_n)]}
    bad = {**entities, "account": [*entities["account"][:-1], {"id": f"H{institutions - 1}"}]}
    started = time.perf_counter()
    assert list(faults(POLICY, bad)) == [f"entities.account[{institutions - 1}].id"]
    result = run(POLICY, entities, outputs=["account_month.cost", "account.due"])
    assert time.perf_counter() - started < 2.0 * SCALE
    want: dict[str, float] = {}
    for k in range(claims_n):
        key = f"H{k % institutions}|F|2024-{k % 12 + 1:02d}"
        want[key] = want.get(key, 0) + k % 97
    assert by_id(result, "account_month", "cost") == want
    assert by_id(result, "account", "due")["H3|F"] == sum(k % 97 for k in range(3, claims_n, institutions)) - 3

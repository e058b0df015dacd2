"""Data as hostile input: ids, batch files and parameter overrides are checked before any money
moves. Expected money is computed by hand (fractions.Fraction) from the template policy:

  point value = (points budget + patient payments of DRG claims) / total points
  points budget = round(revenue × (1 − risk_fund_rate), 2);  H1's 250 points, its DRG claim c2
  paid 12 480 by the patient:  H1 = 250 × point value − 12 480.
"""

from __future__ import annotations

import copy
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine.batch.settle import settle
from engine.cli import main
from engine.compile.build import load_policy_file
from engine.errors import SituationError
from engine.model.spec import Variable
from engine.run.checks import MAX_ID_CHARS, id_faults, id_problem, number_faults, number_problem
from engine.run.columns import default_column, resolve_links
from engine.run.evaluate import evaluate
from engine.run.situation import parse_period

ROOT = Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "_template.yaml"
POLICY = load_policy_file(POLICY_FILE)
BASICS = yaml.safe_load((ROOT / "tests/cases/_template/basics.yaml").read_text(encoding="utf-8"))["situation"]
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))


def fen(x: Fraction) -> Fraction:
    """Half-up to the fen, by hand."""
    return Fraction(math.floor(x * 100 + Fraction(1, 2)), 100)


def h1_payment(risk_rate: Fraction = Fraction(5, 100)) -> Fraction:
    budget = fen(Fraction("105263.16") * (1 - risk_rate))
    point_value = (budget + 2270 + 12480) / 370
    return fen(250 * point_value - 12480)


def situation(**changes) -> dict:
    data = copy.deepcopy(BASICS)
    data.update(changes)
    return data


def faults_of(data: dict) -> dict[str, str]:
    with pytest.raises(SituationError) as err:
        evaluate(POLICY, data)
    for fault in err.value.faults:
        assert fault.en and fault.zh, fault
    return {f.path: f.en for f in err.value.faults}


def paid(result: dict, entity: str, rid: str, name: str = "points_payment") -> float:
    return next(r[name] for r in result["entities"][entity] if r["id"] == rid)


# ---- 1. ids: printable text, compared exactly, never merged ----------------------------------

def test_hand_calculation_matches_the_untouched_run():
    assert h1_payment() == Fraction("65053.78")
    assert paid(evaluate(POLICY, situation()), "institution", "H1") == float(h1_payment())


@pytest.mark.parametrize("bad", ["H1\u0000", "H1\u0007", "H1\u007f", "H1\u0085", "H1\u200b", "H1\u3000",
                                 "H1 ", " H1", "H1\t", "H1\n", "\ud800", "H" * (MAX_ID_CHARS + 1)])
def test_an_id_that_differs_by_an_invisible_character_is_refused(bad):
    """Before: 'H1\\0' was accepted, became 'H1' in fixed-width numpy text and took all of H1's
    claims (H1 paid 0.00 instead of 65 053.78)."""
    data = situation()
    data["entities"]["institution"].append({"id": bad, "community": "C1", "level": 1})
    assert list(faults_of(data)) == ["entities.institution[2].id"]


def test_link_values_are_checked_like_ids():
    data = situation()
    data["entities"]["claim"][1]["institution"] = "H1\u0000"
    data["entities"]["claim"][2]["fund"] = "F "
    assert set(faults_of(data)) == {"entities.claim[1].institution", "entities.claim[2].fund"}


def test_a_bar_in_a_key_of_a_joined_id_is_refused():
    """account ids join institution and fund: ('A|B', 'C') and ('A', 'B|C') would both be 'A|B|C'."""
    data = situation()
    data["entities"]["claim"][0]["institution"] = "H|2"
    assert "entities.claim[0].institution" in faults_of(data)


def test_ids_are_compared_exactly_and_duplicates_refused():
    data = situation()
    data["entities"]["institution"].append({"id": "h1", "community": "C1", "level": 1})  # a different id
    assert paid(evaluate(POLICY, data), "institution", "H1") == float(h1_payment())
    data["entities"]["institution"].append({"id": "H1", "community": "C1", "level": 1})
    assert list(faults_of(data)) == ["entities.institution[3].id"]
    data = situation()
    data["entities"]["claim"][2]["id"] = "c1"
    assert list(faults_of(data)) == ["entities.claim[2].id"]


def test_two_parent_ids_that_meet_as_text_are_never_merged():
    with pytest.raises(ValueError):
        resolve_links(np.array(["H1"]), np.array(["H1", "H1\u0000"], dtype=object))


def test_scalar_and_column_checks_agree():
    texts = ["H1", "h 1", "医院一", "H1\u0000", "H1 ", "", "A|B", "x" * (MAX_ID_CHARS + 1), "\u00e9", "e\u0301"]
    for joined in (False, True):
        bad = {int(r) for rows, _ in id_faults(pa.array(texts), joined) for r in rows}
        assert bad == {i for i, t in enumerate(texts) if id_problem(t, joined)}, joined
    var = Variable("total_cost", "claim", minimum=0.0)
    values = np.array([0.0, 5.0, -1.0, np.nan, np.inf, -np.inf, 1e300, 1e13, 1e13 + 2])
    flagged = {int(r) for rows, _ in number_faults(var, values, np.ones(len(values), bool)) for r in rows}
    assert flagged == {i for i, v in enumerate(values) if number_problem(var, float(v))} == {2, 3, 4, 5, 6, 8}


def test_many_ids_stay_fast_and_exact():
    n = 20_000 * SCALE
    ids = pa.array([f"c{i}" for i in range(n)] + ["c7\u0000", "c8 "])
    found = {int(r) for rows, _ in id_faults(ids) for r in rows}
    assert found == {n, n + 1}


# ---- 2. batch files: the API's checks, file + column + rows, nothing written on failure -------

def write_basics(folder: Path, change=None) -> None:
    """The template case as Parquet files; `change(entities)` edits the rows first."""
    folder.mkdir(parents=True, exist_ok=True)
    entities = copy.deepcopy(BASICS["entities"])
    if change:
        change(entities)
    for name, rows in entities.items():
        keys = list(dict.fromkeys(k for r in rows for k in r))  # every field any row has
        pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in keys}), folder / f"{name}.parquet")


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (a Spark result is a folder of parts) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def set_claim(field, value, row=1):
    def change(entities):
        entities["claim"][row][field] = value
    return change


def add_row(entity, row):
    def change(entities):
        entities[entity].append(row)
    return change


ATTACKS = {  # what was settled with exit 0 before → the column named in the refusal
    "nan_cost": (set_claim("total_cost", float("nan")), "claim.parquet:total_cost", "finite"),
    "infinite_cost": (set_claim("total_cost", float("inf")), "claim.parquet:total_cost", "finite"),
    "negative_cost": (set_claim("total_cost", -60000.0), "claim.parquet:total_cost", "at least 0"),
    "huge_cost": (set_claim("total_cost", 1e300), "claim.parquet:total_cost", "largest amount"),
    "duplicate_claim": (set_claim("id", "c1", row=2), "claim.parquet:id", "earlier row"),
    "duplicate_institution": (add_row("institution", {"id": "H1", "community": "C1", "level": 1}),
                              "institution.parquet:id", "earlier row"),
    "nul_in_id": (add_row("institution", {"id": "H1\u0000", "community": "C1", "level": 1}),
                  "institution.parquet:id", "U+0000"),
    "space_in_link": (set_claim("institution", "H1 "), "claim.parquet:institution", "space"),
    "unknown_value": (set_claim("setting", "bogus"), "claim.parquet:setting", "not one of"),
}


@pytest.mark.parametrize("chunk_rows", [None, 1], ids=["whole", "chunked"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_bad_batch_values_are_refused_and_earlier_results_kept(attack, chunk_rows, tmp_path):
    change, column, words = ATTACKS[attack]
    period, out = parse_period("2024"), tmp_path / "out"
    write_basics(tmp_path / "good")
    settle(POLICY, tmp_path / "good", out, period, chunk_rows=chunk_rows)
    h1 = pq.read_table(out / "institution.parquet").to_pydict()
    assert h1["points_payment"][h1["id"].index("H1")] == float(h1_payment())
    before = outputs(out)
    write_basics(tmp_path / "bad", change)
    with pytest.raises(SituationError) as err:
        settle(POLICY, tmp_path / "bad", out, period, chunk_rows=chunk_rows)
    fault = next(f for f in err.value.faults if f.path == column)
    assert words in fault.en and fault.zh and "row" in fault.en
    assert outputs(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out"]  # no partial folder


def test_the_rows_named_are_the_bad_ones(tmp_path):
    def change(entities):
        for i in (0, 2):
            entities["claim"][i]["total_cost"] = -1.0
    write_basics(tmp_path / "bad", change)
    with pytest.raises(SituationError) as err:
        settle(POLICY, tmp_path / "bad", tmp_path / "out", parse_period("2024"))
    assert [(f.path, f.en) for f in err.value.faults] == \
        [("claim.parquet:total_cost", "rows 0, 2 (from 0): must be at least 0, not -1")]
    assert not (tmp_path / "out").exists()


def test_a_run_that_fails_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import engine.batch.settle as batch
    write_basics(tmp_path / "data")

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(batch, "write_entity", broken)
    with pytest.raises(OSError):
        settle(POLICY, tmp_path / "data", tmp_path / "out", parse_period("2024"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_second_good_run_replaces_the_results(tmp_path):
    write_basics(tmp_path / "data")
    settle(POLICY, tmp_path / "data", tmp_path / "out", parse_period("2024"))
    (tmp_path / "out" / "notes.txt").write_text("mine")
    settle(POLICY, tmp_path / "data", tmp_path / "out", parse_period("2024"))
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]


def test_settle_command_exits_non_zero_naming_file_column_and_rows(tmp_path, capsys):
    write_basics(tmp_path / "data", set_claim("total_cost", 1e300))
    code = main(["settle", str(POLICY_FILE), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "--period", "2024"])
    err = capsys.readouterr().err
    assert code == 2
    assert "claim.parquet:total_cost" in err and "rows 1 " in err and "超出" in err
    assert not (tmp_path / "out").exists()


# ---- 3. parameter overrides: the rules of the policy's own values -----------------------------

def test_a_good_override_moves_exactly_the_hand_computed_money():
    result = evaluate(POLICY, situation(parameters={"risk_fund_rate": "10%"}))
    assert h1_payment(Fraction(10, 100)) == Fraction("61497.59")
    assert paid(result, "institution", "H1") == float(h1_payment(Fraction(10, 100)))


@pytest.mark.parametrize("value, path", [
    (float("nan"), "parameters.risk_fund_rate"),
    (float("inf"), "parameters.risk_fund_rate"),
    ("Infinity", "parameters.risk_fund_rate"),
    ("nan", "parameters.risk_fund_rate"),
    (-0.05, "parameters.risk_fund_rate"),
    ("-5%", "parameters.risk_fund_rate"),
    (1e300, "parameters.risk_fund_rate"),
    (True, "parameters.risk_fund_rate"),
    ([0.05], "parameters.risk_fund_rate"),
    ({"a": 1}, "parameters.risk_fund_rate"),
    ("five", "parameters.risk_fund_rate"),
])
def test_bad_rate_overrides_are_refused(value, path):
    """Before: risk_fund_rate = −5% gave the community a cap of −5 000 000 (the fund 'received'
    its overspend share) instead of paying 5 000 000."""
    assert list(faults_of(situation(parameters={"risk_fund_rate": value}))) == [path]


@pytest.mark.parametrize("name, value, path", [
    ("deductible_by_level", {"1": 300, "2": 600, "3": 900, "4": 1}, "parameters.deductible_by_level.4"),
    ("deductible_by_level", {"1": 300, "2": "lots", "3": 900}, "parameters.deductible_by_level.2"),
    ("deductible_by_level", {"1": 300, "2": float("nan"), "3": 900}, "parameters.deductible_by_level.2"),
    ("coinsurance_by_level", {"1": "10%", "2": "-15%", "3": "20%"}, "parameters.coinsurance_by_level.2"),
    ("overspend_fund_share", {"edges": ["10%", "5%"], "rates": ["80%", "60%", "0%"]},
     "parameters.overspend_fund_share.edges[1]"),
    ("overspend_fund_share", {"edges": [float("nan"), "10%"], "rates": ["80%", "60%", "0%"]},
     "parameters.overspend_fund_share.edges[0]"),
    ("overspend_fund_share", {"edges": ["5%", float("inf")], "rates": ["80%", "60%", "0%"]},
     "parameters.overspend_fund_share.edges[1]"),
    ("overspend_fund_share", {"edges": ["5%", "10%"], "rates": ["80%", "-60%", "0%"]},
     "parameters.overspend_fund_share.rates[1]"),
    ("overspend_fund_share", [0.8], "parameters.overspend_fund_share"),
])
def test_bad_map_and_band_overrides_are_refused(name, value, path):
    assert list(faults_of(situation(parameters={name: value}))) == [path]


def test_a_string_default_is_kept_whole_when_its_column_is_absent(tmp_path):
    """Before: a file without `setting` gave every claim 'i' (not 'inpatient'): no claim was paid
    by DRG and H1 got 0.00 instead of 65 053.78; a null `status` was refused as 'None'."""
    var = POLICY.model.entities["claim"].variables["setting"]
    assert default_column(var, 3).tolist() == ["inpatient"] * 3
    write_basics(tmp_path / "data")  # no setting column; institution status null on H1
    settle(POLICY, tmp_path / "data", tmp_path / "out", parse_period("2024"))
    claims = pq.read_table(tmp_path / "out" / "claim.parquet").to_pydict()
    assert claims["payment_method"] == ["drg", "drg", "fee_for_service"]
    h1 = pq.read_table(tmp_path / "out" / "institution.parquet").to_pydict()
    assert h1["points_payment"][h1["id"].index("H1")] == float(h1_payment())

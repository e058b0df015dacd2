"""The settlement year: months pre-settled one at a time into a ledger, the year cleared from it,
provenance in every output, a plausible synthetic year (docs/settlement-year.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.batch import provenance
from engine.batch.ledger import presettle_month, read_ledger
from engine.batch.settle import settle
from engine.batch.synth import synthesize
from engine.batch.year import year_end
from engine.cli import main
from engine.compile.build import load_policy_text
from engine.errors import SituationError
from engine.period import parse_period
from engine.policy.registry import Registry
from engine.run.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = Registry.load()
CITIES = sorted(c for c in REGISTRY.cities if not c.startswith("_"))
CLAIMS = 1500
MONTHLY = {"zibo": "presettled", "hangzhou": "settled", "panzhihua": "prepaid"}  # what each month pays
FUZZ = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))


def sorted_by_id(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("id", "ascending")]))


def year(tmp_path: Path, city: str, seed: int = 7) -> tuple:
    policy = REGISTRY.pick(city, None)
    data = tmp_path / "data"
    meta = synthesize(policy, CLAIMS, data, seed=seed)
    return policy, data, parse_period(meta["period"])


def months_of(period) -> list:
    return [parse_period(f"{period.text}-{m:02d}") for m in range(1, 13)]


@pytest.mark.parametrize("city", CITIES)
def test_twelve_months_then_the_clearing_equal_one_run_to_the_fen(city, tmp_path):
    """The clearing runs in chunks of 500 claims, the one run whole: both paths read the ledger alike."""
    policy, data, period = year(tmp_path, city)
    one = settle(policy, data, tmp_path / "one", period)
    ledger = tmp_path / "ledger.parquet"
    for month in months_of(period):
        presettle_month(policy, data, month, ledger)
    cleared = settle(policy, data, tmp_path / "months", period, ledger=ledger, chunk_rows=500)
    files = sorted(p.name for p in (tmp_path / "one").glob("*.parquet"))
    assert files == sorted(p.name for p in (tmp_path / "months").glob("*.parquet"))
    for name in files:
        a, b = (sorted_by_id(pq.read_table(tmp_path / run / name)) for run in ("one", "months"))
        assert a.column_names == b.column_names, name
        for column in a.column_names:
            assert a[column].equals(b[column]), f"{name}:{column}"
    assert cleared.provenance["ledger"]["months"] == [m.text for m in months_of(period)]
    assert one.provenance["ledger"] is None
    if city in MONTHLY:  # the year-end really read the months from the ledger
        assert f"account_month.{MONTHLY[city]}" in cleared.provenance["overrides"]["supplied_formulas"]
        assert f"account_month.{MONTHLY[city]}" not in one.provenance["overrides"]["supplied_formulas"]


def test_a_ledger_month_replaces_the_month_computed_from_the_claims(tmp_path):
    """Zibo: 100 yuan more pre-settled in March for one account is 100 yuan less at its clearing."""
    policy, data, period = year(tmp_path, "zibo")
    ledger = tmp_path / "ledger.parquet"
    for month in months_of(period):
        presettle_month(policy, data, month, ledger)
    table = read_ledger(ledger)
    row = next(i for i, m in enumerate(table["month"].to_pylist()) if m.endswith("-03"))
    account = table["id"][row].as_py().rsplit("|", 1)[0]
    before = year_end(policy, data, ledger, period.text).rows("account")
    presettled = table["presettled"].to_pylist()
    presettled[row] += 100
    table = table.set_column(table.column_names.index("presettled"), "presettled", pa.array(presettled))
    pq.write_table(table, ledger)
    after = year_end(policy, data, ledger, period.text).rows("account")
    old, new = ({r["id"]: r for r in rows}[account] for rows in (before, after))
    assert new["monthly_presettled"] == pytest.approx(old["monthly_presettled"] + 100, abs=0.011)
    assert new["clearing_amount"] == pytest.approx(old["clearing_amount"] - 100, abs=0.011)


def test_rerunning_a_month_replaces_its_rows_and_duplicates_nothing(tmp_path):
    policy, data, period = year(tmp_path, "hangzhou")
    ledger = tmp_path / "ledger.parquet"
    march, april = parse_period(f"{period.text}-03"), parse_period(f"{period.text}-04")
    first = presettle_month(policy, data, march, ledger)
    presettle_month(policy, data, april, ledger)
    again = presettle_month(policy, data, march, ledger)
    table = read_ledger(ledger)
    assert first.rows > 0 and again.replaced == first.rows and again.rows == first.rows
    assert table["month"].to_pylist() == sorted(table["month"].to_pylist())  # months stay in order
    assert len(set(table["id"].to_pylist())) == table.num_rows  # one row per account × month
    assert table.num_rows == first.rows + sum(1 for m in table["month"].to_pylist() if m.endswith("-04"))
    assert again.months == [march.text, april.text]


def test_a_month_that_fails_leaves_the_ledger_untouched(tmp_path):
    policy, data, period = year(tmp_path, "zibo")
    ledger = tmp_path / "ledger.parquet"
    presettle_month(policy, data, parse_period(f"{period.text}-01"), ledger)
    before = ledger.read_bytes()
    claims = pq.read_table(data / "claim.parquet")
    names = claims["institution"].to_pylist()
    january = next(i for i, d in enumerate(claims["discharge_date"].to_pylist()) if d.month == 1)
    names[january] = "nowhere"  # a claim the February run reads (January's claims keep chains whole)
    pq.write_table(claims.set_column(claims.column_names.index("institution"), "institution", pa.array(names)),
                   data / "claim.parquet")
    with pytest.raises(SituationError) as err:
        presettle_month(policy, data, parse_period(f"{period.text}-02"), ledger)
    assert "nowhere" in err.value.faults[0].en and err.value.faults[0].zh
    assert ledger.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("month", ["2022", "2022-13", "2030-01"])
def test_a_month_that_is_not_one_or_not_in_force_is_refused(tmp_path, month):
    policy, data, _ = year(tmp_path, "zibo")
    with pytest.raises(SituationError) as err:
        presettle_month(policy, data, parse_period(month, "month"), tmp_path / "ledger.parquet")
    assert err.value.faults[0].path == "month" and err.value.faults[0].zh
    assert not (tmp_path / "ledger.parquet").exists()


def other_version(policy, version: str):
    text = Path(policy.file).read_text(encoding="utf-8").replace(
        f"  id: {policy.id}\n", f"  id: {policy.id}\n  version: \"{version}\"\n", 1)
    return load_policy_text(text, policy.file, Path(policy.file).parent)


def test_months_settled_under_another_policy_version_are_reported(tmp_path):
    policy, data, period = year(tmp_path, "zibo")
    older = other_version(policy, "2021-09-10-draft")
    ledger = tmp_path / "ledger.parquet"
    for month in months_of(period)[:2]:
        presettle_month(older, data, month, ledger)
    presettle_month(policy, data, months_of(period)[2], ledger)
    summary = settle(policy, data, tmp_path / "out", period, ledger=ledger)
    found = [w for w in summary.warnings if w["code"] == "ledger_policy_version"]
    assert len(found) == 1
    assert found[0]["months"] == [f"{period.text}-01", f"{period.text}-02"]
    assert found[0]["versions"] == ["2021-09-10-draft"]
    assert "2021-09-10-draft" in found[0]["message"] and found[0]["message_zh"]
    clean = settle(policy, data, tmp_path / "clean", period, ledger=None)
    assert not [w for w in clean.warnings if w["code"] == "ledger_policy_version"]


def test_a_ledger_of_another_city_is_refused(tmp_path):
    policy, data, period = year(tmp_path, "zibo")
    ledger = tmp_path / "ledger.parquet"
    presettle_month(policy, data, parse_period(f"{period.text}-01"), ledger)
    table = read_ledger(ledger)
    table = table.set_column(table.column_names.index("policy_id"), "policy_id",
                             pa.array(["hangzhou"] * table.num_rows))
    pq.write_table(table, ledger)
    with pytest.raises(SituationError) as err:
        settle(policy, data, tmp_path / "out", period, ledger=ledger)
    assert "hangzhou" in err.value.faults[0].en and "台账" in err.value.faults[0].zh
    assert not (tmp_path / "out").exists()


def test_a_ledger_row_whose_id_is_not_its_month_is_refused(tmp_path):
    policy, data, period = year(tmp_path, "zibo")
    ledger = tmp_path / "ledger.parquet"
    presettle_month(policy, data, parse_period(f"{period.text}-03"), ledger)
    table = read_ledger(ledger)
    ids = table["id"].to_pylist()
    ids[1] = ids[1].replace("-03", "-04")  # would pay April with March's money
    pq.write_table(table.set_column(table.column_names.index("id"), "id", pa.array(ids)), ledger)
    with pytest.raises(SituationError) as err:
        settle(policy, data, tmp_path / "out", period, ledger=ledger)
    fault = err.value.faults[0]
    assert fault.path == "ledger.parquet:id" and "rows 1 " in fault.en and fault.zh
    assert not (tmp_path / "out").exists()


def test_every_output_records_its_provenance(tmp_path, capsys):
    policy, data, period = year(tmp_path, "zibo")
    out = tmp_path / "out"
    assert main(["settle", "zibo", "--data", str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning assumed_parameter parameters.base_score" in printed  # settle prints its warnings
    assert "checks / 校验: 9 passed, 0 failed" in printed
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for path in sorted(out.glob("*.parquet")):
        record = provenance.read(path)
        assert record is not None, path.name
        assert record["policy"]["id"] == "zibo" and record["policy"]["version"] == policy.meta.version
        assert record["policy"]["digest"] == policy.digest and record["period"] == period.text
        assert record["run_at"] == manifest["run_at"]
        assert manifest["files"][path.name] == pq.ParquetFile(path).metadata.num_rows
    assumed = {w["path"] for w in manifest["warnings"] if w["code"] == "assumed_parameter"}
    assert len(assumed) >= 12 and "parameters.base_score" in assumed
    checks = {(c["entity"], c["check"]): c for c in manifest["checks"]}
    assert checks[("fund", "points_budget_plausible")]["passed"] is True
    assert manifest["inputs"]["files"]["claim.parquet"]["sha256"] == provenance.file_digest(data / "claim.parquet")
    assert "claim.fund_cost" not in manifest["overrides"]["supplied_formulas"]  # an input, not a formula


def test_the_cli_runs_the_year_month_by_month(tmp_path, capsys):
    policy, data, period = year(tmp_path, "panzhihua")
    for month in months_of(period):
        assert main(["settle", "panzhihua", "--data", str(data), "--month", month.text]) == 0
    assert main(["settle", "panzhihua", "--data", str(data), "--month", f"{period.text}-05"]) == 0
    printed = capsys.readouterr().out
    assert f"pre-settled panzhihua {policy.meta.version} {period.text}-05" in printed and "replacing" in printed
    assert main(["settle", "panzhihua", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    assert "cleared from the ledger" in capsys.readouterr().out
    assert provenance.read(tmp_path / "out" / "institution.parquet")["ledger"]["months"][-1] == f"{period.text}-12"
    assert main(["settle", "panzhihua", "--data", str(data)]) == 2  # neither --out nor --month
    assert "--out" in capsys.readouterr().err


def test_year_end_gives_the_results_and_their_provenance(tmp_path):
    policy, data, period = year(tmp_path, "hangzhou")
    result = year_end("hangzhou", data, period=period.text)
    assert {"institution", "account", "account_month", "fund"} <= set(result.tables)
    assert result.provenance["policy"]["digest"] == policy.digest and result.provenance["ledger"] is None
    months = result.rows("account_month")
    accounts = {r["id"]: r for r in result.rows("account")}
    total = {}
    for r in months:
        key = r["id"].rsplit("|", 1)[0]
        total[key] = total.get(key, 0.0) + r["settled"]
    for key, value in total.items():  # the account's total is the sum of its months
        assert accounts[key]["monthly_settled_total"] == pytest.approx(value, abs=0.01 * 12)


# ---- a plausible synthetic year -----------------------------------------------------------------

OWING = {"zibo": ("year_end_payment", "fund_cost"), "hangzhou": ("balance_due", "actual_fund_cost"),
         "panzhihua": ("balance_due", "actual_fund_cost")}


@pytest.mark.parametrize("city", sorted(OWING))
def test_a_synthetic_year_is_plausible(city, tmp_path):
    """Few institutions end owing more than 20% of their pool spending (at most 2 of 20: an
    institution whose stays cost more than their points are worth owes back); the budget checks pass."""
    policy, data, period = year(tmp_path, city, seed=3)
    summary = settle(policy, data, tmp_path / "out", period)
    # a few unpriced cases pending review (C12) are part of a real year; the budget checks must pass
    assert not [w for w in summary.warnings if w["code"] == "policy_check" and w.get("check") != "pending_review"]
    paid, spent = OWING[city]
    rows = pq.read_table(tmp_path / "out" / "institution.parquet").to_pylist()
    owing = [r for r in rows if r[spent] > 0 and r[paid] < -0.20 * r[spent]]
    assert len(owing) <= max(2, len(rows) // 20), [(r["id"], r[paid], r[spent]) for r in owing]
    fund = pq.read_table(tmp_path / "out" / "fund.parquet").to_pylist()
    assert all(r["points_budget"] > 0 for r in fund)


def hangzhou_budget(budget: float) -> dict:
    """One DRG stay: fund cost 10 000 − 2 000 = 8 000; the plausible budgets are 4 000 … 16 000."""
    return {"period": "2021", "outputs": ["fund.points_budget", "institution.balance_due"],
            "entities": {"fund": [{"id": "F", "points_budget": budget}], "institution": [{"id": "A", "level": 2}],
                         "claim": [{"id": "a1", "institution": "A", "fund": "F", "group_weight": 1.0,
                                    "total_cost": 10000, "patient_paid": 2000, "admit_date": "2021-03-01",
                                    "discharge_date": "2021-03-05"}]}}


@pytest.mark.parametrize(("budget", "flagged"), [(3999.98, True), (4000, False), (16000, False), (16000.01, True)])
def test_the_plausibility_check_flags_a_budget_far_from_the_pool(budget, flagged):
    result = evaluate(REGISTRY.pick("hangzhou", None), hangzhou_budget(budget))
    found = [w for w in result["warnings"] if w.get("check") == "points_budget_plausible"]
    assert bool(found) is flagged
    if flagged:
        assert found[0]["ids"] == ["F"] and found[0]["message_zh"]


def test_the_plausibility_check_flags_an_uncalibrated_synthetic_year(tmp_path):
    """The same synthetic year with its fund revenue tripled: the DIP budget is far above the
    pool's fund cost, and the warning says so."""
    policy, data, period = year(tmp_path, "zibo", seed=3)
    fund = pq.read_table(data / "fund.parquet")
    revenue = pc.multiply(fund["revenue"], 3.0)
    pq.write_table(fund.set_column(fund.column_names.index("revenue"), "revenue", revenue), data / "fund.parquet")
    summary = settle(policy, data, tmp_path / "out", period)
    codes = [w.get("check") for w in summary.warnings if w["code"] == "policy_check"]
    assert codes == ["points_budget_plausible"]


@pytest.mark.skipif(FUZZ <= 1, reason="a full-size year: set MEDPAY_FUZZ_EXAMPLES > 1")
@pytest.mark.parametrize("city", sorted(MONTHLY))
def test_a_large_year_month_by_month_equals_one_run(city, tmp_path):
    """100,000 claims, the clearing in chunks of 30,000: the same results as one run, to the fen."""
    policy = REGISTRY.pick(city, None)
    data = tmp_path / "data"
    period = parse_period(synthesize(policy, 100_000, data, seed=13)["period"])
    settle(policy, data, tmp_path / "one", period)
    for month in months_of(period):
        presettle_month(policy, data, month, tmp_path / "ledger.parquet")
    settle(policy, data, tmp_path / "months", period, ledger=tmp_path / "ledger.parquet", chunk_rows=30_000)
    for path in sorted((tmp_path / "one").glob("*.parquet")):
        a, b = (sorted_by_id(pq.read_table(tmp_path / run / path.name)) for run in ("one", "months"))
        assert a.equals(b), path.name

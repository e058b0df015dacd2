"""Building next year's DIP catalogue from three years of claims (`medpay catalogue`), checked against an
independent computation with fractions.Fraction, then used to settle the following year."""

from __future__ import annotations

import csv
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.batch.settle import settle
from engine.batch.synth import synthesize
from engine.cli import main
from engine.compile.build import load_policy_file
from engine.period import parse_period

ROOT = Path(__file__).resolve().parents[1]
YEARS = (2021, 2022, 2023)
WEIGHTS = (1, 2, 7)
# group → (principal diagnosis, procedures) that the Zibo grouping assigns it to (tables/zibo_dip_rules.csv)
CODES = {"K35.8+47.0901": ("K35.800x002", ["47.0901"]), "J18.9": ("J18.900", []), "I63.9": ("I63.900", []),
         "C34.9+32.4901": ("C34.900", ["32.4901"]), "S72.0+81.5101": ("S72.000", ["81.5101"])}
# cases per year: C34 has 45 in three years (15 a year: core, inclusive), S72 44 (14.67: comprehensive)
COUNTS = {"K35.8+47.0901": (20, 25, 30), "J18.9": (30, 0, 12), "I63.9": (8, 9, 10),
          "C34.9+32.4901": (10, 15, 20), "S72.0+81.5101": (14, 15, 15)}


def history(folder: Path, seed: int = 4) -> list[dict]:
    """Three years of claims, one folder per year (claim.parquet, institution.parquet); every fourth claim
    gives only its codes, the others their group too. Returns the claims as written (cost as text)."""
    rng = np.random.default_rng(seed)
    written = []
    for y, year in enumerate(YEARS):
        rows = []
        for group, counts in COUNTS.items():
            for _ in range(counts[y]):
                cost = f"{rng.integers(100_000, 9_000_000) / 100:.2f}"
                rows.append({"group": group, "cost": cost, "year": year, "institution": f"H{rng.integers(0, 4)}"})
        out = folder / str(year)
        out.mkdir(parents=True)
        claims = {"id": [], "institution": [], "fund": [], "dip_group": [], "principal_diagnosis": [],
                  "procedures": [], "total_cost": [], "admit_date": [], "discharge_date": []}
        for i, row in enumerate(rows):
            diagnosis, procedures = CODES[row["group"]]
            claims["id"].append(f"{year}-{i}")
            claims["institution"].append(row["institution"])
            claims["fund"].append("resident")
            claims["dip_group"].append(None if i % 4 == 0 else row["group"])
            claims["principal_diagnosis"].append(diagnosis)
            claims["procedures"].append(procedures)
            claims["total_cost"].append(float(row["cost"]))
            day = np.datetime64(f"{year}-01-01") + int(rng.integers(0, 350))
            claims["admit_date"].append(day)
            claims["discharge_date"].append(day + 5)
        table = pa.table({**claims, "procedures": pa.array(claims["procedures"], pa.list_(pa.string())),
                          "admit_date": pa.array(np.array(claims["admit_date"], "datetime64[D]")),
                          "discharge_date": pa.array(np.array(claims["discharge_date"], "datetime64[D]"))})
        pq.write_table(table, out / "claim.parquet")
        pq.write_table(pa.table({"id": ["H0", "H1", "H2", "H3"], "level": [1.0, 2.0, 3.0, 3.0]}),
                       out / "institution.parquet")
        written += rows
    return written


def expected(rows: list[dict], base: str = "K35.8+47.0901", base_score: int = 1000) -> dict[str, dict]:
    """The catalogue computed by hand: yearly average costs weighted 1:2:7 over the years with cases."""
    level_of = {"H0": 1, "H1": 2, "H2": 3, "H3": 3}

    def weighted(pick) -> Fraction:
        num, den = Fraction(0), 0
        for w, year in zip(WEIGHTS, YEARS, strict=True):
            costs = [Fraction(r["cost"]) for r in rows if pick(r) and r["year"] == year]
            if costs:
                num += w * sum(costs) / len(costs)
                den += w
        return num / den if den else Fraction(0)
    out = {}
    for group in COUNTS:
        avg = weighted(lambda r, g=group: r["group"] == g)
        cases = Fraction(sum(COUNTS[group]), 3)
        out[group] = {"avg": avg, "cases": cases, "kind": "core" if cases >= 15 else "comprehensive",
                      **{f"level_{lv}": weighted(lambda r, g=group, lv=lv: r["group"] == g
                                                 and level_of[r["institution"]] == lv) for lv in (1, 2, 3)}}
    for group in out:
        out[group]["score"] = out[group]["avg"] / out[base]["avg"] * base_score
    return out


def half_up(value: Fraction, digits: int) -> Fraction:
    scale = 10 ** digits
    return Fraction(int(value * scale + Fraction(1, 2)), scale)


def read_catalogue(path: Path) -> dict[str, dict]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return {row["dip_group"]: row for row in csv.DictReader(lines)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("catalogue")
    rows = history(base / "history")
    out = base / "tables" / "zibo_dip_groups.csv"
    assert main(["catalogue", "zibo", "--history", str(base / "history"), "--out", str(out)]) == 0
    return base, rows, out


def test_catalogue_equals_an_independent_computation(built):
    _, rows, out = built
    got, want = read_catalogue(out), expected(rows)
    assert set(got) == set(want)
    for group, w in want.items():
        g = got[group]
        assert Fraction(g["avg_cost"]) == half_up(w["avg"], 2), group
        assert Fraction(g["annual_cases"]) == half_up(w["cases"], 4), group
        assert Fraction(g["score"]) == half_up(w["score"], 4), group
        assert g["kind"] == w["kind"], group
        for lv in (1, 2, 3):
            assert Fraction(g[f"avg_cost_level_{lv}"]) == half_up(w[f"level_{lv}"], 2), (group, lv)
        assert [int(g[f"cases_{y}"]) for y in YEARS] == list(COUNTS[group])
    assert got["C34.9+32.4901"]["kind"] == "core"  # exactly 15 a year: core (inclusive)
    assert got["S72.0+81.5101"]["kind"] == "comprehensive"  # 14.67 a year
    assert got["J18.9"]["cases_2022"] == "0"  # a year without cases leaves its weight out
    assert Fraction(got["K35.8+47.0901"]["score"]) == 1000


def test_catalogue_provenance(built):
    _, _, out = built
    notes = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert "zibo" in notes[1] and "1:2:7" in notes[2]
    meta = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    assert meta["policy"]["id"] == "zibo" and meta["years"] == list(YEARS) and meta["for_year"] == 2024
    assert meta["claims"] == sum(sum(c) for c in COUNTS.values())
    assert "national DIP" in meta["assumed"]["weights"] and len(meta["digest"]) == 64


def test_following_year_settles_with_the_built_catalogue(built, tmp_path):
    """The built table replaces the catalogue; a synthetic year of claims with codes only (moved to 2024,
    the year after the history) is grouped, scored and settled with it."""
    _, rows, out = built
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies" / "tables", policies / "tables")
    shutil.copy(ROOT / "policies" / "zibo.yaml", policies / "zibo.yaml")
    shutil.copy(out, policies / "tables" / "zibo_dip_groups.csv")
    policy = load_policy_file(policies / "zibo.yaml")
    data = tmp_path / "data"
    synthesize(policy, 3000, data, seed=2)
    claims = pq.read_table(data / "claim.parquet")
    assert "dip_group" not in claims.column_names  # grouped from the codes
    shift = {}
    for name in ("admit_date", "discharge_date"):
        moved = np.asarray(claims[name].to_numpy(zero_copy_only=False), "datetime64[D]") + 730  # 2022 → 2024
        shift[name] = pa.array(moved)
    for name, values in shift.items():
        claims = claims.set_column(claims.column_names.index(name), name, values)
    pq.write_table(claims, data / "claim.parquet")
    settle(policy, data, tmp_path / "out", parse_period("2024"))
    result = pq.read_table(tmp_path / "out" / "claim.parquet").to_pydict()
    built_avg = {g: float(half_up(w["avg"], 2)) for g, w in expected(rows).items()}
    base = built_avg["K35.8+47.0901"]
    checked = 0
    for group, method, avg, score in zip(result["dip_group"], result["payment_method"], result["group_avg_cost"],
                                         result["group_score"], strict=True):
        if method == "dip" and group in built_avg:
            assert avg == pytest.approx(built_avg[group], abs=1e-9)
            assert score == pytest.approx(built_avg[group] / base * 1000, rel=1e-12)
            checked += 1
    assert checked > 100
    assert set(result["dip_group"]) - {""} <= set(built_avg)  # the codes synthesized for the new catalogue
    accounts = pq.read_table(tmp_path / "out" / "account.parquet").to_pydict()
    funds = pq.read_table(tmp_path / "out" / "fund.parquet").to_pydict()
    for fund, total in zip(funds["id"], funds["points_settlement_total"], strict=True):  # money to the fen
        paid = sum(round(v * 100) for v, a in zip(accounts["points_payment"], accounts["id"], strict=True)
                   if a.split("|")[1] == fund)
        assert paid == round(total * 100) and paid > 0


def test_catalogue_refuses_a_short_history(tmp_path, capsys):
    rows = history(tmp_path / "history")
    assert rows
    shutil.rmtree(tmp_path / "history" / "2021")
    code = main(["catalogue", "zibo", "--history", str(tmp_path / "history"), "--out", str(tmp_path / "c.csv")])
    err = capsys.readouterr().err
    assert code != 0 and "2 year(s)" in err and "需要 3 年" in err
    assert not (tmp_path / "c.csv").exists()


def test_catalogue_refuses_a_base_group_without_claims(tmp_path, capsys):
    history(tmp_path / "history")
    code = main(["catalogue", "zibo", "--history", str(tmp_path / "history"), "--out", str(tmp_path / "c.csv"),
                 "--base-group", "O80.0"])
    err = capsys.readouterr().err
    assert code != 0 and "O80.0" in err and "基准病种" in err


def test_catalogue_refuses_bad_weights(tmp_path, capsys):
    code = main(["catalogue", "zibo", "--history", str(tmp_path), "--out", str(tmp_path / "c.csv"),
                 "--weights", "1:x:7"])
    assert code != 0 and "--weights" in capsys.readouterr().err

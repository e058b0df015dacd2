"""Grouping rules (grouping: section): code lists in and out, the vectorised grouping against a claim-by-claim
reading of the same tables, diagnostics of bad grouping sections, traces. The cases as data are in
tests/cases/grouping/ (every rule kind) and tests/cases/{zibo,hangzhou}/grouping* (codes to money)."""

from __future__ import annotations

import csv
import os
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine.batch.io import read_codes, read_entity
from engine.compile.build import load_policy_file, load_policy_text
from engine.errors import PolicyError, SituationError
from engine.explain.trace import build_trace
from engine.model.codelists import CodeLists, concat
from engine.run.evaluate import evaluate
from engine.run.grouping import assign

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "tests" / "grouping" / "policy.yaml"
FUZZ = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))


# ---- code lists -------------------------------------------------------------------------------
def test_code_lists_select_like_arrays():
    col = CodeLists.from_lists([["47.0901", " 54.21 "], None, ["ｋ35．8"], ["", "47.0901"]])
    assert col.to_lists() == [["47.0901", "54.21"], [], ["K35.8"], ["47.0901"]]
    assert col[0] == ("47.0901", "54.21") and col[-1] == ("47.0901",)
    assert col[np.array([True, False, True, True])].to_lists() == [["47.0901", "54.21"], ["K35.8"], ["47.0901"]]
    assert col[np.array([3, 0])].to_lists() == [["47.0901"], ["47.0901", "54.21"]]
    assert len(col[np.zeros(4, bool)]) == 0
    joined = concat([col, CodeLists.from_lists([["A"], []])])
    assert joined.to_lists() == [["47.0901", "54.21"], [], ["K35.8"], ["47.0901"], ["A"], []]
    assert list(np.asarray(col)) == [("47.0901", "54.21"), (), ("K35.8",), ("47.0901",)]


def test_code_lists_from_parquet_and_csv(tmp_path):
    parquet = pa.chunked_array([pa.array([["47.0901"], None, [], ["a", None, "b"]], pa.list_(pa.string()))])
    assert read_codes(parquet).to_lists() == [["47.0901"], [], [], ["A", "B"]]
    sliced = pa.array([["x"], ["47.0901", "54.21"], ["y"]], pa.list_(pa.string())).slice(1, 2)
    assert read_codes(sliced).to_lists() == [["47.0901", "54.21"], ["Y"]]
    text = pa.chunked_array([pa.array(["47.0901;54.21", None, "", "k35.8"])])
    assert read_codes(text).to_lists() == [["47.0901", "54.21"], [], [], ["K35.8"]]


# ---- faults: JSON and files -------------------------------------------------------------------
def situation(claims: list[dict]) -> dict:
    return {"period": "2024", "entities": {"claim": claims}, "outputs": ["claim.dip_group"]}


@pytest.mark.parametrize(("value", "path", "words"), [
    ("47.0901", "entities.claim[0].procedures", "must be a list of codes"),
    (["47.0901", 5], "entities.claim[0].procedures[1]", "a code is a text"),
    (["x" * 41], "entities.claim[0].procedures[0]", "at most 40 characters"),
    (["a\x00b"], "entities.claim[0].procedures[0]", "printable"),
    ([str(i) for i in range(101)], "entities.claim[0].procedures", "at most 100"),
    ({"a": 1}, "entities.claim[0].procedures", "must be a list of codes"),
])
def test_bad_code_lists_are_refused_at_their_path(value, path, words):
    policy = load_policy_file(POLICY)
    with pytest.raises(SituationError) as err:
        evaluate(policy, situation([{"id": "a", "diagnosis": "K35.8", "procedures": value}]))
    assert [f.path for f in err.value.faults] == [path]
    assert words in err.value.faults[0].en and err.value.faults[0].zh


def test_a_code_list_column_of_numbers_is_refused(tmp_path):
    policy = load_policy_file(POLICY)
    claim = policy.model.entities["claim"]
    pq.write_table(pa.table({"id": ["a"], "procedures": pa.array([[1]], pa.list_(pa.int64()))}), tmp_path / "c.parquet")
    with pytest.raises(SituationError) as err:
        read_entity(tmp_path / "c.parquet", claim)
    assert err.value.faults[0].path == "c.parquet:procedures" and "list<string>" in err.value.faults[0].en
    many = pa.array([[str(i) for i in range(101)], []], pa.list_(pa.string()))
    pq.write_table(pa.table({"id": ["a", "b"], "procedures": many}), tmp_path / "m.parquet")
    with pytest.raises(SituationError) as err:
        read_entity(tmp_path / "m.parquet", claim)
    assert "rows 0 " in err.value.faults[0].en and "100 codes" in err.value.faults[0].en


def test_codes_in_a_csv_file_are_joined_by_semicolons(tmp_path):
    policy = load_policy_file(POLICY)
    (tmp_path / "claim.csv").write_text("id,diagnosis,procedures\na,Q21.0,35.5301;39.6100\nb,Q21.0,35.5301\n",
                                        encoding="utf-8")
    cols = read_entity(tmp_path / "claim.csv", policy.model.entities["claim"])
    got = assign(policy.groupings["dip"], cols.values["diagnosis"], cols.values["procedures"], None)
    assert got.group.tolist() == ["A2", ""]


# ---- the vectorised grouping equals a claim-by-claim reading -----------------------------------
def norm(code: str) -> str:
    return unicodedata.normalize("NFKC", code).strip().replace(" ", "").upper()


def cells(table: str) -> list[dict]:
    lines = (ROOT / "tests" / "grouping" / "tables" / f"{table}.csv").read_text(encoding="utf-8").splitlines()
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def fits(code: str, cell: str) -> bool:
    """One cell read by hand: alternatives with |, @table lists, K35* prefixes, C00-C97 ranges."""
    if not cell.strip():
        return True
    for part in cell.split("|"):
        part = part.strip()
        if part.startswith("@"):
            if any(fits(code, row["code"]) for row in cells(part[1:])):
                return True
        elif part.endswith("*"):
            if code.startswith(norm(part[:-1])):
                return True
        elif "-" in part:
            low, high = (norm(x) for x in part.split("-"))
            if low <= code and code[:len(high)] <= high:
                return True
        elif code == norm(part):
            return True
    return False


def by_hand(diagnosis: str, procedures: list[str], secondary: list[str]) -> tuple[str, str]:
    """(DIP group, DRG group) of one claim, read off the tables one row at a time."""
    d, procs, secs = norm(diagnosis), [norm(p) for p in procedures], [norm(s) for s in secondary]
    ranked = [(float(r["rank"]), -i, p, r["kind"]) for i, p in enumerate(procs) for r in cells("ranks")
              if fits(p, r["code"])]
    best = {}
    for rank, order, p, kind in ranked:  # the first matching rank row of each procedure
        best.setdefault((order, p), (rank, order, p, kind))
    top = max(best.values(), default=None)
    treatment = top[3] if top else "conservative"

    def has_all(cell: str) -> bool:
        return all(any(fits(p, part) for p in procs) for part in cell.split("&")) if cell else True
    dip = ""
    for rule, match in (("core", "any"), ("diagnostic_only", "all"), ("core_by_main", "highest"), ("comprehensive", "")):
        for row in cells(rule):
            if not fits(d, row.get("diagnosis", row.get("category", ""))):
                continue
            if match == "any" and not has_all(row["procedures"]):
                continue
            if match == "all" and not (procs and all(fits(p, row["procedures"]) for p in procs)):
                continue
            if match == "highest" and not (top and fits(top[2], row["procedures"])):
                continue
            if match == "" and row["treatment"] not in ("", treatment):
                continue
            dip = row["group"]
            break
        if dip:
            break
    level = 0
    for s in secs:
        if s == d:
            continue
        for row in cells("cc"):
            if fits(s, row["code"]) and not (row["excluded_for"] and fits(d, row["excluded_for"])):
                level = max(level, int(row["level"]))
    candidates = [(float(r["rank"]), -i, r) for i, r in enumerate(cells("adrg"))
                  if fits(d, r["diagnosis"]) and has_all(r["procedures"])]
    drg = ""
    if candidates:
        row = max(candidates, key=lambda c: (c[0], c[1]))[2]
        drg = row["drg"] + ({0: "5", 1: "3", 2: "1"}[level] if row["split"] == "yes" else "")
    return dip, drg


DIAGNOSES = ["K35.800x002", "k35.8", "K35.201", "Q21.0", "C34.900", "C97.x00", "D00.000", "K80.201", "J18.900",
             "S72.001", "I21.000", "I63.900", "N17.900", "Z00.000", "J96.000", ""]
PROCEDURES = ["47.0901", "47.0100X001", "35.5301", "39.6100", "99.2500", "99.2801", "33.2400", "87.4101",
              "96.0401", "79.1501", "81.5101", "81.5201", "32.4101", "36.0601", "00.0000"]
SECONDARY = ["J96.000", "N17.900", "I50.900", "E87.100", "E87.1", "K35.8", "N18.1"]


def random_claims(n: int, seed: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    diag = [DIAGNOSES[i] for i in rng.integers(0, len(DIAGNOSES), n)]
    procs = [[PROCEDURES[i] for i in rng.integers(0, len(PROCEDURES), rng.integers(0, 4))] for _ in range(n)]
    secs = [[SECONDARY[i] for i in rng.integers(0, len(SECONDARY), rng.integers(0, 3))] for _ in range(n)]
    return diag, procs, secs


@pytest.mark.parametrize("seed", range(max(1, FUZZ)))
def test_vectorised_grouping_equals_a_claim_by_claim_reading(seed):
    policy = load_policy_file(POLICY)
    diag, procs, secs = random_claims(400, seed)
    args = (np.array(diag), CodeLists.from_lists(procs), CodeLists.from_lists(secs))
    dip = assign(policy.groupings["dip"], *args).group.tolist()
    drg = assign(policy.groupings["drg"], *args).group.tolist()
    want = [by_hand(d, p, s) for d, p, s in zip(diag, procs, secs, strict=True)]
    assert dip == [w[0] for w in want]
    assert drg == [w[1] for w in want]
    assert len(set(dip)) > 5 and len(set(drg)) > 3  # the random claims reach many groups


def test_grouping_a_large_population_matches_distinct_codes_once():
    """Claims are grouped per distinct signature: many claims over few codes stay fast (full size with
    MEDPAY_FUZZ_EXAMPLES > 1: a million claims)."""
    policy = load_policy_file(POLICY)
    n = 1_000_000 if FUZZ > 1 else 100_000
    diag, procs, secs = random_claims(500, 7)
    pick = np.random.default_rng(1).integers(0, 500, n)
    args = (np.array(diag)[pick], CodeLists.from_lists(procs)[pick], CodeLists.from_lists(secs)[pick])
    started = time.perf_counter()
    got = assign(policy.groupings["dip"], *args)
    elapsed = time.perf_counter() - started
    small = assign(policy.groupings["dip"], np.array(diag), CodeLists.from_lists(procs), CodeLists.from_lists(secs))
    assert got.group.tolist() == small.group[pick].tolist()
    assert elapsed < (20.0 if FUZZ > 1 else 2.0)


def test_many_distinct_codes_and_a_large_catalogue(tmp_path):
    """A catalogue of thousands of prefix rows and claims with distinct codes: each code is matched through
    the prefix index, not against every row."""
    rows = 20_000 if FUZZ > 1 else 2_000
    tables = tmp_path / "tables"
    tables.mkdir()
    lines = ["group,diagnosis,procedures"] + [f"G{i},D{i:05d}*,P{i:05d}|@extra" for i in range(rows)]
    (tables / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tables / "extra.csv").write_text("code\nX1\n", encoding="utf-8")
    text = yaml.safe_dump({
        "policy": {"id": "big", "name": {"zh": "大", "en": "big"}, "notice": "t", "issuer": "t",
                   "effective": {"from": "2024-01-01"}},
        "tables": {"big": {"file": "tables/big.csv", "key": ["group"], "label": {"zh": "表", "en": "t"}, "assumed": "t"},
                   "extra": {"file": "tables/extra.csv", "key": ["code"], "label": {"zh": "表", "en": "t"},
                             "assumed": "t"}},
        "grouping": {"g": {"label": {"zh": "分组", "en": "g"}, "assumed": "t",
                           "fields": {"diagnosis": "diagnosis", "procedures": "procedures"},
                           "rules": [{"table": "big", "group": "group", "diagnosis": "diagnosis",
                                      "procedures": "procedures"}]}},
        "variables": {"claim": {"diagnosis": {"type": "string", "default": "", "label": {"zh": "诊断", "en": "d"}},
                                "procedures": {"type": "codes", "default": [], "label": {"zh": "操作", "en": "p"}},
                                "group": {"type": "string", "formula": "group(g)", "assumed": "t",
                                          "label": {"zh": "组", "en": "g"}}}}}, allow_unicode=True)
    policy = load_policy_text(text, "<big>", tmp_path)
    n = rows * 5
    i = np.arange(n) % rows
    diag = np.char.add(np.char.add("D", np.char.zfill(i.astype(str), 5)), ".1")
    procs = CodeLists.from_lists([[f"P{k:05d}"] if k % 2 else ["X1"] for k in i.tolist()])
    started = time.perf_counter()
    got = assign(policy.groupings["g"], diag, procs, None)
    elapsed = time.perf_counter() - started
    assert (got.group == np.char.add("G", i.astype(str)).astype(object)).all()
    assert elapsed < (30.0 if FUZZ > 1 else 2.0)


# ---- bad grouping sections ----------------------------------------------------------------------
def load_variant(tmp_path: Path, change) -> PolicyError:
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    change(data)
    folder = tmp_path / "p"
    if not folder.exists():
        (folder).mkdir()
        for f in (POLICY.parent / "tables").iterdir():
            (folder / "tables").mkdir(exist_ok=True)
            (folder / "tables" / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "<p>", folder)
    return err.value


def rule(data, i=0, grouping="dip"):
    return data["grouping"][grouping]["rules"][i]


@pytest.mark.parametrize(("change", "code", "words"), [
    (lambda d: rule(d).update(table="cor"), "unknown_table", "did you mean 'core'"),
    (lambda d: rule(d).update(diagnosis="diagnosys"), "unknown_column", "did you mean 'diagnosis'"),
    (lambda d: rule(d).update(group="nope"), "unknown_column", "has no column 'nope'"),
    (lambda d: d["grouping"]["dip"]["fields"].update(procedures="diagnosis"), "unknown_name", "type codes"),
    (lambda d: rule(d, 3).pop("treatment") and d["grouping"]["dip"].pop("procedure_ranks")
     and rule(d, 3).update(treatment="treatment"), "grouping", "needs procedure_ranks"),
    (lambda d: d["grouping"]["drg"].pop("complication"), "grouping", "needs a complication"),
    (lambda d: d["grouping"]["dip"].pop("assumed"), "missing_provenance", "must cite its clause"),
    (lambda d: rule(d).update(choose="highest"), "grouping", "needs a score"),
    (lambda d: d["variables"]["claim"]["dip_group"].update(formula="group(dp)"), "unknown_grouping",
     "did you mean 'dip'"),
    (lambda d: d["variables"]["claim"]["procedures"].update(formula="procedures"), "codes_formula",
     "a formula cannot give one"),
])
def test_bad_grouping_sections_are_named(tmp_path, change, code, words):
    err = load_variant(tmp_path, change)
    found = [(d.code, d.en) for d in err.diagnostics]
    assert any(c == code and words in en for c, en in found), found
    assert all(d.zh for d in err.diagnostics)


@pytest.mark.parametrize(("cell", "words"), [
    ("K35**", "a prefix pattern is a code followed by one *"),
    ("C97-C00", "the range ends before it starts"),
    ("C00-", "a range is two codes"),
    ("K*35", "* may only end a prefix"),
    ("@chem", "names no code-list table; did you mean '@chemo'"),
])
def test_bad_code_patterns_are_named_with_their_row(tmp_path, cell, words):
    (tmp_path / "p" / "tables").mkdir(parents=True)
    for f in (POLICY.parent / "tables").iterdir():
        (tmp_path / "p" / "tables" / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "p" / "tables" / "core.csv").write_text(f"group,diagnosis,procedures\nA1,K35.8,\nA2,{cell},\n",
                                                        encoding="utf-8")
    err = load_variant(tmp_path, lambda d: None)
    diag = next(d for d in err.diagnostics if d.code == "code_pattern")
    assert "row 2" in diag.en and words in diag.en and diag.zh
    assert "grouping.dip.rules[0].diagnosis" in diag.render() or diag.location.line > 0


def test_group_is_for_claims_only(tmp_path):
    def change(d):
        d["variables"]["institution"] = {"g": {"type": "string", "formula": "group(dip)", "assumed": "t",
                                               "label": {"zh": "组", "en": "g"}}}
    err = load_variant(tmp_path, change)
    assert any(d.code == "grouping_scope" for d in err.diagnostics)


# ---- explanations ---------------------------------------------------------------------------------
def test_the_trace_of_a_group_says_which_rule_and_codes_matched():
    policy = load_policy_file(POLICY)
    result = evaluate(policy, situation([{"id": "a", "diagnosis": "K35.800x002", "procedures": ["47.0901"]},
                                         {"id": "b", "diagnosis": "X", "dip_group": "Z1"}]), tracer=build_trace)
    step = result["trace"]["claim.a.dip_group"]
    assert step["value"] == "A1"
    assert step["inputs"]["group_rule(dip)"] == "core: core row 1"
    assert step["inputs"]["group_match(dip)"] == "diagnosis K35.800X002 ~ K35.8*; procedures ~ 47.0901|47.0100x001 (any)"
    assert list(step["inputs"]["procedures"]) == ["47.0901"]
    assert result["trace"]["claim.b.dip_group"]["note"].startswith("supplied")

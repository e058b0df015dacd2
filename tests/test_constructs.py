"""Language constructs: list and date parameters, step edges with a side each, text functions for
codes, has() and one key factorization for several lookups, totals over a table (语言构造).

Every expected value is worked out by hand (or with Fraction) in the comment beside it.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.compile.build import load_policy_text
from engine.errors import PolicyError, SituationError
from engine.explain.trace import build_trace
from engine.run import builtins
from engine.run.evaluate import evaluate

SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))

CATALOGUE = """# illustrative catalogue for the construct tests
drg_group,weight,kind
A01,1.5,surgical
A02,0.25,medical
B02,0.5,medical
C03,2.25,surgical
"""
PAIRS = """region,level,rate
3708,1,0.9
3708,2,0.8
3709,1,0.7
"""


def _label(name: str) -> dict:
    return {"zh": name, "en": name}


def make(tmp_path: Path, claim: dict[str, str | dict], parameters: dict | None = None,
         institution: dict | None = None) -> object:
    """A policy with the catalogue `drg` and the two-key table `pairs`, and the given formulas."""
    (tmp_path / "tables").mkdir(exist_ok=True)
    (tmp_path / "tables" / "drg.csv").write_text(CATALOGUE, encoding="utf-8")
    (tmp_path / "tables" / "pairs.csv").write_text(PAIRS, encoding="utf-8")
    variables: dict = {"claim": {
        "drg_group": {"type": "string", "label": _label("drg_group")},
        "area": {"type": "string", "label": _label("area")},
        "diagnosis": {"type": "string", "label": _label("diagnosis")},
        "ratio": {"label": _label("ratio")},
    }, "institution": {}}
    for entity, declared in (("claim", claim), ("institution", institution or {})):
        for name, spec in declared.items():
            spec = {"formula": spec} if isinstance(spec, str) else dict(spec)
            spec.setdefault("label", _label(name))
            spec.setdefault("source", "一")
            variables[entity][name] = spec
    params = {}
    for name, spec in (parameters or {}).items():
        params[name] = {"label": _label(name), "source": "二", **spec}
    data = {
        "policy": {"id": "constructs", "name": _label("c"), "notice": "n", "issuer": "i",
                   "effective": {"from": "2024-01-01", "to": None}},
        "tables": {"drg": {"file": "tables/drg.csv", "key": ["drg_group"], "label": _label("drg"),
                           "assumed": "illustrative"},
                   "pairs": {"file": "tables/pairs.csv", "key": ["region", "level"], "label": _label("pairs"),
                             "assumed": "illustrative"}},
        "parameters": params,
        "variables": variables,
    }
    return load_policy_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "constructs.yaml", tmp_path)


def claims(*rows: dict) -> dict:
    out = []
    for i, row in enumerate(rows):
        base = {"id": f"c{i + 1}", "institution": "H1", "admit_date": "2024-03-01", "discharge_date": "2024-03-02"}
        out.append({**base, **row})
    return {"period": "2024", "entities": {"institution": [{"id": "H1", "level": 2}], "claim": out}}


def values(result: dict, name: str, entity: str = "claim") -> list:
    return [row[name] for row in result["entities"][entity]]


def refused(tmp_path: Path, claim: dict, parameters: dict | None = None):
    with pytest.raises(PolicyError) as caught:
        make(tmp_path, claim, parameters)
    return caught.value.diagnostics[0]


# ---- 1. list and date parameters ---------------------------------------------------------------
LOCAL = {"type": "list", "values": [{"from": "2024-01-01", "value": ["3708"]},
                                    {"from": "2024-07-01", "value": ["3708", "3709"]}]}


def test_a_list_parameter_of_codes_is_used_with_in_and_its_dated_versions(tmp_path):
    policy = make(tmp_path, {"local": {"type": "bool", "formula": "area in local_areas"},
                             "elsewhere": {"type": "bool", "formula": "area not in local_areas"}},
                  {"local_areas": LOCAL})
    result = evaluate(policy, claims(
        {"area": "3708"},                                        # first version: 3708 only → in
        {"area": "3709"},                                        # discharged in March → not yet in
        {"area": "3709", "discharge_date": "2024-07-01"},        # the second version from 07-01 → in
        {"area": "370812", "discharge_date": "2024-08-01"}))     # `in` is the whole code, not a prefix
    assert values(result, "local") == [True, False, True, False]
    assert values(result, "elsewhere") == [False, True, False, True]


def test_a_list_parameter_of_numbers_takes_percentages(tmp_path):
    policy = make(tmp_path, {"listed": {"type": "bool", "formula": "ratio in rates"}},
                  {"rates": {"value": ["5%", 0.1, 1_000]}})
    assert policy.parameters["rates"].kind == "list" and policy.parameters["rates"].versions[0].value == \
        [0.05, 0.1, 1000.0]
    result = evaluate(policy, claims({"ratio": 0.05}, {"ratio": 0.1}, {"ratio": 0.15}, {"ratio": 1000}))
    assert values(result, "listed") == [True, True, False, True]


def test_a_date_parameter_compares_with_date_fields_and_has_versions(tmp_path):
    policy = make(tmp_path, {"new_rules": {"type": "bool", "formula": "admit_date >= cutover"},
                             "days_after": {"formula": "days_between(cutover, admit_date)"}},
                  {"cutover": {"type": "date", "values": [{"from": "2024-01-01", "value": "2024-07-01"},
                                                          {"from": "2024-09-01", "value": "2024-10-01"}]}})
    result = evaluate(policy, claims(
        {"admit_date": "2024-06-30", "discharge_date": "2024-07-02"},   # before the cut-over 07-01
        {"admit_date": "2024-07-01", "discharge_date": "2024-07-02"},   # on it: >= holds
        {"admit_date": "2024-09-05", "discharge_date": "2024-09-06"}))  # the later version: 10-01
    assert values(result, "new_rules") == [False, True, False]
    assert values(result, "days_after") == [-1, 0, -26]  # 06-30 − 07-01; 09-05 − 10-01 = −26


def test_list_and_date_overrides_in_a_situation(tmp_path):
    policy = make(tmp_path, {"local": {"type": "bool", "formula": "area in local_areas"},
                             "new_rules": {"type": "bool", "formula": "admit_date >= cutover"}},
                  {"local_areas": LOCAL, "cutover": {"type": "date", "value": "2024-07-01"}})
    situation = {**claims({"area": "3710"}), "parameters": {"local_areas": ["3710"], "cutover": "2024-03-01"}}
    result = evaluate(policy, situation)
    assert values(result, "local") == [True] and values(result, "new_rules") == [True]
    with pytest.raises(SituationError) as caught:
        evaluate(policy, {**claims({}), "parameters": {"local_areas": [3710], "cutover": "first of July"}})
    faults = {f.path: f for f in caught.value.faults}
    assert set(faults) == {"parameters.local_areas", "parameters.cutover"}
    assert "list of texts" in faults["parameters.local_areas"].en and "文本列表" in faults["parameters.local_areas"].zh
    assert "YYYY-MM-DD" in faults["parameters.cutover"].en


def test_list_parameter_mistakes_are_located(tmp_path):
    mixed = refused(tmp_path, {"x": {"type": "bool", "formula": "area in codes"}},
                    {"codes": {"value": ["3708", 3709]}})
    assert mixed.code == "bad_value" and "quotes" in mixed.en and "引号" in mixed.zh
    assert mixed.location.path == "parameters.codes.value[1]"
    empty = refused(tmp_path, {}, {"codes": {"type": "list", "value": []}})
    assert empty.code == "bad_value"
    date = refused(tmp_path, {}, {"cutover": {"type": "date", "value": "2024-13-01"}})
    assert date.code == "bad_value" and "YYYY-MM-DD" in date.en and "日期" in date.zh
    not_list = refused(tmp_path, {"x": {"type": "bool", "formula": "area in base"}}, {"base": {"value": 100}})
    assert not_list.code == "in_needs_list" and "base" in not_list.en


# ---- 2. step with a side per edge -----------------------------------------------------------------
def test_step_edges_state_their_side(tmp_path):
    # 0.4 以下 → "low"; 超过 0.4 至 0.8（含）→ "mid"; 超过 0.8 → "high": bands (…, 0.4], (0.4, 0.8], (0.8, …)
    # 不满 0.4 → "low"; 0.4 以上至 0.8（含）→ "mid": [0.4, 0.8]; 超过 0.8 → "high"
    policy = make(tmp_path, {
        "half_open": {"type": "string", "formula": 'step(ratio, [above(0.4), above(0.8)], ["low", "mid", "high"])'},
        "mixed": {"type": "string", "formula": 'step(ratio, [from(0.4), above(0.8)], ["low", "mid", "high"])'},
        "left": {"type": "string", "formula": 'step(ratio, [0.4, 0.8], ["low", "mid", "high"])'},
    })
    result = evaluate(policy, claims(*[{"ratio": r} for r in (0.39, 0.4, 0.41, 0.8, 0.81)]))
    assert values(result, "half_open") == ["low", "low", "mid", "mid", "high"]
    assert values(result, "mixed") == ["low", "mid", "mid", "mid", "high"]
    assert values(result, "left") == ["low", "mid", "mid", "high", "high"]  # closed="left" as before


def test_step_side_mistakes(tmp_path):
    both = refused(tmp_path, {"b": {"type": "string", "formula":
                                    'step(ratio, [above(0.4)], ["a", "b"], closed="right")'}})
    assert both.code == "step_sides" and "closed=" in both.en and "closed=" in both.zh
    some = refused(tmp_path, {"b": {"type": "string", "formula": 'step(ratio, [above(0.4), 0.8], ["a", "b", "c"])'}})
    assert some.code == "step_sides" and some.location.column is not None
    outside = refused(tmp_path, {"b": "min(above(0.4), 1)"})
    assert outside.code == "edge_outside_step" and "step(" in outside.en and "step(" in outside.zh
    order = refused(tmp_path, {"b": {"type": "string", "formula": 'step(ratio, [above(0.8), above(0.4)], ["a", "b", "c"])'}})
    assert order.code == "band_edges"


# ---- 3. texts and codes -------------------------------------------------------------------------
def test_starts_with_a_prefix_a_list_and_a_list_parameter(tmp_path):
    policy = make(tmp_path, {
        "one": {"type": "bool", "formula": 'starts_with(area, "3708")'},
        "listed": {"type": "bool", "formula": 'starts_with(area, ["3708", "3709"])'},
        "by_param": {"type": "bool", "formula": "starts_with(area, local_prefixes)"},
    }, {"local_prefixes": LOCAL})
    result = evaluate(policy, claims({"area": "370812"}, {"area": "370912"}, {"area": "3710"}, {"area": ""},
                                     {"area": "370912", "discharge_date": "2024-07-01"}))
    assert values(result, "one") == [True, False, False, False, False]
    assert values(result, "listed") == [True, True, False, False, True]
    assert values(result, "by_param") == [True, False, False, False, True]  # 3709 listed from 07-01


def test_starts_with_refuses_numbers(tmp_path):
    wrong = refused(tmp_path, {"x": {"type": "bool", "formula": "starts_with(area, codes)"}},
                    {"codes": {"value": [3708, 3709]}})
    assert wrong.code == "type" and "quotes" in wrong.en and "引号" in wrong.zh
    wrong = refused(tmp_path, {"x": {"type": "bool", "formula": 'starts_with(ratio, "37")'}})
    assert wrong.code == "type" and "starts_with" in wrong.en


def test_code_ranges_compare_texts(tmp_path):
    policy = make(tmp_path, {
        "range": {"type": "bool", "formula": 'between(diagnosis, "C00", "C97")'},
        "plain": {"type": "bool", "formula": '"C00" <= diagnosis and diagnosis <= "C97"'},
        "numbers": {"type": "bool", "formula": "between(ratio, 0.5, 1)"},
        "dates": {"type": "bool", "formula": "between(admit_date, 2024-03-01, 2024-03-31)"},
    })
    rows = [{"diagnosis": d, "ratio": r, "admit_date": a} for d, r, a in (
        ("C00", 0.5, "2024-03-01"), ("C97", 1, "2024-03-31"), ("C97.1", 1.01, "2024-04-01"),
        ("C98", 0.49, "2024-02-29"), ("B99", 0.75, "2024-03-15"))]
    result = evaluate(policy, claims(*rows))
    # between: the code's first 3 characters against C97, so the sub-code C97.1 is inside
    assert values(result, "range") == [True, True, True, False, False]
    # a plain text comparison is character by character: C97.1 comes after C97
    assert values(result, "plain") == [True, True, False, False, False]
    assert values(result, "numbers") == [True, True, False, False, True]
    assert values(result, "dates") == [True, True, False, False, True]
    wrong = refused(tmp_path, {"x": {"type": "bool", "formula": 'between(diagnosis, 1, 2)'}})
    assert wrong.code == "type" and "between" in wrong.en


def test_membership_in_a_table_column(tmp_path):
    policy = make(tmp_path, {
        "catalogued": {"type": "bool", "formula": "drg_group in drg.drg_group"},   # a key column
        "a_kind": {"type": "bool", "formula": 'diagnosis in drg.kind'},            # a value column
        "heavy": {"type": "bool", "formula": "ratio not in drg.weight"},
    })
    result = evaluate(policy, claims({"drg_group": "A01", "diagnosis": "medical", "ratio": 2.25},
                                     {"drg_group": "Z99", "diagnosis": "other", "ratio": 2}))
    assert values(result, "catalogued") == [True, False]
    assert values(result, "a_kind") == [True, False]
    assert values(result, "heavy") == [False, True]
    wrong = refused(tmp_path, {"x": {"type": "bool", "formula": "ratio in drg.kind"}})
    assert wrong.code == "compare_types"


# ---- 4. has() and several lookups on one key ------------------------------------------------------
def test_has_says_whether_a_key_is_in_the_table(tmp_path):
    policy = make(tmp_path, {
        "known": {"type": "bool", "formula": "has(drg, drg_group)"},
        "paired": {"type": "bool", "formula": "has(pairs, area, institution.level)"},
        "weight": {"formula": "if has(drg, drg_group) then lookup(drg.weight, drg_group) else 1"},
    })
    result = evaluate(policy, claims({"drg_group": "C03", "area": "3708"}, {"drg_group": "X", "area": "3709"}))
    assert values(result, "known") == [True, False]
    assert values(result, "paired") == [True, False]  # (3708, 2) is a row; (3709, 2) is not
    assert values(result, "weight") == [2.25, 1]
    assert result["warnings"] == []  # the guarded lookup never saw the missing key


def test_has_mistakes(tmp_path):
    typo = refused(tmp_path, {"x": {"type": "bool", "formula": "has(dgr, drg_group)"}})
    assert typo.code == "has_table" and "'drg'" in typo.en and "drg" in typo.zh
    keys = refused(tmp_path, {"x": {"type": "bool", "formula": "has(pairs, area)"}})
    assert keys.code == "arity"
    key_column = refused(tmp_path, {"x": "lookup(drg.drg_group, drg_group)"})
    assert key_column.code == "lookup_target" and "has(drg" in key_column.en


def test_several_lookups_on_one_key_factorize_it_once(tmp_path, monkeypatch):
    policy = make(tmp_path, {
        "weight": "lookup(drg.weight, drg_group, default=0)",
        "kind": {"type": "string", "formula": 'lookup(drg.kind, drg_group, default="none")'},
        "known": {"type": "bool", "formula": "has(drg, drg_group)"},
    })
    calls = []
    original = builtins._codes
    monkeypatch.setattr(builtins, "_codes", lambda *a, **k: calls.append(1) or original(*a, **k))
    result = evaluate(policy, claims({"drg_group": "A02"}, {"drg_group": "Q"}, {"drg_group": "A02"}))
    assert values(result, "weight") == [0.25, 0, 0.25]
    assert values(result, "kind") == ["medical", "none", "medical"]
    assert values(result, "known") == [True, False, True]
    assert len(calls) == 1  # three calls, one factorization of drg_group


# ---- 5. totals over a table -----------------------------------------------------------------------
def test_sums_and_counts_over_a_table(tmp_path):
    policy = make(tmp_path, {
        "share": "lookup(drg.weight, drg_group) / sum(drg.weight)",
        "surgical": 'count(drg where drg.kind == "surgical")',
        "a_weight": 'sum(drg.weight where starts_with(drg.drg_group, "A"))',
        "mean_weight": "mean(drg.weight * 2)",
        "heaviest": "max(drg.weight)",
        "any_heavy": {"type": "bool", "formula": "any(drg.weight > 2)"},
    })
    result = evaluate(policy, claims({"drg_group": "C03"}))
    total = Fraction("1.5") + Fraction("0.25") + Fraction("0.5") + Fraction("2.25")    # 4.5
    assert values(result, "share") == [pytest.approx(float(Fraction("2.25") / total))]  # 0.5
    assert values(result, "surgical") == [2]
    assert values(result, "a_weight") == [1.75]
    assert values(result, "mean_weight") == [float(total * 2 / 4)]  # 2.25
    assert values(result, "heaviest") == [2.25]
    assert values(result, "any_heavy") == [True]


def test_a_table_total_is_traced(tmp_path):
    policy = make(tmp_path, {"share": "lookup(drg.weight, drg_group) / sum(drg.weight)"})
    trace = evaluate(policy, claims({"drg_group": "A01"}), build_trace)["trace"]["claim.c1.share"]
    assert trace["inputs"]["sum(drg.weight)"] == 4.5 and trace["value"] == pytest.approx(1.5 / 4.5)


def test_table_total_mistakes(tmp_path):
    reads_row = refused(tmp_path, {"x": "sum(drg.weight where drg.drg_group == drg_group)"})
    assert reads_row.code == "table_scope" and "drg_group" in reads_row.en
    typo = refused(tmp_path, {"x": "sum(drg.wieght)"})
    assert typo.code == "unknown_column" and "weight" in typo.en
    rows = refused(tmp_path, {"x": "sum(drg)"})
    assert rows.code == "table_needs_column"
    divides = refused(tmp_path, {"x": "sum(drg.weight / 2)"})
    assert divides.code == "table_scope"


# ---- at scale: the same constructs over many claims ------------------------------------------------
def test_constructs_over_many_claims(tmp_path):
    n = min(100_000, 20_000 * SCALE)  # 100,000 claims: the most one request takes, with room for links
    policy = make(tmp_path, {
        "local": {"type": "bool", "formula": "starts_with(area, local_prefixes)"},
        "cancer": {"type": "bool", "formula": 'between(diagnosis, "C00", "C97")'},
        "catalogued": {"type": "bool", "formula": "drg_group in drg.drg_group"},
        "weight": "if has(drg, drg_group) then lookup(drg.weight, drg_group) / sum(drg.weight) else 0",
    }, {"local_prefixes": LOCAL})
    rng = np.random.default_rng(7)
    groups = np.array(["A01", "A02", "B02", "C03", "Z99"])[rng.integers(0, 5, n)]
    areas = np.array(["370812", "370912", "3710"])[rng.integers(0, 3, n)]
    codes = np.array(["C00", "C97.1", "C98", "B20"])[rng.integers(0, 4, n)]
    rows = [{"id": f"c{i}", "institution": "H1", "drg_group": g, "area": a, "diagnosis": d,
             "discharge_date": "2024-08-01"} for i, (g, a, d) in enumerate(zip(groups, areas, codes, strict=True))]
    started = time.perf_counter()
    result = evaluate(policy, {"period": "2024", "entities": {"institution": [{"id": "H1"}], "claim": rows}})
    took = time.perf_counter() - started
    out = result["entities"]["claim"]
    assert sum(r["local"] for r in out) == int(np.isin(areas, ["370812", "370912"]).sum())
    assert sum(r["cancer"] for r in out) == int(np.isin(codes, ["C00", "C97.1"]).sum())
    assert sum(r["catalogued"] for r in out) == int((groups != "Z99").sum())
    weights = {"A01": 1.5, "A02": 0.25, "B02": 0.5, "C03": 2.25, "Z99": 0.0}
    assert sum(r["weight"] for r in out) == pytest.approx(sum(weights[g] for g in groups) / 4.5)
    assert took < (2.0 if SCALE == 1 else 20.0), took

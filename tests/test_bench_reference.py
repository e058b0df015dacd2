"""The benchmark's yardsticks (bench/reference.py) compute what the engine computes.

bench/run.py compares the engine's speed with a hand-written numpy settlement, a plain Python
loop and zen-engine; those comparisons mean something only while the three give the engine's
numbers. Here they run on a few thousand synthetic claims and are compared with what
`settle` writes (money to the fen, other numbers to 1e-9, text exactly). Not a timing test.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.batch.settle import folder_period, settle
from engine.batch.synth import synthesize
from engine.policy.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ref = importlib.import_module("bench.reference")

REGISTRY = Registry.load()
CLAIMS = 4000


def settled(city: str, data: Path, out: Path, **options) -> tuple[dict, dict, dict]:
    """What `settle` writes for a data folder: columns and ids per entity; money columns."""
    policy = REGISTRY.pick(city, folder_period(data, None))
    settle(policy, data, out, folder_period(data, None), **options)
    columns, ids = {}, {}
    for file in out.glob("*.parquet"):
        table = pq.read_table(file)
        ids[file.stem] = table["id"].to_numpy(zero_copy_only=False)
        columns[file.stem] = {n: table[n].to_numpy(zero_copy_only=False) for n in table.column_names if n != "id"}
    money = {e: {n for n, v in ent.variables.items() if v.is_money} for e, ent in policy.model.entities.items()}
    return columns, ids, money


@pytest.fixture(scope="module")
def zibo(tmp_path_factory):
    base = tmp_path_factory.mktemp("zibo")
    synthesize(REGISTRY.pick("zibo", None), CLAIMS, base / "data", seed=3, with_groups=True)
    return base / "data", settled("zibo", base / "data", base / "out")


@pytest.fixture(scope="module")
def zibo_overspending(zibo, tmp_path_factory):
    base = tmp_path_factory.mktemp("zibo-overspend")
    ref.overspend_variant(zibo[0], base / "data")
    return base / "data", settled("zibo", base / "data", base / "out")


@pytest.fixture(scope="module")
def zibo_chunked(zibo_overspending, tmp_path_factory):
    """The overspending variant settled in chunks of 1,000 claims: sums are exact millionths, so
    every value (every fen of the allocations) is the same as in one piece."""
    return zibo_overspending[0], settled("zibo", zibo_overspending[0], tmp_path_factory.mktemp("chunked"),
                                         chunk_rows=1000)


@pytest.fixture(scope="module")
def jingdezhen(tmp_path_factory):
    base = tmp_path_factory.mktemp("jingdezhen")
    synthesize(REGISTRY.pick("jingdezhen", None), CLAIMS, base / "data", seed=3)
    ref.eligible_variant(base / "data", base / "eligible")
    return {"plain": (base / "data", settled("jingdezhen", base / "data", base / "out")),
            "eligible": (base / "eligible", settled("jingdezhen", base / "eligible", base / "out-eligible"))}


def assert_equal(check) -> None:
    assert check.values > 0
    assert not check.mismatches, check.mismatches


@pytest.mark.parametrize("variant", ["plain", "overspending", "chunked"])
@pytest.mark.parametrize("text", ["numpy", "codes"])
def test_zibo_numpy_equals_engine(zibo, zibo_overspending, zibo_chunked, variant, text):
    data, (columns, ids, money) = {"plain": zibo, "overspending": zibo_overspending, "chunked": zibo_chunked}[variant]
    inp = ref.read_inputs(data, text)
    out = ref.zibo_numpy(inp, ref.dip_catalogue())
    check = ref.compare_with_engine("zibo numpy", out, inp.ids, columns, ids, money)
    assert_equal(check)
    assert check.not_covered == []  # every value the engine writes is checked
    assert set(out) == {"claim", "fund", "account", "institution"}
    if variant != "plain":  # overspend shared by the adjustment fund, pro rata where it is short
        assert (columns["account"]["overspend_share"] > 0).any()
        assert (columns["fund"]["overspend_share_ratio"] < 1).any()


def test_zibo_loop_equals_engine(zibo):
    data, (columns, ids, money) = zibo
    inp = ref.read_inputs(data)
    assert list(ids["claim"]) == list(inp.ids["claim"])
    loop = ref.zibo_loop(ref.zibo_claim_lists(inp), ref.dip_catalogue())
    check = ref.Check("zibo loop")
    for col in ("payment_method", "group_avg_cost", "group_annual_cases", "group_score", "group_kind",
                "cost_ratio", "case_type", "case_score", "score", "adjusted_score"):
        ref.compare_column(check, col, loop[col], columns["claim"][col], money=False)
    position = {v: k for k, v in enumerate(ids["account"].tolist())}
    scores = np.zeros(len(position))
    for account, score in loop["account_score"].items():
        scores[position[inp.ids["account"][account]]] = score
    ref.compare_column(check, "account.total_adjusted_score", scores, columns["account"]["total_adjusted_score"],
                       money=False)
    assert_equal(check)
    assert set(loop["case_type"]) >= {"low", "normal", "high", "none"}


def test_zibo_zen_equals_engine(zibo):
    pytest.importorskip("zen")
    data, (columns, ids, money) = zibo
    inp = ref.read_inputs(data)
    rows = np.arange(0, CLAIMS, 4)
    results = ref.ZenZibo().evaluate(ref.ZenZibo.contexts(ref.zibo_claim_lists(inp, rows)))
    check = ref.Check("zibo zen")
    for col, values in ref.ZenZibo.columns(results).items():
        ref.compare_column(check, col, values, columns["claim"][col][rows], money=False)
    assert_equal(check)


@pytest.mark.parametrize("variant", ["plain", "eligible"])
@pytest.mark.parametrize("text", ["numpy", "codes"])
def test_jingdezhen_numpy_equals_engine(jingdezhen, variant, text):
    data, (columns, ids, money) = jingdezhen[variant]
    inp = ref.read_inputs(data, text)
    out = ref.jingdezhen_numpy(inp)
    check = ref.compare_with_engine("jingdezhen numpy", out, inp.ids, columns, ids, money)
    assert_equal(check)
    assert check.not_covered == ["community.ineligibility_reason"]
    if variant == "eligible":  # every band of the year-end clearing is exercised, and the risk-fund cap
        counts = ref.band_counts(columns["community"])
        assert all(counts.values()), counts
        assert counts["risk_fund_cap_binds"] < counts["overspend_5_to_10pct"] + counts["overspend_above_10pct"]


def test_jingdezhen_loop_equals_engine(jingdezhen):
    data, (columns, ids, money) = jingdezhen["plain"]
    inp = ref.read_inputs(data)
    loop = ref.jingdezhen_loop(ref.jingdezhen_claim_lists(inp))
    check = ref.Check("jingdezhen loop")
    for col in ("applicable_standard", "fund_payable"):
        ref.compare_column(check, col, loop[col], columns["claim"][col], money=True)
    spending = np.zeros(inp.size("community"))
    for community, amount in loop["spending"].items():
        spending[community] = amount
    ref.compare_column(check, "actual_spending", spending + inp.cols["community"]["actual_out_of_county"],
                       columns["community"]["actual_spending"], money=True)
    assert_equal(check)


@pytest.mark.parametrize("backend", ["numpy", "polars"])
@pytest.mark.parametrize("writer", ["zibo_polars", "zibo_duckdb"])
def test_columnar_references_equal_settle(zibo, tmp_path, backend, writer):
    """The hand-written Polars query and DuckDB SQL of bench/columnar.py give settle's claim values,
    whichever backend settles."""
    pytest.importorskip("duckdb")
    columnar = importlib.import_module("bench.columnar")
    data = zibo[0]
    settle(REGISTRY.pick("zibo", folder_period(data, None)), data, tmp_path / "out", folder_period(data, None),
           backend=backend)
    getattr(columnar, writer)(data, tmp_path / "ref.parquet")
    assert columnar.compare(tmp_path / "ref.parquet", tmp_path / "out" / "claim.parquet") == []

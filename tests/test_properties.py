"""Properties against exact references (性质测试): cumulative bands and allocation checked
with fractions.Fraction, half-up rounding with decimal.Decimal, and formula text that reads
back as the same tree.

Example counts are kept small; set MEDPAY_HYPOTHESIS_EXAMPLES=2000 for a longer search.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dsl import ast
from engine.dsl.parser import parse_expression
from engine.run.builtins import cumulative
from engine.run.money import allocate, round_half_up

EXAMPLES = int(os.environ.get("MEDPAY_HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- cumulative bands 分段累计 -----------------------------------------------------------------

cents = st.integers(min_value=-10**9, max_value=10**10)  # amounts up to a hundred million yuan, in fen
rate_ten_thousandths = st.integers(min_value=0, max_value=10_000)


@st.composite
def band_tables(draw):
    gaps = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=0, max_size=5))  # in fen
    edges = list(np.cumsum(gaps)) if gaps else []
    rates = draw(st.lists(rate_ten_thousandths, min_size=len(edges) + 1, max_size=len(edges) + 1))
    return [Fraction(int(e), 100) for e in edges], [Fraction(r, 10_000) for r in rates]


def exact_cumulative(x: Fraction, edges: list[Fraction], rates: list[Fraction]) -> Fraction:
    total, low = Fraction(0), Fraction(0)
    for i, rate in enumerate(rates):
        high = edges[i] if i < len(edges) else None
        top = x if high is None else min(x, high)
        if top > low:
            total += (top - low) * rate
        if high is not None:
            low = high
    return total


@SETTINGS
@given(table=band_tables(), amounts=st.lists(cents, min_size=1, max_size=20))
def test_cumulative_bands_are_within_half_a_fen_of_exact(table, amounts):
    edges, rates = table
    xs = [Fraction(a, 100) for a in amounts]
    got = cumulative(np.array([float(x) for x in xs]), [float(e) for e in edges], [float(r) for r in rates])
    for x, value in zip(xs, np.atleast_1d(got).tolist(), strict=True):
        assert abs(Fraction(value) - exact_cumulative(x, edges, rates)) <= Fraction(5, 1000)


@SETTINGS
@given(table=band_tables(), amount=cents, base_fen=st.integers(min_value=1, max_value=10**10))
def test_cumulative_bands_with_edges_as_ratios_of_a_base(table, amount, base_fen):
    edges, rates = table
    ratios = [e / 10**7 for e in edges]  # edges as ratios, up to 100% of the base
    base = Fraction(base_fen, 100)
    got = cumulative(float(Fraction(amount, 100)), [float(r) for r in ratios], [float(r) for r in rates],
                     base=float(base))
    exact = exact_cumulative(Fraction(amount, 100), [r * base for r in ratios], rates)
    assert abs(Fraction(float(got)) - exact) <= Fraction(5, 1000)


# ---- allocation 按分分配 -----------------------------------------------------------------------


@st.composite
def allocations(draw):
    n_groups = draw(st.integers(min_value=1, max_value=4))
    totals_fen = draw(st.lists(st.integers(min_value=0, max_value=10**11), min_size=n_groups, max_size=n_groups))
    n = draw(st.integers(min_value=1, max_value=30))
    groups = draw(st.lists(st.integers(min_value=-1, max_value=n_groups - 1), min_size=n, max_size=n))
    weights = draw(st.lists(st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e7, allow_nan=False),
                                      st.integers(min_value=0, max_value=1000).map(float)),
                            min_size=n, max_size=n))
    return totals_fen, np.array(groups, dtype=np.int64), np.array(weights)


@SETTINGS
@given(case=allocations())
def test_allocation_adds_up_to_the_fen_and_stays_within_a_fen_of_exact(case):
    totals_fen, groups, weights = case
    totals = np.array([totals_fen[g] / 100 if g >= 0 else 0.0 for g in groups])
    parts = allocate(totals, weights, groups)
    assert allocate(totals, weights, groups).tolist() == parts.tolist()  # deterministic
    parts_fen = [round(p * 100) for p in parts.tolist()]
    assert all(abs(p * 100 - f) < 1e-3 for p, f in zip(parts.tolist(), parts_fen, strict=True))  # whole fen
    for g, total_fen in enumerate(totals_fen):
        rows = np.flatnonzero(groups == g)
        weight_sum = sum(Fraction(w) for w in weights[rows].tolist())
        if len(rows) == 0 or weight_sum == 0:
            assert all(parts_fen[i] == 0 for i in rows)
            continue
        assert sum(parts_fen[i] for i in rows) == total_fen
        for i in rows:
            exact_fen = total_fen * Fraction(weights[i]) / weight_sum
            assert abs(parts_fen[i] - exact_fen) < 1
    assert all(parts_fen[i] == 0 for i in np.flatnonzero(groups < 0))


# ---- rounding 舍入 ---------------------------------------------------------------------------


@SETTINGS
@given(units=st.integers(min_value=-10**15, max_value=10**15), decimals=st.integers(min_value=0, max_value=6),
       digits=st.integers(min_value=0, max_value=4))
def test_round_half_up_matches_decimal(units, decimals, digits):
    value = Decimal(units).scaleb(-decimals)
    if abs(value) > 10**9:  # money-sized: up to a thousand million yuan
        value = value % 10**9
    want = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    assert float(round_half_up(float(value), digits)) == float(want)


# exact halves of a fen (x.xx5) are where rounding goes wrong; draw many of them
fen_halves = st.builds(lambda fen, tail, sign: sign * (Decimal(fen).scaleb(-2) + Decimal(tail).scaleb(-6)),
                       st.integers(min_value=0, max_value=10**11),
                       st.one_of(st.just(5000), st.just(0), st.integers(min_value=0, max_value=9999)),
                       st.sampled_from([1, -1]))


@SETTINGS
@given(values=st.lists(st.one_of(fen_halves, st.integers(min_value=-10**13, max_value=10**13).map(
    lambda v: Decimal(v).scaleb(-5))), min_size=1, max_size=50))
def test_round_half_up_to_the_fen_on_arrays(values):
    decimals = values  # up to six decimals, up to a thousand million yuan
    got = round_half_up(np.array([float(d) for d in decimals])).tolist()
    assert got == [float(d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) for d in decimals]


# ---- formula text reads back as the same tree 公式文本可回读 ----------------------------------------

KEYWORDS = {"if", "then", "else", "and", "or", "not", "in", "where", "true", "false"}
names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
numbers = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
texts = st.text(alphabet="abc xyz_住院门诊'", max_size=8)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31))

leaves = st.one_of(
    st.builds(lambda v: ast.Literal(0, v, "number"), numbers),
    st.builds(lambda v: ast.Literal(0, v, "string"), texts),
    st.builds(lambda v: ast.Literal(0, v, "bool"), st.booleans()),
    st.builds(lambda v: ast.Literal(0, v, "date"), dates),
    st.builds(lambda parts: ast.Name(0, tuple(parts)), st.lists(names, min_size=1, max_size=3)),
)


def _negate(node: ast.Node) -> ast.Node:
    # the parser folds "-5" into the number -5, so a minus goes on anything but a number
    if isinstance(node, ast.Literal) and node.kind == "number":
        return ast.Literal(0, -node.value, "number")
    return ast.Unary(0, "-", node)


def _extend(children):
    binary_ops = st.sampled_from(["+", "-", "*", "/", "and", "or", "==", "!=", "<", "<=", ">", ">="])
    lists = st.builds(lambda items: ast.ListExpr(0, tuple(items)), st.lists(children, max_size=3))
    plain_calls = st.builds(
        lambda f, args, kws: ast.Call(0, f, tuple(args), tuple(kws)),
        names, st.lists(children, max_size=3), st.lists(st.tuples(names, children), max_size=2))
    filtered_calls = st.builds(lambda f, args, where: ast.Call(0, f, tuple(args), (), where),
                               names, st.lists(children, min_size=1, max_size=2), children)
    return st.one_of(
        st.builds(lambda op, a, b: ast.Binary(0, op, a, b), binary_ops, children, children),
        st.builds(lambda a: ast.Unary(0, "not", a), children),
        st.builds(_negate, children),
        st.builds(lambda c, a, b: ast.IfElse(0, c, a, b), children, children, children),
        st.builds(lambda v, items, neg: ast.InList(0, v, ast.ListExpr(0, tuple(items)), neg),
                  children, st.lists(children, max_size=3), st.booleans()),
        st.builds(lambda parts, key: ast.Index(0, ast.Name(0, tuple(parts)), key),
                  st.lists(names, min_size=1, max_size=2), children),
        lists, plain_calls, filtered_calls,
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


@SETTINGS
@given(tree=trees)
def test_formula_text_reads_back_as_the_same_tree(tree):
    text = ast.to_text(tree)
    assert parse_expression(text) == tree, text

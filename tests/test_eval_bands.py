"""Cumulative bands (分段累计) and threshold steps (阈值分档), at and around every edge."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from evalkit import by_id, make_policy, run

from engine.run.builtins import cumulative


def exact_bands(amount, edges, rates, base=1) -> Fraction:
    """Reference: each band's rate on the part of the amount inside it, in exact fractions."""
    x, base = Fraction(amount), Fraction(base)
    cuts = [Fraction(e) * base for e in edges] + [None]
    total, low = Fraction(0), Fraction(0)
    for cut, rate in zip(cuts, rates, strict=True):
        high = x if cut is None else min(x, cut)
        if high > low:
            total += (high - low) * Fraction(rate)
        if cut is not None:
            low = max(low, cut)
    return total


EDGES, RATES = ["1000", "2000"], ["0.8", "0.6", "0.1"]


@pytest.mark.parametrize("amount,expected", [
    ("-5", "0"), ("0", "0"), ("0.01", "0.008"),
    ("999.99", "799.992"), ("1000", "800"), ("1000.01", "800.006"),
    ("1999.99", "1399.994"), ("2000", "1400"), ("2000.01", "1400.001"),
    ("5000", "1700"),
])
def test_absolute_edges(amount, expected):
    got = cumulative(float(amount), [float(e) for e in EDGES], [float(r) for r in RATES])
    assert Fraction(expected) == exact_bands(amount, EDGES, RATES)  # the table above is right
    assert float(got) == pytest.approx(float(Fraction(expected)), abs=1e-9)


def test_vector_of_amounts_matches_reference():
    amounts = ["-1", "0", "999.99", "1000", "1000.01", "1999.99", "2000", "2000.01", "123456.78"]
    got = cumulative(np.array([float(a) for a in amounts]), [1000.0, 2000.0], [0.8, 0.6, 0.1])
    want = [float(exact_bands(a, EDGES, RATES)) for a in amounts]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("amount", ["99999.99", "100000", "100000.01", "199999.99", "200000", "200000.01",
                                    "0", "-100", "350000"])
def test_edges_as_ratios_of_a_base(amount):
    edges, rates, base = ["0.05", "0.10"], ["0.8", "0.6", "0"], "2000000"
    got = cumulative(float(amount), [0.05, 0.10], [0.8, 0.6, 0.0], base=float(base))
    assert float(got) == pytest.approx(float(exact_bands(amount, edges, rates, base)), abs=1e-9)


def test_a_base_per_row():
    """Each row's edges scale with its own base."""
    amounts, bases = np.array([150.0, 150.0, 150.0]), np.array([1000.0, 2000.0, 4000.0])
    got = cumulative(amounts, [0.05, 0.10], [0.8, 0.6, 0.0], base=bases)
    # cuts 50/100, 100/200, 200/400
    np.testing.assert_allclose(got, [50 * 0.8 + 50 * 0.6, 100 * 0.8 + 50 * 0.6, 150 * 0.8], atol=1e-9)


def test_one_band_only():
    assert float(cumulative(1234.5, [], [0.3])) == pytest.approx(370.35, abs=1e-9)


def test_bands_in_a_policy_parameter_inline_and_dated():
    """bands() with a band-table parameter (edges as ratios of base=), with edges written in
    place, and with a band table whose value changes on 2024-07-01."""
    policy = make_policy(
        {"claim": {
            "by_param": {"formula": "bands(total_cost, share, base=self_pay_items)", "unit": "yuan"},
            "inline": {"formula": "bands(total_cost, [1_000, 2_000], [80%, 60%, 10%])", "unit": "yuan"},
            "dated": {"formula": "bands(total_cost, dated_share)", "unit": "yuan"},
        }},
        parameters={
            "share": {"edges": ["5%", "10%"], "rates": ["80%", "60%", "0%"]},
            "dated_share": {"values": [
                {"from": "2024-01-01", "value": {"edges": [1000], "rates": ["50%", "10%"]}},
                {"from": "2024-07-01", "value": {"edges": [500], "rates": ["100%", "20%"]}}]},
        })
    result = run(policy, {"claim": [
        {"id": "a", "total_cost": 1000, "self_pay_items": 20000, "discharge_date": "2024-06-30"},
        {"id": "b", "total_cost": 2000.01, "self_pay_items": 20000, "discharge_date": "2024-07-01"},
        {"id": "c", "total_cost": 1500, "self_pay_items": 40000, "discharge_date": "2024-12-31"},
    ]})
    # by_param: cuts at 5% / 10% of self_pay_items
    # b: 1000 x 80% + 1000 x 60% + 0.01 x 0; c: cuts 2000 / 4000
    assert by_id(result, "claim", "by_param") == {"a": 800.0, "b": 1400.0, "c": 1200.0}
    assert by_id(result, "claim", "inline") == {"a": 800.0, "b": 1400.0, "c": 1100.0}
    # a (June): 1000 x 50%; b, c (from July): 500 x 100% + the rest x 20%
    assert by_id(result, "claim", "dated") == {"a": 500.0, "b": 800.0, "c": 700.0}


@pytest.mark.parametrize("closed,cost,band", [
    ("left", 999.99, "low"), ("left", 1000, "normal"), ("left", 1000.01, "normal"),
    ("left", 49999.99, "normal"), ("left", 50000, "high"), ("left", 50000.01, "high"),
    ("right", 999.99, "low"), ("right", 1000, "low"), ("right", 1000.01, "normal"),
    ("right", 49999.99, "normal"), ("right", 50000, "normal"), ("right", 50000.01, "high"),
    ("left", 0, "low"), ("right", 0, "low"),
])
def test_step_at_the_edges(closed, cost, band):
    policy = make_policy({"claim": {
        "band": {"type": "string",
                 "formula": f'step(total_cost, [1_000, 50_000], ["low", "normal", "high"], closed="{closed}")'},
        "rate": f"step(total_cost, [1_000, 50_000], [0%, 5%, 10%], closed=\"{closed}\")",
    }})
    result = run(policy, {"claim": [{"id": "x", "total_cost": cost}]})
    assert by_id(result, "claim", "band") == {"x": band}
    assert by_id(result, "claim", "rate") == {"x": {"low": 0.0, "normal": 0.05, "high": 0.1}[band]}


def test_step_default_is_left_closed_and_works_on_many_rows():
    policy = make_policy({"claim": {"band": "step(total_cost, [10, 20], [1, 2, 3])"}})
    costs = [9.99, 10, 10.01, 19.99, 20, 20.01]
    result = run(policy, {"claim": [{"id": str(i), "total_cost": c} for i, c in enumerate(costs)]})
    assert [r["band"] for r in result["entities"]["claim"]] == [1.0, 2.0, 2.0, 2.0, 3.0, 3.0]

"""Allocation of a total over rows to the fen (按分分配): exact sums, ties, groups, zero weights."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from evalkit import by_id, make_policy, run, warning_codes

from engine.run.money import allocate


def fen(values) -> list[int]:
    return [int(round(v * 100)) for v in np.asarray(values).tolist()]


def split(total, weights, groups=None):
    weights = np.asarray(weights, dtype=float)
    groups = np.zeros(len(weights), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    totals = np.asarray(total, dtype=float) * np.ones(len(weights))
    return allocate(totals, weights, groups)


@pytest.mark.parametrize("total,weights,expected", [
    (100, [1, 1, 1], [33.34, 33.33, 33.33]),           # 1 fen left over: to the first of the tie
    (0.02, [1, 1, 1], [0.01, 0.01, 0.0]),
    (0.05, [1, 1, 1, 1, 1, 1, 1], [0.01] * 5 + [0.0] * 2),
    (10, [1, 2], [3.33, 6.67]),                          # remainders .33 / .67: the larger wins
    (1, [1, 1, 1, 1, 1, 1], [0.17, 0.17, 0.17, 0.17, 0.16, 0.16]),
    (100, [0, 1, 0], [0.0, 100.0, 0.0]),                 # zero weight, zero share
    (100.005, [3], [100.01]),                            # a single row takes it all, to the fen
    (-10, [1, 2], [-3.33, -6.67]),
    (9500, [300, 50, 100], [6333.33, 1055.56, 2111.11]),
])
def test_split(total, weights, expected):
    parts = split(total, weights)
    assert parts.tolist() == expected
    # the parts add up to the total rounded half-up to the fen, exactly
    total_fen = int((Decimal(str(total)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert sum(fen(parts)) == total_fen


def test_ties_go_to_the_earlier_row_whatever_the_order():
    """Equal remainders: the leftover fen goes to the row that comes first."""
    assert split(0.02, [5, 5, 5]).tolist() == [0.01, 0.01, 0.0]
    # a larger weight at the end does not change who wins among the tied ones
    parts = split(1.00, [1, 1, 1, 3])
    assert parts.tolist() == [0.17, 0.17, 0.16, 0.5]
    # deterministic: the same input always gives the same split
    weights = np.random.default_rng(7).integers(1, 5, size=50).astype(float)
    first = split(1234.57, weights)
    for _ in range(3):
        assert split(1234.57, weights).tolist() == first.tolist()


def test_several_groups_and_rows_without_a_group():
    totals = np.array([10.0, 10.0, 5.0, 5.0, 99.0, 7.0])
    weights = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0])
    groups = np.array([0, 0, 2, 2, -1, 0])
    parts = allocate(totals, weights, groups)
    assert parts.tolist() == [2.5, 5.0, 2.5, 2.5, 0.0, 2.5]
    assert sum(fen(parts[groups == 0])) == 1000 and sum(fen(parts[groups == 2])) == 500


def test_all_zero_weights_and_no_rows():
    assert split(100, [0, 0, 0]).tolist() == [0.0, 0.0, 0.0]
    assert allocate(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)).tolist() == []


def two_fund_policy():
    return make_policy({
        "claim": {"weight": "total_cost / 1000"},
        "fund": {"budget": {"formula": "revenue * 0.9", "unit": "yuan"}},
        "account": {
            "weight": "sum(claim.weight)",
            "payment": {"formula": "allocate(fund.budget, weight)", "unit": "yuan"},
        },
    })


def test_allocation_over_accounts_per_fund():
    """Each fund's budget is split over its own accounts only; each adds up to the fen."""
    result = run(two_fund_policy(), {
        "fund": [{"id": "E", "revenue": 1000}, {"id": "R", "revenue": 111.11}],
        "institution": [{"id": "H1"}, {"id": "H2"}, {"id": "H3"}],
        "claim": [
            {"id": "1", "institution": "H1", "fund": "E", "total_cost": 1000},
            {"id": "2", "institution": "H2", "fund": "E", "total_cost": 1000},
            {"id": "3", "institution": "H3", "fund": "E", "total_cost": 1000},
            {"id": "4", "institution": "H1", "fund": "R", "total_cost": 3000},
            {"id": "5", "institution": "H2", "fund": "R", "total_cost": 1000},
        ],
    })
    pay = by_id(result, "account", "payment")
    # E: 900 over three equal weights → 300 each; R: 99.999 → 100.00 (to the fen) over 3:1
    assert pay == {"H1|E": 300.0, "H2|E": 300.0, "H3|E": 300.0, "H1|R": 75.0, "H2|R": 25.0}
    assert result["warnings"] == []


def test_a_group_with_only_zero_weights_is_reported():
    result = run(two_fund_policy(), {
        "fund": [{"id": "E", "revenue": 1000}],
        "institution": [{"id": "H1"}, {"id": "H2"}],
        "claim": [{"id": "1", "institution": "H1", "fund": "E", "total_cost": 0},
                  {"id": "2", "institution": "H2", "fund": "E", "total_cost": 0}],
    })
    assert by_id(result, "account", "payment") == {"H1|E": 0.0, "H2|E": 0.0}
    assert ("allocation_without_weight", "variables.account.payment") in warning_codes(result)


def test_allocation_by_a_parameter_total_without_parent():
    """allocate(PARAMETER, weight): one group of all rows."""
    policy = make_policy({"institution": {"share": {"formula": "allocate(pool, level)", "unit": "yuan"}}},
                         parameters={"pool": 1000})
    result = run(policy, {"institution": [{"id": "a", "level": 1}, {"id": "b", "level": 1}, {"id": "c", "level": 1}]})
    assert by_id(result, "institution", "share") == {"a": 333.34, "b": 333.33, "c": 333.33}

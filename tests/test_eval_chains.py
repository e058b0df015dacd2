"""Referral chains (转诊链): order of claims on a chain, chain functions, the one-stay
deductible computed along chains, and supplied values inside a chain."""

from __future__ import annotations

import datetime as dt

import numpy as np
from evalkit import by_id, make_policy, run

CHAIN_FUNCTIONS = {
    "position": "chain_position()",
    "highest": "chain_max(total_cost)",
    "highest_before": "chain_max_before(total_cost)",
    "so_far": "chain_sum(total_cost)",
    "before": "chain_sum_before(total_cost)",
}


def test_claims_are_ordered_by_admit_then_discharge_then_input_order():
    result = run(make_policy({"claim": CHAIN_FUNCTIONS}), {"claim": [
        {"id": "late", "episode": "E", "total_cost": 1, "admit_date": "2024-05-01", "discharge_date": "2024-05-02"},
        {"id": "tie_b", "episode": "E", "total_cost": 2, "admit_date": "2024-03-01", "discharge_date": "2024-03-09"},
        {"id": "early", "episode": "E", "total_cost": 4, "admit_date": "2024-01-10", "discharge_date": "2024-02-01"},
        {"id": "tie_a", "episode": "E", "total_cost": 8, "admit_date": "2024-03-01", "discharge_date": "2024-03-05"},
        {"id": "same_1", "episode": "E", "total_cost": 16, "admit_date": "2024-04-01", "discharge_date": "2024-04-02"},
        {"id": "same_2", "episode": "E", "total_cost": 32, "admit_date": "2024-04-01", "discharge_date": "2024-04-02"},
        {"id": "undated", "episode": "E", "total_cost": 64},
    ]})
    order = ["early", "tie_a", "tie_b", "same_1", "same_2", "late", "undated"]
    assert by_id(result, "claim", "position") == {cid: float(i + 1) for i, cid in enumerate(order)}
    cost = {"late": 1, "tie_b": 2, "early": 4, "tie_a": 8, "same_1": 16, "same_2": 32, "undated": 64}
    running, highest, before, highest_before = 0.0, 0.0, {}, {}
    so_far, top = {}, {}
    for cid in order:
        before[cid], highest_before[cid] = running, highest
        running += cost[cid]
        highest = max(highest, cost[cid])
        so_far[cid], top[cid] = running, highest
    assert by_id(result, "claim", "before") == before
    assert by_id(result, "claim", "so_far") == so_far
    assert by_id(result, "claim", "highest") == top
    assert by_id(result, "claim", "highest_before") == highest_before


def test_claims_without_an_episode_are_chains_of_one():
    result = run(make_policy({"claim": CHAIN_FUNCTIONS}), {"claim": [
        {"id": "x", "total_cost": 10, "admit_date": "2024-01-01"},
        {"id": "y", "total_cost": 20, "admit_date": "2024-01-01"},
        {"id": "z", "episode": "E", "total_cost": 30, "admit_date": "2024-01-02"},
    ]})
    assert by_id(result, "claim", "position") == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert by_id(result, "claim", "before") == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert by_id(result, "claim", "highest_before") == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert by_id(result, "claim", "highest") == {"x": 10.0, "y": 20.0, "z": 30.0}


DEDUCTIBLE = {
    "claim": {
        "standard": {"formula": "deductible_by_level[institution.level]", "unit": "yuan"},
        "deductible_due": {"unit": "yuan", "formula": (
            "min(total_cost - self_pay_items, max(0, chain_max(standard) - chain_sum_before(deductible_due)))")},
        "patient_paid": {"unit": "yuan", "formula": "deductible_due + (total_cost - deductible_due) * 10%"},
    }
}
LEVELS = {"1": 300, "2": 600, "3": 900}


def reference_deductibles(chains: dict[str, list[dict]]) -> dict[str, float]:
    """Plain Python: a chain is one stay; each claim pays the highest standard so far on the
    chain less what the chain has already paid, but never more than its covered cost."""
    out = {}
    for claims in chains.values():
        highest = paid = 0.0
        for c in sorted(claims, key=lambda c: (c["admit_date"], c["discharge_date"], c["n"])):
            highest = max(highest, LEVELS[c["level"]])
            due = min(c["total_cost"] - c["self_pay_items"], max(0.0, highest - paid))
            out[c["id"]] = due
            paid += due
    return out


def test_one_stay_deductible_along_chains_of_one_to_four_claims():
    rng = np.random.default_rng(20240101)
    institutions = [{"id": f"H{lv}", "level": int(lv)} for lv in LEVELS]
    chains: dict[str, list[dict]] = {}
    rows = []
    for k in range(300):
        chain = f"E{k}" if k % 5 else None  # every fifth claim group has no episode: chains of one
        length = int(rng.integers(1, 5)) if chain else 1
        for _ in range(length):
            admit = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 40)))
            claim = {"id": f"c{len(rows)}", "n": len(rows), "level": str(rng.integers(1, 4)),
                     "total_cost": float(rng.choice([150, 450, 800, 2000, 25000])),
                     "self_pay_items": float(rng.choice([0, 0, 100])),
                     "admit_date": admit.isoformat(),
                     "discharge_date": (admit + dt.timedelta(days=int(rng.integers(0, 3)))).isoformat()}
            chains.setdefault(chain or claim["id"], []).append(claim)
            rows.append((claim, chain))
    order = rng.permutation(len(rows))  # given in no particular order
    claims = []
    for i in order:
        claim, chain = rows[i]
        claims.append({"id": claim["id"], "institution": f"H{claim['level']}", "total_cost": claim["total_cost"],
                       "self_pay_items": claim["self_pay_items"], "admit_date": claim["admit_date"],
                       "discharge_date": claim["discharge_date"], **({"episode": chain} if chain else {})})
        claim["n"] = len(claims)  # input order breaks ties
    result = run(make_policy(DEDUCTIBLE, parameters={"deductible_by_level": LEVELS}),
                 {"institution": institutions, "claim": claims})
    want = reference_deductibles(chains)
    got = by_id(result, "claim", "deductible_due")
    assert got == want
    assert {len(c) for c in chains.values()} == {1, 2, 3, 4}
    paid = by_id(result, "claim", "patient_paid")
    for c in claims:
        assert paid[c["id"]] == round(want[c["id"]] + (c["total_cost"] - want[c["id"]]) * 0.1, 2)


def test_a_supplied_value_in_the_middle_of_a_chain_is_used_downstream():
    """The second claim's deductible is given in the situation: it stands on that row only,
    the third claim counts it as already paid, and that row's patient share uses it."""
    data = {
        "institution": [{"id": "H1", "level": 1}, {"id": "H3", "level": 3}],
        "claim": [
            {"id": "first", "institution": "H1", "episode": "E", "total_cost": 1000, "admit_date": "2024-02-01"},
            {"id": "second", "institution": "H3", "episode": "E", "total_cost": 1000, "admit_date": "2024-02-05",
             "deductible_due": 50},
            {"id": "third", "institution": "H3", "episode": "E", "total_cost": 1000, "admit_date": "2024-02-09"},
            {"id": "other", "institution": "H3", "episode": "F", "total_cost": 1000, "admit_date": "2024-02-09"},
        ],
    }
    result = run(make_policy(DEDUCTIBLE, parameters={"deductible_by_level": LEVELS}), data)
    # computed: first 300; second (given) 50; third 900 - (300 + 50) = 550; other alone 900
    assert by_id(result, "claim", "deductible_due") == {"first": 300.0, "second": 50.0, "third": 550.0, "other": 900.0}
    assert by_id(result, "claim", "patient_paid") == {"first": 370.0, "second": 145.0, "third": 595.0,
                                                     "other": 910.0}
    # without the supplied value the second claim would pay 600 and the third nothing
    del data["claim"][1]["deductible_due"]
    result = run(make_policy(DEDUCTIBLE, parameters={"deductible_by_level": LEVELS}), data)
    assert by_id(result, "claim", "deductible_due") == {"first": 300.0, "second": 600.0, "third": 0.0, "other": 900.0}


WITHIN_COMMUNITY = """
policy:
  id: chain_within
  name: {zh: 测试市, en: Testville}
  notice: 测〔2024〕1号
  issuer: 测试市医疗保障局
  effective: {from: 2024-01-01}
chains:
  claim:
    within: [institution.community]
variables:
  claim:
    earlier:
      label: {zh: 链上此前费用, en: earlier cost on the chain}
      unit: yuan
      formula: chain_sum_before(total_cost)
      source: 一
"""


def test_a_chain_stops_at_the_community_boundary():
    """Episode E: A (C1) 100, B (C2) 200, A (C1) 400 in date order. Within C1 the chain is
    100 → 400 (400 has 100 before it); B starts its own chain in C2 (nothing before it)."""
    from engine.compile.build import load_policy_text
    from engine.run.evaluate import evaluate
    policy = load_policy_text(WITHIN_COMMUNITY, "chain_within.yaml")
    result = evaluate(policy, {"period": "2024", "entities": {
        "community": [{"id": "C1"}, {"id": "C2"}],
        "institution": [{"id": "A", "community": "C1"}, {"id": "B", "community": "C2"}],
        "claim": [{"id": "c1", "institution": "A", "episode": "E", "total_cost": 100,
                   "admit_date": "2024-01-01", "discharge_date": "2024-01-02"},
                  {"id": "c2", "institution": "B", "episode": "E", "total_cost": 200,
                   "admit_date": "2024-01-03", "discharge_date": "2024-01-04"},
                  {"id": "c3", "institution": "A", "episode": "E", "total_cost": 400,
                   "admit_date": "2024-01-05", "discharge_date": "2024-01-06"}]}})
    earlier = {r["id"]: r["earlier"] for r in result["entities"]["claim"]}
    assert earlier == {"c1": 0.0, "c2": 0.0, "c3": 100.0}

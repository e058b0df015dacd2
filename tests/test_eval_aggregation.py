"""Aggregations of child rows onto parents (汇总): every function, filters, empty groups,
children without a parent, several levels up."""

from __future__ import annotations

from statistics import mean

from evalkit import by_id, make_policy, run

CLAIMS = [
    # id, institution, total_cost, out_of_area, setting
    ("a", "H1", 100.0, False, "inpatient"),
    ("b", "H1", 250.0, True, "outpatient"),
    ("c", "H1", 40.0, False, "inpatient"),
    ("d", "H2", 900.0, True, "inpatient"),
    ("e", "H2", 10.0, True, "outpatient"),
    ("f", None, 7777.0, True, "inpatient"),  # no institution: belongs to no group
]
INSTITUTIONS = [("H1", "C1"), ("H2", "C1"), ("H3", "C1"), ("H4", None)]  # H3 and H4 have no claims

FORMULAS = {
    "total": "sum(claim.total_cost)",
    "inpatient_total": 'sum(claim.total_cost where claim.setting == "inpatient")',
    "claims": "count(claim)",
    "far_claims": "count(claim where claim.out_of_area)",
    "mean_cost": "mean(claim.total_cost)",
    "mean_inpatient": 'mean(claim.total_cost where claim.setting == "inpatient")',
    "smallest": "min(claim.total_cost)",
    "largest_near": "max(claim.total_cost where not claim.out_of_area)",
    "any_far": {"type": "bool", "formula": "any(claim.out_of_area)"},
    "all_far": {"type": "bool", "formula": "all(claim.out_of_area)"},
    "all_far_inpatient": {"type": "bool", "formula": 'all(claim.out_of_area where claim.setting == "inpatient")'},
    "expensive": "count(claim where claim.total_cost > 3 * 50)",
}


def reference(inst: str) -> dict:
    """Plain Python: empty groups give 0 (sum, count, mean, min, max), false (any), true (all)."""
    rows = [c for c in CLAIMS if c[1] == inst]
    cost = [c[2] for c in rows]
    inpatient = [c for c in rows if c[4] == "inpatient"]
    near = [c[2] for c in rows if not c[3]]
    return {
        "total": sum(cost), "inpatient_total": sum(c[2] for c in inpatient), "claims": len(rows),
        "far_claims": sum(1 for c in rows if c[3]), "mean_cost": mean(cost) if cost else 0.0,
        "mean_inpatient": mean([c[2] for c in inpatient]) if inpatient else 0.0,
        "smallest": min(cost) if cost else 0.0, "largest_near": max(near) if near else 0.0,
        "any_far": any(c[3] for c in rows), "all_far": all(c[3] for c in rows),
        "all_far_inpatient": all(c[3] for c in inpatient),
        "expensive": sum(1 for c in rows if c[2] > 150),
    }


def situation():
    claims = []
    for cid, inst, cost, far, setting in CLAIMS:
        row = {"id": cid, "total_cost": cost, "out_of_area": far, "setting": setting}
        if inst:
            row["institution"] = inst
        claims.append(row)
    return {
        "community": [{"id": "C1"}],
        "institution": [{"id": i, **({"community": c} if c else {})} for i, c in INSTITUTIONS],
        "claim": claims,
    }


def test_every_aggregation_against_plain_python():
    result = run(make_policy({"institution": FORMULAS}), situation())
    for name in FORMULAS:
        got = by_id(result, "institution", name)
        want = {inst: reference(inst)[name] for inst, _ in INSTITUTIONS}
        assert got == want, name
    # spot checks written out: H1 = a, b, c
    assert by_id(result, "institution", "mean_cost")["H1"] == 130.0
    assert by_id(result, "institution", "largest_near")["H1"] == 100.0
    assert by_id(result, "institution", "all_far")["H3"] is True  # all() of nothing
    assert by_id(result, "institution", "any_far")["H3"] is False


def test_aggregation_two_levels_up_and_children_without_parent():
    """community ← institution ← claim: the claim without an institution and the institution
    without a community are counted nowhere."""
    policy = make_policy({
        "community": {"total": "sum(claim.total_cost)", "claims": "count(claim)",
                      "institutions": "count(institution)"},
        "claim": {"doubled": "total_cost * 2"},
    })
    result = run(policy, situation())
    assert by_id(result, "community", "total") == {"C1": 100 + 250 + 40 + 900 + 10}
    assert by_id(result, "community", "claims") == {"C1": 5.0}
    assert by_id(result, "community", "institutions") == {"C1": 3.0}
    # the orphan claim is still computed on its own row
    assert by_id(result, "claim", "doubled")["f"] == 15554.0


def test_aggregation_of_a_formula_and_of_a_parent_value():
    """sum() of an expression over children, reading the parent's own field inside."""
    policy = make_policy({"institution": {
        "over_level": "sum(claim.total_cost * institution.level where claim.total_cost > 50)",
    }})
    data = situation()
    data["institution"][0]["level"] = 2
    data["institution"][1]["level"] = 3
    data["institution"][2]["level"] = data["institution"][3]["level"] = 1  # no claim above 50: sum 0
    result = run(policy, data)
    assert by_id(result, "institution", "over_level") == {"H1": (100 + 250) * 2.0, "H2": 900 * 3.0,
                                                          "H3": 0.0, "H4": 0.0}


def test_aggregation_onto_derived_accounts_and_episodes():
    policy = make_policy({
        "account": {"cost": "sum(claim.total_cost)"},
        "episode": {"stays": "count(claim)", "first_admit_cost": "max(claim.total_cost)"},
    })
    result = run(policy, {
        "fund": [{"id": "F"}, {"id": "G"}],
        "institution": [{"id": "H1"}, {"id": "H2"}],
        "claim": [
            {"id": "1", "institution": "H1", "fund": "F", "episode": "E", "total_cost": 5},
            {"id": "2", "institution": "H2", "fund": "F", "episode": "E", "total_cost": 7},
            {"id": "3", "institution": "H1", "fund": "G", "total_cost": 11},
            {"id": "4", "institution": "H1", "fund": "F", "total_cost": 13},
        ],
    })
    # accounts in order of first appearance; claim 3 has no episode
    assert by_id(result, "account", "cost") == {"H1|F": 18.0, "H2|F": 7.0, "H1|G": 11.0}
    assert by_id(result, "episode", "stays") == {"E": 2.0}
    assert by_id(result, "episode", "first_admit_cost") == {"E": 7.0}

"""A city-year of 100,000 claims through the template policy in one evaluate() call, checked
against an independent numpy / plain-Python computation (十万条结算记录)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.compile.build import load_policy_file
from engine.run.evaluate import evaluate

TEMPLATE = Path(__file__).resolve().parents[1] / "policies" / "_template.yaml"
N_CLAIMS, N_INSTITUTIONS, N_COMMUNITIES = 100_000, 200, 10
SETTINGS = np.array(["inpatient", "outpatient", "day_surgery", "chronic_outpatient"])
GROUPS = np.array(["A01", "B02", "C03", "X99"])  # X99 is not in the table: weight 0
WEIGHT = {"A01": 1.2, "B02": 0.8, "C03": 2.5, "X99": 0.0}
DEDUCTIBLE = np.array([0.0, 300.0, 600.0, 900.0])  # by level 1..3
COINSURANCE = np.array([0.0, 0.10, 0.15, 0.20])


def make_city(seed: int = 2024):
    rng = np.random.default_rng(seed)
    level = rng.integers(1, 4, N_INSTITUTIONS)
    community = rng.integers(0, N_COMMUNITIES, N_INSTITUTIONS)
    sanctioned = rng.random(N_INSTITUTIONS) < 0.05
    inst = rng.integers(0, N_INSTITUTIONS, N_CLAIMS)
    fund = rng.integers(0, 2, N_CLAIMS)
    setting = SETTINGS[rng.choice(4, N_CLAIMS, p=[0.55, 0.25, 0.1, 0.1])]
    group = GROUPS[rng.choice(4, N_CLAIMS, p=[0.4, 0.3, 0.2, 0.1])]
    total = np.round(rng.lognormal(8.5, 1.0, N_CLAIMS), 2)
    self_pay = np.round(total * rng.choice([0.0, 0.05, 0.1], N_CLAIMS), 2)
    out_of_area = rng.random(N_CLAIMS) < 0.05
    referred = out_of_area & (rng.random(N_CLAIMS) < 0.5)
    admit = np.datetime64("2024-01-01") + rng.integers(0, 360, N_CLAIMS)
    discharge = admit + rng.integers(0, 6, N_CLAIMS)
    # about 5% of claims on referral chains of 2 or 3 stays
    episode = np.full(N_CLAIMS, "", dtype=object)
    chained = rng.choice(N_CLAIMS, N_CLAIMS // 20, replace=False)
    start = 0
    while start < len(chained):
        size = int(rng.integers(2, 4))
        episode[chained[start:start + size]] = f"E{start}"
        start += size
    return dict(level=level, community=community, sanctioned=sanctioned, inst=inst, fund=fund, setting=setting,
                group=group, total=total, self_pay=self_pay, out_of_area=out_of_area, referred=referred,
                admit=admit, discharge=discharge, episode=episode, revenue=np.array([3.0e8, 1.5e8]),
                package=rng.integers(5, 50, N_COMMUNITIES) * 1e6, spending=rng.integers(5, 50, N_COMMUNITIES) * 1e6)


def situation(c) -> dict:
    admit, discharge = c["admit"].astype(str), c["discharge"].astype(str)
    claims = []
    for i in range(N_CLAIMS):
        row = {"id": f"c{i}", "institution": f"H{c['inst'][i]}", "fund": f"F{c['fund'][i]}",
               "setting": str(c["setting"][i]), "drg_group": str(c["group"][i]), "total_cost": float(c["total"][i]),
               "self_pay_items": float(c["self_pay"][i]), "out_of_area": bool(c["out_of_area"][i]),
               "referral_approved": bool(c["referred"][i]), "admit_date": admit[i], "discharge_date": discharge[i],
               "area": "3708", "diagnosis": "K35.8"}  # codes the template's code rules read (not compared here)
        if c["episode"][i]:
            row["episode"] = c["episode"][i]
        claims.append(row)
    return {"period": "2024", "entities": {
        "fund": [{"id": f"F{f}", "revenue": float(c["revenue"][f])} for f in range(2)],
        "community": [{"id": f"C{k}", "package_total": float(c["package"][k]), "actual_spending": float(c["spending"][k])}
                      for k in range(N_COMMUNITIES)],
        "institution": [{"id": f"H{h}", "level": int(c["level"][h]), "community": f"C{c['community'][h]}",
                         "status": "sanctioned" if c["sanctioned"][h] else "normal"} for h in range(N_INSTITUTIONS)],
        "claim": claims,
    }}


def reference(c) -> dict:
    """The template's rules computed again, without the engine."""
    level = c["level"][c["inst"]]
    standard = DEDUCTIBLE[level]
    covered = c["total"] - c["self_pay"]
    day = c["setting"] == "day_surgery"
    due = np.where(day, 0.0, np.minimum(covered, standard))  # a claim alone on its chain
    for ep in set(c["episode"][c["episode"] != ""].tolist()):  # chains: highest standard so far, less paid
        rows = np.flatnonzero(c["episode"] == ep)
        rows = sorted(rows.tolist(), key=lambda r: (c["admit"][r], c["discharge"][r], r))
        highest = paid = 0.0
        for r in rows:
            highest = max(highest, standard[r])
            due[r] = 0.0 if day[r] else min(covered[r], max(0.0, highest - paid))
            paid += due[r]
    penalty = np.where(c["discharge"] < np.datetime64("2024-07-01"), 0.10, 0.15)
    coins = COINSURANCE[level] + np.where(c["out_of_area"] & ~c["referred"], penalty, 0.0)
    patient = c["self_pay"] + due + (covered - due) * coins
    drg = np.isin(c["setting"], ["inpatient", "day_surgery"]) & ~c["out_of_area"]
    points = np.where(drg, np.array([WEIGHT[g] for g in c["group"].tolist()]) * 100, 0.0)
    budget = np.round(c["revenue"] * 0.95, 2)
    fund_points = np.bincount(c["fund"], weights=points, minlength=2)
    fund_drg_paid = np.bincount(c["fund"], weights=np.where(drg, patient, 0.0), minlength=2)
    return dict(due=due, patient=patient, points=points, budget=budget, fund_points=fund_points,
                point_value=(budget + fund_drg_paid) / fund_points,
                claims_per_inst=np.bincount(c["inst"], minlength=N_INSTITUTIONS),
                cost_per_inst=np.bincount(c["inst"], weights=c["total"], minlength=N_INSTITUTIONS))


@pytest.fixture(scope="module")
def city():
    c = make_city()
    return c, evaluate(load_policy_file(TEMPLATE), situation(c)), reference(c)


def test_claims_match_the_reference(city):
    c, result, ref = city
    claims = result["entities"]["claim"]
    assert len(claims) == N_CLAIMS and claims[12345]["id"] == "c12345"
    due = np.array([r["deductible_due"] for r in claims])
    np.testing.assert_allclose(due, ref["due"], rtol=0, atol=0.005)
    patient = np.array([r["patient_paid"] for r in claims])
    np.testing.assert_allclose(patient, ref["patient"], rtol=0, atol=0.005 + 1e-9)
    np.testing.assert_allclose([r["points"] for r in claims], ref["points"], rtol=1e-12)
    assert sum(1 for e in c["episode"] if e) == N_CLAIMS // 20


def test_funds_points_and_point_values(city):
    c, result, ref = city
    funds = {r["id"]: r for r in result["entities"]["fund"]}
    for f in range(2):
        assert funds[f"F{f}"]["points_budget"] == ref["budget"][f]
        assert funds[f"F{f}"]["total_points"] == pytest.approx(ref["fund_points"][f], rel=1e-12)
        assert funds[f"F{f}"]["point_value"] == pytest.approx(ref["point_value"][f], rel=1e-9)


def test_each_funds_budget_is_allocated_to_the_fen(city):
    c, result, ref = city
    per_fund = {"F0": 0, "F1": 0}
    accounts = result["entities"]["account"]
    for row in accounts:
        per_fund[row["id"].split("|")[1]] += round(row["points_payment"] * 100)
    assert per_fund == {"F0": round(ref["budget"][0] * 100), "F1": round(ref["budget"][1] * 100)}
    assert len(accounts) == len(set(zip(c["inst"].tolist(), c["fund"].tolist(), strict=True)))


def test_institutions_and_communities(city):
    c, result, ref = city
    inst = {r["id"]: r for r in result["entities"]["institution"]}
    for h in range(N_INSTITUTIONS):
        row = inst[f"H{h}"]
        assert row["claim_count"] == ref["claims_per_inst"][h]
        assert row["average_cost"] == pytest.approx(ref["cost_per_inst"][h] / ref["claims_per_inst"][h], abs=0.005)
        assert row["largest_claim"] == c["total"][c["inst"] == h].max()
    community = {r["id"]: r for r in result["entities"]["community"]}
    for k in range(N_COMMUNITIES):
        over = max(0.0, c["spending"][k] - c["package"][k])
        assert community[f"C{k}"]["overspend"] == over
        assert community[f"C{k}"]["over_budget"] == bool(c["spending"][k] > c["package"][k])

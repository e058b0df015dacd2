"""Cost of chain functions on long referral chains (长转诊链的计算量): each earlier claim's
argument is evaluated once, whatever the chain length; results match plain Python; a run
past its time limit stops inside the chain loops. Long chains run when MEDPAY_FUZZ_EXAMPLES > 1."""

from __future__ import annotations

import datetime as dt
import os
import traceback
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from evalkit import by_id, make_policy, run, template_folder
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.errors import LimitExceeded
from engine.run import builtins
from engine.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
BIG = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1")) > 1
LEVELS = {"1": 300, "2": 600, "3": 900}
# the chain argument divides by one, so that counting the rows `divide` sees counts the rows
# on which the argument was evaluated
RECURRENT = {"claim": {"deductible_due": {"unit": "yuan", "formula": (
    "min(total_cost, max(0, chain_max(deductible_by_level[institution.level])"
    " - chain_sum_before(deductible_due / 1)))")}}}


def one_chain(n: int, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """n claims on one episode, given shuffled; levels rise now and then, costs vary."""
    rng = np.random.default_rng(seed)
    claims = [{"id": f"c{i}", "institution": f"H{1 + min(2, i * 3 // n)}", "episode": "E",
               "total_cost": float(rng.choice([100, 250, 400, 700, 5000])),
               "admit_date": f"2024-{1 + i * 12 // n:02d}-01", "n": i} for i in range(n)]
    shuffled = [claims[i] for i in rng.permutation(n)]
    for k, c in enumerate(shuffled):
        c["n"] = (c["admit_date"], k)  # same admission date: input order breaks the tie
    institutions = [{"id": f"H{lv}", "level": int(lv)} for lv in LEVELS]
    return institutions, shuffled


def reference(claims: list[dict]) -> dict[str, float]:
    """Plain Python with exact fractions: each claim owes the highest standard so far less
    what the chain already paid, capped by its cost."""
    highest, paid, out = Fraction(0), Fraction(0), {}
    for c in sorted(claims, key=lambda c: c["n"]):
        highest = max(highest, Fraction(LEVELS[c["institution"][1:]]))
        due = min(Fraction(c["total_cost"]), max(Fraction(0), highest - paid))
        out[c["id"]], paid = float(due), paid + due
    return out


def evaluated_rows(monkeypatch, n: int) -> tuple[int, dict]:
    """Rows the chain argument was evaluated on, for one chain of n claims, and the result."""
    seen = []
    real = builtins.divide
    monkeypatch.setattr(builtins, "divide", lambda frame, a, b: seen.append(frame.size) or real(frame, a, b))
    institutions, claims = one_chain(n)
    policy = make_policy(RECURRENT, parameters={"deductible_by_level": LEVELS})
    result = run(policy, {"institution": institutions,
                          "claim": [{k: v for k, v in c.items() if k != "n"} for c in claims]})
    monkeypatch.setattr(builtins, "divide", real)
    return sum(seen), result


@pytest.mark.parametrize("n", [1000, 4000] if BIG else [250, 1000])
def test_each_earlier_claim_is_evaluated_once(monkeypatch, n):
    """A self-referencing deductible on one chain of n claims: n - 1 argument evaluations
    (before: n(n - 1)/2), and the same amounts as plain Python."""
    rows, result = evaluated_rows(monkeypatch, n)
    assert rows == n - 1
    _, claims = one_chain(n)
    assert by_id(result, "claim", "deductible_due") == reference(claims)


def test_work_grows_linearly_with_the_chain(monkeypatch):
    small, _ = evaluated_rows(monkeypatch, 200)
    large, _ = evaluated_rows(monkeypatch, 800)
    assert large <= 4 * small + 10  # quadratic work would be 16 times


NON_RECURRENT = {"claim": {
    "highest": "chain_max(total_cost / 1)",
    "highest_before": "chain_max_before(total_cost)",
    "so_far": "chain_sum(total_cost)",
    "before": "chain_sum_before(total_cost)",
    # chain calls inside branches run on some rows only; nested calls read accumulators too
    "mixed": "if total_cost > 300 then chain_sum_before(total_cost) else chain_max(total_cost)",
    "nested": "chain_sum(chain_max_before(total_cost))",
}}


def test_chain_functions_on_many_chains_match_plain_python(monkeypatch):
    rng = np.random.default_rng(11)
    chains: dict[str, list[dict]] = {}
    claims = []
    for k in range(60):
        for j in range(int(rng.integers(1, 40))):
            c = {"id": f"e{k}_{j}", "episode": f"E{k}", "total_cost": float(rng.integers(1, 1000)),
                 "admit_date": (dt.date(2024, 1, 1) + dt.timedelta(days=j)).isoformat()}
            chains.setdefault(c["episode"], []).append(c)
            claims.append(c)
    seen = []
    real = builtins.divide
    monkeypatch.setattr(builtins, "divide", lambda frame, a, b: seen.append(frame.size) or real(frame, a, b))
    result = run(make_policy(NON_RECURRENT), {"claim": [claims[i] for i in rng.permutation(len(claims))]})
    assert sum(seen) == len(claims)  # chain_max's argument: once per claim
    want: dict[str, dict[str, float]] = {name: {} for name in NON_RECURRENT["claim"]}
    for members in chains.values():
        top = total = Fraction(0)
        nested = Fraction(0)
        for c in members:  # already in admission order
            cost = Fraction(c["total_cost"])
            want["highest_before"][c["id"]], want["before"][c["id"]] = float(top), float(total)
            nested += top
            want["nested"][c["id"]] = float(nested)
            want["mixed"][c["id"]] = float(total) if cost > 300 else float(max(top, cost))
            top, total = max(top, cost), total + cost
            want["highest"][c["id"]], want["so_far"][c["id"]] = float(top), float(total)
    for name, values in want.items():
        assert by_id(result, "claim", name) == values, name


def test_a_long_chain_past_the_time_limit_stops_inside_the_chain(monkeypatch):
    """With a limit of 0 s the run stops within the first positions of the chain, not after it."""
    seen = []
    real = builtins.divide
    monkeypatch.setattr(builtins, "divide", lambda frame, a, b: seen.append(frame.size) or real(frame, a, b))
    monkeypatch.setattr("engine.run.evaluate.LIMITS", Limits(eval_seconds=0.0))
    institutions, claims = one_chain(1000)
    policy = make_policy(RECURRENT, parameters={"deductible_by_level": LEVELS})
    with pytest.raises(LimitExceeded) as caught:
        run(policy, {"institution": institutions, "claim": [{k: v for k, v in c.items() if k != "n"} for c in claims]})
    assert caught.value.status == 503 and caught.value.setting == "MEDPAY_MAX_EVAL_SECONDS"
    assert "计算超过" in caught.value.zh
    assert sum(seen) < 100  # stopped after at most 64 positions of 1,000


def test_a_chain_walk_past_the_time_limit_stops_inside_the_walk(monkeypatch):
    monkeypatch.setattr("engine.run.evaluate.LIMITS", Limits(eval_seconds=0.0))
    _, claims = one_chain(1000)
    with pytest.raises(LimitExceeded) as caught:
        run(make_policy({"claim": {"before": "chain_sum_before(total_cost)"}}),
            {"claim": [{k: v for k, v in c.items() if k not in ("n", "institution")} for c in claims]})
    assert any(frame.f_code.co_name == "befores" for frame, _ in traceback.walk_tb(caught.value.__traceback__))


def test_a_long_chain_through_the_api(tmp_path):
    """One episode of 4,000 claims (300 by default) is answered, with the deductible paid once."""
    n = 4000 if BIG else 300
    template_folder(tmp_path)
    client = TestClient(create_app(tmp_path, watch=False), base_url="http://localhost")
    claims = [{"id": f"c{i}", "institution": "H2" if i == 0 else "H1", "fund": "F", "episode": "E1",
               "drg_group": "A01", "total_cost": 1000 + i % 50,
               "admit_date": f"2024-{1 + i * 12 // n:02d}-01"} for i in range(n)]
    body = {"period": "2024", "outputs": ["claim.deductible_due"], "entities": {
        "fund": [{"id": "F", "revenue": 1e7}],
        "community": [{"id": "C1", "package_total": 1e7, "actual_spending": 1e7}],
        "institution": [{"id": "H1", "community": "C1", "level": 3}, {"id": "H2", "community": "C1", "level": 1}],
        "claim": claims}}
    r = client.post("/v1/cities/_template/evaluate", json=body)
    assert r.status_code == 200, r.text[:500]
    due = {row["id"]: row["deductible_due"] for row in r.json()["entities"]["claim"]}
    # first claim at a level-1 hospital owes 300; the second raises the standard to 900: owes 600
    assert due == {f"c{i}": 300.0 if i == 0 else 600.0 if i == 1 else 0.0 for i in range(n)}

"""Time one JSON situation of N claims through `evaluate` (the API and `medpay run` path).

    .venv/bin/python bench/json_situation.py [--claims 100000] [--city _template]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from engine.policy.registry import Registry
from engine.run.evaluate import evaluate


def situation(claims: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    institutions = [{"id": f"H{i}", "level": int(rng.integers(1, 4))} for i in range(200)]
    which, fund = rng.integers(0, 200, claims), rng.integers(0, 2, claims)
    group = rng.choice(["A01", "B02", "C03"], claims)
    cost = np.round(rng.lognormal(9, 0.6, claims), 2)
    rows = []
    for i in range(claims):
        row = {"id": f"c{i}", "institution": f"H{which[i]}", "fund": ("E", "R")[fund[i]], "drg_group": str(group[i]),
               "total_cost": float(cost[i]), "admit_date": "2024-03-01", "discharge_date": "2024-03-05"}
        if i % 20 == 0:
            row["episode"] = f"E{i // 40}"
        rows.append(row)
    return {"period": "2024", "entities": {"fund": [{"id": "E", "revenue": 5e8}, {"id": "R", "revenue": 4e8}],
                                           "institution": institutions, "claim": rows}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=100_000)
    ap.add_argument("--city", default="_template")
    args = ap.parse_args()
    policy = Registry.load().pick(args.city, None)
    data = situation(args.claims)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        result = evaluate(policy, data)
        best = min(best, time.perf_counter() - started)
    print(f"{args.claims:,} claims, {args.city}: {best:.2f} s per evaluate (best of 3), "
          f"{len(result['entities']['claim']):,} claim rows out")


if __name__ == "__main__":
    main()

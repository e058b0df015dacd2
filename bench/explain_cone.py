"""Time `medpay explain CITY --data DIR ENTITY.ID.VARIABLE` on a synthetic city-year (单值解释基准).

Writes a synthetic year of --claims claims for one city (engine/batch/synth.py; kept under
bench/.data and reused), picks an institution and its payment — by default the institution formula
with the largest cone, i.e. the one that depends on the most steps — and runs the command as a
subprocess --repeats times, printing wall time and the child's peak memory. Not a test.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/explain_cone.py --city zibo --claims 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.batch.synth import synthesize  # noqa: E402
from engine.cli import resolve_policy  # noqa: E402


def data_folder(city: str, claims: int, seed: int) -> Path:
    """The synthetic year, written once."""
    folder = ROOT / "bench" / ".data" / f"{city}-{claims}-s{seed}"
    if not (folder / "claim.parquet").is_file():
        started = time.perf_counter()
        synthesize(resolve_policy(city), claims, folder, seed)
        print(f"synthesised {claims:,} claims for {city} in {time.perf_counter() - started:.1f} s -> {folder}")
    return folder


def widest_institution_step(city: str) -> tuple[str, int, int]:
    """The institution variable whose cone is largest: (name, cone steps, plan steps)."""
    policy = resolve_policy(city)
    steps = [s for s in policy.plan.steps if s.variable.entity == "institution"]
    best = max(steps, key=lambda s: (len(policy.plan.cone(s.key)), s.variable.name))
    return best.variable.name, len(policy.plan.cone(best.key)), len(policy.plan.steps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city", default="zibo")
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variable", help="an institution variable (default: the one with the largest cone)")
    ap.add_argument("--institution", help="an institution id (default: the first in the file)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    folder = data_folder(args.city, args.claims, args.seed)
    name, cone, plan = widest_institution_step(args.city)
    name = args.variable or name
    rid = args.institution or str(pq.read_table(folder / "institution.parquet", columns=["id"])["id"][0])
    target = f"institution.{rid}.{name}"
    command = [sys.executable, "-m", "engine.cli", "explain", args.city, "--data", str(folder), target]
    print(f"{args.city}: {target} depends on {cone} of {plan} steps\n$ PYTHONPATH={ROOT} {' '.join(command[1:])}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("\n".join(done.stdout.splitlines()[:3]))
    print(f"wall time: median {statistics.median(times):.2f} s, best {min(times):.2f} s over {len(times)} runs; "
          f"peak memory {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grouping on vs off: settling a city-year whose claims carry their codes, with the group supplied
(grouping off: the formula does not run) or assigned from the codes by the policy's grouping (on).

    .venv/bin/python bench/grouping.py                          # zibo (DIP), 1,000,000 claims
    .venv/bin/python bench/grouping.py --city hangzhou --claims 200000 --repeats 1

Both runs read the same claims (one Parquet file written by `medpay synth --with-groups`, the other
the same file without the group column) and write every output. Prints and writes
bench/results-grouping.json: the median and best wall time of each, the extra time and its share, and
the time of the grouping itself (engine.run.grouping.assign on the claims' columns).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402

from engine.batch.io import read_entity  # noqa: E402
from engine.batch.settle import folder_period, peak_rss_mb, settle  # noqa: E402
from engine.batch.synth import grouped_variables, synthesize  # noqa: E402
from engine.compile.build import load_policy_file  # noqa: E402
from engine.run.grouping import assign  # noqa: E402

DATA = ROOT / "bench" / ".data"


def prepare(city: str, claims: int, seed: int) -> tuple[Path, Path]:
    """(folder with groups supplied, folder with codes only), made once and reused."""
    policy = load_policy_file(ROOT / "policies" / f"{city}.yaml")
    given = DATA / f"grouping-{city}-{claims}-s{seed}-given"
    codes = DATA / f"grouping-{city}-{claims}-s{seed}-codes"
    if not (given / "meta.json").is_file():
        synthesize(policy, claims, given, seed, with_groups=True)
    if not (codes / "meta.json").is_file():
        codes.mkdir(parents=True, exist_ok=True)
        for f in given.iterdir():
            if f.name != "claim.parquet":
                (codes / f.name).write_bytes(f.read_bytes())
        table = pq.read_table(given / "claim.parquet")
        dropped = table.drop_columns([n for n in grouped_variables(policy) if n in table.column_names])
        pq.write_table(dropped, codes / "claim.parquet", compression="zstd")
    return given, codes


def timed_settle(policy, folder: Path, out: Path) -> float:
    started = time.perf_counter()
    settle(policy, folder, out, folder_period(folder, None))
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--city", default="zibo")
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    policy = load_policy_file(ROOT / "policies" / f"{args.city}.yaml")
    given, codes = prepare(args.city, args.claims, args.seed)
    off, on = [], []
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits both alike
        off.append(timed_settle(policy, given, DATA / "out" / "grouping-off"))
        on.append(timed_settle(policy, codes, DATA / "out" / "grouping-on"))
    grouped = pq.read_table(DATA / "out" / "grouping-on" / "claim.parquet")
    supplied = pq.read_table(given / "claim.parquet")
    name, grouping = next(iter(grouped_variables(policy).items()))
    same = grouped[name].to_pylist() == supplied[name].to_pylist()
    cols = read_entity(codes / "claim.parquet", policy.model.entities["claim"])
    started = time.perf_counter()
    values = {role: cols.values.get(field) for role, field in grouping.fields.items()}
    assign(grouping, values.get("diagnosis"), values.get("procedures"), values.get("secondary"))
    assign_s = time.perf_counter() - started
    t_off, t_on = statistics.median(off), statistics.median(on)
    result = {"city": args.city, "claims": args.claims, "repeats": args.repeats,
              "grouping_off_s": round(t_off, 2), "grouping_on_s": round(t_on, 2),
              "extra_s": round(t_on - t_off, 2), "extra_share": round((t_on - t_off) / t_off, 3),
              "best_off_s": round(min(off), 2), "best_on_s": round(min(on), 2),
              "extra_share_best": round((min(on) - min(off)) / min(off), 3),
              "assign_only_s": round(assign_s, 2), "groups_equal_supplied": same,
              "runs_off_s": [round(x, 2) for x in off], "runs_on_s": [round(x, 2) for x in on],
              "peak_rss_mb": round(peak_rss_mb(), 0)}
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results-grouping.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

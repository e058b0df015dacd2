"""Grouping on vs off: settling a city-year whose claims carry their codes, with the group supplied
(grouping off: the formula does not run) or assigned from the codes by the policy's grouping (on).

    .venv/bin/python bench/grouping.py                          # zibo (DIP), 1,000,000 claims
    .venv/bin/python bench/grouping.py --city hangzhou --claims 200000 --repeats 1

Both runs read the same claims and write every output: one file written by `medpay synth
--with-groups` plus every other grouping value (rule, match, level) supplied, so that it does no
grouping at all; the other the same claims with their codes only. Wall and CPU time are reported:
on a shared machine the CPU time of the process is the steadier figure. Prints and writes
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

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from engine.batch.io import read_entity  # noqa: E402
from engine.batch.settle import folder_period, peak_rss_mb, settle  # noqa: E402
from engine.batch.synth import grouped_variables, synthesize  # noqa: E402
from engine.compile.build import load_policy_file  # noqa: E402
from engine.run.grouping import assign  # noqa: E402

DATA = ROOT / "bench" / ".data"


def prepare(city: str, claims: int, seed: int) -> tuple[Path, Path]:
    """(folder with every grouping value supplied, folder with codes only), made once and reused."""
    policy = load_policy_file(ROOT / "policies" / f"{city}.yaml")
    given = DATA / f"grouping-{city}-{claims}-s{seed}-given2"
    codes = DATA / f"grouping-{city}-{claims}-s{seed}-codes"
    if not (given / "meta.json").is_file():
        synthesize(policy, claims, given, seed, with_groups=True)
        supply_grouping_values(policy, given)
    if not (codes / "meta.json").is_file():
        codes.mkdir(parents=True, exist_ok=True)
        for f in given.iterdir():
            if f.name != "claim.parquet":
                (codes / f.name).write_bytes(f.read_bytes())
        table = pq.read_table(given / "claim.parquet")
        dropped = table.drop_columns([n for n in grouped_variables(policy) if n in table.column_names])
        pq.write_table(dropped, codes / "claim.parquet", compression="zstd")
    return given, codes


PARTS = {"group_rule": "rule", "group_match": "match", "group_level": "level", "group_treatment": "treatment"}


def supply_grouping_values(policy, folder: Path) -> None:
    """Every other claim value a grouping function gives (group_rule(dip), group_level(dip), …) is
    written into the claims too, so that the run with groups supplied does no grouping at all."""
    path = folder / "claim.parquet"
    table = pq.read_table(path)
    cols = read_entity(path, policy.model.entities["claim"])
    done = {}
    for step in policy.plan.steps:
        node = step.checked.node
        if step.variable.entity != "claim" or getattr(node, "function", None) not in PARTS:
            continue
        grouping = policy.groupings[node.args[0].value]
        if grouping.name not in done:
            values = {role: cols.values.get(field) for role, field in grouping.fields.items()}
            done[grouping.name] = assign(grouping, values.get("diagnosis"), values.get("procedures"),
                                         values.get("secondary"))
        column = getattr(done[grouping.name], PARTS[node.function])
        table = table.append_column(step.variable.name, pa.array(column.tolist()))
    pq.write_table(table, path, compression="zstd")


def timed_settle(policy, folder: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    settle(policy, folder, out, folder_period(folder, None))
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--city", default="zibo")
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    policy = load_policy_file(ROOT / "policies" / f"{args.city}.yaml")
    given, codes = prepare(args.city, args.claims, args.seed)
    off, on, off_cpu, on_cpu = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits both alike
        for runs, cpus, folder, out in ((off, off_cpu, given, "grouping-off"), (on, on_cpu, codes, "grouping-on")):
            wall, cpu = timed_settle(policy, folder, DATA / "out" / out)
            runs.append(wall)
            cpus.append(cpu)
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
              "cpu_off_s": [round(x, 2) for x in off_cpu], "cpu_on_s": [round(x, 2) for x in on_cpu],
              "extra_share_cpu_best": round((min(on_cpu) - min(off_cpu)) / min(off_cpu), 3),
              "assign_only_s": round(assign_s, 2), "groups_equal_supplied": same,
              "runs_off_s": [round(x, 2) for x in off], "runs_on_s": [round(x, 2) for x in on],
              "peak_rss_mb": round(peak_rss_mb(), 0)}
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results-grouping.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

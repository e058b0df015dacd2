"""A synthetic city-year for any policy, deterministic by seed (合成数据).

Nothing here knows a city. The structure follows the shared model (funds, communities,
institutions by level, claims); the rest is read off the policy itself:
- a text input compared with literals in formulas (`category in ["psychiatric", …]`) takes
  those values on a few rows, so every route of the policy is exercised;
- a text input used as a lookup key takes the keys of that table, and claim costs follow the
  group's average cost or weight when the table has one (log-normal around it);
- other inputs get plausible magnitudes by unit: money scaled to the entity's claim volume,
  ratios of a few percent, counts scaled to its claims, scores between 80 and 100; a claim's
  money input named for the fund is the fund's share of its cost; an optional amount of an
  institution or account (a deduction, a recovery) exists on a few rows only; an institution
  input the accounts compute (an account value an institution with one account may give) is left
  out.
- then the year is made plausible (`calibrate`): the policy is evaluated once on it, each fund's
  points budget is sized to its pool's fund cost (within ±3%) through the fund's base amount
  (its revenue or last year's spending), and an amount paid during the year (`<x>_settled`) is
  set near what is due (`<x>_amount`). Demos and benchmarks then show a realistic clearing, and
  the policy's plausibility checks pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.dsl import typed as T
from engine.model.codelists import CodeLists
from engine.policy.spec import Policy
from engine.run.grouping import assign

LEVEL_SHARE = (0.6, 0.28, 0.12)
LEVEL_VOLUME = (1.0, 3.0, 8.0)


@dataclass
class Usage:
    """What the policy's formulas reveal about its text inputs."""

    literals: dict[tuple[str, str], set[str]]
    table_keys: dict[tuple[str, str], tuple[str, str]]  # (entity, input) → (table, key column)


def policy_usage(policy: Policy) -> Usage:
    literals: dict[tuple[str, str], set[str]] = {}
    keys: dict[tuple[str, str], tuple[str, str]] = {}
    for step in policy.plan.steps:
        for node in T.walk(step.checked.node):
            if isinstance(node, T.Compare) and node.op in ("==", "!="):
                pairs = [(node.left, node.right), (node.right, node.left)]
            elif isinstance(node, T.InList):
                pairs = [(node.value, item) for item in node.options]
            elif isinstance(node, T.Call) and node.kind == "lookup":
                table = node.args[0].table
                for key_col, arg in zip(policy.tables[table].key, node.args[1:], strict=False):
                    if isinstance(arg, T.Var) and not arg.path:
                        keys.setdefault((arg.owner, arg.name), (table, key_col))
                continue
            else:
                continue
            for name, lit in pairs:
                if isinstance(name, T.Var) and isinstance(lit, T.Literal) and lit.kind == "string" and lit.value:
                    literals.setdefault((name.owner, name.name), set()).add(lit.value)
    return Usage(literals, keys)


def default_period(policy: Policy) -> str:
    """A whole year inside the policy's effective period."""
    start, end = policy.meta.effective_from, policy.meta.effective_to
    year = start.year if (start.month, start.day) == (1, 1) else start.year + 1
    if end is not None and year > end.year:
        year = end.year
    return str(year)


def _ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "")


class Generator:
    def __init__(self, policy: Policy, claims: int, seed: int, with_groups: bool = False):
        self.policy, self.n, self.rng = policy, claims, np.random.default_rng(seed)
        self.with_groups = with_groups
        self.usage = policy_usage(policy)
        self.period = default_period(policy)

    def institutions(self) -> dict:
        rng, n_inst = self.rng, int(np.clip(self.n // 2500, 20, 2000))
        level = rng.choice([1, 2, 3], size=n_inst, p=LEVEL_SHARE)
        n_comm = max(2, n_inst // 8)
        status = rng.choice(["normal", "sanctioned", "under_investigation", "terminated_for_violation"],
                            size=n_inst, p=[0.95, 0.02, 0.02, 0.01])
        return {"id": _ids("H", n_inst), "community": pc.binary_join_element_wise(
                    "C", pc.cast(pa.array(rng.integers(0, n_comm, n_inst)), pa.string()), ""),
                "level": level.astype(float), "grade_a": rng.random(n_inst) < np.where(level > 1, 0.5, 0.1),
                "status": status, "kind": self._kinds(n_inst), "_n_comm": n_comm}

    def _kinds(self, n: int) -> np.ndarray:
        """Institution kinds: the ones the policy's formulas name, mostly the first (a required field)."""
        kinds = sorted(self.usage.literals.get(("institution", "kind"), set())) or ["general"]
        return np.array(kinds)[np.where(self.rng.random(n) < 0.8, 0, self.rng.integers(0, len(kinds), n))]

    def claims(self, inst: dict) -> dict:
        rng, n = self.rng, self.n
        level = inst["level"]
        weight = np.array(LEVEL_VOLUME)[level.astype(int) - 1]
        which = rng.choice(len(level), size=n, p=weight / weight.sum())
        year = int(self.period)
        start = np.datetime64(f"{year}-01-01")
        admit = start + rng.integers(0, 330, n).astype("timedelta64[D]")
        los = np.maximum(1, np.round(rng.lognormal(np.log(7), 0.5, n))).astype(int)
        cols: dict = {"id": _ids("c", n), "institution": pc.take(inst["id"], pa.array(which)),
                      "fund": np.where(rng.random(n) < 0.55, "employee", "resident"),
                      "admit_date": admit, "out_of_area": rng.random(n) < 0.03}
        cols["referral_approved"] = cols["out_of_area"] & (rng.random(n) < 0.5)
        cost = rng.lognormal(np.log(9000), 0.7, n)
        claim_vars = self.policy.model.entities["claim"].variables
        for (entity, name), values in sorted(self.usage.literals.items()):
            if entity == "claim" and name not in ("setting", "fund", "institution") and claim_vars[name].is_input:
                options = sorted(values)
                picked = rng.random(n) < 0.03 * len(options)
                cols[name] = np.where(picked, rng.choice(options, size=n), "")
        if "setting" in self.policy.model.entities["claim"].variables:
            cols["setting"] = rng.choice(["inpatient", "day_surgery", "outpatient"], size=n, p=[0.85, 0.05, 0.10])
        if "category" in cols:
            long_stay = cols["category"] != ""
            los = np.where(long_stay, rng.integers(20, 120, n), los)
        grouped = grouped_variables(self.policy)
        for (entity, name), (table, key_col) in sorted(self.usage.table_keys.items()):
            if entity != "claim" or not (claim_vars[name].is_input or name in grouped):
                continue
            tab = self.policy.tables[table]
            keys = sorted({k[tab.key.index(key_col)] for k in tab.index})
            if claim_vars[name].values:  # a field with declared values is not a catalogue key
                continue
            group = rng.choice(len(keys), size=n)
            values = np.array(keys)[group]
            if name in cols and cols[name].dtype.kind == "U":  # a routing code that is also a key
                cols[name] = np.where(cols[name] != "", values, "")
            else:
                cols[name] = values
            scale = self._group_scale(tab, key_col, keys)
            if scale is not None:
                cost = scale[group] * rng.lognormal(0, 0.45, n)
        for name, grouping in grouped.items():
            if name in cols:
                cols.update(claim_codes(grouping, cols[name], rng))
                if not self.with_groups:
                    del cols[name]  # the group is assigned from the codes
        cols["total_cost"] = np.round(cost, 2)
        cols["self_pay_items"] = np.round(cost * rng.uniform(0, 0.08, n), 2)
        admit = np.minimum(admit, np.datetime64(f"{year}-12-31") - los.astype("timedelta64[D]"))
        cols["admit_date"] = admit  # discharged within the year: a claim belongs to its discharge year
        cols["discharge_date"] = admit + los.astype("timedelta64[D]")
        cols["los_days"] = los.astype(float)
        chained = np.flatnonzero(rng.random(n) < 0.05)
        episode = np.full(n, None, dtype=object)
        episode[chained] = [f"E{i // 2}" for i in range(len(chained))]
        cols["episode"] = episode
        return cols

    def _group_scale(self, table, key_col: str, keys: list[str]) -> np.ndarray | None:
        numeric = [c for c in table.columns if table.column_type(c) == "number"]
        pick = next((c for c in numeric if "cost" in c), None) or next((c for c in numeric if "weight" in c), None)
        if pick is None or len(table.key) != 1:
            return None
        values = np.array([table.columns[pick][table.index[(k,)]] for k in keys], dtype=float)
        return values if "cost" in pick else values * 9000.0

    def _computed_on_accounts(self, entity: str, name: str) -> bool:
        """An institution input that is an account formula (given on an institution with one
        account, computed otherwise): left out, so that the policy computes it."""
        account = self.policy.model.entities.get("account")
        return entity == "institution" and account is not None and name in account.variables \
            and not account.variables[name].is_input

    def extra_inputs(self, entity: str, n: int, volume: np.ndarray, count: np.ndarray, cols: dict) -> None:
        """Inputs the policy declares beyond the shared model, by type and unit."""
        rng = self.rng
        for name, var in self.policy.model.entities[entity].variables.items():
            if not var.is_input or name in cols or name in self.policy.model.entities[entity].links:
                continue
            if not (var.path and var.path[0] == "variables"):
                continue
            if var.type == "bool":  # a required flag is a condition most rows meet; an optional one an exception
                cols[name] = rng.random(n) < (0.1 if var.default is not None else 0.9)
            elif var.type == "string":
                options = sorted(self.usage.literals.get((entity, name), set()))
                cols[name] = rng.choice(options, size=n) if options else np.full(n, "")
            elif var.type in ("date", "codes") or var.unit == "years" or var.values and var.default is not None:
                continue  # codes come with the groups; a field of declared values keeps its default
            elif self._computed_on_accounts(entity, name):
                continue  # an account value an institution may stand for: the accounts compute it
            elif var.unit == "yuan" and entity == "claim":  # the fund's share of the cost, or a small extra
                share = (0.70, 0.85) if "fund" in name else (0.0, 0.03)
                cols[name] = np.round(volume * rng.uniform(*share, n), 2)
            elif var.unit == "yuan" and var.default is not None and entity in ("institution", "account"):
                given = rng.random(n) < 0.05  # an optional amount (a deduction): on a few rows only
                cols[name] = np.where(given, np.round(volume * rng.uniform(0.005, 0.02, n), 2), np.nan)
            elif var.unit == "yuan" and name.endswith("_spending"):  # a whole year's spending: a budget's base
                cols[name] = np.round(volume * rng.uniform(1.0, 1.2, n), 2)
            elif var.unit == "yuan":
                cols[name] = np.round(volume * rng.uniform(0.1, 0.25, n), 2)
            elif var.unit == "ratio" and name.endswith("_share"):  # a share of a budget: most of it
                cols[name] = np.round(rng.uniform(0.6, 0.9, n), 4)
            elif var.unit == "yuan_per_person":
                cols[name] = np.round(rng.uniform(50, 300, n), 2)
            elif var.unit == "ratio":
                cols[name] = np.round(rng.uniform(0.02, 0.12, n), 4)
            elif var.unit in ("count", "persons"):
                cols[name] = np.round(count * rng.uniform(5, 20, n))
            elif var.unit == "score":
                cols[name] = np.round(rng.uniform(80, 100, n), 1)
            else:
                cols[name] = np.zeros(n)


def grouped_variables(policy: Policy) -> dict:
    """Claim variables computed as group(g), with their grouping."""
    out = {}
    for step in policy.plan.steps:
        node = step.checked.node
        if step.variable.entity == "claim" and isinstance(node, T.Call) and node.function == "group":
            out[step.variable.name] = policy.groupings[node.args[0].value]
    return out


def claim_codes(grouping, groups: np.ndarray, rng: np.random.Generator) -> dict:
    """Codes of each claim that the grouping turns into its group (empty codes where none is found)."""
    keys, inverse = np.unique(groups, return_inverse=True)
    made = [codes_for_group(grouping, str(k)) for k in keys.tolist()]
    out: dict = {}
    fields = grouping.fields
    if "diagnosis" in fields:
        out[fields["diagnosis"]] = np.array([m[0] for m in made] + [""])[inverse]
    for at, role in ((1, "procedures"), (2, "secondary")):
        if role in fields:
            per_key = [m[at] for m in made]
            lengths = np.array([len(c) for c in per_key], dtype=np.int64)[inverse]
            flat_by_key = np.array([c for codes in per_key for c in codes] or [""], dtype=object)
            starts = np.concatenate([[0], np.cumsum([len(c) for c in per_key])])[inverse]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            flat = flat_by_key[np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])]
            values = pa.array(flat.astype(str), pa.large_string())  # (many claims: Arrow returns pieces)
            values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            out[fields[role]] = pa.ListArray.from_arrays(pa.array(offsets), values.cast(pa.string()))
    return out


def codes_for_group(grouping, key: str) -> tuple[str, list[str], list[str]]:
    """(principal diagnosis, procedures, secondary diagnoses) that the grouping assigns `key` to:
    written from the first rule row giving the key, checked by grouping them."""
    for rule in grouping.rules:
        for row, group in enumerate(rule.groups):
            levels = [0] if group == key else []
            if rule.splits is not None and rule.splits[row]:
                levels = [lv for lv, s in rule.suffix.items() if group + s == key]
            for level in levels:
                for codes in _candidates(grouping, rule, row, level):
                    got = assign(grouping, np.array([codes[0]]), CodeLists.from_lists([codes[1]]),
                                 CodeLists.from_lists([codes[2]]))
                    if got.group[0] == key:
                        return codes
    return "", [], []


def _candidates(grouping, rule, row: int, level: int):
    """Code sets written from the patterns of one rule row (each alternative in turn)."""
    diagnoses = [p.low or "Z00.0" for p in (rule.diagnosis[row][0] if rule.diagnosis and rule.diagnosis[row]
                                            else ())] or ["Z00.0"]
    procedures = [[alt[0].low for alt in rule.procedures[row] if alt]] if rule.procedures and rule.procedures[row] \
        else [[]]
    if rule.treatment is not None and rule.treatment[row] and grouping.ranking is not None:
        kind = rule.treatment[row]
        procedures = [[]] if kind == grouping.ranking.none else \
            [[alt[0].low] for alt, k in zip(grouping.ranking.patterns, grouping.ranking.kinds, strict=True)
             if k == kind and alt and alt[0].low]
    secondaries = [[]]
    if level and grouping.complication is not None:
        secondaries = [[alt[0].low] for alt, lv in zip(grouping.complication.patterns, grouping.complication.levels,
                                                       strict=True) if lv == level and alt and alt[0].low]
    for diagnosis in diagnoses:
        for procs in procedures:
            for secondary in secondaries:
                yield diagnosis, procs, secondary


def _nullable(values):
    """Empty text is written as null (not given), like a missing cell."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return pa.array(np.where(values == "", None, values.astype(object)), pa.string())
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isnan(values).any():
        return pa.array(values, from_pandas=True)  # NaN: an optional amount not given
    return values


def _accounts(gen: Generator, policy: Policy, inst: dict, clm: dict, which: np.ndarray,
              fund_of: np.ndarray) -> dict | None:
    """Rows of the institution × fund accounts the claims make, with the inputs the policy declares
    on accounts (None when it declares none). A value an account has under the name of an
    institution input is given on the accounts only: an institution paid from several funds has
    several accounts, and the input belongs to each."""
    entity = policy.model.entities.get("account")
    if entity is None:
        return None
    declared = policy.model.entities["institution"].variables
    inputs = [n for n, v in entity.variables.items() if n not in entity.links and (
        (v.is_input and v.path and v.path[0] == "variables")
        or (n in declared and declared[n].is_input and declared[n].path and declared[n].path[0] == "variables"))]
    if not inputs:
        return None
    code = which.astype(np.int64) * 2 + fund_of
    present, inverse = np.unique(code, return_inverse=True)
    funds = np.array(["employee", "resident"])
    inst_ids = np.asarray(inst["id"].to_pylist() if hasattr(inst["id"], "to_pylist") else inst["id"], dtype=object)
    acc_inst, acc_fund = inst_ids[present // 2], funds[present % 2]
    acc = {"id": pa.array([f"{i}|{f}" for i, f in zip(acc_inst, acc_fund, strict=True)]),
           "institution": pa.array(acc_inst.astype(str)), "fund": pa.array(acc_fund)}
    n = len(present)
    volume, count = np.bincount(inverse, weights=clm["total_cost"], minlength=n), np.bincount(inverse, minlength=n)
    gen.extra_inputs("account", n, volume, count.astype(float), acc)
    standing_for = [name for name in inputs if name not in acc and name in declared]
    if standing_for:  # account values standing for institution inputs: generated like those inputs
        like: dict = {}
        gen.extra_inputs("institution", n, volume, count.astype(float), like)
        acc.update({name: like[name] for name in standing_for if name in like})
    for name in inputs:
        inst.pop(name, None)
    return acc


def synthesize(policy: Policy, claims: int, out: Path, seed: int = 1, with_groups: bool = False) -> dict:
    """Write fund, community, institution and claim Parquet files and meta.json; returns counts.
    Claims carry codes (principal diagnosis, procedures, secondary diagnoses) that the policy's
    grouping turns into their group; `with_groups`: the group is written too (supplied)."""
    gen = Generator(policy, claims, seed, with_groups)
    inst = gen.institutions()
    n_comm = inst.pop("_n_comm")
    clm = gen.claims(inst)
    which = pc.index_in(clm["institution"], value_set=inst["id"]).to_numpy()
    n_inst = len(inst["level"])
    inst_cost = np.bincount(which, weights=clm["total_cost"], minlength=n_inst)
    inst_count = np.bincount(which, minlength=n_inst).astype(float)
    gen.extra_inputs("claim", claims, clm["total_cost"], np.ones(claims), clm)
    gen.extra_inputs("institution", n_inst, inst_cost, inst_count, inst)
    comm_of = pc.cast(pc.utf8_slice_codeunits(inst["community"], 1), pa.int64()).to_numpy()
    comm = {"id": _ids("C", n_comm)}
    gen.extra_inputs("community", n_comm, np.bincount(comm_of, weights=inst_cost, minlength=n_comm),
                     np.bincount(comm_of, weights=inst_count, minlength=n_comm), comm)
    fund_of = (np.asarray(clm["fund"]) == "resident").astype(int)
    fund = {"id": pa.array(["employee", "resident"]), "insurance_type": pa.array(["employee", "resident"]),
            "revenue": np.round(np.bincount(fund_of, weights=clm["total_cost"], minlength=2) * 1.3, 2)}
    gen.extra_inputs("fund", 2, np.bincount(fund_of, weights=clm["total_cost"], minlength=2),
                     np.bincount(fund_of, minlength=2).astype(float), fund)
    files = [("fund", fund), ("community", comm), ("institution", inst), ("claim", clm)]
    acc = _accounts(gen, policy, inst, clm, which, fund_of)
    if acc is not None:
        files.append(("account", acc))
    out.mkdir(parents=True, exist_ok=True)
    for name, cols in files:
        known = policy.model.entities[name].variables
        table = pa.table({k: _nullable(v) for k, v in cols.items() if k == "id" or k in known})
        pq.write_table(table, out / f"{name}.parquet", compression="zstd")
    meta = {"policy": policy.id, "period": gen.period, "claims": claims, "seed": seed,
            "institutions": n_inst, "communities": n_comm}
    meta["calibrated"] = calibrate(policy, out, gen.period, gen.rng)
    (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


# ---- a plausible year (合理的合成年度) ------------------------------------------------------------

BUDGET = ("fund", "points_budget")
BASES = ("revenue", "last_year_spending")  # a fund's base amount, the budget grows with it
PAID, DUE = "_settled", "_amount"
PACKAGES = (("community", "package_total", "actual_spending"),)  # a package budget and what it pays for


def calibrate(policy: Policy, folder: Path, period: str, rng: np.random.Generator) -> dict:
    """Size each fund's points budget to its pool's fund cost (±3%), each package budget to its
    spending (±3%) and each amount paid during the year near what is due (95–100%), by
    evaluating the policy on the written year (read once); the files are rewritten. Returns what
    was changed (for meta.json)."""
    base = _budget_base(policy)
    packages = [p for p in PACKAGES if (p[0], p[1]) in policy.plan.by_key and (p[0], p[2]) in policy.plan.by_key]
    paid = {entity: _paid_pairs(policy, entity) for entity in ("account", "institution")}
    wanted = {(e, due) for e, pairs in paid.items() for _, due in pairs}
    wanted |= {key for e, b, s in packages for key in ((e, b), (e, s))}
    if base is not None:
        wanted |= {BUDGET, ("claim", "in_points_pool")}
        if "patient_paid" in policy.model.entities["claim"].variables:
            wanted.add(("claim", "patient_paid"))
    if not wanted:
        return {}
    pop = _evaluate(policy, folder, period, wanted)
    done: dict = {}
    for entity, pairs in paid.items():
        done.update(_size_paid(folder, entity, pairs, pop, rng))
    for entity, budget, spending in packages:
        done.update(_size_package(policy, folder, entity, budget, spending, pop, rng))
    if base is not None:
        done.update(_size_budgets(policy, folder, base, pop, rng))
    return done


def _budget_base(policy: Policy) -> str | None:
    """The fund input the points budget grows with (None when the policy has no points budget)."""
    if BUDGET not in policy.plan.by_key:
        return None
    reads = {k for s in policy.plan.needed({BUDGET}) for k in s.checked.deps}
    return next((b for b in BASES if ("fund", b) in reads and policy.model.entities["fund"].variables[b].is_input),
                None)


def _evaluate(policy: Policy, folder: Path, period: str, wanted: set):
    """The population of the synthetic year with the wanted values (and what they need) computed."""
    from engine.batch.settle import load
    from engine.period import parse_period
    pop = load(policy, folder, parse_period(period))
    _run(policy, pop, wanted)
    return pop


def _run(policy: Policy, pop, wanted: set) -> None:
    from engine.run.evaluate import run_steps
    from engine.run.frame import RunContext
    run_steps(policy.plan.needed(wanted), pop, RunContext(policy), None)


def _pool_cost(pop) -> np.ndarray:
    """Per fund, the fund cost of the claims in the points pool: each claim's booked `fund_cost`
    when the policy books it, else its cost less the patient's share and refusals."""
    claims = pop.columns["claim"]
    if "fund_cost" in claims:
        cost = claims["fund_cost"]
    else:
        cost = claims["total_cost"] - claims["patient_paid"] - claims.get("refused_cost", 0.0)
    pool = claims["in_points_pool"].astype(bool)
    fund_of = pop.links[("claim", "fund")]
    return np.bincount(fund_of[pool], weights=cost[pool], minlength=pop.sizes["fund"])


def _size_budgets(policy: Policy, folder: Path, base: str, pop, rng: np.random.Generator) -> dict:
    """The budget is affine in the base amount: the budget again with the base doubled gives the
    line, and the base is solved for a budget of the pool's fund cost × U(0.97, 1.03)."""
    path = folder / "fund.parquet"
    table = pq.read_table(path)
    x = np.asarray(pop.columns["fund"][base], dtype=float).copy()
    first, target = pop.columns["fund"]["points_budget"].copy(), _pool_cost(pop)
    given = pop.supplied.setdefault("fund", {})
    given[base] = (x * 2, np.ones(len(x), dtype=bool))
    pop.columns["fund"][base] = x * 2
    _run(policy, pop, {BUDGET})
    second = pop.columns["fund"]["points_budget"]
    slope = (second - first) / np.where(x != 0, x, 1.0)
    goal = target * rng.uniform(0.97, 1.03, len(x))
    solved = np.where((slope > 0) & (target > 0), x + (goal - first) / np.where(slope > 0, slope, 1.0), x)
    order = pc.index_in(table["id"], value_set=pa.array([str(i) for i in pop.ids["fund"]])).to_numpy()
    _write_column(path, table, base, np.round(np.maximum(solved, 0.0), 2)[order])
    return {f"fund.{base}": "sized so that the points budget is the pool's fund cost ±3%"}


def _size_package(policy: Policy, folder: Path, entity: str, budget: str, spending: str, pop,
                  rng: np.random.Generator) -> dict:
    """A package budget sized to its spending × U(0.97, 1.03): the entity's money inputs the budget
    reads (and the spending does not) scaled together (the budget grows with them)."""
    path = folder / f"{entity}.parquet"
    if not path.is_file():
        return {}

    def inputs_of(key: tuple) -> set[str]:
        reads = {k for s in policy.plan.needed({key}) for k in s.checked.deps} | policy.plan.by_key[key].checked.deps
        variables = policy.model.entities[entity].variables
        return {n for e, n in reads if e == entity and n in variables and variables[n].is_input
                and variables[n].unit == "yuan"}
    table = pq.read_table(path)
    names = sorted((inputs_of((entity, budget)) - inputs_of((entity, spending))) & set(table.column_names))
    if not names:
        return {}
    have, want = pop.columns[entity][budget], pop.columns[entity][spending] * rng.uniform(0.97, 1.03, pop.sizes[entity])
    factor = np.where((have > 0) & (want > 0), want / np.where(have > 0, have, 1.0), 1.0)
    factor = factor[pc.index_in(table["id"], value_set=pa.array([str(i) for i in pop.ids[entity]])).to_numpy()]
    for name in names:
        values = np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=float)
        table = _with_column(table, name, np.round(values * factor, 2))
    pq.write_table(table, path, compression="zstd")
    return {f"{entity}.{n}": f"scaled so that {budget} is {spending} ±3%" for n in names}


def _paid_pairs(policy: Policy, entity: str) -> list[tuple[str, str]]:
    """(`<x>_settled` input, `<x>_amount` formula) pairs of an entity."""
    variables = policy.model.entities[entity].variables
    return [(n, n[: -len(PAID)] + DUE) for n, v in variables.items() if n.endswith(PAID) and v.is_input
            and (entity, n[: -len(PAID)] + DUE) in policy.plan.by_key]


def _size_paid(folder: Path, entity: str, pairs: list[tuple[str, str]], pop, rng: np.random.Generator) -> dict:
    """`<x>_settled` (paid during the year) set to 95–100% of the computed `<x>_amount`."""
    path = folder / f"{entity}.parquet"
    if not pairs or not path.is_file():
        return {}
    table = pq.read_table(path)
    order = pc.index_in(table["id"], value_set=pa.array([str(i) for i in pop.ids[entity]])).to_numpy()
    done = {}
    for paid, due in pairs:
        if paid in table.column_names:
            amount = pop.columns[entity][due][order]
            table = _with_column(table, paid, np.round(amount * rng.uniform(0.95, 1.0, len(amount)), 2))
            done[f"{entity}.{paid}"] = f"95–100% of {entity}.{due}"
    pq.write_table(table, path, compression="zstd")
    return done


def _with_column(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, pa.array(values, pa.float64()))


def _write_column(path: Path, table: pa.Table, name: str, values: np.ndarray) -> None:
    pq.write_table(_with_column(table, name, values), path, compression="zstd")

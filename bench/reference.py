"""Hand-written references for the benchmark (手写参考实现).

Three independent implementations of the same rules as policies/zibo.yaml and
policies/jingdezhen.yaml, used as yardsticks for the engine and checked against it:

- `zibo_numpy`, `jingdezhen_numpy`: the whole settlement written directly in numpy over the
  synthetic columns — the practical speed limit of a columnar implementation;
- `zibo_loop`, `jingdezhen_loop`: the claim rules in plain Python, claim by claim;
- `ZenZibo`: the Zibo claim rules as a JDM decision graph (bench/zibo_dip_claim.json) run
  claim by claim by the `zen-engine` rules engine.

The policy parameters are copied here by hand on purpose: this is what a hand-written
settlement looks like, and tests/test_bench_reference.py fails if the policy and these
copies drift apart. Only the DIP catalogue is read from its CSV (it is data, not a rule).

Inputs are the synthetic Parquet files of `medpay synth`, read by `read_inputs` into the
same in-memory form the engine has after its read phase (numpy columns, parent row indexes,
the derived account rows), so that evaluation times compare like with like.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DIP_TABLE = ROOT / "policies" / "tables" / "zibo_dip_groups.csv"
ZEN_GRAPH = Path(__file__).resolve().parent / "zibo_dip_claim.json"

# ---- parameters, copied from policies/zibo.yaml ---------------------------------------------
ZIBO = {
    "reserve_rate": 0.10, "reserve_surplus_to_dip_rate": 0.70, "reserve_surplus_to_adjustment_rate": 0.30,
    "core_group_min_cases": 15.0, "base_group": "K35.8+47.0901", "base_score": 1000.0,
    "low_cost_ratio": 0.5, "high_cost_ratio": 2.0,
    "basic_coefficient": {"tertiary_general_a": 1.00, "tertiary_other": 0.95, "secondary_general_a": 0.90,
                          "secondary_other": 0.85, "primary_community": 0.80, "township_a": 0.80,
                          "township_other": 0.75},
    "bonus_primary": 0.05, "bonus_tcm": 0.05, "bonus_key_discipline": 0.05,
    "default_assessment_factor": 1.0, "overspend_share_rate": 0.5,
}
# ---- parameters, copied from policies/jingdezhen.yaml ---------------------------------------
JINGDEZHEN = {
    "risk_fund_rate": 0.05, "monthly_prepayment_rate": 0.05, "prepayment_months": 12.0,
    "overspend_edges": (0.05, 0.10), "overspend_rates": (0.8, 0.6, 0.0),
    "surplus_edges": (0.10, 0.15), "surplus_rates": (0.8, 0.6, 0.0),
    "primary_share_floor": 0.16, "assessment_pass_score": 90.0,
    "deductible_by_level": {1.0: 300.0, 2.0: 600.0, 3.0: 900.0},
    "coinsurance_by_level": {1.0: 0.10, 2.0: 0.15, 3.0: 0.20},
}
PAYMENT_METHODS = ("dip", "fee_for_service", "fixed_standard", "single_disease", "per_diem", "capitation")
TEXT_DEFAULTS = {"setting": "inpatient", "status": "normal"}
LINKS = {"claim": ("institution", "fund", "episode"), "institution": ("community",)}
PARENT = {"institution": "institution", "fund": "fund", "community": "community"}


def dip_catalogue(path: Path = DIP_TABLE) -> dict[str, tuple[float, float]]:
    """DIP group → (average cost, yearly cases), from the policy's CSV table."""
    with path.open(encoding="utf-8") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r["dip_group"]: (float(r["avg_cost"]), float(r["annual_cases"])) for r in rows}


# ---- inputs -------------------------------------------------------------------------------------
class Codes:
    """A text column kept dictionary-encoded (as Parquet stores it): int32 codes into `values`."""

    def __init__(self, codes: np.ndarray, values: list[str]):
        self.codes, self.values = codes, values

    def __len__(self) -> int:
        return len(self.codes)

    def tolist(self) -> list[str]:
        return np.array(self.values + [""], dtype=object)[self.codes].tolist()

    def __getitem__(self, rows) -> Codes:
        return Codes(self.codes[rows], self.values)


def eq(column, value: str) -> np.ndarray:
    """column == value, for numpy text or dictionary codes."""
    if isinstance(column, Codes):
        return column.codes == column.values.index(value) if value in column.values else \
            np.zeros(len(column), dtype=bool)
    return column == value


def either(column, options: tuple[str, ...]) -> np.ndarray:
    """column in options."""
    if isinstance(column, Codes):
        return np.isin(column.codes, [k for k, v in enumerate(column.values) if v in options])
    hit = column == options[0]
    for option in options[1:]:
        hit |= column == option
    return hit


def text_map(column, mapping: dict[str, tuple[float, ...]], width: int) -> list[np.ndarray]:
    """The values of `mapping` for each row's text (zeros when absent), one array per value."""
    if isinstance(column, Codes):
        table = np.array([mapping.get(v, (0.0,) * width) for v in column.values] + [(0.0,) * width], dtype=float)
        picked = table[column.codes]
        return [picked[:, k] for k in range(width)]
    out = [np.zeros(len(column)) for _ in range(width)]
    for key, values in mapping.items():
        hit = column == key
        for k in range(width):
            out[k][hit] = values[k]
    return out


@dataclass
class Inputs:
    """A synthetic city-year as numpy columns, parent indexes and derived accounts."""

    ids: dict[str, np.ndarray]
    cols: dict[str, dict[str, np.ndarray]]
    links: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def size(self, entity: str) -> int:
        return len(self.ids[entity])


def _column(array: pa.ChunkedArray, name: str, text: str = "numpy") -> np.ndarray | Codes:
    t = array.type
    if text == "codes" and (pa.types.is_string(t) or pa.types.is_dictionary(t)):
        encoded = array.combine_chunks()
        if not pa.types.is_dictionary(encoded.type):
            encoded = pc.dictionary_encode(encoded)
        values = [("" if v is None else v) for v in encoded.dictionary.to_pylist()]
        default = TEXT_DEFAULTS.get(name, "")
        if default not in values:
            values.append(default)
        codes = pc.fill_null(encoded.indices, values.index(default)).to_numpy(zero_copy_only=False)
        return Codes(codes.astype(np.int32), values)
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return pc.fill_null(pc.cast(array, pa.float64()), 0.0).to_numpy()
    if pa.types.is_boolean(t):
        return pc.fill_null(array, False).to_numpy(zero_copy_only=False)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return array.to_numpy(zero_copy_only=False).astype("datetime64[D]")
    return pc.fill_null(pc.cast(array, pa.string()), TEXT_DEFAULTS.get(name, "")).to_numpy(
        zero_copy_only=False).astype(str)


def _index_in(values: pa.ChunkedArray, ids: pa.ChunkedArray) -> np.ndarray:
    """Row of each value among the parent ids; -1 when missing or unknown."""
    found = pc.index_in(values, value_set=ids.combine_chunks())
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def read_inputs(folder: Path, text: str = "numpy") -> Inputs:
    """Read fund/community/institution/claim Parquet; resolve links; derive the accounts.

    text="numpy": text columns as numpy str arrays, the form the engine evaluates;
    text="codes": claim text columns dictionary-encoded (`Codes`), read so straight from Parquet."""
    tables = {}
    for e in ("fund", "community", "institution", "claim"):
        path = folder / f"{e}.parquet"
        if path.is_file():
            names = pq.read_schema(path).names
            wanted = [n for n in ("category", "setting", "dip_group") if n in names] if text == "codes" else None
            tables[e] = pq.read_table(path, read_dictionary=wanted or None)
    inp = Inputs({}, {})
    for entity, table in tables.items():
        inp.ids[entity] = table["id"].to_numpy(zero_copy_only=False).astype(object)
        links = LINKS.get(entity, ())
        inp.cols[entity] = {n: _column(table[n], n, text if entity == "claim" else "numpy")
                            for n in table.column_names if n != "id" and n not in links
                            and not pa.types.is_list(table[n].type)}  # codes: the groups are given
        for link in links:
            if link not in table.column_names:
                inp.links[(entity, link)] = np.full(table.num_rows, -1, dtype=np.int64)
            elif link == "episode":
                codes = pc.dictionary_encode(table[link].combine_chunks()).indices
                inp.links[(entity, link)] = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            else:
                inp.links[(entity, link)] = _index_in(table[link], tables[PARENT[link]]["id"])
    # accounts: the distinct (institution, fund) pairs of the claims, the rows account.parquet
    # supplies first in its order, then the others in order of first appearance (as the engine
    # orders derived rows: it decides which row gets a fen on equal remainders)
    inst, fund = inp.links[("claim", "institution")], inp.links[("claim", "fund")]
    n_fund = inp.size("fund")
    ok = (inst >= 0) & (fund >= 0)
    key = inst * n_fund + fund
    uniq, first, inverse = np.unique(key[ok], return_index=True, return_inverse=True)
    supplied = folder / "account.parquet"
    position = np.full(len(uniq), len(uniq) + len(first), dtype=np.int64)
    if supplied.is_file():
        at = {v: k for k, v in enumerate(pq.read_table(supplied, columns=["id"])["id"].to_pylist())}
        names = [f"{i}|{f}" for i, f in zip(inp.ids["institution"][uniq // n_fund].tolist(),
                                            inp.ids["fund"][uniq % n_fund].tolist(), strict=True)]
        position = np.array([at.get(n, len(at) + len(uniq)) for n in names], dtype=np.int64)
    order = np.lexsort((first, position))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    account = np.full(len(inst), -1, dtype=np.int64)
    account[ok] = rank[inverse.reshape(-1)]
    a_inst, a_fund = uniq[order] // n_fund, uniq[order] % n_fund
    inp.links[("claim", "account")] = account
    inp.links[("account", "institution")] = a_inst
    inp.links[("account", "fund")] = a_fund
    inp.ids["account"] = np.array([f"{i}|{f}" for i, f in zip(inp.ids["institution"][a_inst].tolist(),
                                                                inp.ids["fund"][a_fund].tolist(), strict=True)],
                                  dtype=object)
    _account_inputs(folder, inp)
    return inp


def _account_inputs(folder: Path, inp: Inputs) -> None:
    """Inputs given on account rows (account.parquet), placed on the accounts derived from the
    claims by id; an account no row names reads null as 0 / false."""
    path = folder / "account.parquet"
    if not path.is_file():
        return
    table = pq.read_table(path)
    at = {v: k for k, v in enumerate(table["id"].to_pylist())}
    rows = np.array([at.get(v, -1) for v in inp.ids["account"].tolist()], dtype=np.int64)
    cols = {}
    for name in table.column_names:
        if name in ("id", "institution", "fund"):
            continue
        values = table[name].to_pylist()
        cols[name] = np.array([values[r] if r >= 0 and values[r] is not None else 0 for r in rows.tolist()],
                              dtype=bool if pa.types.is_boolean(table[name].type) else float)
    inp.cols["account"] = cols


# ---- money ----------------------------------------------------------------------------------------
def fen(values) -> np.ndarray:
    """Amounts in whole fen, rounded half away from zero (float noise within a millionth is a half)."""
    x = np.asarray(values, dtype=float)
    scaled = np.abs(x) * 100.0
    low = np.floor(scaled)
    frac = scaled - low
    up = (frac > 0.5) | (np.abs(frac - 0.5) <= np.maximum(1e-6, 2 * np.spacing(scaled)))
    return (np.sign(x) * (low + up)).astype(np.int64)


def allocate_fen(group_total: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Split each group's total (rounded to the fen) over its rows in proportion to the weights:
    shares floored to the fen, the fens left over one each to the largest remainders (ties:
    earlier row). Weights are non-negative here; a group without weight gets nothing."""
    n, size = len(weights), len(group_total)
    total = fen(group_total)
    weight_sum = np.bincount(groups, weights=weights, minlength=size)
    denom = weight_sum[groups]
    has = denom != 0
    exact = np.zeros(n)
    exact[has] = total[groups[has]] * (weights[has] / denom[has])
    floor = np.floor(np.round(exact, 6)).astype(np.int64)  # a share within a millionth of a fen is whole
    remainder = np.round(exact - floor, 7)
    leftover = total - np.bincount(groups[has], weights=floor[has], minlength=size).astype(np.int64)
    leftover[np.bincount(groups[has], minlength=size) == 0] = 0
    key = np.where(has, groups, size)
    order = np.lexsort((np.arange(n), -remainder, key))
    ranked = key[order]
    rank = np.arange(n) - np.searchsorted(ranked, ranked, side="left")
    extra = np.zeros(n, dtype=np.int64)
    extra[order] = (ranked < size) & (rank < np.append(leftover, 0)[ranked])
    return np.where(has, floor + extra, 0) / 100.0


def exact_sum(values: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """Sum per group as the policy language sums (`sum(...)`): each value rounded to a millionth,
    added as integers — exact, so the order of the rows does not matter; float sums when the
    column's millionths do not fit 2**62. Integers are summed as two exact float bincounts of
    their high and low 24 bits (each partial sum stays below 2**53)."""
    q = np.round(np.asarray(values, dtype=float) * 1e6)
    if not np.isfinite(q).all() or np.abs(q).sum() >= 2.0 ** 62:
        return np.bincount(groups, weights=values, minlength=size)
    q = q.astype(np.int64)
    high, low = q >> 24, q & 0xFFFFFF
    total = (np.bincount(groups, weights=high, minlength=size).astype(np.int64) << 24) \
        + np.bincount(groups, weights=low, minlength=size).astype(np.int64)
    return total / 1e6


def _bands(amount, edges, rates, base):
    """Cumulative bands (分段累计): each rate applies to the part of the amount in its band."""
    total = np.zeros(len(amount))
    low = 0.0
    for i, rate in enumerate(rates):
        high = edges[i] * base if i < len(edges) else np.inf
        piece = np.clip(amount - low, 0.0, None)
        if i < len(edges):
            piece = np.minimum(piece, np.maximum(high - low, 0.0))
        total = total + piece * rate
        low = high
    return total


def _div(a, b):
    out = np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b)))
    np.divide(a, b, out=out, where=np.asarray(b) != 0)
    return out


# ---- Zibo DIP settlement in numpy -----------------------------------------------------------------
def supplied_groups(groups, n: int) -> dict:
    """The grouping outputs of claims that supply their DIP group, as synthetic claims do (`medpay
    synth --with-groups`): no secondary diagnosis, age or discharge status, so the auxiliary
    catalogue coefficient is 1 and the score is the computed one."""
    given = np.asarray(groups.tolist() if isinstance(groups, Codes) else groups, dtype=object)
    return {"dip_group": given, "dip_group_rule": np.full(n, "supplied", dtype=object),
            "dip_group_match": np.full(n, "", dtype=object), "severity_level": np.zeros(n),
            "severity_band": np.full(n, "0", dtype=object), "age_band": np.full(n, "unknown", dtype=object),
            "auxiliary_coefficient": np.ones(n)}


def zibo_numpy(inp: Inputs, catalogue: dict[str, tuple[float, float]]) -> dict[str, dict[str, np.ndarray]]:
    """The Zibo city-year: claim scores, fund budget and point value, accounts, institutions."""
    p = ZIBO
    c, i, f = inp.cols["claim"], inp.cols["institution"], inp.cols["fund"]
    n, n_inst, n_fund = inp.size("claim"), inp.size("institution"), inp.size("fund")
    n_acct = inp.size("account")
    c_inst, c_fund, c_acct = (inp.links[("claim", k)] for k in ("institution", "fund", "account"))
    a_inst, a_fund = inp.links[("account", "institution")], inp.links[("account", "fund")]

    # institutions: class, coefficient 二（三）3
    kind = i.get("kind", np.full(n_inst, ""))
    level, grade_a = i["level"], i["grade_a"]
    general = grade_a & (kind == "general")
    inst_class = np.where(kind == "township", np.where(grade_a, "township_a", "township_other"),
                          np.where(level == 3, np.where(general, "tertiary_general_a", "tertiary_other"),
                                   np.where(level == 2, np.where(general, "secondary_general_a", "secondary_other"),
                                            "primary_community")))
    primary = np.isin(inst_class, ["primary_community", "township_a", "township_other"])
    tcm = kind == "tcm"
    basic = np.zeros(n_inst)
    for name, value in p["basic_coefficient"].items():
        basic[inst_class == name] = value
    coefficient = (basic + np.where(primary, p["bonus_primary"], 0.0) + np.where(tcm, p["bonus_tcm"], 0.0)
                   + np.where(i["key_discipline"], p["bonus_key_discipline"], 0.0))

    # claims: payment method 二（二）, DIP group, case type and score 二（三）2
    n_inst_plus = np.append(i["level"], 0.0)
    level = n_inst_plus[np.where(c_inst >= 0, c_inst, n_inst)]
    cat, setting = c["category"], c["setting"]
    method = np.zeros(n, dtype=np.int8)  # dip; later rules are overridden by earlier ones
    method[either(setting, ("outpatient", "chronic_outpatient"))] = 5
    method[either(cat, ("psychiatric", "hospice")) & eq(setting, "inpatient")] = 4
    method[eq(cat, "single_disease")] = 3
    method[either(cat, ("hemodialysis", "peritoneal_dialysis"))] = 2
    method[c["out_of_area"] | c.get("manual_reimbursement", False)] = 1
    dip, per_diem, single, fixed = method == 0, method == 4, method == 3, method == 2
    fixed_route = per_diem | single | fixed
    zeros = np.zeros(n)
    los = c.get("los_days", zeros)
    days = np.zeros(n)
    if "admit_date" in c and "discharge_date" in c:
        days = (np.asarray(c["discharge_date"], dtype="datetime64[D]")
                - np.asarray(c["admit_date"], dtype="datetime64[D]")).astype(float)
    bed_days = np.maximum(1, np.where(los > 0, los, days))
    pd_table, std_table = zibo_rate_tables()
    cat_list = np.asarray(cat.tolist() if isinstance(cat, Codes) else cat, dtype=object)
    pd_rate = np.array([pd_table.get((k, float(v)), 0.0) for k, v in zip(cat_list.tolist(), level.tolist(),
                                                                          strict=True)])
    pd_rate = np.where(per_diem, pd_rate, 0.0)
    pd_payment = np.where(per_diem, pd_rate * bed_days, 0.0)
    codes = np.asarray(c.get("single_disease_code", np.full(n, "")), dtype=object)
    sd_standard = np.where(single, [std_table.get(k, 0.0) for k in codes.tolist()], 0.0)
    fx_amount = np.where(fixed, [std_table.get(k, 0.0) for k in cat_list.tolist()], 0.0)
    standard = np.where(per_diem, pd_payment, np.where(single, sd_standard, np.where(fixed, fx_amount, 0.0)))
    table_avg, cases = text_map(c["dip_group"], catalogue, 2)
    base_avg = catalogue.get(p["base_group"], (0.0, 0.0))[0]
    group_avg = np.where(dip, table_avg, 0.0)
    group_score = np.where((group_avg > 0) & (base_avg > 0), group_avg / (base_avg or 1.0) * p["base_score"], 0.0)
    kind_of_group = np.where(dip, np.where(cases >= p["core_group_min_cases"], "core", "comprehensive"), "none")
    expert = c.get("expert_score", zeros)
    by_group = (group_score > 0) & (group_avg > 0)
    dip_priced = dip & ((expert > 0) | by_group)
    priced = np.where(dip, dip_priced, np.where(per_diem, pd_rate > 0, np.where(
        single, sd_standard > 0, np.where(fixed, fx_amount > 0, True))))
    ratio = np.zeros(n)
    np.divide(c["total_cost"], group_avg, out=ratio, where=dip & (group_avg > 0))
    low = dip & by_group & (ratio <= p["low_cost_ratio"])
    high = dip & by_group & ~low & (ratio >= p["high_cost_ratio"])
    normal = dip & by_group & ~low & ~high
    case_type = np.where(~dip, "none", np.where(expert > 0, "expert", np.where(
        ~by_group, "pending", np.where(low, "low", np.where(high, "high", "normal")))))
    case_score = np.where(low, group_score * ratio,
                          np.where(high, group_score * (ratio - 1), np.where(normal, group_score, 0.0)))
    score = np.where(case_type == "expert", expert, case_score)
    adjusted = score * np.where(c_inst >= 0, coefficient[np.maximum(c_inst, 0)], 0.0)

    # patient share (benefit schedule assumed; C11)
    total, self_pay = c["total_cost"], c.get("self_pay_items", zeros)
    refused = c.get("refused_cost", zeros)
    cost_base = np.where(fixed_route, standard, np.maximum(0, total - self_pay))
    self_pay_paid = np.where(fixed_route, self_pay, np.minimum(self_pay, total))
    outpatient = either(setting, ("outpatient", "chronic_outpatient"))
    ded_std = np.where(outpatient, 0.0, _by_level(level, {1.0: 300.0, 2.0: 600.0, 3.0: 900.0}))
    ded = np.minimum(cost_base, ded_std)
    coins = _by_level(level, {1.0: 0.10, 2.0: 0.15, 3.0: 0.20})
    patient = self_pay_paid + ded + (cost_base - ded) * coins
    payable = cost_base - ded - (cost_base - ded) * coins - refused
    pd_fund = np.where(per_diem, payable, 0.0)
    margin = np.where(fixed_route & priced, standard - (total - self_pay) - refused, 0.0)

    # funds: budget waterfall 二（一）
    ok_acct = c_acct >= 0

    def acct_sum(values, where):
        keep = where & ok_acct
        return exact_sum(values[keep], c_acct[keep], n_acct)

    a_cols = inp.cols.get("account", {})
    signed = a_cols.get("signed_persons", np.zeros(n_acct))
    chronic_signed = a_cols.get("chronic_signed_persons", np.zeros(n_acct))
    revenue = f["revenue"]
    reserve = revenue * p["reserve_rate"]
    fund_signed = f["signed_persons"] if "signed_persons" in f else exact_sum(signed, a_fund, n_fund)
    b_go = f["outpatient_quota"] * fund_signed
    b_co = f["last_year_chronic_outpatient"] * (1 + f["chronic_cost_growth"]) * (1 + f["chronic_incidence_change"])
    b_oa = f["last_year_out_of_area"] * (1 + f["out_of_area_growth"])
    b_om = f["last_year_other_methods"] * (1 + f["other_methods_growth"])
    b_ci = f["critical_illness_premium"] * f["insured_persons"]
    points_budget = revenue - reserve - b_go - b_co - b_oa - b_om - b_ci
    s_go = np.maximum(0, f["actual_general_outpatient"] - b_go)
    s_co = np.maximum(0, f["actual_chronic_outpatient"] - b_co)
    s_oa = np.maximum(0, f["actual_out_of_area"] - b_oa)
    s_om = np.maximum(0, f["actual_other_methods"] - b_om)
    topup = np.minimum(reserve, s_go + s_co + s_oa + s_om)
    remaining = reserve - topup
    settlement_total = points_budget + remaining * p["reserve_surplus_to_dip_rate"]
    adjustment_fund = remaining * p["reserve_surplus_to_adjustment_rate"]

    # DIP scores summed per fund and per account; point value; allocation to the fen 二（三）4（3）
    keep = dip_priced & (c_fund >= 0)
    fund_score = exact_sum(adjusted[keep], c_fund[keep], n_fund)
    acct_score = acct_sum(adjusted, dip_priced)
    acct_cost = acct_sum(c["fund_cost"] - refused, dip_priced)
    violations = acct_sum(refused, dip_priced)
    points_payment = allocate_fen(settlement_total, acct_score, a_fund)
    overspend = np.maximum(0, acct_cost - points_payment)
    unreasonable = a_cols.get("unreasonable_overspend", np.zeros(n_acct, bool))
    requested = np.where(unreasonable, 0.0, overspend * p["overspend_share_rate"])
    fund_requested = exact_sum(requested, a_fund, n_fund)
    paid = fen(np.minimum(adjustment_fund, fund_requested)) / 100.0
    share = allocate_fen(paid, requested, a_fund)
    presettled = zibo_presettled(c, dip, c_fund, c_acct, n_fund, n_acct, points_budget / 12)
    deposits = a_cols.get("deposit_deductions", np.zeros(n_acct))
    assessment = np.full(n_inst, p["default_assessment_factor"])
    acct_clearing = points_payment * assessment[a_inst] - presettled - violations - deposits
    capitation = signed * f["outpatient_quota"][a_fund]
    chronic_capitation = chronic_signed * f["chronic_quota"][a_fund]
    standard_payments = acct_sum(payable, priced & (fixed | single))
    per_diem_total = acct_sum(pd_fund, priced & per_diem)
    other_amount = capitation + chronic_capitation + standard_payments + per_diem_total
    other_clearing = other_amount - a_cols.get("other_methods_settled", np.zeros(n_acct))

    # institutions: sums over their accounts; clearing 二（三）4（4）; indicators 二（四）
    def per_inst(values):
        return exact_sum(values, a_inst, n_inst)
    inst_payment = per_inst(points_payment)
    clearing = inst_payment * assessment - per_inst(presettled) - per_inst(violations) - per_inst(deposits)
    inst_share = per_inst(share)
    ok_inst = c_inst >= 0
    stay = either(setting, ("inpatient", "day_surgery")) & ok_inst
    stays = np.bincount(c_inst[stay], minlength=n_inst).astype(float)
    stay_cost = exact_sum(total[stay], c_inst[stay], n_inst)
    inst_total = exact_sum(total[ok_inst], c_inst[ok_inst], n_inst)
    inst_self_pay = exact_sum(self_pay[ok_inst], c_inst[ok_inst], n_inst)
    return {
        "claim": {"payment_method": np.array(PAYMENT_METHODS)[method], "fixed_standard_route": fixed_route,
                  "institution_level": level, "bed_days": bed_days, "per_diem_rate": pd_rate,
                  "per_diem_payment": pd_payment, "single_disease_standard": sd_standard,
                  "fixed_standard_amount": fx_amount, "standard": standard, "group_avg_cost": group_avg,
                  "base_group_avg_cost": np.full(n, base_avg), "group_score": group_score,
                  "group_annual_cases": cases, "group_kind": kind_of_group, "dip_priced": dip_priced,
                  "priced": priced, "pending_review": ~priced, "in_points_pool": dip_priced, "cost_ratio": ratio,
                  "case_type": case_type, "case_score": case_score, "score": score, "adjusted_score": adjusted,
                  "cost_base": cost_base, "self_pay_paid": self_pay_paid, "deductible_standard": ded_std,
                  "deductible_due": ded, "coinsurance": coins, "patient_paid": patient, "fund_payable": payable,
                  "per_diem_fund_payment": pd_fund, "method_fund_payment": np.where(dip | (method == 5), 0.0, payable),
                  "institution_margin": margin, **supplied_groups(c["dip_group"], n)},
        "fund": {"signed_persons": fund_signed, "reserve": reserve, "budget_general_outpatient": b_go,
                 "budget_chronic_outpatient": b_co,
                 "budget_out_of_area": b_oa, "budget_other_methods": b_om, "budget_critical_illness": b_ci,
                 "points_budget": points_budget, "shortfall_general_outpatient": s_go,
                 "shortfall_chronic_outpatient": s_co, "shortfall_out_of_area": s_oa,
                 "shortfall_other_methods": s_om, "reserve_topup": topup,
                 "shortfall_uncovered": s_go + s_co + s_oa + s_om - topup, "reserve_remaining": remaining,
                 "points_settlement_total": settlement_total, "adjustment_fund": adjustment_fund,
                 "monthly_points_budget": points_budget / 12,
                 "total_adjusted_score": fund_score, "point_value": _div(settlement_total, fund_score),
                 "overspend_share_requested": fund_requested, "overspend_share_paid": paid,
                 "overspend_share_ratio": np.where(fund_requested > 0,
                                                   np.minimum(1, _div(adjustment_fund, fund_requested)), 1.0),
                 "adjustment_fund_remaining": adjustment_fund - paid},
        "account": {"total_adjusted_score": acct_score, "points_payment": points_payment,
                    "monthly_presettled": presettled,
                    "violation_deductions": violations, "clearing_amount": acct_clearing, "fund_cost": acct_cost,
                    "overspend": overspend, "overspend_share_requested": requested, "overspend_share": share,
                    "year_end_payment": acct_clearing + share, "capitation_amount": capitation,
                    "chronic_capitation_amount": chronic_capitation, "standard_payments": standard_payments,
                    "per_diem_fund_total": per_diem_total, "other_methods_amount": other_amount,
                    "other_methods_clearing": other_clearing},
        "institution": {"institution_class": inst_class, "primary_care": primary, "tcm": tcm,
                        "coefficient": coefficient, "assessment_factor": assessment,
                        "total_adjusted_score": per_inst(acct_score), "points_payment": inst_payment,
                        "monthly_presettled": per_inst(presettled), "violation_deductions": per_inst(violations),
                        "deposit_deductions": per_inst(deposits), "clearing_amount": clearing,
                        "working_capital_advance": i["last_year_monthly_payment"].copy(),
                        "fund_cost": per_inst(acct_cost), "overspend": per_inst(overspend),
                        "overspend_share": inst_share, "year_end_payment": clearing + inst_share,
                        "other_methods_amount": per_inst(other_amount),
                        "other_methods_clearing": per_inst(other_clearing), "inpatient_cases": stays,
                        "average_inpatient_cost": _div(stay_cost, stays), "self_pay_share": _div(inst_self_pay,
                                                                                                  inst_total)},
    }


def zibo_presettled(c, dip, c_fund, c_acct, n_fund: int, n_acct: int, monthly_budget: np.ndarray) -> np.ndarray:
    """Monthly pre-settlement 二（三）4（2）: each account's DIP bookings of a month, scaled down by
    min(1, the fund's monthly budget / the fund's DIP bookings of that month), summed over months."""
    month = np.asarray(c["discharge_date"], dtype="datetime64[M]").astype(np.int64)
    month = month - month.min() if len(month) else month
    n_month = int(month.max()) + 1 if len(month) else 1
    keep = dip & (c_fund >= 0) & (c_acct >= 0)
    fm = c_fund[keep] * n_month + month[keep]
    city = exact_sum(c["fund_cost"][keep], fm, n_fund * n_month)
    budget = np.repeat(monthly_budget, n_month)
    ratio = np.where(city > 0, np.minimum(1, _div(budget, city)), 1.0)
    am = c_acct[keep] * n_month + month[keep]
    booked = exact_sum(c["fund_cost"][keep], am, n_acct * n_month)
    fund_of_am = np.zeros(n_acct * n_month, dtype=np.int64)
    fund_of_am[am] = c_fund[keep]
    per_month = booked * ratio[fund_of_am * n_month + np.arange(n_acct * n_month) % n_month]
    return per_month.reshape(n_acct, n_month).sum(axis=1)


def zibo_rate_tables() -> tuple[dict[tuple[str, float], float], dict[str, float]]:
    """The illustrative per-diem rates (category, level) and fixed standards (code) of the Zibo policy."""
    tables = ROOT / "policies" / "tables"
    with open(tables / "zibo_per_diem.csv", encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        per_diem = {(r["category"], float(r["level"])): float(r["rate"]) for r in rows}
    with open(tables / "zibo_fixed_standards.csv", encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        standards = {r["code"]: float(r["standard"]) for r in rows}
    return per_diem, standards


# ---- Jingdezhen package settlement in numpy -------------------------------------------------------
def chain_max_before(values: np.ndarray, chain: np.ndarray, admit: np.ndarray, discharge: np.ndarray) -> np.ndarray:
    """Highest value earlier on the claim's chain (by admission, discharge, then row); 0 for the first."""
    out = np.full(len(values), -np.inf)
    rows = np.flatnonzero(chain >= 0)
    out[chain < 0] = 0.0
    if len(rows):
        def sortable(d):
            as_int = d.astype("datetime64[D]").astype(np.int64)
            return np.where(np.isnat(d), np.iinfo(np.int64).max, as_int)
        s = rows[np.lexsort((rows, sortable(discharge[rows]), sortable(admit[rows]), chain[rows]))]
        g = chain[s]
        start = np.ones(len(s), dtype=bool)
        start[1:] = g[1:] != g[:-1]
        first = np.flatnonzero(start)
        position = np.arange(len(s)) - first[np.cumsum(start) - 1]
        acc = np.full(len(s), -np.inf)
        v = values[s]
        for p in range(1, int(position.max()) + 1):
            at = np.flatnonzero(position == p)
            acc[at] = np.maximum(acc[at - 1], v[at - 1])
        out[s] = acc
    out[np.isneginf(out)] = 0.0
    return out


def _by_level(level: np.ndarray, table: dict[float, float]) -> np.ndarray:
    out = np.zeros(len(level))
    for key, value in table.items():
        out[level == key] = value
    return out


def jingdezhen_numpy(inp: Inputs) -> dict[str, dict[str, np.ndarray]]:
    """The Jingdezhen city-year: claim benefits, then the package settlement of each community."""
    p = JINGDEZHEN
    c, m, i = inp.cols["claim"], inp.cols["community"], inp.cols["institution"]
    n = inp.size("claim")
    c_inst = inp.links[("claim", "institution")]
    level = np.where(c_inst >= 0, i["level"][np.maximum(c_inst, 0)], 0.0)
    deductible_standard = _by_level(level, p["deductible_by_level"])
    n_comm = inp.size("community")
    inst_comm = inp.links[("institution", "community")]
    comm = np.where(c_inst >= 0, inst_comm[np.maximum(c_inst, 0)], -1)
    in_community = comm >= 0
    owes = either(c["setting"], ("inpatient", "day_surgery"))
    on_chain = owes & in_community & ~c.get("out_of_area", np.zeros(n, dtype=bool))  # C8: inside the 医共体
    applicable_standard = np.where(on_chain, deductible_standard, 0.0)
    repeat = c.get("repeat_test_cost", np.zeros(n))
    refused = c.get("refused_cost", np.zeros(n))
    self_pay = c["self_pay_items"]
    chargeable = np.maximum(0, c["total_cost"] - repeat)
    self_pay_paid = np.minimum(self_pay, chargeable)
    cost_base = np.maximum(0, chargeable - self_pay)
    episode = inp.links[("claim", "episode")]
    chain = np.where(episode >= 0, episode * (n_comm + 1) + comm + 1, -1)  # C8: a chain per episode × 医共体
    earlier = chain_max_before(applicable_standard, chain, c["admit_date"], c["discharge_date"])
    deductible_due = np.where(~owes, 0.0, np.where(~on_chain, np.minimum(cost_base, deductible_standard),
                                                   np.minimum(cost_base, np.maximum(0, deductible_standard - earlier))))
    coinsurance = _by_level(level, p["coinsurance_by_level"])
    shared = (cost_base - deductible_due) * coinsurance
    patient_paid = self_pay_paid + deductible_due + shared
    fund_payable = cost_base - deductible_due - shared - refused
    in_scope = in_community & ~c.get("public_health_emergency", np.zeros(n, dtype=bool))
    method = c["payment_method"] if "payment_method" in c else np.full(n, "fee_for_service")

    # communities 四（三）–四（五）
    keep = in_scope
    eligible = m["meets_tight_standard"] & m["dip_in_force"] & m["city_level_pooling"]
    base = np.where(eligible, m["last_year_inpatient"] + m["last_year_general_outpatient"]
                    + m["last_year_chronic_outpatient"] + m["last_year_negotiated_drugs"]
                    + m["last_year_dual_channel_drugs"] + m["last_year_out_of_county"], 0.0)
    growth = np.where(eligible, np.minimum(m["growth_rate"], m["city_revenue_growth"]), 0.0)
    total = np.where(eligible, base * (1 + growth) + m["package_adjustment"], 0.0)  # 三: all 0 when not eligible
    risk_fund = total * p["risk_fund_rate"]
    monthly = np.where(eligible, p["monthly_prepayment_rate"] * np.maximum(0, total - m["last_year_out_of_county"]),
                       0.0)
    annual_prepayment = p["prepayment_months"] * monthly
    spending = exact_sum(fund_payable[keep], comm[keep], n_comm) + m["actual_out_of_county"]
    overspend = np.where(eligible, np.maximum(0, spending - total), 0.0)
    surplus = np.where(eligible, np.maximum(0, total - spending), 0.0)
    fund_share = np.where(m["unreasonable_overspend"], 0.0,
                          np.minimum(_bands(overspend, p["overspend_edges"], p["overspend_rates"], total), risk_fund))
    retained = _bands(surplus, p["surplus_edges"], p["surplus_rates"], total)
    payment = np.where(~eligible, 0.0, np.where(overspend > 0, total + fund_share, spending + retained))
    balance = np.where(eligible, payment - m["actual_out_of_county"] - annual_prepayment, 0.0)
    inside = spending - m["actual_out_of_county"]  # J1: the share's base is spending inside the 医共体
    primary_share = np.where(inside > 0, _div(m["primary_spending"], inside), 0.0)
    full = m["assessment_score"] >= p["assessment_pass_score"]
    factor = np.where(full, 1.0, np.clip(m["assessment_score"] / 100, 0, 1))
    year_end = np.where(balance > 0, balance * factor, balance)
    return {
        "claim": {"institution_level": level, "deductible_standard": deductible_standard,
                  "applicable_standard": applicable_standard, "chargeable_cost": chargeable,
                  "self_pay_paid": self_pay_paid,
                  "cost_base": cost_base, "deductible_due": deductible_due,
                  "base_coinsurance": coinsurance, "coinsurance": coinsurance, "patient_paid": patient_paid,
                  "fund_payable": fund_payable, "institution_borne": repeat + refused, "in_package_scope": in_scope,
                  "excluded_cost": repeat, "in_community": in_community, "owes_deductible": owes,
                  "on_community_chain": on_chain,
                  "method_fund_payment": np.where(either(method, ("drg", "dip", "capitation")), 0.0, fund_payable)},
        "community": {"package_eligible": eligible, "package_base": base, "growth_applied": growth,
                      "package_total": total, "risk_fund": risk_fund,
                      "prepayment_out_of_county": m["last_year_out_of_county"].copy(),
                      "monthly_prepayment": monthly, "annual_prepayment": annual_prepayment,
                      "actual_spending": spending, "in_community_spending": inside, "overspend": overspend,
                      "overspend_ratio": np.where(total > 0, _div(overspend, total), 0.0),
                      "fund_overspend_share": fund_share, "community_overspend_share": overspend - fund_share,
                      "surplus": surplus, "surplus_ratio": np.where(total > 0, _div(surplus, total), 0.0),
                      "retained_surplus": retained, "returned_surplus": surplus - retained,
                      "annual_fund_payment": payment, "year_end_balance": balance,
                      "primary_share": primary_share, "primary_share_ok": primary_share >= p["primary_share_floor"],
                      "primary_spending_total": m["primary_spending"].copy(), "is_community": np.ones(n_comm, bool),
                      "has_fund_packages": np.zeros(n_comm, bool),
                      "out_of_county_share": np.where(spending > 0, _div(m["actual_out_of_county"], spending), 0.0),
                      "assessment_full_payment": full, "assessment_factor": factor,
                      "year_end_payment": year_end, "assessment_withheld": balance - year_end},
    }


# ---- plain Python, claim by claim -----------------------------------------------------------------
def zibo_institution_coefficients(inp: Inputs) -> list[float]:
    """The institution coefficient of each institution, in plain Python."""
    p = ZIBO
    i = inp.cols["institution"]
    kinds = i["kind"].tolist() if "kind" in i else [""] * inp.size("institution")
    out = []
    for kind, level, grade_a, key in zip(kinds, i["level"].tolist(), i["grade_a"].tolist(),
                                         i["key_discipline"].tolist(), strict=True):
        if kind == "township":
            cls = "township_a" if grade_a else "township_other"
        elif level == 3:
            cls = "tertiary_general_a" if grade_a and kind == "general" else "tertiary_other"
        elif level == 2:
            cls = "secondary_general_a" if grade_a and kind == "general" else "secondary_other"
        else:
            cls = "primary_community"
        primary = cls in ("primary_community", "township_a", "township_other")
        out.append(p["basic_coefficient"][cls] + (p["bonus_primary"] if primary else 0.0)
                   + (p["bonus_tcm"] if kind == "tcm" else 0.0) + (p["bonus_key_discipline"] if key else 0.0))
    return out


def zibo_claim_lists(inp: Inputs, rows: np.ndarray | None = None) -> dict[str, list]:
    """The claim inputs of the Zibo claim rules as Python lists (one entry per claim)."""
    c = inp.cols["claim"]
    pick = (lambda a: a) if rows is None else (lambda a: a[rows])
    n = inp.size("claim") if rows is None else len(rows)
    coefficient = np.array(zibo_institution_coefficients(inp) + [0.0])
    return {"out_of_area": pick(c["out_of_area"]).tolist(),
            "manual_reimbursement": pick(c.get("manual_reimbursement", np.zeros(inp.size("claim"), bool))).tolist(),
            "category": pick(c["category"]).tolist(), "setting": pick(c["setting"]).tolist(),
            "dip_group": pick(c["dip_group"]).tolist(), "total_cost": pick(c["total_cost"]).tolist(),
            "expert_score": pick(c.get("expert_score", np.zeros(inp.size("claim")))).tolist(),
            "coefficient": coefficient[pick(inp.links[("claim", "institution")])].tolist(),
            "account": pick(inp.links[("claim", "account")]).tolist(), "n": n}


def zibo_loop(claims: dict[str, list], catalogue: dict[str, tuple[float, float]]) -> dict[str, list]:
    """The Zibo claim rules in plain Python, one claim at a time (every claim variable of the
    policy); also each account's DIP score."""
    p = ZIBO
    base_avg = catalogue.get(p["base_group"], (0.0, 0.0))[0]
    low_limit, high_limit, core_min, base_score = (p["low_cost_ratio"], p["high_cost_ratio"],
                                                   p["core_group_min_cases"], p["base_score"])
    out: dict[str, list] = {k: [] for k in ("payment_method", "group_avg_cost", "group_annual_cases", "group_score",
                                            "group_kind", "cost_ratio", "case_type", "case_score", "score",
                                            "adjusted_score")}
    (methods, averages, cases_of, group_scores, kinds, ratios, types, case_scores, scores,
     adjusted_scores) = out.values()
    account_score: dict[int, int] = {}  # millionths, as the policy language sums
    for oa, manual, cat, setting, group, cost, expert, coef, account in zip(
            claims["out_of_area"], claims["manual_reimbursement"], claims["category"], claims["setting"],
            claims["dip_group"], claims["total_cost"], claims["expert_score"], claims["coefficient"],
            claims["account"], strict=True):
        if oa or manual:
            method = "fee_for_service"
        elif cat in ("hemodialysis", "peritoneal_dialysis"):
            method = "fixed_standard"
        elif cat == "single_disease":
            method = "single_disease"
        elif cat in ("psychiatric", "hospice") and setting == "inpatient":
            method = "per_diem"
        elif setting in ("outpatient", "chronic_outpatient"):
            method = "capitation"
        else:
            method = "dip"
        avg, cases = catalogue.get(group, (0.0, 0.0))
        if method == "dip":
            group_score = avg / base_avg * base_score if avg > 0 and base_avg > 0 else 0.0
            kind = "core" if cases >= core_min else "comprehensive"
            ratio = cost / avg if avg > 0 else 0.0
            priced = expert > 0 or (group_score > 0 and avg > 0)
            if not (group_score > 0 and avg > 0):
                case_type, case_score = "pending", 0.0
            elif ratio <= low_limit:
                case_type, case_score = "low", group_score * ratio
            elif ratio >= high_limit:
                case_type, case_score = "high", group_score * (ratio - 1)
            else:
                case_type, case_score = "normal", group_score
            if expert > 0:
                case_type = "expert"
        else:
            avg, group_score, kind, ratio, case_type, case_score, priced = 0.0, 0.0, "none", 0.0, "none", 0.0, False
        score = expert if case_type == "expert" else case_score
        adjusted = score * coef
        if priced and account >= 0:
            account_score[account] = account_score.get(account, 0) + round(adjusted * 1e6)
        methods.append(method)
        averages.append(avg)
        cases_of.append(cases)
        group_scores.append(group_score)
        kinds.append(kind)
        ratios.append(ratio)
        types.append(case_type)
        case_scores.append(case_score)
        scores.append(score)
        adjusted_scores.append(adjusted)
    out["account_score"] = {k: v / 1e6 for k, v in account_score.items()}  # type: ignore[assignment]
    return out


def jingdezhen_claim_lists(inp: Inputs) -> dict[str, list]:
    c, i = inp.cols["claim"], inp.cols["institution"]
    n = inp.size("claim")
    inst = inp.links[("claim", "institution")]
    return {"level": np.append(i["level"], 0.0)[inst].tolist(), "setting": c["setting"].tolist(),
            "total_cost": c["total_cost"].tolist(), "self_pay_items": c["self_pay_items"].tolist(),
            "repeat_test_cost": c.get("repeat_test_cost", np.zeros(n)).tolist(),
            "refused_cost": c.get("refused_cost", np.zeros(n)).tolist(),
            "emergency": c.get("public_health_emergency", np.zeros(n, bool)).tolist(),
            "out_of_area": c.get("out_of_area", np.zeros(n, bool)).tolist(),
            "episode": inp.links[("claim", "episode")].tolist(),
            "admit": c["admit_date"].astype("datetime64[D]").astype(np.int64).tolist(),
            "discharge": c["discharge_date"].astype("datetime64[D]").astype(np.int64).tolist(),
            "community": np.append(inp.links[("institution", "community")], -1)[inst].tolist()}


def jingdezhen_loop(claims: dict[str, list]) -> dict:
    """The Jingdezhen claim rules in plain Python: referral chains first (sorted), then claim by
    claim; also the package-scope spending of each community."""
    p = JINGDEZHEN
    deductibles, coinsurances = p["deductible_by_level"], p["coinsurance_by_level"]
    owes = [s in ("inpatient", "day_surgery") for s in claims["setting"]]
    on_chain = [o and community >= 0 and not away for o, community, away in
                zip(owes, claims["community"], claims["out_of_area"], strict=True)]  # C8: inside the 医共体
    standard = [deductibles.get(lv, 0.0) for lv in claims["level"]]
    applicable = [std if on else 0.0 for std, on in zip(standard, on_chain, strict=True)]
    earlier = [0.0] * len(standard)
    chained = sorted(((e, m), a, d, r) for r, (e, m, a, d) in  # C8: a chain per episode × 医共体
                     enumerate(zip(claims["episode"], claims["community"], claims["admit"], claims["discharge"],
                                   strict=True)) if e >= 0)
    last_episode, highest = None, 0.0
    for episode, _, _, row in chained:
        if episode != last_episode:
            last_episode, highest = episode, None
        earlier[row] = 0.0 if highest is None else highest
        highest = applicable[row] if highest is None else max(highest, applicable[row])
    payable, spending = [], {}
    for std, before, owe, on, level, cost, self_pay, repeat, refused, emergency, community in zip(
            standard, earlier, owes, on_chain, claims["level"], claims["total_cost"], claims["self_pay_items"],
            claims["repeat_test_cost"], claims["refused_cost"], claims["emergency"], claims["community"],
            strict=True):
        chargeable = max(0, cost - repeat)
        base = max(0, chargeable - self_pay)
        due = 0.0 if not owe else min(base, std) if not on else min(base, max(0, std - before))
        amount = base - due - (base - due) * coinsurances.get(level, 0.0) - refused
        payable.append(amount)
        if not emergency and community >= 0:  # millionths, as the policy language sums
            spending[community] = spending.get(community, 0) + round(amount * 1e6)
    return {"applicable_standard": applicable, "fund_payable": payable,
            "spending": {k: v / 1e6 for k, v in spending.items()}}


# ---- zen-engine -----------------------------------------------------------------------------------
class ZenZibo:
    """The Zibo claim rules as a JDM decision graph, evaluated claim by claim by zen-engine."""

    OUTPUTS = ("payment_method", "group_avg_cost", "group_annual_cases", "group_score", "group_kind", "cost_ratio",
               "case_type", "case_score", "score", "adjusted_score")

    def __init__(self, graph: Path = ZEN_GRAPH):
        import zen  # optional: pip install -e '.[bench]'
        self.engine = zen.ZenEngine()
        self.decision = self.engine.create_decision(graph.read_text(encoding="utf-8"))

    @staticmethod
    def contexts(claims: dict[str, list]) -> list[dict]:
        keys = ("out_of_area", "manual_reimbursement", "category", "setting", "dip_group", "total_cost",
                "expert_score", "coefficient")
        return [dict(zip(keys, values, strict=True)) for values in zip(*(claims[k] for k in keys), strict=True)]

    def evaluate(self, contexts: list[dict]) -> list[dict]:
        evaluate = self.decision.evaluate
        return [evaluate(ctx)["result"] for ctx in contexts]

    @classmethod
    def columns(cls, results: list[dict]) -> dict[str, np.ndarray]:
        out = {}
        for key in cls.OUTPUTS:
            values = [r[key] for r in results]
            out[key] = np.array(values, dtype=str if isinstance(values[0], str) else float)
        return out


# ---- comparison with the engine ---------------------------------------------------------------------
@dataclass
class Check:
    """How a reference compares with the engine: rows and columns compared, mismatching columns."""

    name: str
    rows: int = 0
    values: int = 0
    columns: list[str] = field(default_factory=list)
    mismatches: dict[str, dict] = field(default_factory=dict)
    not_covered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.values > 0

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "rows": self.rows, "values": self.values,
                "columns": len(self.columns), "mismatches": self.mismatches, "not_covered": self.not_covered}

    def line(self) -> str:
        verdict = "EQUAL" if self.ok else f"DIFFERENT in {', '.join(self.mismatches)}"
        return f"{self.name}: {self.values:,} values in {len(self.columns)} columns, {verdict}"


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def compare_column(check: Check, label: str, mine, theirs, money: bool, rel: float = 1e-9) -> None:
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    if mine.dtype.kind in "US" or theirs.dtype.kind in "USO":
        bad = mine.astype(str) != theirs.astype(str)
    elif mine.dtype == bool or theirs.dtype == bool:
        bad = mine.astype(bool) != theirs.astype(bool)
    elif money:
        bad = fen(mine) != fen(theirs)
    else:
        a, b = mine.astype(float), theirs.astype(float)
        bad = ~(np.isclose(a, b, rtol=rel, atol=1e-12) | (np.isnan(a) & np.isnan(b)))
    check.columns.append(label)
    check.values += len(mine)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        check.mismatches[label] = {"rows": int(bad.sum()), "first_row": first,
                                   "reference": _plain(mine[first]), "engine": _plain(theirs[first])}


def compare_with_engine(name: str, reference: dict[str, dict[str, np.ndarray]], ref_ids: dict[str, np.ndarray],
                        engine_columns: dict[str, dict[str, np.ndarray]], engine_ids: dict[str, np.ndarray],
                        money: dict[str, set[str]], rows: dict[str, np.ndarray] | None = None) -> Check:
    """Compare every column a reference computes with the engine's column of the same name;
    money to the fen, other numbers to 1e-9 relative, text and flags exactly. Rows are
    matched by id. `rows` restricts an entity to some rows (a sample)."""
    check = Check(name)
    for entity, columns in reference.items():
        theirs_ids = np.asarray(engine_ids[entity]).astype(str)
        wanted = np.asarray(ref_ids[entity]).astype(str)
        if rows and entity in rows:
            wanted = wanted[rows[entity]]
        position = {v: k for k, v in enumerate(theirs_ids.tolist())}
        at = np.array([position.get(v, -1) for v in wanted.tolist()], dtype=np.int64)
        if (at < 0).any():
            check.mismatches[f"{entity}.id"] = {"rows": int((at < 0).sum())}
            continue
        check.rows += len(at)
        for col, values in columns.items():
            label = f"{entity}.{col}"
            if col not in engine_columns[entity]:
                check.mismatches[label] = {"rows": len(at), "missing_in_engine": True}
                continue
            compare_column(check, label, values, np.asarray(engine_columns[entity][col])[at],
                           col in money.get(entity, set()))
        check.not_covered += sorted(f"{entity}.{c}" for c in engine_columns[entity] if c not in columns
                                    and not c.startswith("_"))
    return check


def load_graph() -> dict:
    return json.loads(ZEN_GRAPH.read_text(encoding="utf-8"))


# overspend (+) or surplus (−) of each community as a share of its package, cycled over communities:
# both bands of each side, the risk-fund cap (above 6.67%) and the third, nothing-kept band
VARIANT_TARGETS = (0.03, -0.05, 0.06, -0.12, 0.12, -0.20)
ITEMS = ("last_year_inpatient", "last_year_general_outpatient", "last_year_chronic_outpatient",
         "last_year_negotiated_drugs", "last_year_dual_channel_drugs", "last_year_out_of_county")


def _link_files(folder: Path, out: Path, names: tuple[str, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = out / name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to((folder / name).resolve())


def eligible_variant(folder: Path, out: Path, seed: int = 1, communities: int = 6) -> dict:
    """A copy of a Jingdezhen city-year whose communities meet the package preconditions and
    whose budgets are set so that the year-end clearing lands in every band: each community's
    package is its actual spending ÷ (1 + target), targets cycling over VARIANT_TARGETS. In
    `medpay synth` data each precondition holds on 10% of rows and every budget exceeds its
    spending, so neither the overspend bands nor the risk-fund cap would be exercised.
    Institutions are spread over at least `communities` communities; claims are linked."""
    _link_files(folder, out, ("fund.parquet", "claim.parquet", "meta.json"))
    comm = pq.read_table(folder / "community.parquet")
    inst = pq.read_table(folder / "institution.parquet")
    k = max(comm.num_rows, communities)
    comm = comm.take(pa.array(np.arange(k) % comm.num_rows))
    comm = comm.set_column(0, "id", pa.array([f"C{j}" for j in range(k)]))
    inst = inst.set_column(inst.column_names.index("community"), "community",
                           pa.array([f"C{j % k}" for j in range(inst.num_rows)]))
    pq.write_table(inst, out / "institution.parquet")
    rng = np.random.default_rng(seed)
    first = np.arange(k) < len(VARIANT_TARGETS)  # one community of each target is surely settled
    columns = {"meets_tight_standard": first | (rng.random(k) < 0.9), "dip_in_force": first | (rng.random(k) < 0.9),
               "city_level_pooling": first | (rng.random(k) < 0.9),
               "unreasonable_overspend": ~first & (rng.random(k) < 0.2)}
    for name, values in columns.items():
        comm = comm.set_column(comm.column_names.index(name), name, pa.array(values))
    pq.write_table(comm, out / "community.parquet")
    # this year's spending (it does not depend on the budget); then the budget that gives the target
    m = read_inputs(out).cols["community"]
    spending = jingdezhen_numpy(read_inputs(out))["community"]["actual_spending"]
    target = np.resize(np.array(VARIANT_TARGETS), k)
    total = spending / (1 + target)
    base = sum(m[name] for name in ITEMS)
    growth = np.minimum(m["growth_rate"], m["city_revenue_growth"])
    adjustment = np.where(total - m["package_adjustment"] > 0, m["package_adjustment"], 0.0)
    scale = (total - adjustment) / (base * (1 + growth))
    for name in ITEMS:
        comm = comm.set_column(comm.column_names.index(name), name, pa.array(m[name] * scale))
    comm = comm.set_column(comm.column_names.index("package_adjustment"), "package_adjustment", pa.array(adjustment))
    pq.write_table(comm, out / "community.parquet")
    return {"communities": k}


def overspend_variant(folder: Path, out: Path, factor: float = 6.0) -> dict:
    """A copy of a Zibo city-year in which the claims of every other institution charge the fund
    `factor` times as much, so that accounts overspend and the adjustment fund shares the
    overspend (pro rata when it is short). In `medpay synth` data the fund cost of the DIP cases
    is about 30% of the DIP payment, so no account would overspend. The funds get their
    `signed_persons` (as when the budget is drawn up before the accounts are known), enough for
    the general outpatient actuals, so that the reserve is not spent on that item and an adjustment
    fund remains. Other files are linked."""
    _link_files(folder, out, ("community.parquet", "institution.parquet", "meta.json"))
    funds = pq.read_table(folder / "fund.parquet")
    signed = np.ceil(funds["actual_general_outpatient"].to_numpy() / funds["outpatient_quota"].to_numpy())
    pq.write_table(funds.append_column("signed_persons", pa.array(signed)), out / "fund.parquet",
                   compression="zstd")
    claims = pq.read_table(folder / "claim.parquet")
    institutions = pq.read_table(folder / "institution.parquet", columns=["id"])["id"]
    row = _index_in(claims["institution"], institutions)
    scale = np.where((row >= 0) & (row % 2 == 0), factor, 1.0)
    cost = np.round(claims["fund_cost"].to_numpy() * scale, 2)
    claims = claims.set_column(claims.column_names.index("fund_cost"), "fund_cost", pa.array(cost))
    pq.write_table(claims, out / "claim.parquet", compression="zstd")
    return {"claims": claims.num_rows}


def band_counts(community: dict[str, np.ndarray]) -> dict[str, int]:
    """How many communities the clearing put in each band (of a Jingdezhen result)."""
    over, surplus = community["overspend_ratio"], community["surplus_ratio"]
    capped = (community["fund_overspend_share"] > 0) & np.isclose(community["fund_overspend_share"],
                                                                  community["risk_fund"])
    return {"eligible": int(community["package_eligible"].sum()),
            "overspend_to_5pct": int(((over > 0) & (over <= 0.05)).sum()),
            "overspend_5_to_10pct": int(((over > 0.05) & (over <= 0.10)).sum()),
            "overspend_above_10pct": int((over > 0.10).sum()), "risk_fund_cap_binds": int(capped.sum()),
            "surplus_below_10pct": int(((surplus > 0) & (surplus < 0.10)).sum()),
            "surplus_10_to_15pct": int(((surplus >= 0.10) & (surplus < 0.15)).sum()),
            "surplus_above_15pct": int((surplus >= 0.15).sum())}

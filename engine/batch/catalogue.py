"""Next year's DIP catalogue built from three years of claims (病种目录测算).

From the claims of the last three years (each claim's group given, or assigned from its codes by
the policy's grouping): a group's yearly cases (the mean over the three years) decide whether it
is a core group (at least `core_min`, inclusive) or a comprehensive one; its average cost is the
mean of its yearly average costs weighted by year (1:2:7 unless told, as the national DIP
specification does: an assumed value, said so in the output); its standard score is its average
cost over the base group's × the base score; average costs are also given per institution level
(同级别). Amounts are summed in whole fen and averaged with exact fractions, then rounded half-up.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.batch import io as files
from engine.batch.synth import grouped_variables
from engine.errors import InputFault, SituationError
from engine.policy.spec import Policy
from engine.run.grouping import assign

WEIGHTS = (1, 2, 7)
WEIGHTS_ASSUMED = ("weights by year 1:2:7 (oldest to newest), as the national DIP technical specification; "
                   "the notice sets none")
LEVELS = (1, 2, 3)


@dataclass
class Spec:
    """What the catalogue is built for: the group variable and the base group, score and rules."""

    group: str
    base_group: str
    base_score: float = 1000.0
    core_min: float = 15.0
    weights: tuple[int, ...] = WEIGHTS
    names: dict[str, str] = field(default_factory=dict)  # group → name, from the current catalogue


@dataclass
class History:
    """Claims of the history, one entry per claim: group, cost in fen, discharge year, institution level."""

    group: np.ndarray
    fen: np.ndarray
    year: np.ndarray
    level: np.ndarray
    files: list[str]


def spec_of(policy: Policy, grouping: str | None = None, base_group: str | None = None,
            base_score: float | None = None, core_min: float | None = None,
            weights: tuple[int, ...] | None = None) -> Spec:
    """The spec from the policy: its grouped claim variable, its parameters base_group, base_score and
    core_group_min_cases where it has them; arguments given here win."""
    grouped = grouped_variables(policy)
    names = [n for n, g in grouped.items() if grouping in (None, g.name)]
    if not names:
        raise SituationError([InputFault("grouping", "the policy assigns no claim group with group(…) "
                                         + (f"of grouping '{grouping}'" if grouping else ""),
                                         "该政策没有以 group(…) 确定病种的结算记录变量")])
    params = policy.parameters

    def value(name: str, given, default):
        if given is not None:
            return given
        return params[name].versions[-1].value if name in params else default
    base = value("base_group", base_group, None)
    if not base:
        raise SituationError([InputFault("base_group", "give the base group (--base-group) or a base_group "
                                         "parameter in the policy", "请提供基准病种（--base-group）")])
    return Spec(names[0], str(base), float(value("base_score", base_score, 1000.0)),
                float(value("core_group_min_cases", core_min, 15.0)), tuple(weights or WEIGHTS),
                current_names(policy, names[0]))


def current_names(policy: Policy, group: str) -> dict[str, str]:
    """Group names of the policy's current catalogue (the table keyed by the group variable)."""
    for table in policy.tables.values():
        if table.key == [group] and "name" in table.columns:
            return {k[0]: str(v) for k, v in zip(table.index, table.columns["name"], strict=False)}
    return {}


def read_history(policy: Policy, folder: Path, spec: Spec) -> History:
    """Every claim file under `folder` (claim.parquet or claim.csv, e.g. one folder per year), with
    the institution file beside it for the levels; claims without their group are grouped."""
    claim_files = sorted(p for p in folder.rglob("claim.*") if p.suffix in files.SUFFIXES)
    if not claim_files:
        raise SituationError([InputFault(str(folder), "no claim.parquet or claim.csv under the history folder",
                                         "历史数据目录下没有 claim.parquet 或 claim.csv")])
    parts = [_read_claims(policy, path, spec) for path in claim_files]
    return History(*(np.concatenate([p[i] for p in parts]) for i in range(4)),
                   files=[str(p) for p in claim_files])


def _read_claims(policy: Policy, path: Path, spec: Spec) -> tuple[np.ndarray, ...]:
    claim = policy.model.entities["claim"]
    cols = files.read_entity(path, claim, frozenset())
    n = len(cols)
    for name in ("total_cost", "discharge_date"):
        if name not in cols.values or not np.asarray(cols.given[name]).all():
            raise SituationError([InputFault(f"{path.name}:{name}", "every claim of the history needs it",
                                             "历史数据中每条结算记录都必须提供")])
    group = np.full(n, "", dtype=object)
    given = np.asarray(cols.given.get(spec.group, np.zeros(n, bool)), bool)
    if given.any():
        group[given] = np.asarray(cols.values[spec.group], dtype=object)[given]
    if not given.all():
        grouping = grouped_variables(policy)[spec.group]
        fields = grouping.fields
        rows = np.flatnonzero(~given)
        values = {role: cols.values.get(name) for role, name in fields.items()}
        diagnosis = values.get("diagnosis")
        found = assign(grouping, np.asarray(diagnosis)[rows] if diagnosis is not None else np.full(len(rows), ""),
                       values["procedures"][rows] if values.get("procedures") is not None else None,
                       values["secondary"][rows] if values.get("secondary") is not None else None)
        group[rows] = found.group
    fen = np.round(np.asarray(cols.values["total_cost"], float) * 100).astype(np.int64)
    year = np.asarray(cols.values["discharge_date"], "datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
    return group, fen, year, _levels(policy, path, cols)


def _levels(policy: Policy, path: Path, cols) -> np.ndarray:
    """Each claim's institution level from the institution file beside the claims (0 unknown)."""
    n = len(cols)
    inst_file = files.entity_file(path.parent, "institution")
    link = cols.links.get("institution")
    if inst_file is None or link is None:
        return np.zeros(n)
    inst = files.read_entity(inst_file, policy.model.entities["institution"])
    ids = [str(i) for i in (inst.ids.to_pylist() if hasattr(inst.ids, "to_pylist") else inst.ids)]
    level = dict(zip(ids, np.asarray(inst.values.get("level", np.zeros(len(ids))), float).tolist(), strict=True))
    names = link.to_pylist() if hasattr(link, "to_pylist") else list(link)
    return np.array([level.get(str(v), 0.0) if v is not None else 0.0 for v in names])


def build(history: History, spec: Spec) -> tuple[list[dict], list[int]]:
    """The catalogue rows (sorted by group) and the three years used."""
    keep = (history.group != "") & (history.fen > 0)
    years = sorted(set(history.year[keep].tolist()))[-len(spec.weights):]
    if len(years) < len(spec.weights):
        raise SituationError([InputFault("history", f"the history has claims of {len(years)} year(s) "
                                         f"({', '.join(map(str, years)) or 'none'}); {len(spec.weights)} are needed",
                                         f"历史数据只有 {len(years)} 年的结算记录；需要 {len(spec.weights)} 年")])
    keep &= np.isin(history.year, years)
    groups, inverse = np.unique(history.group[keep].astype(str), return_inverse=True)
    year_at = np.searchsorted(years, history.year[keep])
    level = history.level[keep]
    fen = history.fen[keep]
    stats = {}
    for lv in (0, *LEVELS):  # 0: every level
        pick = np.ones(len(fen), bool) if lv == 0 else level == lv
        cell = inverse[pick] * len(years) + year_at[pick]
        size = len(groups) * len(years)
        stats[lv] = (np.bincount(cell, minlength=size).reshape(len(groups), len(years)),
                     _int_sums(cell, fen[pick], size).reshape(len(groups), len(years)))
    averages = {lv: [weighted_average(stats[lv][0][g], stats[lv][1][g], spec.weights) for g in range(len(groups))]
                for lv in stats}
    where = {g: i for i, g in enumerate(groups.tolist())}
    if spec.base_group not in where:
        raise SituationError([InputFault("base_group", f"the base group '{spec.base_group}' has no claims in the "
                                         "history", f"基准病种“{spec.base_group}”在历史数据中没有病例")])
    base = averages[0][where[spec.base_group]]
    rows = []
    for g, name in enumerate(groups.tolist()):
        cases = Fraction(int(stats[0][0][g].sum()), len(years))
        avg = averages[0][g]
        row = {spec.group: name, "avg_cost": fen_text(avg), "annual_cases": decimal_text(cases, 4),
               "score": decimal_text(avg / base * Fraction(spec.base_score), 4),
               "kind": "core" if cases >= Fraction(spec.core_min) else "comprehensive"}
        for lv in LEVELS:
            row[f"avg_cost_level_{lv}"] = fen_text(averages[lv][g])
        for y, year in enumerate(years):
            row[f"cases_{year}"] = int(stats[0][0][g][y])
        row["name"] = spec.names.get(name, "")
        rows.append(row)
    return rows, years


def _int_sums(cell: np.ndarray, fen: np.ndarray, size: int) -> np.ndarray:
    """Exact integer sums of fen per cell (np.bincount would add them as floats)."""
    order = np.argsort(cell, kind="stable")
    sums = np.zeros(size, dtype=object)
    if len(order):
        bounds = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
        values = fen[order].astype(np.int64)
        if int(np.abs(values).max()) * len(values) >= 2 ** 62:  # int64 could overflow: add Python integers
            values = values.astype(object)
        totals = np.add.reduceat(values, bounds)
        for c, t in zip(cell[order][bounds].tolist(), totals.tolist(), strict=True):
            sums[c] = int(t)
    return sums


def weighted_average(counts, fen_sums, weights) -> Fraction:
    """Σ w_y · mean_y / Σ w_y over the years with cases, in yuan (0 when no year has any)."""
    num, den = Fraction(0), 0
    for n, s, w in zip(counts.tolist(), fen_sums.tolist(), weights, strict=True):
        if n:
            num += Fraction(int(s), int(n) * 100) * w
            den += w
    return num / den if den else Fraction(0)


def half_up(value: Fraction, digits: int) -> Fraction:
    scale = 10 ** digits
    return Fraction((value * scale * 2 + 1) // 2, scale)


def fen_text(value: Fraction) -> str:
    return decimal_text(value, 2)


def decimal_text(value: Fraction, digits: int) -> str:
    rounded = half_up(value, digits)
    whole, part = divmod(rounded.numerator * 10 ** digits // rounded.denominator, 10 ** digits)
    text = f"{whole}.{part:0{digits}d}".rstrip("0").rstrip(".")
    return text


def write(rows: list[dict], out: Path, provenance: dict) -> None:
    """The catalogue CSV (its provenance in '#' note lines, as tables/ read them) and, beside it,
    the same provenance as JSON (<out>.json)."""
    buffer = io.StringIO()
    for line in provenance_lines(provenance):
        buffer.write(f"# {line}\n")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(out.name + ".partial")
    staged.write_text(buffer.getvalue(), encoding="utf-8")
    staged.replace(out)
    out.with_name(out.name + ".json").write_text(json.dumps(provenance, ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8")


def provenance_lines(p: dict) -> list[str]:
    meta = p["policy"]
    return [f"BUILT BY medpay catalogue for {p['for_year']} from the claims of {p['years'][0]}–{p['years'][-1]} "
            f"({p['claims']} claims, {p['groups']} groups) / 由 medpay catalogue 依据历史结算记录测算",
            f"policy {meta['id']} version {meta['version']} ({meta['notice']}), digest {p['digest'][:16]}",
            f"assumed: {p['assumed']['weights']}; core groups: at least {p['core_min']:g} cases a year "
            f"(inclusive); score = avg_cost / avg_cost of {p['base_group']} × {p['base_score']:g}",
            "avg_cost_level_N: the same average over the claims of institutions of level N (同级别)"]


def build_catalogue(policy: Policy, history_dir: Path, out: Path, spec: Spec | None = None) -> dict:
    """Read the history, build the catalogue, write it; returns its provenance."""
    spec = spec or spec_of(policy)
    history = read_history(policy, history_dir, spec)
    rows, years = build(history, spec)
    provenance = {"policy": policy.meta.to_dict(), "digest": policy.digest, "history": str(history_dir),
                  "files": history.files, "years": years, "for_year": years[-1] + 1,
                  "claims": int(((history.group != "") & np.isin(history.year, years)).sum()),
                  "groups": len(rows), "group_variable": spec.group, "base_group": spec.base_group,
                  "base_score": spec.base_score, "core_min": spec.core_min, "weights": list(spec.weights),
                  "assumed": {"weights": WEIGHTS_ASSUMED} if tuple(spec.weights) == WEIGHTS else
                  {"weights": f"weights {':'.join(map(str, spec.weights))} given on the command line"},
                  "built": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    write(rows, out, provenance)
    return provenance

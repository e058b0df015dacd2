"""Assigning groups to claims by a policy's grouping rules, vectorised (分组计算).

Each distinct code is matched once: the principal diagnoses against each rule's diagnosis
patterns, the distinct procedure codes against its procedure patterns (as bit masks, OR-ed over
a claim's procedures), the distinct (principal, secondary) pairs against the complication table.
Claims with the same signature (diagnosis, masks, treatment type, complication level) get the
same group, so the rules run once per distinct signature, not once per claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.model.codelists import CodeLists, normalise
from engine.policy.grouping import Alternatives, Cell, Grouping, Pattern, Rule


@dataclass
class Assigned:
    """Per claim: the group, the rule that gave it, the codes that matched, the complication level."""

    group: np.ndarray
    rule: np.ndarray
    match: np.ndarray
    level: np.ndarray
    treatment: np.ndarray


class PatternIndex:
    """Patterns, each with the ids it stands for, indexed so that one code is matched quickly:
    exact codes and prefixes by dictionary, ranges and `any` by a scan."""

    def __init__(self) -> None:
        self.exact: dict[str, list[int]] = {}
        self.prefix: dict[str, list[int]] = {}
        self.scan: list[tuple[Pattern, int]] = []

    def add(self, alternatives: Alternatives, ident: int) -> None:
        for p in alternatives:
            if p.kind == "code":
                self.exact.setdefault(p.low, []).append(ident)
            elif p.kind == "prefix":
                self.prefix.setdefault(p.low, []).append(ident)
            else:
                self.scan.append((p, ident))

    def ids(self, code: str) -> set[int]:
        found = set(self.exact.get(code, ()))
        for n in range(len(code) + 1):
            found.update(self.prefix.get(code[:n], ()))
        found.update(i for p, i in self.scan if p.matches(code))
        return found


def factorize(values) -> tuple[np.ndarray, list[str]]:
    """Codes of each row among the distinct values (as normalised text)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "US":
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), [normalise(u) for u in uniq.tolist()]


class RuleMatcher:
    """One rule compiled: its diagnosis index and its distinct procedure conjuncts."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.diagnosis = PatternIndex()
        for row, cell in enumerate(rule.diagnosis or []):
            if cell:
                for alternatives in cell:
                    self.diagnosis.add(alternatives, row)
        self.free_rows = {row for row, cell in enumerate(rule.diagnosis or [()] * rule.rows) if not cell}
        self.conjuncts: list[Alternatives] = []
        self.row_conjuncts: list[list[int]] = []
        ids: dict[Alternatives, int] = {}
        for cell in rule.procedures or [()] * rule.rows:
            self.row_conjuncts.append([ids.setdefault(alt, len(ids)) for alt in cell])
        self.conjuncts = list(ids)
        self.procedures = PatternIndex()
        for alt, j in ids.items():
            self.procedures.add(alt, j)

    def diagnosis_rows(self, code: str) -> list[int]:
        return sorted(self.diagnosis.ids(code) | self.free_rows)

    def claim_masks(self, diag: np.ndarray, diag_rows: list[list[int]], procedures: CodeLists,
                    top: np.ndarray) -> tuple[np.ndarray, list[dict[int, int]]]:
        """Per claim, bits of the procedure conjuncts it satisfies, numbered per distinct diagnosis
        among the conjuncts of that diagnosis's candidate rows only (so a catalogue of thousands of
        rows still needs a word or two per claim); and, per distinct diagnosis, conjunct → bit."""
        positions = [{j: p for p, j in enumerate(sorted({j for r in rows for j in self.row_conjuncts[r]}))}
                     for rows in diag_rows]
        words = max([1] + [(len(p) + 62) // 63 for p in positions])
        out = np.zeros((len(diag), words), dtype=np.int64)
        if not self.conjuncts or not len(procedures.codes):
            return out, positions
        highest = self.rule.procedures_match == "highest"
        if highest:
            rows = np.flatnonzero(top >= 0)
            codes = top[rows]
        else:
            rows, codes = procedures.row_of_flat(), procedures.codes
        width = len(procedures.vocab) + 1
        pairs, inverse = np.unique(diag[rows] * width + codes, return_inverse=True)
        pair_mask = np.zeros((len(pairs), words), dtype=np.int64)
        matched: dict[int, set[int]] = {}
        for i, key in enumerate(pairs.tolist()):  # each distinct (diagnosis, procedure) once
            k, c = divmod(key, width)
            pos = positions[k]
            if not pos:
                continue
            ids = matched.get(c)
            if ids is None:
                ids = matched[c] = self.procedures.ids(procedures.vocab[c])
            for j in (ids & pos.keys()) if len(ids) < len(pos) else (pos.keys() & ids):
                pair_mask[i, pos[j] // 63] |= 1 << (pos[j] % 63)
        flat = pair_mask[inverse.reshape(-1)]
        if highest:
            out[rows] = flat
        else:  # any: some procedure satisfies the conjunct; all: every procedure does
            filled = np.flatnonzero(procedures.lengths > 0)
            reducer = np.bitwise_and if self.rule.procedures_match == "all" else np.bitwise_or
            out[filled] = reducer.reduceat(flat, procedures.offsets[:-1][filled], axis=0)
        return out, positions


def treatment_of(grouping: Grouping, procedures: CodeLists) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per claim: its highest-ranked procedure (vocab index, -1 none) and treatment kind (index into
    the returned kinds; the last kind is `none`). Ties go to the procedure listed first."""
    ranking = grouping.ranking
    n = len(procedures)
    kinds = sorted(set(ranking.kinds)) + [ranking.none] if ranking else ["conservative"]
    top = np.full(n, -1, dtype=np.int64)
    kind = np.full(n, len(kinds) - 1, dtype=np.int64)
    if ranking is None or not len(procedures.codes):
        return top, kind, kinds
    index = PatternIndex()
    for row, alt in enumerate(ranking.patterns):
        index.add(alt, row)
    code_rank = np.full(len(procedures.vocab), -np.inf)
    code_kind = np.full(len(procedures.vocab), len(kinds) - 1, dtype=np.int64)
    for c, code in enumerate(procedures.vocab):
        rows = sorted(index.ids(code))
        if rows:
            code_rank[c], code_kind[c] = ranking.ranks[rows[0]], kinds.index(ranking.kinds[rows[0]])
    flat_rank = code_rank[procedures.codes]
    row_of = procedures.row_of_flat()
    order = np.lexsort((np.arange(len(flat_rank)), -flat_rank, row_of))  # by row, rank high first, listed first
    first = order[np.r_[True, row_of[order][1:] != row_of[order][:-1]]]
    ranked = first[np.isfinite(flat_rank[first])]
    top[row_of[ranked]] = procedures.codes[ranked]
    kind[row_of[ranked]] = code_kind[procedures.codes[ranked]]
    return top, kind, kinds


def complication_level(grouping: Grouping, diag: np.ndarray, diag_vocab: list[str],
                       secondary: CodeLists) -> np.ndarray:
    """Per claim, the highest level of its secondary diagnoses that are not excluded for its
    principal diagnosis (and are not the principal diagnosis itself); 0 when none."""
    comp = grouping.complication
    level = np.zeros(len(secondary), dtype=np.int64)
    if comp is None or not len(secondary.codes):
        return level
    index = PatternIndex()
    for row, alt in enumerate(comp.patterns):
        index.add(alt, row)
    rows_of_code = [sorted(index.ids(c)) for c in secondary.vocab]
    row_of = secondary.row_of_flat()
    pair = diag[row_of] * (len(secondary.vocab) + 1) + secondary.codes
    pairs, inverse = np.unique(pair, return_inverse=True)
    pair_level = np.zeros(len(pairs), dtype=np.int64)
    for p, key in enumerate(pairs.tolist()):
        principal, code = diag_vocab[key // (len(secondary.vocab) + 1)], key % (len(secondary.vocab) + 1)
        if secondary.vocab[code] == principal:
            continue
        for row in rows_of_code[code]:
            if not any(x.matches(principal) for x in comp.excluded[row]):
                pair_level[p] = max(pair_level[p], comp.levels[row])
    flat_level = pair_level[inverse.reshape(-1)]
    filled = np.flatnonzero(secondary.lengths > 0)
    level[filled] = np.maximum.reduceat(flat_level, secondary.offsets[:-1][filled])
    return level


def signature_codes(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of the given integer columns: (index of a representative row, inverse)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    radix = 1
    for col in columns:
        codes, inv = np.unique(col, return_inverse=True)
        inv = inv.reshape(-1)
        if radix * len(codes) >= 2 ** 62:  # too many combinations for one number: compress so far
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
            radix = int(key.max()) + 1 if len(key) else 1
        key = key + inv.astype(np.int64) * radix
        radix *= max(1, len(codes))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def assign(grouping: Grouping, diagnosis: np.ndarray, procedures: CodeLists | None,
           secondary: CodeLists | None) -> Assigned:
    """The group of each claim (see the module's docstring)."""
    n = len(diagnosis)
    procedures = procedures if procedures is not None else CodeLists.empty(n)
    secondary = secondary if secondary is not None else CodeLists.empty(n)
    diag, diag_vocab = factorize(diagnosis) if n else (np.zeros(0, np.int64), [])
    top, kind, kinds = treatment_of(grouping, procedures)
    level = complication_level(grouping, diag, diag_vocab, secondary)
    if not n:
        empty = np.zeros(0, dtype=object)
        return Assigned(empty, empty, empty, np.zeros(0), empty)
    matchers = [RuleMatcher(r) for r in grouping.rules]
    candidates = [[m.diagnosis_rows(code) for code in diag_vocab] for m in matchers]
    masks = [m.claim_masks(diag, rows, procedures, top) for m, rows in zip(matchers, candidates, strict=True)]
    by_top = any(m.rule.procedures_match == "highest" for m in matchers)  # the match names the top procedure
    columns = [diag, kind, level] + ([top] if by_top else []) + [w for mask, _ in masks for w in mask.T]
    first, inverse = signature_codes(columns)
    groups, rules, matches = [], [], []
    for row in first.tolist():
        k = diag[row]
        found = choose(grouping, matchers, [c[k] for c in candidates], diag_vocab[k], kinds[kind[row]],
                       int(level[row]), [(mask[row], pos[k]) for mask, pos in masks],
                       procedures.vocab[top[row]] if top[row] >= 0 else "")
        groups.append(found[0])
        rules.append(found[1])
        matches.append(found[2])
    pick = inverse
    return Assigned(np.array(groups, dtype=object)[pick], np.array(rules, dtype=object)[pick],
                    np.array(matches, dtype=object)[pick], level.astype(float),
                    np.array(kinds, dtype=object)[kind])


def choose(grouping: Grouping, matchers: list[RuleMatcher], diag_rows: list[list[int]], code: str,
           treatment: str, level: int, masks: list[tuple[np.ndarray, dict[int, int]]],
           top_code: str) -> tuple[str, str, str]:
    """(group, rule, matched codes) of one signature: the first rule with a candidate row; in it,
    the first candidate row, or the one with the highest score (ties: the first)."""
    for m, rows, (mask, bits) in zip(matchers, diag_rows, masks, strict=True):
        rule = m.rule

        def has(j: int, mask=mask, bits=bits) -> bool:
            p = bits[j]
            return bool((int(mask[p // 63]) >> (p % 63)) & 1)
        candidates = [r for r in rows if all(has(j) for j in m.row_conjuncts[r])
                      and (rule.treatment is None or rule.treatment[r] in ("", treatment))]
        if not candidates:
            continue
        if rule.choose == "highest":
            best = max(candidates, key=lambda r: (rule.scores[r], -r))
        else:
            best = candidates[0]
        group = rule.groups[best]
        if rule.splits is not None and rule.splits[best]:
            group += rule.suffix.get(level, rule.suffix[max(k for k in rule.suffix if k <= level)])
        return group, f"{rule.name}: {rule.table} row {best + 1}", describe(rule, best, code, treatment, top_code)
    return grouping.otherwise, "ungroupable", f"diagnosis {code or '(none)'}: no rule matched"


def describe(rule: Rule, row: int, code: str, treatment: str, top_code: str) -> str:
    """Which codes matched which patterns, as the trace shows them."""
    parts = []
    if rule.diagnosis is not None and rule.diagnosis[row]:
        parts.append(f"diagnosis {code} ~ {rule.texts['diagnosis'][row]}")
    if rule.procedures is not None and rule.procedures[row]:
        shown = rule.texts["procedures"][row]
        parts.append(f"procedure {top_code} ~ {shown}" if rule.procedures_match == "highest"
                     else f"procedures ~ {shown} ({rule.procedures_match})")
    if rule.treatment is not None and rule.treatment[row]:
        parts.append(f"treatment {treatment}")
    return "; ".join(parts) or "no condition"


def cell_text(cell: Cell) -> str:
    return "&".join("|".join(p.text for p in alt) for alt in cell)

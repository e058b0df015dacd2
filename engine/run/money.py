"""Money rounding and allocation to the fen (金额舍入与按分分配)."""

from __future__ import annotations

import numpy as np

from engine.run import exact


def round_half_up(values, digits: int = 2):
    """Round half away from zero, robust to binary noise: 0.125 → 0.13, 1.005 → 1.01. A value
    too large to scale (1e308 yuan × 100 overflows) is returned as it is: it has no fraction."""
    arr = np.asarray(values, dtype=float)
    scale = 10.0 ** digits
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.abs(arr) * scale
        low = np.floor(scaled)
        frac = scaled - low
        # float noise: a fraction within a millionth of a unit of one half is one half. The noise
        # allowance grows with the amount (a few units in the last place), so that amounts of
        # hundreds of millions round like small ones (np.round(x, 6) loses digits there).
        noise = np.maximum(1e-6, 2 * np.spacing(scaled))
        up = (frac > 0.5) | (np.abs(frac - 0.5) <= noise)
        rounded = np.sign(arr) * (low + up) / scale + 0.0  # + 0.0: no "-0.0" in results
        return np.where(np.isfinite(scaled), rounded, arr)[()]  # [()]: a scalar stays a scalar


MAX_EXACT_YUAN = 9e13  # 9e15 fen: integers stay exact in float64 below 2**53


def allocate(totals: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Split each group's total over its rows in proportion to weight, to the fen.

    `totals` is the group total repeated on each row, `groups` the group index of each row
    (-1: no group, gets 0). Parts are exact shares floored to the fen; the fens left over go
    one each to the rows with the largest remainders, ties to the earlier row. The parts of a
    group add up to its total rounded to the fen exactly (in fen, as integers).
    """
    n = len(weights)
    parts = np.zeros(n)
    valid = groups >= 0
    if not valid.any():
        return parts
    g = np.where(valid, groups, 0)
    size = int(g.max()) + 1
    w = np.where(valid, weights, 0.0)
    weight_sum = np.bincount(g, weights=w, minlength=size)
    first_total = np.zeros(size)
    first_total[g[valid][::-1]] = totals[valid][::-1]  # total of each group (first row's)
    in_range = np.abs(first_total) <= MAX_EXACT_YUAN  # False for NaN and infinity too
    total_fen = np.round(round_half_up(np.where(in_range, first_total, 0.0)) * 100).astype(np.int64)
    denom = weight_sum[g]
    safe = valid & (denom != 0)
    exact = np.zeros(n)
    exact[safe] = total_fen[g[safe]] * (w[safe] / denom[safe])
    floor_fen = np.floor(np.round(exact, 6)).astype(np.int64)
    remainder = np.round(exact - floor_fen, 7)
    leftover = total_fen - np.bincount(g[safe], weights=floor_fen[safe], minlength=size).astype(np.int64)
    leftover[np.bincount(g[safe], minlength=size) == 0] = 0
    order = np.lexsort((np.arange(n), -remainder, np.where(safe, g, size)))
    ranked_groups = np.where(safe, g, size)[order]
    starts = np.searchsorted(ranked_groups, ranked_groups, side="left")
    rank = np.arange(n) - starts
    extra = np.zeros(n, dtype=np.int64)
    in_group = ranked_groups < size
    gl = np.append(leftover, 0)
    # a leftover larger than the group (negative weights) is spread by repeated passes
    counts = np.append(np.bincount(g[safe], minlength=size), 1)
    per_row = gl[ranked_groups] // np.maximum(counts[ranked_groups], 1)
    rest = gl[ranked_groups] - per_row * counts[ranked_groups]
    extra[order] = np.where(in_group, per_row + (rank < rest), 0)
    parts[safe] = (floor_fen[safe] + extra[safe]) / 100.0
    if not in_range.all():
        _split_in_proportion(parts, first_total, w, weight_sum, g, valid & ~in_range[g])
    return parts


def _split_in_proportion(parts, group_total, weights, weight_sum, g, rows) -> None:
    """parts[rows] = group total × weight / group weight (0 where the group has no weight)."""
    rows = rows & (weight_sum[g] != 0)
    with np.errstate(over="ignore", invalid="ignore"):
        parts[rows] = group_total[g[rows]] * (weights[rows] / weight_sum[g[rows]])


def out_of_range_groups(totals: np.ndarray, groups: np.ndarray) -> int:
    """How many groups have a total too large to allocate to the fen (or not finite)."""
    valid = groups >= 0
    if not valid.any():
        return 0
    bad = np.zeros(int(groups[valid].max()) + 1, dtype=bool)
    bad[groups[valid]] = ~(np.abs(totals[valid]) <= MAX_EXACT_YUAN)
    return int(bad.sum())


def group_sum(values: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """Sum per group, exact (engine/run/exact.py): the same float however the rows are ordered
    or split (one machine, chunks, Spark partitions), with no small value rounded away."""
    return exact.group_sum(values, groups, size)

"""Exact edges and exact sums: the two places where binary floating point may not decide money (精确比较与精确求和).

Edges. A value that is mathematically on an edge (5001.55 / 1000.31 against 5; 700,000,000 × 1.10
against 770,000,000) may come out of float64 arithmetic a few units in the last place (ulps) to
either side. Every comparison of numbers in a formula (`== != < <= > >=`, `in [...]`), every
`step` edge and every `bands` edge goes through `close`: two numbers within RELATIVE_ULPS ulps of
the larger one are the same number, so the edge falls on the side the rule states. The bound is
4 · 2⁻⁵² ≈ 8.9e-16 of the larger magnitude. Two money amounts a fen apart differ by 0.01, more than
8.9e-16 · |amount| for every amount below 1.1e13 yuan, above MEDPAY_MAX_AMOUNT (1e13): distinct
amounts the engine accepts are never merged. A ratio a/b of fen amounts and the ratio one fen away
differ by 1/a relative; one division of two amounts rounds by at most 1.5 ulps, so the two stay
apart for a up to about 7e12 yuan (tests/test_money_rules.py proves it to 1e12 yuan). The bound is
relative: a difference that cancels to near zero (a − b where a ≈ b) is not snapped to 0, so write
`a >= b`, not `a - b >= 0`.

Sums. A sum of child values is exact: each float64 is split into integer limbs of LIMB_BITS
bits at absolute bit positions, limbs are added as integers (float64 bincount sums of integers
below 2²⁴ stay exact up to 2²⁹ rows per parent), and the exact total is rounded once to the
nearest float64. Integer addition does not depend on the order of the rows, and the limbs of
two partitions add up to the limbs of the whole: one machine, chunks and Spark give the same
float, whatever the partitioning, and no small value is rounded away (only magnitudes below 2⁻¹⁶⁰ ≈ 7e-49 are
left out, so that the limb span stays bounded).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

RELATIVE_ULPS = 4
TOLERANCE = RELATIVE_ULPS * np.finfo(float).eps  # ≈ 8.9e-16 of the larger magnitude
LIMB_BITS = 24
LIMB_MASK = (1 << LIMB_BITS) - 1
LIMBS_PER_VALUE = 4  # 53 mantissa bits shifted by up to 23 bits span at most 4 limbs of 24 bits
LIMB_FLOOR = -1100 // LIMB_BITS  # below the smallest subnormal exponent (-1074)
NEGLIGIBLE = 2.0 ** -160  # ≈ 6.8e-49: magnitudes below it add nothing a result could show


def _numeric(a: Any, b: Any) -> bool:
    kinds = (np.asarray(a).dtype.kind, np.asarray(b).dtype.kind)
    return all(k in "fiu" for k in kinds) and "f" in kinds


def close(a: Any, b: Any) -> Any:
    """Whether a and b are the same number up to float64 noise (see the module docstring)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(a - b) <= TOLERANCE * np.maximum(np.abs(a), np.abs(b))


def equal(a: Any, b: Any) -> Any:
    """a == b, numbers within the bound being equal; text, yes/no and dates compare exactly."""
    if not _numeric(a, b):
        return operator.eq(a, b)
    return close(a, b) | (np.asarray(a) == np.asarray(b))


def not_equal(a: Any, b: Any) -> Any:
    if not _numeric(a, b):
        return operator.ne(a, b)
    return np.logical_not(equal(a, b))


def less(a: Any, b: Any) -> Any:
    if not _numeric(a, b):
        return np.less(a, b)
    return np.less(a, b) & ~close(a, b)


def less_equal(a: Any, b: Any) -> Any:
    if not _numeric(a, b):
        return np.less_equal(a, b)
    return np.less_equal(a, b) | close(a, b)


def greater(a: Any, b: Any) -> Any:
    return less(b, a)


def greater_equal(a: Any, b: Any) -> Any:
    return less_equal(b, a)


COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": equal, "!=": not_equal, "<": less, "<=": less_equal, ">": greater, ">=": greater_equal,
}


def snap(x: Any, edge: Any) -> Any:
    """x, replaced by the edge where it is the edge up to float64 noise (for band arithmetic)."""
    return np.where(close(x, edge), edge, x)


# ---- exact sums -----------------------------------------------------------------------------

def limbs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each finite float as LIMBS_PER_VALUE signed integer limbs: value = Σ limb · 2^(LIMB_BITS·position).

    Returns (limb values, shape (LIMBS_PER_VALUE, n), float64 holding integers below 2²⁴; absolute
    limb position of the first limb of each value).
    """
    x = np.asarray(values, dtype=float)
    x = np.where(np.abs(x) < NEGLIGIBLE, 0.0, x)  # keeps the limb span (and memory) bounded
    bits = x.view(np.int64)  # IEEE 754: sign, 11 exponent bits, 52 mantissa bits
    biased = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    mant = np.where(biased > 0, mant | (1 << 52), mant)  # |x| = mant · 2^low_bit, mant < 2^53
    low_bit = np.maximum(biased, 1) - 1075
    position = np.where(x == 0, LIMB_FLOOR, low_bit // LIMB_BITS)
    shift = low_bit - position * LIMB_BITS  # 0 … LIMB_BITS-1 (any value for 0: its limbs are 0)
    shift = np.where(x == 0, 0, shift)
    sign = np.where(bits < 0, -1.0, 1.0)
    out = np.empty((LIMBS_PER_VALUE, len(x)))
    out[0] = ((mant << shift) & LIMB_MASK) * sign
    for k in range(1, LIMBS_PER_VALUE):
        out[k] = ((mant >> np.minimum(LIMB_BITS * k - shift, 63)) & LIMB_MASK) * sign
    return out, position


def partial_sums(values: np.ndarray, groups: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Exact sums per group as integer limbs: (array (size, width) of integer-valued floats, absolute
    position of column 0). Two partial sums of the same groups add up exactly (`merge`)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return np.zeros((size, 0)), 0
    parts, position = limbs(values)
    base = int(position.min())
    width = int(position.max()) - base + LIMBS_PER_VALUE
    offset = (position - base).astype(np.int64)
    sums = np.zeros(size * width)
    for k in range(LIMBS_PER_VALUE):
        sums += np.bincount(groups * width + offset + k, weights=parts[k], minlength=size * width)
    return sums.reshape(size, width), base


def to_integers(sums: np.ndarray, base: int) -> list[int]:
    """Each group's exact total as one integer in units of 2^(LIMB_BITS·base)."""
    totals = [0] * sums.shape[0]
    for k in range(sums.shape[1] - 1, -1, -1):
        column = sums[:, k].astype(np.int64).tolist()
        totals = [(t << LIMB_BITS) + c for t, c in zip(totals, column, strict=True)]
    return totals


def integer_to_float(total: int, base: int) -> float:
    """total · 2^(LIMB_BITS·base), correctly rounded to float64 (once)."""
    scale = LIMB_BITS * base
    if total == 0:
        return 0.0
    if scale >= 0:
        try:
            return float(total << scale)
        except OverflowError:
            return float("inf") if total > 0 else float("-inf")
    return total / (1 << -scale)  # int / int is correctly rounded in Python


def group_sum(values: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """Exact sum of each group's values, rounded once to float64; independent of the row order.
    NaN or infinite values make their group's sum NaN or infinite, as float addition would."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    sums, base = partial_sums(np.where(finite, values, 0.0), groups, size)
    out = np.array([integer_to_float(t, base) for t in to_integers(sums, base)], dtype=float) \
        if size else np.zeros(0)
    if not finite.all():
        out = out + np.bincount(groups[~finite], weights=values[~finite], minlength=size)
    return out


def merge(parts: list[tuple[np.ndarray, int]]) -> tuple[list[int], int]:
    """Partial sums of the same groups (each (limb sums, base)) as exact integer totals on one base."""
    base = min((b for _, b in parts), default=0)
    size = parts[0][0].shape[0] if parts else 0
    totals = [0] * size
    for sums, b in parts:
        for i, t in enumerate(to_integers(sums, b)):
            totals[i] += t << (LIMB_BITS * (b - base))
    return totals, base

"""Built-in functions: their names, arities and types (内置函数签名)."""

from __future__ import annotations

# name: (min args, max args, argument type, result type)
ELEMENTWISE: dict[str, tuple[int, int, str, str]] = {
    "min": (2, 20, "number", "number"),
    "max": (2, 20, "number", "number"),
    "clamp": (3, 3, "number", "number"),
    "abs": (1, 1, "number", "number"),
    "floor": (1, 1, "number", "number"),
    "ceil": (1, 1, "number", "number"),
    "round": (1, 2, "number", "number"),
    "days_between": (2, 2, "date", "number"),
    "year": (1, 1, "date", "number"),
    "month": (1, 1, "date", "number"),
}

# Aggregations of a child entity's values onto its parent (汇总), each with an optional `where`.
AGGREGATES = {"sum", "count", "mean", "min", "max", "any", "all"}

# Functions along ordered chains (referral chains, 转诊链), evaluated position by position.
CHAIN_FUNCTIONS = {"chain_max", "chain_max_before", "chain_sum", "chain_sum_before", "chain_position"}
# Those that read only earlier rows: the variable being defined may appear inside them.
CHAIN_BEFORE = {"chain_max_before", "chain_sum_before"}

SPECIAL = {"lookup", "bands", "step", "allocate"}

KNOWN_FUNCTIONS = sorted(set(ELEMENTWISE) | AGGREGATES | CHAIN_FUNCTIONS | SPECIAL)

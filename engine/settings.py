"""Limits and service settings, each with a safe default, overridable by environment (限额与设置).

| setting | environment variable | default |
|---|---|---|
| formula length | MEDPAY_MAX_FORMULA_CHARS | 4,000 characters |
| formula nesting depth | MEDPAY_MAX_FORMULA_DEPTH | 60 levels |
| policy file size | MEDPAY_MAX_POLICY_BYTES | 2,000,000 bytes |
| request body size | MEDPAY_MAX_BODY_BYTES | 50,000,000 bytes |
| rows per request | MEDPAY_MAX_ROWS | 2,000,000 rows (all entities together) |
| evaluation time per request | MEDPAY_MAX_EVAL_SECONDS | 30 s |
| largest number accepted in an input | MEDPAY_MAX_AMOUNT | 1e13 |
| trace size | MEDPAY_MAX_TRACE_VALUES | 20,000 values |
| child rows listed per aggregation in an explanation | MEDPAY_EXPLAIN_TOP | 10 (largest by absolute value) |
| claims per chunk in batch settlement | MEDPAY_CHUNK_ROWS | 1,000,000 (read in engine/batch/settle.py) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    formula_chars: int = int(_env("MEDPAY_MAX_FORMULA_CHARS", 4000))
    formula_depth: int = int(_env("MEDPAY_MAX_FORMULA_DEPTH", 60))
    policy_bytes: int = int(_env("MEDPAY_MAX_POLICY_BYTES", 2_000_000))
    body_bytes: int = int(_env("MEDPAY_MAX_BODY_BYTES", 50_000_000))
    rows: int = int(_env("MEDPAY_MAX_ROWS", 2_000_000))
    eval_seconds: float = _env("MEDPAY_MAX_EVAL_SECONDS", 30.0)
    amount: float = _env("MEDPAY_MAX_AMOUNT", 1e13)
    trace_values: int = int(_env("MEDPAY_MAX_TRACE_VALUES", 20_000))
    explain_top: int = int(_env("MEDPAY_EXPLAIN_TOP", 10))


LIMITS = Limits()

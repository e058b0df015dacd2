"""Limits and service settings, each with a safe default, overridable by environment (限额与设置).

| setting | environment variable | default |
|---|---|---|
| formula length | MEDPAY_MAX_FORMULA_CHARS | 4,000 characters |
| formula nesting depth | MEDPAY_MAX_FORMULA_DEPTH | 60 levels |
| policy file size | MEDPAY_MAX_POLICY_BYTES | 2,000,000 bytes |
| request body size | MEDPAY_MAX_BODY_BYTES | 20,000,000 bytes |
| rows per request | MEDPAY_MAX_ROWS | 120,000 rows (all entities together: 100,000 claims with their institutions and funds) |
| values in one evaluate answer (rows × outputs) | MEDPAY_MAX_RESPONSE_VALUES | 2,000,000 values |
| evaluation time per request | MEDPAY_MAX_EVAL_SECONDS | 30 s |
| largest number accepted in an input | MEDPAY_MAX_AMOUNT | 1e13 |
| trace size | MEDPAY_MAX_TRACE_VALUES | 5,000 values (the first rows of each value; a `trace_truncated` warning) |
| child rows listed per aggregation in an explanation | MEDPAY_EXPLAIN_TOP | 10 (largest by absolute value) |
| policy text checked by /v1/validate without the admin token | MEDPAY_MAX_VALIDATE_BYTES | 200,000 bytes |
| time to check one policy text in /v1/validate | MEDPAY_MAX_VALIDATE_SECONDS | 10 s (the checking process is killed) |
| heavy requests at once per server process (evaluate > 200 rows, validate) | MEDPAY_MAX_HEAVY_REQUESTS | 2 |
| Host header values served (any port) | MEDPAY_ALLOWED_HOSTS | localhost,127.0.0.1,::1 |
| browser origins allowed to call the API from another site (CORS) | MEDPAY_CORS_ORIGINS | none (same origin only); a comma-separated allow-list, e.g. https://his.example.org |
| responses compressed with gzip when the client accepts it | MEDPAY_GZIP_MIN_BYTES | 1,000 bytes and larger |
| situations in one call to evaluate many | MEDPAY_MAX_SITUATIONS | 1,000 |
| claims per chunk in batch settlement | MEDPAY_CHUNK_ROWS | 1,000,000 (read in engine/batch/settle.py) |
| nesting depth of a policy's YAML | MEDPAY_MAX_POLICY_DEPTH | 20 levels |
| values (YAML nodes) in a policy file | MEDPAY_MAX_POLICY_NODES | 20,000 |
| parameters in a policy | MEDPAY_MAX_POLICY_PARAMETERS | 500 |
| variables in a policy (all entities together) | MEDPAY_MAX_POLICY_VARIABLES | 500 |
| tables in a policy | MEDPAY_MAX_POLICY_TABLES | 50 |
| formula text in a policy (all formulas together) | MEDPAY_MAX_POLICY_FORMULA_CHARS | 30,000 characters |
| table files of a policy, together | MEDPAY_MAX_TABLE_BYTES | 2,000,000 bytes |
| rows of the table files of a policy, together | MEDPAY_MAX_TABLE_ROWS | 50,000 rows |
| columns of a table file | MEDPAY_MAX_TABLE_COLUMNS | 100 columns |
| one cell of a table file | MEDPAY_MAX_TABLE_CELL_CHARS | 1,000 characters |
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
    body_bytes: int = int(_env("MEDPAY_MAX_BODY_BYTES", 20_000_000))
    rows: int = int(_env("MEDPAY_MAX_ROWS", 120_000))
    response_values: int = int(_env("MEDPAY_MAX_RESPONSE_VALUES", 2_000_000))
    eval_seconds: float = _env("MEDPAY_MAX_EVAL_SECONDS", 30.0)
    amount: float = _env("MEDPAY_MAX_AMOUNT", 1e13)
    trace_values: int = int(_env("MEDPAY_MAX_TRACE_VALUES", 5_000))
    validate_bytes: int = int(_env("MEDPAY_MAX_VALIDATE_BYTES", 200_000))
    validate_seconds: float = _env("MEDPAY_MAX_VALIDATE_SECONDS", 10.0)
    heavy_requests: int = max(1, int(_env("MEDPAY_MAX_HEAVY_REQUESTS", 2)))
    policy_depth: int = int(_env("MEDPAY_MAX_POLICY_DEPTH", 20))
    policy_nodes: int = int(_env("MEDPAY_MAX_POLICY_NODES", 20_000))
    policy_parameters: int = int(_env("MEDPAY_MAX_POLICY_PARAMETERS", 500))
    policy_variables: int = int(_env("MEDPAY_MAX_POLICY_VARIABLES", 500))
    policy_tables: int = int(_env("MEDPAY_MAX_POLICY_TABLES", 50))
    policy_formula_chars: int = int(_env("MEDPAY_MAX_POLICY_FORMULA_CHARS", 30_000))
    table_bytes: int = int(_env("MEDPAY_MAX_TABLE_BYTES", 2_000_000))
    table_rows: int = int(_env("MEDPAY_MAX_TABLE_ROWS", 50_000))
    table_columns: int = int(_env("MEDPAY_MAX_TABLE_COLUMNS", 100))
    table_cell_chars: int = int(_env("MEDPAY_MAX_TABLE_CELL_CHARS", 1000))
    explain_top: int = int(_env("MEDPAY_EXPLAIN_TOP", 10))
    gzip_min_bytes: int = int(_env("MEDPAY_GZIP_MIN_BYTES", 1000))
    situations: int = max(1, int(_env("MEDPAY_MAX_SITUATIONS", 1000)))


def allowed_hosts() -> list[str]:
    """Host names the API answers (MEDPAY_ALLOWED_HOSTS, comma-separated; `*` for any)."""
    value = os.environ.get("MEDPAY_ALLOWED_HOSTS") or "localhost,127.0.0.1,::1"
    return [h.strip().lower().strip("[]") for h in value.split(",") if h.strip()]


def cors_origins() -> list[str]:
    """Browser origins allowed to call the API from another site (MEDPAY_CORS_ORIGINS, comma-separated);
    none by default: the page and the API share one origin. `*` is refused: name the origins."""
    value = os.environ.get("MEDPAY_CORS_ORIGINS") or ""
    return [o.strip().rstrip("/") for o in value.split(",") if o.strip() and o.strip() != "*"]


LIMITS = Limits()

"""Where a batch output comes from (来源记录): the policy, its version and file digest, the period,
the run time, the inputs and what they override, every warning and every check result.

The same record goes into the schema metadata of every Parquet file a run writes (key `medpay`,
JSON) and into `manifest.json` beside them, so that a file read on its own still names the policy
version that produced it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from engine.plan.plan import CheckStep
from engine.policy.spec import Policy

KEY = b"medpay"
MANIFEST = "manifest.json"
HASH_BLOCK = 1 << 20


def now() -> str:
    """The run time, UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def file_digest(path: Path) -> str:
    """sha256 of a file, read in blocks (a claims file may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def policy_record(policy: Policy) -> dict:
    """The policy as provenance: id, version, notice, effective dates, file and its digest."""
    meta = policy.meta.to_dict()
    return {"id": policy.id, "version": policy.meta.version, "notice": meta["notice"],
            "effective": meta["effective"], "file": Path(policy.file).name, "digest": policy.digest}


def input_files(folder: Path, names: list[str]) -> dict[str, dict]:
    """The entity files read, with their size and digest."""
    out = {}
    for name in names:
        for suffix in (".parquet", ".csv"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                out[path.name] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
                break
    return out


def overridden(policy: Policy, supplied: dict[str, list[str]]) -> list[str]:
    """`entity.variable` of every supplied column that replaces a formula (a grouper's points, a
    ledger's monthly amounts): such values are the data's, not the policy's."""
    out = []
    for entity, names in supplied.items():
        variables = policy.model.entities[entity].variables
        out += [f"{entity}.{n}" for n in names if n in variables and not variables[n].is_input]
    return sorted(out)


def check_results(evaluated: list[CheckStep], failures: list[dict]) -> list[dict]:
    """Every check the run made, passed or failed, with the number of failing rows."""
    failed = {(f["entity"], f["check"]): f for f in failures}
    out = []
    for step in evaluated:
        check = step.check
        found = failed.get((check.entity, check.name))
        out.append({"entity": check.entity, "check": check.name, "severity": check.severity,
                    "clause": check.clause, "passed": found is None,
                    "failing_rows": int(found.get("count", found.get("rows", 0))) if found else 0})
    return out


def record(policy: Policy, period: str, run_at: str, *, inputs: dict, overrides: list[str],
           warnings: list[dict], checks: list[dict], ledger: dict | None = None, kind: str = "year") -> dict:
    """The provenance record of one run."""
    return {"kind": kind, "policy": policy_record(policy), "period": period, "run_at": run_at,
            "inputs": inputs, "overrides": {"parameters": {}, "supplied_formulas": overrides},
            "ledger": ledger, "warnings": warnings, "checks": checks}


def schema_metadata(prov: dict) -> dict[bytes, bytes]:
    """The record as Parquet schema metadata (key `medpay`)."""
    return {KEY: json.dumps(prov, ensure_ascii=False, default=str).encode("utf-8")}


def write_manifest(folder: Path, prov: dict, files: dict[str, int]) -> None:
    """`manifest.json` beside the outputs: the record and the rows of each file written."""
    body = {**prov, "files": files}
    (folder / MANIFEST).write_text(json.dumps(body, ensure_ascii=False, indent=2, default=str) + "\n",
                                   encoding="utf-8")


def read(path: Path) -> dict | None:
    """The provenance record stored in a Parquet file (None when it has none)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(KEY)
    return json.loads(raw) if raw else None

"""Statements written to a folder, or packed in one zip (清算单文件).

Layout: `<entity>/<entity>-<id>.xlsx` and `.html` for every row of every entity the policy's
`statement:` section lists (the fund's statements as HTML too), and `fund-summary.xlsx`.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from io import BytesIO
from pathlib import Path

from engine.report.html import statement_html
from engine.report.results import Results
from engine.report.statement import build, rows_of
from engine.report.xlsx import statement_workbook, summary_workbook

UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\u4e00-\u9fff]+")
SUMMARY = "fund-summary.xlsx"


def file_stem(entity: str, row_id: str) -> str:
    """A file name for a row: characters outside letters, digits, CJK, . _ - become _ (and a short
    hash of the id is added then, so that two ids never share a file)."""
    safe = UNSAFE.sub("_", row_id)[:80]
    if safe != row_id or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha256(row_id.encode('utf-8')).hexdigest()[:8]}"
    return f"{entity}-{safe}"


def statement_files(results: Results, entity: str | None = None, row_id: str | None = None) -> dict[str, bytes]:
    """Relative path → content, for the chosen entity (and row), or every statement and the summary."""
    files: dict[str, bytes] = {}
    for name in results.policy.statements:
        if entity is not None and name != entity:
            continue
        for rid in rows_of(results, name):
            if row_id is not None and rid != row_id:
                continue
            statement = build(results, name, rid)
            stem = f"{name}/{file_stem(name, rid)}"
            files[f"{stem}.html"] = statement_html(statement).encode("utf-8")
            files[f"{stem}.xlsx"] = statement_workbook(statement)
    if entity is None:
        files[SUMMARY] = summary_workbook(results)
    return files


def write_statements(results: Results, out: Path) -> list[Path]:
    """Every statement and the fund summary under `out`; the paths written."""
    written = []
    for rel, content in statement_files(results).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, content in files.items():
            archive.writestr(rel, content)
    return buffer.getvalue()

"""Publishing a policy: checked first, archived with its hash, logged; never half-done (政策发布).

A published file is written next to the others by an atomic rename, a copy is kept in the
archive folder under its time and hash, and every attempt — accepted or refused, with its
diagnostics — is appended to the audit log (one JSON object per line).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from engine.compile.build import load_policy_text
from engine.errors import PolicyError

FILE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]*\.yaml$")


def archive_dir(folder: Path) -> Path:
    return Path(os.environ.get("MEDPAY_ARCHIVE", folder / ".published"))


def audit(folder: Path, entry: dict) -> None:
    path = archive_dir(folder) / "audit.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def audit_entries(folder: Path, last: int = 100) -> list[dict]:
    path = archive_dir(folder) / "audit.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[-last:]
    return [json.loads(line) for line in lines if line.strip()]


def last_good(folder: Path, file_name: str) -> Path | None:
    """The newest archived copy of a file that was accepted when published."""
    accepted = [e for e in audit_entries(folder, 100_000) if e.get("file") == file_name and e.get("accepted")]
    for entry in reversed(accepted):
        copy = archive_dir(folder) / entry["archived"]
        if copy.is_file():
            return copy
    return None


def publish(folder: Path, file_name: str, text: str) -> dict:
    """Check a policy text; if it loads, archive it and put it in place atomically. Returns the audit entry."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    entry: dict = {"time": now, "action": "publish", "file": file_name, "sha256": digest}
    if not FILE_NAME.match(file_name):
        entry.update(accepted=False, diagnostics=[{"code": "bad_file_name", "message":
                     "a policy file name is lowercase letters, digits, - or _, ending in .yaml",
                     "message_zh": "政策文件名只能由小写字母、数字、-、_ 组成，以 .yaml 结尾"}])
        audit(folder, entry)
        return entry
    try:
        policy = load_policy_text(text, file_name, folder)
    except PolicyError as err:
        entry.update(accepted=False, diagnostics=[d.to_dict() for d in err.diagnostics])
        audit(folder, entry)
        return entry
    stamp = now.replace(":", "").replace("-", "")
    relative = Path(Path(file_name).stem) / f"{stamp}-{digest[:12]}.yaml"
    copy = archive_dir(folder) / relative
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, suffix=".tmp", delete=False) as fh:
        fh.write(text)
    os.replace(fh.name, folder / file_name)
    entry.update(accepted=True, policy=policy.id, version=policy.meta.version, archived=str(relative),
                 diagnostics=[])
    audit(folder, entry)
    return entry

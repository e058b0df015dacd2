"""Publishing a policy: checked first, archived with its hash, logged; never half-done (政策发布).

A published file is written next to the others by an atomic rename, a copy is kept in the
archive folder under its time and hash, and every attempt — accepted or refused, with its
diagnostics — is appended to the audit log (one JSON object per line, one write each).
Publishing runs under a lock (a thread lock and a file lock in the archive folder), so the
order of the audit log is the order in which files were written, even across processes.

Publishing is per city id: a file's name agrees with its policy id (`city.yaml`,
`city_2026.yaml`, `city-b.yaml`, `city@v2.yaml`), and a (city id, version) already served
is never replaced silently: only its own file may replace it, and only when asked to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.compile.build import load_policy_text
from engine.errors import PolicyError
from engine.model.model import MODEL_FILE

MAX_NAME_CHARS = 100
FILE_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]*(@[a-z0-9_-]+)?\.yaml")  # used with fullmatch: no "$" before a newline
TEMPLATE_ID = "_template"
ID_SEPARATORS = ("_", "-", "@")
AUDIT_FILE = "audit.jsonl"
GOOD_COPIES = "last-good"
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

Served = dict[tuple[str, str], str]  # (city id, version) → the file name that holds it


def archive_dir(folder: Path) -> Path:
    return Path(os.environ.get("MEDPAY_ARCHIVE", folder / ".published"))


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file through a temporary file in the same folder and a rename: a reader sees the old
    file or the new one, never half of one. The temporary file is removed when anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def audit(folder: Path, entry: dict) -> None:
    """Append one entry to the audit log in a single write; a torn last line (a crash mid-write)
    is closed first so that it does not swallow this entry."""
    path = archive_dir(folder) / AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)


def _entry(raw: bytes) -> dict | None:
    """One audit line as an entry, or None when it cannot be read (torn, not JSON, not an object)."""
    try:
        entry = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return entry if isinstance(entry, dict) else None


def read_audit(folder: Path) -> tuple[list[dict], list[int]]:
    """Every readable entry of the audit log, and the numbers of the lines that could not be read."""
    path = archive_dir(folder) / AUDIT_FILE
    if not path.is_file():
        return [], []
    entries, skipped = [], []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            entry = _entry(raw)
            if entry is None:
                skipped.append(number)
            else:
                entries.append(entry)
    return entries, skipped


def audit_entries(folder: Path, last: int = 100) -> list[dict]:
    """The last readable entries of the audit log, read from its end (the log only grows)."""
    path = archive_dir(folder) / AUDIT_FILE
    if not path.is_file():
        return []
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        start, data, step = end, b"", 65536
        while start > 0 and data.count(b"\n") <= last:
            start, step = max(0, end - step), step * 2
            fh.seek(start)
            data = fh.read(end - start)
    lines = data.split(b"\n")[1:] if start > 0 else data.split(b"\n")  # the first may be cut
    entries = [e for e in map(_entry, (ln for ln in lines if ln.strip())) if e is not None]
    return entries[-last:]


def _inside(base: Path, relative: str) -> Path | None:
    """`base / relative` when it stays inside `base` (an audit entry is not trusted to)."""
    path = (base / relative).resolve()
    return path if path.is_relative_to(base.resolve()) else None


def last_good(folder: Path, file_name: str) -> Path | None:
    """The newest archived copy of a file that was accepted when published."""
    accepted = [e for e in read_audit(folder)[0] if e.get("file") == file_name and e.get("accepted")
                and isinstance(e.get("archived"), str)]
    for entry in reversed(accepted):
        copy = _inside(archive_dir(folder), entry["archived"])
        if copy is not None and copy.is_file():
            return copy
    return None


def good_copy(folder: Path, file_name: str) -> Path:
    """Where the last text of a file that loaded is kept, whether published or edited by hand."""
    return archive_dir(folder) / GOOD_COPIES / file_name


@contextlib.contextmanager
def publishing(folder: Path) -> Iterator[None]:
    """Serialise publishing: a thread lock for this process, an fcntl lock for the others."""
    archive = archive_dir(folder)
    archive.mkdir(parents=True, exist_ok=True)
    key = str(archive.resolve())
    with _LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        fd = os.open(archive / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _fault(code: str, en: str, zh: str, path: str = "file") -> dict:
    return {"code": code, "path": path, "message": en, "message_zh": zh}


def belongs_to(stem: str, policy_id: str) -> bool:
    """A file stem names a policy id: the id itself, or the id, a separator and a suffix."""
    return stem == policy_id or stem.startswith(tuple(policy_id + s for s in ID_SEPARATORS))


def name_fault(file_name: str, protected: frozenset[str] = frozenset()) -> dict | None:
    """Why a name cannot be published to, or None. `protected` names other files of the folder
    (tables) that are not policies."""
    shown = "".join(c if c.isprintable() else "?" for c in file_name[:MAX_NAME_CHARS])  # no control characters
    shown += "…" if len(file_name) > MAX_NAME_CHARS else ""
    if len(file_name) > MAX_NAME_CHARS:
        return _fault("bad_file_name", f"a policy file name is at most {MAX_NAME_CHARS} characters",
                      f"政策文件名最多 {MAX_NAME_CHARS} 个字符")
    if not FILE_NAME.fullmatch(file_name):
        return _fault("bad_file_name", f"'{shown}' is not a policy file name: lowercase letters, digits, - or _, "
                      "optionally @ and a suffix, ending in .yaml",
                      f"“{shown}”不是有效的政策文件名：只能由小写字母、数字、-、_ 组成（可带 @ 后缀），以 .yaml 结尾")
    if file_name == MODEL_FILE.name or file_name in protected:
        what, what_zh = ("the shared entity model", "共享实体模型") if file_name == MODEL_FILE.name else \
            ("a table file", "查找表文件")
        return _fault("not_a_policy_file", f"'{file_name}' is {what}, not a policy; it cannot be published here",
                      f"“{file_name}”是{what_zh}，不是政策文件，不能通过此接口发布")
    if file_name.startswith("_") and not belongs_to(Path(file_name).stem, TEMPLATE_ID):
        return _fault("reserved_file_name", f"'{file_name}': names starting with _ are reserved for the template",
                      f"“{file_name}”：以 _ 开头的文件名保留给模板")
    return None


def id_fault(file_name: str, policy_id: str) -> dict | None:
    """Why a policy's id does not fit its file name, or None."""
    stem = Path(file_name).stem
    if belongs_to(stem, policy_id):
        return None
    return _fault("file_name_mismatch", f"the policy id is '{policy_id}' but the file is '{file_name}': publish it as "
                  f"{policy_id}.yaml or {policy_id}_<suffix>.yaml",
                  f"政策 id 为“{policy_id}”，文件名却是“{file_name}”：请以 {policy_id}.yaml 或 "
                  f"{policy_id}_<后缀>.yaml 发布", "policy.id")


def city_fault(file_name: str, policy_id: str, served: Served) -> dict | None:
    """Why a file that serves another city may not take this one (`city_b.yaml` may be city city_b)."""
    other = next((city for (city, _), held in served.items() if held == file_name and city != policy_id), None)
    if other is None:
        return None
    return _fault("file_holds_another_city", f"{file_name} serves policy '{other}'; a file cannot change city",
                  f"{file_name} 提供的是政策“{other}”，文件不能改为另一城市", "policy.id")


def conflict_fault(file_name: str, policy_id: str, version: str, holder: str, replace: bool) -> dict | None:
    """Why a (city id, version) may not be published to this file, or None."""
    if holder == file_name and replace:
        return None
    if holder == file_name:
        return _fault("version_served", f"version '{version}' of '{policy_id}' is already served from {holder}; "
                      "give the new text another version, or add ?replace=true to replace it",
                      f"“{policy_id}”的版本“{version}”已由 {holder} 提供；请使用新的版本号，或加 ?replace=true 明确替换",
                      "policy.version")
    return _fault("version_served", f"version '{version}' of '{policy_id}' is already served from {holder}; "
                  f"it can only be replaced through {holder}",
                  f"“{policy_id}”的版本“{version}”已由 {holder} 提供，只能通过 {holder} 替换", "policy.version")


def _refused(entry: dict, folder: Path, faults: list[dict], outcome: str = "refused") -> dict:
    entry.update(accepted=False, outcome=outcome, diagnostics=faults)
    audit(folder, entry)
    return entry


def publish(folder: Path, file_name: str, text: str, *, replace: bool = False,
            served: Callable[[], Served] | None = None, protected: frozenset[str] = frozenset(),
            client: str | None = None) -> dict:
    """Check a policy text; if it loads, fits its file name and replaces no served version by
    surprise, archive it and put it in place atomically. Returns the audit entry, whose
    `outcome` is accepted, refused (422) or conflict (409). `served` is asked under the lock."""
    entry: dict = {"time": now_text(), "action": "publish", "file": file_name[:MAX_NAME_CHARS]}
    if client:
        entry["client"] = client
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return _refused(entry, folder, [_fault("bad_text", "the text is not valid Unicode (a lone surrogate)",
                                               "文本不是有效的 Unicode（含孤立代理字符）", "text")])
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    fault = name_fault(file_name, protected)
    if fault:
        return _refused(entry, folder, [fault])
    try:
        policy = load_policy_text(text, file_name, folder)
    except PolicyError as err:
        return _refused(entry, folder, [d.to_dict() for d in err.diagnostics])
    fault = id_fault(file_name, policy.id)
    if fault:
        return _refused(entry, folder, [fault])
    entry.update(policy=policy.id, version=policy.meta.version)
    try:
        with publishing(folder):
            now = served() if served else {}
            holder = now.get((policy.id, policy.meta.version))
            fault = city_fault(file_name, policy.id, now) or \
                (holder and conflict_fault(file_name, policy.id, policy.meta.version, holder, replace))
            if fault:
                return _refused(entry, folder, [fault], "conflict")
            return _put_in_place(folder, file_name, data, entry, replaced=bool(holder))
    except OSError as err:  # disk full, read-only folder: nothing was put in place
        entry.update(accepted=False, outcome="write_failed", diagnostics=[_fault(
            "write_failed", f"the policy could not be written ({type(err).__name__}, errno {err.errno}); "
            "nothing was changed", "政策文件无法写入，未作任何更改")])
        with contextlib.suppress(OSError):
            audit(folder, entry)
        return entry


def _put_in_place(folder: Path, file_name: str, data: bytes, entry: dict, replaced: bool) -> dict:
    """Archive the text, rename it into place and log it: called under the publishing lock."""
    entry["time"] = now_text()  # the order of the log is the order of the writes
    if replaced:
        entry["replaced"] = True
    stamp = entry["time"].replace(":", "").replace("-", "")
    relative = Path(Path(file_name).stem) / f"{stamp}-{entry['sha256'][:12]}.yaml"
    write_atomic(archive_dir(folder) / relative, data)
    write_atomic(folder / file_name, data)
    entry.update(accepted=True, outcome="accepted", archived=str(relative), diagnostics=[])
    audit(folder, entry)
    return entry

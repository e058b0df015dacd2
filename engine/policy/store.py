"""Policies served live: a changed file is re-checked and swapped in whole, or refused (政策热更新).

The store keeps, for each file, the last version that loaded. A reload builds a new
Registry from those and replaces the served one in a single assignment, so a request sees
either the old set or the new one, never a mix; a broken file never replaces a good one.

Every text that loads is also kept in the archive folder (`last-good/<file name>`), so a file
broken while the server was down — published or edited by hand — is served from its last good
text at the next start, and that is reported. Startup never fails on one file: what cannot be
read is reported by name and position (never its content) and every good policy is served.
"""

from __future__ import annotations

import datetime as dt
import logging
import stat as stat_mode
import threading
from dataclasses import dataclass, field
from pathlib import Path

from engine.compile.build import load_policy_text
from engine.errors import Diagnostic, Location, PolicyError
from engine.policy.publish import (
    AUDIT_FILE,
    Served,
    archive_dir,
    good_copy,
    last_good,
    read_audit,
    write_atomic,
)
from engine.policy.registry import Registry, policy_files
from engine.policy.spec import Policy
from engine.settings import LIMITS

log = logging.getLogger("medpay.policies")
MAX_EVENTS = 1000


@dataclass
class FileState:
    stamp: tuple[int, int, int]
    policy: Policy | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _problem(code: str, en: str, zh: str, file: Path) -> PolicyError:
    return PolicyError([Diagnostic(code, en, zh, Location(str(file)))])


def read_policy(file: Path, base_dir: Path | None = None) -> tuple[Policy, bytes]:
    """Load one policy file, turning every way it can fail into a PolicyError (never another
    exception): not a regular file, too large, unreadable, not UTF-8, or a fault in the checker."""
    try:
        info = file.stat()
        if not stat_mode.S_ISREG(info.st_mode):
            raise _problem("not_a_file", "not a regular file", "不是普通文件", file)
        if info.st_size > LIMITS.policy_bytes:
            raise _problem("file_too_large", f"policy file is larger than {LIMITS.policy_bytes} bytes",
                           f"政策文件超过 {LIMITS.policy_bytes} 字节", file)
        with file.open("rb") as fh:
            data = fh.read(LIMITS.policy_bytes + 1)
    except OSError as err:
        raise _problem("unreadable", f"the file cannot be read ({type(err).__name__}, errno {err.errno})",
                       "文件无法读取", file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _problem("not_utf8", f"the file is not UTF-8 text (byte {err.start})",
                       f"文件不是 UTF-8 文本（第 {err.start} 字节）", file) from None
    try:
        return load_policy_text(text, str(file), base_dir or file.parent), data
    except PolicyError:
        raise
    except Exception as err:  # a fault of the checker must not take the other files down
        log.error("policy file %s: unexpected %s while loading", file.name, type(err).__name__)
        raise _problem("load_failed", f"the file could not be checked ({type(err).__name__})",
                       "文件检查时出现内部错误", file) from None


def _quiet(d: Diagnostic) -> dict:
    """A diagnostic for reports and events: where and why, without the file's text or the server's paths."""
    return {"code": d.code, "severity": d.severity, "message": d.en, "message_zh": d.zh,
            "line": d.location.line, "column": d.location.column, "path": d.location.path}


class PolicyStore:
    """The policies of one folder, reloaded on demand or by a watcher thread."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files: dict[Path, FileState] = {}
        self.good: dict[Path, Policy] = {}
        self.holders: Served = {}
        self.fallbacks: dict[str, dict] = {}
        self.skipped: dict[str, list[int]] = {}
        self.registry = Registry()
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._check_audit()
        self.reload()

    def _event(self, **fields) -> None:
        self.events.append({"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **fields})
        del self.events[:-MAX_EVENTS]

    def _check_audit(self) -> None:
        """Report audit lines that cannot be read (a torn write): by number, never their text."""
        try:
            _, skipped = read_audit(self.folder)
        except OSError as err:
            log.warning("audit log unreadable: %s", type(err).__name__)
            self._event(skipped=AUDIT_FILE, reason=type(err).__name__)
            return
        if skipped:
            self.skipped[AUDIT_FILE] = skipped
            log.warning("audit log: skipped unreadable lines %s", skipped[:20])
            self._event(skipped=AUDIT_FILE, lines=skipped[:100])

    def reload(self) -> dict:
        """Re-check changed files; swap in what loads; report what changed and what was refused."""
        with self._lock:
            changed, refused = [], []
            present = set()
            for file in policy_files(self.folder):
                try:
                    info = file.stat()
                except OSError:  # removed since it was listed
                    continue
                present.add(file)
                stamp = (info.st_mtime_ns, info.st_size, info.st_ino)  # a rename is a new inode
                state = self.files.get(file)
                if state is not None and state.stamp == stamp:
                    continue
                try:
                    policy, data = read_policy(file)
                except PolicyError as err:
                    self._refuse(file, stamp, err.diagnostics)
                    refused.append({"file": file.name, "diagnostics": [_quiet(d) for d in err.diagnostics]})
                    continue
                self.files[file] = FileState(stamp, policy)
                self.good[file] = policy
                self.fallbacks.pop(file.name, None)
                self._keep(file, data)
                changed.append(file.name)
            for gone in set(self.files) - present:
                self.files.pop(gone)
                self.good.pop(gone, None)
                self.fallbacks.pop(gone.name, None)
                changed.append(f"{gone.name} (removed)")
            if changed or refused or not self.registry.cities:
                self.registry = self._build()  # the swap: one reference assignment
            report = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      "loaded": changed, "refused": refused}
            if changed or refused:
                self.events.append(report)
                del self.events[:-MAX_EVENTS]
            return report

    def served(self) -> Served:
        """(city id, version) → the file that holds it, after re-reading what changed on disk."""
        self.reload()
        return dict(self.holders)

    def _refuse(self, file: Path, stamp: tuple[int, int, int], diagnostics: list[Diagnostic]) -> None:
        self.files[file] = FileState(stamp, None, diagnostics)
        log.warning("policy file %s refused: %s", file.name, ", ".join(
            f"{d.code} at {d.location.line}:{d.location.column}" for d in diagnostics[:5]))
        if file not in self.good:
            self._fall_back(file)

    def _build(self) -> Registry:
        """A registry of every good policy; a second file holding a (city, version) already held
        by a file earlier in name order is refused, naming the file that holds it."""
        registry, holders = Registry(), {}
        registry.problems = {str(f): list(s.diagnostics) for f, s in self.files.items() if s.diagnostics}
        for file, policy in sorted(self.good.items()):
            key = (policy.id, policy.meta.version)
            if key in holders:
                registry.problems.setdefault(str(file), []).append(Diagnostic(
                    "duplicate_version", f"version '{key[1]}' of '{key[0]}' is already served from {holders[key]}",
                    f"“{key[0]}”的版本“{key[1]}”已由 {holders[key]} 提供", Location(str(file))))
                continue
            holders[key] = file.name
            registry.add(policy)
        self.holders = holders
        return registry

    def _keep(self, file: Path, data: bytes) -> None:
        """Keep the text of a file that loaded, for the next start if the file breaks meanwhile."""
        copy = good_copy(self.folder, file.name)
        try:
            if copy.is_file() and copy.read_bytes() == data:
                return
            write_atomic(copy, data)
        except OSError as err:
            log.warning("cannot keep a good copy of %s: %s", file.name, type(err).__name__)
            self._event(keep_failed=file.name, reason=type(err).__name__)

    def _fall_back(self, file: Path) -> None:
        """A file that does not load and was never served here: serve its last good text, kept when
        it last loaded, or else its last published copy; say so in the events and in /healthz."""
        archive = archive_dir(self.folder)
        try:
            candidates = [good_copy(self.folder, file.name), last_good(self.folder, file.name)]
        except OSError:
            candidates = [good_copy(self.folder, file.name)]
        for copy in candidates:
            if copy is None or not copy.is_file():
                continue
            try:
                policy, _ = read_policy(copy, self.folder)
            except PolicyError:
                continue
            self.good[file] = policy
            source = str(copy.relative_to(archive)) if copy.is_relative_to(archive) else copy.name
            self.fallbacks[file.name] = {"policy": policy.id, "version": policy.meta.version,
                                         "sha256": policy.digest, "served_from": source}
            log.warning("policy file %s refused; serving its older good copy %s (version %s)",
                        file.name, source, policy.meta.version)
            self._event(fallback=file.name, served=source, version=policy.meta.version)
            return

    def watch(self, interval: float = 1.0) -> threading.Thread:
        """Poll the folder in a daemon thread and reload when a file changes."""
        def loop():
            while not self._stop.wait(interval):
                try:
                    self.reload()
                except Exception as err:  # the watcher keeps watching
                    log.error("policy reload failed: %s", type(err).__name__)
        thread = threading.Thread(target=loop, name="policy-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

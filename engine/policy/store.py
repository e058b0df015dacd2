"""Policies served live: a changed file is re-checked and swapped in whole, or refused (政策热更新).

The store keeps, for each file, the last version that loaded. A reload builds a new
Registry from those and replaces the served one in a single assignment, so a request sees
either the old set or the new one, never a mix; a broken file never replaces a good one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from engine.compile.build import load_policy_file, load_policy_text
from engine.errors import Diagnostic, PolicyError
from engine.policy.publish import last_good
from engine.policy.registry import Registry, policy_files
from engine.policy.spec import Policy

log = logging.getLogger("medpay.policies")


@dataclass
class FileState:
    stamp: tuple[int, int]
    policy: Policy | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


class PolicyStore:
    """The policies of one folder, reloaded on demand or by a watcher thread."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files: dict[Path, FileState] = {}
        self.good: dict[Path, Policy] = {}
        self.registry = Registry()
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.reload()

    def reload(self) -> dict:
        """Re-check changed files; swap in what loads; report what changed and what was refused."""
        with self._lock:
            changed, refused = [], []
            present = set(policy_files(self.folder))
            for file in present:
                stat = file.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                state = self.files.get(file)
                if state is not None and state.stamp == stamp:
                    continue
                try:
                    policy = load_policy_file(file)
                    self.files[file] = FileState(stamp, policy)
                    self.good[file] = policy
                    changed.append(str(file.name))
                except PolicyError as err:
                    self.files[file] = FileState(stamp, None, err.diagnostics)
                    refused.append({"file": file.name, "diagnostics": [d.to_dict() for d in err.diagnostics]})
                    log.warning("policy file %s refused: %s", file.name, ", ".join(
                        f"{d.code} at {d.location.line}:{d.location.column}" for d in err.diagnostics[:5]))
                    if file not in self.good:
                        self._fall_back(file)
            for gone in set(self.files) - present:
                self.files.pop(gone)
                self.good.pop(gone, None)
                changed.append(f"{gone.name} (removed)")
            if changed or refused or not self.registry.cities:
                registry = Registry()
                for policy in self.good.values():
                    registry.add(policy)
                registry.problems = {str(f): s.diagnostics for f, s in self.files.items() if s.diagnostics}
                self.registry = registry  # the swap: one reference assignment
            report = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      "loaded": changed, "refused": refused}
            if changed or refused:
                self.events.append(report)
            return report

    def _fall_back(self, file: Path) -> None:
        """A file that does not load and was never served here: serve its last published good copy."""
        copy = last_good(self.folder, file.name)
        if copy is None:
            return
        try:
            self.good[file] = load_policy_text(copy.read_text(encoding="utf-8"), str(copy), self.folder)
        except PolicyError:
            return
        self.events.append({"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                            "fallback": file.name, "served": str(copy)})

    def watch(self, interval: float = 1.0) -> threading.Thread:
        """Poll the folder in a daemon thread and reload when a file changes."""
        def loop():
            while not self._stop.wait(interval):
                self.reload()
        thread = threading.Thread(target=loop, name="policy-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

"""Parsed formulas kept between runs, so that start-up needs no parser (公式解析缓存).

Building the LALR parser and parsing a policy's formulas is most of the time a command spends
loading a policy. The syntax tree of each formula text is kept in one file per version of the
grammar and of the tree's code (their digest names the file), under MEDPAY_CACHE_DIR (default
~/.cache/medpay; MEDPAY_CACHE_DIR=off turns the cache off).

Safe by construction: a cache file is unpickled only when its HMAC-SHA256, under a random key
kept in the cache folder (mode 0600, folder 0700, both owned by this user), matches; a file
written by anyone else, truncated or for another digest is ignored and rewritten. A formula the
parser rejects is never cached (the error is raised each time, with its message and offset).
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import os
import pickle
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_SOURCES = ("medpay.lark", "ast.py", "parser.py", "grammar.py", "syntax_messages.py", "formula_cache.py")
_MAX_ENTRIES = 20_000


def _digest() -> str:
    """What the cached trees depend on: the grammar and the code that builds the trees."""
    h = hashlib.sha256()
    for name in _SOURCES:
        path = _HERE / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return h.hexdigest()[:32]


class FormulaCache:
    """formula text → syntax tree, loaded lazily from a signed file and saved at exit when grown."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.entries: dict[str, Any] | None = None
        self.dirty = False

    def parse(self, text: str, parse: Callable[[str], Any]) -> Any:
        if self.folder is None:
            return parse(text)
        if self.entries is None:
            self.entries = self._load()
        if text in self.entries:
            return self.entries[text]
        node = parse(text)
        if len(self.entries) < _MAX_ENTRIES:
            self.entries[text] = node
            self.dirty = True
        return node

    # ---- the file -------------------------------------------------------------------------------
    def _path(self) -> Path:
        assert self.folder is not None
        return self.folder / f"formulas-{_digest()}.bin"

    def _key(self) -> bytes | None:
        """The signing key: created once, readable by this user only; None if the folder is not ours."""
        assert self.folder is not None
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.folder.stat()
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None  # a folder others can write to: do not trust (or write) anything there
            key_file = self.folder / "key"
            if not key_file.exists():
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
            info = key_file.stat()
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
            return key_file.read_bytes()
        except OSError:
            return None

    def _load(self) -> dict[str, Any]:
        key = self._key()
        if key is None:
            self.folder = None
            return {}
        try:
            blob = self._path().read_bytes()
        except OSError:
            return {}
        signature, payload = blob[:32], blob[32:]
        if len(signature) < 32 or not hmac.compare_digest(signature, hmac.new(key, payload, "sha256").digest()):
            return {}
        try:
            entries = pickle.loads(payload)  # signed by us with our key: written by `save`
        except Exception:  # noqa: BLE001 — a damaged file is only a miss
            return {}
        return entries if isinstance(entries, dict) else {}

    def save(self) -> None:
        """Write the entries (signed), atomically; any failure leaves the cache as it was."""
        if not self.dirty or self.folder is None or self.entries is None:
            return
        key = self._key()
        if key is None:
            return
        try:
            payload = pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".formulas-")
            with os.fdopen(fd, "wb") as out:
                out.write(hmac.new(key, payload, "sha256").digest() + payload)
            os.replace(temp, self._path())
            self.dirty = False
        except (OSError, pickle.PicklingError, RecursionError):
            pass


def _folder() -> Path | None:
    setting = os.environ.get("MEDPAY_CACHE_DIR", "")
    if setting.lower() in ("off", "0", "none"):
        return None
    if setting:
        return Path(setting)
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "medpay"


CACHE = FormulaCache(_folder())
atexit.register(CACHE.save)

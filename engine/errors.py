"""Errors that build their own bilingual message and carry a location (错误与诊断)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Location:
    """Where a diagnostic points: file, 1-based line and column, and the YAML path."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""
    excerpt: str | None = None

    def prefix(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file or self.path or "<policy>"


@dataclass
class Diagnostic:
    """One finding about a policy: an error (it cannot be loaded) or a warning."""

    code: str
    en: str
    zh: str
    location: Location
    severity: str = "error"

    def render(self) -> str:
        loc = self.location
        head = f"{loc.prefix()}: {self.severity}[{self.code}]: {self.en}\n    {self.zh}"
        if loc.path:
            head += f"\n    at {loc.path}"
        if loc.excerpt is not None and loc.column:
            head += f"\n     | {loc.excerpt}\n     | {' ' * (loc.column - 1)}^"
        return head

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.en,
                "message_zh": self.zh, **asdict(self.location)}


class PolicyError(Exception):
    """A policy could not be loaded; `diagnostics` says every reason."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.render() for d in diagnostics))


@dataclass
class InputFault:
    """One fault in a situation, at a JSON path such as entities.claim[3].total_cost."""

    path: str
    en: str
    zh: str
    code: str = ""  # a stable name for faults a client may act on (community_fund_missing)

    def to_dict(self) -> dict:
        out = {"path": self.path, "message": self.en, "message_zh": self.zh}
        return {**out, "code": self.code} if self.code else out


class SituationError(Exception):
    """A situation was rejected; `faults` names the JSON path of each problem."""

    def __init__(self, faults: list[InputFault]):
        self.faults = faults
        super().__init__("\n".join(f"{f.path}: {f.en} / {f.zh}" for f in faults))


class FormulaError(Exception):
    """A problem inside one formula, at a character offset; the loader adds the file position."""

    def __init__(self, code: str, en: str, zh: str, offset: int = 0):
        self.code, self.en, self.zh, self.offset = code, en, zh, offset
        super().__init__(en)


class LimitExceeded(Exception):
    """A request went past a named limit (engine.settings); `status` is the HTTP status to answer."""

    def __init__(self, setting: str, en: str, zh: str, status: int = 413):
        self.setting, self.en, self.zh, self.status = setting, en, zh, status
        super().__init__(en)


class PolicyCheckFailed(Exception):
    """A policy check of severity `error` failed on some rows; nothing is settled (政策校验未通过).

    `failures` are dicts: check, entity, severity, message, message_zh, source/assumed, count, ids,
    paths (the first failing rows), and `path` (the first of them)."""

    def __init__(self, failures: list[dict]):
        self.failures = failures
        super().__init__("\n".join(f"{f['entity']}.{f['check']}: {f['message']} / {f['message_zh']} "
                                   f"({f['count']} rows: {', '.join(map(str, f['ids']))})" for f in failures))

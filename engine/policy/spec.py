"""A loaded policy: metadata, parameters with dated values, tables, model (已加载的政策)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.model.model import Model
from engine.model.spec import Label, Text, Variable, text_dict


@dataclass
class ParameterVersion:
    start: dt.date
    value: Any
    source: str | None = None


@dataclass
class Parameter:
    """A policy number (or category map, or band table) with values by date (参数)."""

    name: str
    label: Label
    kind: str  # number | bool | string | date | list | map | bands
    versions: list[ParameterVersion]
    unit: str = ""
    source: str | None = None
    assumed: Text | None = None
    note: Text | None = None
    path: tuple = ()
    value_type: str = "number"  # for maps and lists: the type of the values (number or string)

    def version_index(self, dates: np.ndarray | np.datetime64) -> np.ndarray | int:
        """Index of the version in force on each date; dates before the first use the first."""
        if len(self.versions) == 1:
            return 0
        starts = np.array([np.datetime64(v.start, "D") for v in self.versions])
        idx = np.searchsorted(starts, dates, side="right") - 1
        return np.clip(idx, 0, len(self.versions) - 1)


@dataclass
class Table:
    """A lookup table read from CSV: key columns → value columns (查找表)."""

    name: str
    label: Label
    key: list[str]
    columns: dict[str, list[Any]]
    file: str
    source: str | None = None
    assumed: Text | None = None
    note: Text | None = None
    index: dict[tuple, int] = field(default_factory=dict)
    path: str = ""  # the file it was read from, resolved
    text: str = field(default="", repr=False)  # its CSV text, for drafts checked against the served tables

    def column_type(self, column: str) -> str:
        values = self.column_values(column)
        return "number" if all(isinstance(v, float) for v in values) else "string"

    def column_values(self, column: str) -> list[Any]:
        """A column's values in row order; a key column's too (numbers as floats, like value cells)."""
        if column in self.columns:
            return self.columns[column]
        at = self.key.index(column)
        texts = [""] * len(self.index)
        for key, row in self.index.items():
            texts[row] = key[at]
        numbers = [_number_or_none(t) for t in texts]
        return texts if any(n is None for n in numbers) else numbers


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class PolicyMeta:
    id: str
    name: Label
    notice: str
    title: str
    issuer: str
    issued: dt.date | None
    effective_from: dt.date
    effective_to: dt.date | None
    version: str

    def to_dict(self) -> dict:
        return {"id": self.id, "version": self.version, "notice": self.notice,
                "name": {"zh": self.name.zh, "en": self.name.en}, "title": self.title,
                "issuer": self.issuer, "issued": self.issued.isoformat() if self.issued else None,
                "effective": {"from": self.effective_from.isoformat(),
                              "to": self.effective_to.isoformat() if self.effective_to else None}}


SEVERITIES = ("error", "warning")


@dataclass
class Reading:
    """How the policy reads a clause the notice does not spell out (理解); `open` until the
    bureau decides. `affects` names the parameters and variables that follow it."""

    clause: str
    status: str
    text: Label
    affects: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"clause": self.clause, "status": self.status, "text": {"zh": self.text.zh, "en": self.text.en},
                "affects": self.affects}


@dataclass
class PolicyCheck:
    """An invariant of the policy, checked on every row of one entity (政策校验).

    `formula` is a yes/no formula, true where the row is fine; `severity` `error` stops the run
    and names the failing rows, `warning` is reported beside the result."""

    name: str
    entity: str
    formula: str
    severity: str
    message: Label
    source: str | None = None
    assumed: Text | None = None
    note: Text | None = None
    path: tuple = ()
    node: Any = None  # the parsed formula

    @property
    def clause(self) -> str:
        """The clause cited, or 'assumed: why'."""
        return self.source or f"assumed: {self.assumed}"

    def as_variable(self) -> Variable:
        """The check as a yes/no formula variable of its entity, for the checker and compiler."""
        return Variable(name=f"check.{self.name}", entity=self.entity, type="bool", formula=self.formula,
                        node=self.node, source=self.source, assumed=self.assumed, path=self.path)

    def describe(self) -> dict:
        """The check as JSON (API, page, validate)."""
        return {"entity": self.entity, "name": self.name, "formula": " ".join(self.formula.split()),
                "severity": self.severity, "message": {"zh": self.message.zh, "en": self.message.en},
                "source": self.source, "assumed": text_dict(self.assumed), "note": text_dict(self.note)}


@dataclass
class Policy:
    meta: PolicyMeta
    model: Model
    parameters: dict[str, Parameter]
    tables: dict[str, Table]
    file: str
    digest: str
    plan: Any = None  # engine.plan.Plan, attached after checking
    assumed: list[str] = field(default_factory=list)  # "where: en / zh", one line per assumed value
    assumptions: list[tuple[str, Text]] = field(default_factory=list)  # (where, reason in both languages)
    checks: list[PolicyCheck] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    statements: dict = field(default_factory=dict)  # entity → engine.policy.statement.StatementSpec
    groupings: dict[str, Any] = field(default_factory=dict)  # engine.policy.grouping.Grouping by name
    warnings: list = field(default_factory=list)  # plausibility warnings (Diagnostic), engine.policy.plausibility

    @property
    def id(self) -> str:
        return self.meta.id

"""Declarations shared by the model and the policies: labels, fields, entities (声明)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TYPES = ("number", "bool", "string", "date", "codes")  # codes: a list of codes per row
MONEY_UNITS = ("yuan",)


@dataclass
class Label:
    zh: str = ""
    en: str = ""


@dataclass
class Variable:
    """A named column of one entity: an input field, or a formula (变量)."""

    name: str
    entity: str
    type: str = "number"
    unit: str = ""
    label: Label = field(default_factory=Label)
    formula: str | None = None
    node: Any = None  # the parsed formula (a syntax tree of engine.dsl.ast)
    default: Any = None
    values: list[str] | None = None
    minimum: float | None = None
    source: str | None = None
    assumed: str | None = None
    note: str | None = None
    path: tuple = ()

    @property
    def is_input(self) -> bool:
        return self.formula is None

    @property
    def is_money(self) -> bool:
        return self.unit in MONEY_UNITS

    def default_value(self) -> Any:
        if self.default is not None:
            return self.default
        return {"number": 0.0, "bool": False, "string": "", "date": None, "codes": ()}[self.type]


@dataclass
class KeyPart:
    """One part of a keyed entity's id: a link of the row (`link`), or, on the source rows of a
    derived entity, the month ("YYYY-MM") of a date field (`month`, written `month(discharge_date)`)."""

    name: str  # the part's name on the keyed entity: "fund", "month"
    kind: str = "link"  # link | month
    field: str = ""  # the source field it is read from (the link itself, or the date field)


@dataclass
class Derivation:
    """Rows of a derived entity: distinct values of the `parts` of the rows of entity `source`."""

    source: str
    parts: list[KeyPart]

    @property
    def key(self) -> list[str]:
        """The part names, in id order."""
        return [p.name for p in self.parts]


@dataclass
class Coverage:
    """When an entity has rows, every `source` row whose key (link paths, first part scoping) has
    rows must find one; else the fault `<entity>_missing` (community_fund: every claim of a member
    institution of a community with rows needs the row of its fund)."""

    source: str
    key: list[list[str]]  # one link path on the source per key part: [["institution", "community"], ["fund"]]


@dataclass
class Chain:
    """Ordered chains of rows (referral chains): grouped by the `by` link, ordered by fields; a
    policy may split them further `within` the parents reached by link paths (a chain stops at the
    boundary of a medical community: `within: [institution.community]`)."""

    by: str
    order: list[str]
    within: list[list[str]] = field(default_factory=list)


@dataclass
class Entity:
    name: str
    label: Label
    links: dict[str, str] = field(default_factory=dict)
    derived: Derivation | None = None
    date: str | None = None
    chain: Chain | None = None
    variables: dict[str, Variable] = field(default_factory=dict)
    key: list[KeyPart] = field(default_factory=list)  # id = the parts joined with "|" (keyed entities)
    covers: Coverage | None = None

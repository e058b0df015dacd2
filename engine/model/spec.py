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


class Text(str):
    """A note or an assumption's reason in Chinese and English (中英文说明).

    It is also a plain string, "en / zh" (one text when both are the same), so that code that only
    shows it keeps working; `zh` and `en` give each language."""

    zh: str
    en: str

    def __new__(cls, zh: str, en: str) -> Text:
        zh, en = " ".join(str(zh).split()), " ".join(str(en).split())
        obj = super().__new__(cls, en if zh == en or not zh else zh if not en else f"{en} / {zh}")
        obj.zh, obj.en = zh or en, en or zh
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # pickling (distributed runs)
        return (self.zh, self.en)

    @property
    def bilingual(self) -> bool:
        """Written in both languages (a plain string is one text for both)."""
        return self.zh != self.en

    def to_dict(self) -> dict:
        return {"zh": self.zh, "en": self.en}


def text_of(data: object) -> Text | None:
    """A `note:` or `assumed:` value: `{zh: …, en: …}`, or a plain string (the same text for both
    languages, accepted for compatibility); None when absent."""
    if data is None:
        return None
    if isinstance(data, Text):
        return data
    if isinstance(data, dict):
        return Text(str(data.get("zh", "")), str(data.get("en", "")))
    return Text(str(data), str(data))


def text_dict(text: object) -> dict | None:
    """A note or reason as JSON, `{zh, en}` (the API's policy description); None when absent."""
    found = text_of(text)
    return found.to_dict() if found is not None else None


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
    required: str | None = None  # "always": needed on every row, whatever reads it (else: where read)
    values: list[str] | None = None
    minimum: float | None = None
    source: str | None = None
    assumed: Text | None = None
    note: Text | None = None
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

"""Reads the shared model file into `Entity` declarations and answers link questions (模型)."""

from __future__ import annotations

import copy
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from engine.model.spec import Chain, Coverage, Derivation, Entity, KeyPart, Label, Variable, text_of

MODEL_FILE = Path(__file__).with_name("model.yaml")  # package data: works from an installed wheel
KEY_FUNCTION = re.compile(r"^(month)\(([A-Za-z_][A-Za-z0-9_]*)\)$")  # month(discharge_date)


def label_of(data) -> Label:
    if isinstance(data, dict):
        return Label(str(data.get("zh", "")), str(data.get("en", "")))
    return Label("", str(data or ""))


def field_from(name: str, entity: str, spec: dict, path: tuple = ()) -> Variable:
    """Build an input Variable from a field declaration."""
    return Variable(name=name, entity=entity, type=spec.get("type", "number"), unit=spec.get("unit", ""),
                    label=label_of(spec.get("label")), default=spec.get("default"),
                    required=spec.get("required"),
                    values=spec.get("values"), minimum=spec.get("min"), note=text_of(spec.get("note")), path=path)


def key_part(text: str) -> KeyPart:
    """A key entry: a link name ("fund"), or "month(date_field)" — the month of a source date."""
    found = KEY_FUNCTION.match(text)
    if found:
        return KeyPart(found.group(1), found.group(1), found.group(2))
    return KeyPart(text, "link", text)


def check_keys(entities: dict[str, Entity]) -> None:
    """Key parts name links of their entity (and of the derived entity's source); a month part a
    date field of the source; a coverage path walks links. The model is package data: a slip is
    a programming error."""
    for entity in entities.values():
        source = entities[entity.derived.source] if entity.derived else None
        for part in entity.key:
            if part.kind == "link" and part.name not in entity.links:
                raise ValueError(f"model: {entity.name} key part '{part.name}' is not one of its links")
            if source and part.kind == "link" and part.field not in source.links:
                raise ValueError(f"model: {entity.name} key part '{part.name}' is not a link of {source.name}")
            if part.kind == "month" and (source is None or source.variables.get(part.field) is None
                                         or source.variables[part.field].type != "date"):
                raise ValueError(f"model: {entity.name} key part month({part.field}) needs a date field of "
                                 "the rows it is derived from")
        if entity.covers:
            for path in entity.covers.key:
                current = entities[entity.covers.source]
                for link in path:
                    if link not in current.links:
                        raise ValueError(f"model: {entity.name} covers: '{'.'.join(path)}' is not a link path")
                    current = entities[current.links[link]]


@dataclass
class Model:
    """The entities of a policy, with link paths between them."""

    entities: dict[str, Entity]

    @classmethod
    def from_data(cls, data: dict) -> Model:
        entities: dict[str, Entity] = {}
        for name, spec in data["entities"].items():
            derived = spec.get("derived")
            chain = spec.get("chain")
            covers = spec.get("covers")
            entity = Entity(
                name=name, label=label_of(spec.get("label")), links=dict(spec.get("links") or {}),
                derived=Derivation(derived["from"], [key_part(k) for k in derived["key"]]) if derived else None,
                date=spec.get("date"),
                chain=Chain(chain["by"], list(chain["order"])) if chain else None,
                covers=Coverage(covers["from"], [str(k).split(".") for k in covers["key"]]) if covers else None)
            entity.key = list(entity.derived.parts) if entity.derived and len(entity.derived.parts) > 1 else \
                [key_part(k) for k in spec.get("key") or []]
            for link, target in entity.links.items():
                entity.variables[link] = Variable(link, name, type="string",
                                                  label=Label(f"所属{target}", f"{target} id"))
            for fname, fspec in (spec.get("fields") or {}).items():
                entity.variables[fname] = field_from(fname, name, fspec or {},
                                                     ("model", "entities", name, "fields", fname))
            entities[name] = entity
        for entity in entities.values():  # the source rows link to their derived (or covering) row
            origin = entity.derived.source if entity.derived else (entity.covers.source if entity.covers else None)
            if origin:
                source = entities[origin]
                source.links.setdefault(entity.name, entity.name)
                source.variables.setdefault(entity.name, Variable(entity.name, source.name, type="string"))
        check_keys(entities)
        return cls(entities)

    def copy(self) -> Model:
        return copy.deepcopy(self)

    def parent_path(self, child: str, ancestor: str) -> list[str] | None:
        """The shortest chain of link names from `child` up to `ancestor`, or None."""
        queue: deque[tuple[str, list[str]]] = deque([(child, [])])
        seen = {child}
        while queue:
            current, path = queue.popleft()
            for link, target in self.entities[current].links.items():
                if target == ancestor:
                    return [*path, link]
                if target not in seen:
                    seen.add(target)
                    queue.append((target, [*path, link]))
        return None

    def is_descendant(self, child: str, ancestor: str) -> bool:
        return child != ancestor and self.parent_path(child, ancestor) is not None

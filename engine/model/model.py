"""Reads the shared model file into `Entity` declarations and answers link questions (模型)."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from engine.model.spec import Chain, Derivation, Entity, Label, Variable

MODEL_FILE = Path(__file__).with_name("model.yaml")  # package data: works from an installed wheel


def label_of(data) -> Label:
    if isinstance(data, dict):
        return Label(str(data.get("zh", "")), str(data.get("en", "")))
    return Label("", str(data or ""))


def field_from(name: str, entity: str, spec: dict, path: tuple = ()) -> Variable:
    """Build an input Variable from a field declaration."""
    return Variable(name=name, entity=entity, type=spec.get("type", "number"), unit=spec.get("unit", ""),
                    label=label_of(spec.get("label")), default=spec.get("default"),
                    values=spec.get("values"), minimum=spec.get("min"), note=spec.get("note"), path=path)


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
            entity = Entity(
                name=name, label=label_of(spec.get("label")), links=dict(spec.get("links") or {}),
                derived=Derivation(derived["from"], list(derived["key"])) if derived else None,
                date=spec.get("date"),
                chain=Chain(chain["by"], list(chain["order"])) if chain else None)
            for link, target in entity.links.items():
                entity.variables[link] = Variable(link, name, type="string",
                                                  label=Label(f"所属{target}", f"{target} id"))
            for fname, fspec in (spec.get("fields") or {}).items():
                entity.variables[fname] = field_from(fname, name, fspec or {},
                                                     ("model", "entities", name, "fields", fname))
            entities[name] = entity
        for entity in entities.values():
            if entity.derived:
                source = entities[entity.derived.source]
                source.links.setdefault(entity.name, entity.name)
                source.variables.setdefault(entity.name, Variable(entity.name, source.name, type="string"))
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

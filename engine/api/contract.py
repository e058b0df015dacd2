"""A city's input contract for integrators: entities, fields and a JSON Schema of a situation (输入约定).

What `/v1/cities/{city}/entities` and `/v1/cities/{city}/schema` answer. Both are read from the
compiled policy (its model and plan), never written by hand: a field a formula of the policy needs
and that has no default is `required: "when_read"` (required on the rows where a formula reading it
runs); a field with a default is optional and says its default; a formula variable may be supplied
to replace its formula on a row (`formula: true`).
"""

from __future__ import annotations

from typing import Any

from engine.policy.spec import Parameter, Policy
from engine.settings import LIMITS

ID_SCHEMA = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "integer"}]}
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
PERIOD_SCHEMA = {"anyOf": [
    {"type": "string", "pattern": r"^\d{4}(-\d{2})?$", "description": "a year \"2024\" or a month \"2024-06\""},
    {"type": "object", "additionalProperties": False, "required": ["start", "end"],
     "properties": {"start": {"type": "string", "pattern": DATE_PATTERN},
                    "end": {"type": "string", "pattern": DATE_PATTERN}}}]}


def read_fields(policy: Policy) -> set[tuple[str, str]]:
    """Every (entity, field) some formula of the policy reads directly."""
    return {dep for step in policy.plan.steps for dep in step.checked.deps}


def field_required(policy: Policy, entity: str, name: str, read: set[tuple[str, str]]) -> str:
    """`when_read` (no default, read by a formula), `optional` (a default), `unused` (nothing reads it),
    `formula` (computed; may be supplied to replace its formula)."""
    var = policy.model.entities[entity].variables[name]
    if not var.is_input:
        return "formula"
    if var.default is not None:
        return "optional"
    return "when_read" if (entity, name) in read else "unused"


def describe_entities(policy: Policy) -> dict:
    """Per entity: label, links, how its rows come (given or derived), and each field with its
    type, unit, allowed values, default, minimum, required-ness and clause."""
    read = read_fields(policy)
    out = {}
    for entity in policy.model.entities.values():
        fields = {}
        for name, var in entity.variables.items():
            link = entity.links.get(name)
            fields[name] = {
                "label": {"zh": var.label.zh, "en": var.label.en},
                "type": "link" if link else var.type,
                **({"links_to": link} if link else {}),
                **({"unit": var.unit} if var.unit else {}),
                **({"values": list(var.values)} if var.values else {}),
                **({"default": var.default} if var.default is not None else {}),
                **({"minimum": var.minimum} if var.minimum is not None else {}),
                "required": field_required(policy, entity.name, name, read),
                **({"formula": " ".join(var.formula.split())} if var.formula else {}),
                **({"source": var.source} if var.source else {}),
                **({"assumed": var.assumed} if var.assumed else {}),
            }
        derived = entity.derived
        out[entity.name] = {
            "label": {"zh": entity.label.zh, "en": entity.label.en},
            "links": dict(entity.links),
            "rows": "derived" if derived else "given",
            **({"derived_from": {"entity": derived.source, "key": [p.name for p in derived.parts]}}
               if derived else {}),
            **({"date_field": entity.date} if entity.date else {}),
            "fields": fields,
        }
    return out


def _field_schema(policy: Policy, entity: str, name: str) -> dict:
    """The JSON Schema of one field's value in a situation row (null means not given)."""
    ent = policy.model.entities[entity]
    var = ent.variables[name]
    label = f"{var.label.zh} {var.label.en}".strip()
    if name in ent.links:
        base: dict[str, Any] = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
    elif var.type == "number":
        base = {"type": "number", "maximum": LIMITS.amount,
                "minimum": var.minimum if var.minimum is not None else -LIMITS.amount}
    elif var.type == "bool":
        base = {"type": "boolean"}
    elif var.type == "date":
        base = {"type": "string", "pattern": DATE_PATTERN, "format": "date"}
    else:
        base = {"type": "string", **({"enum": list(var.values)} if var.values else {})}
    return {"anyOf": [base, {"type": "null"}], "description": label}


def _parameter_schema(param: Parameter) -> dict:
    """A what-if override's schema by the parameter's kind (its values are checked again on arrival)."""
    kind = param.kind
    if kind == "number":
        return {"type": "number"}
    if kind in ("string", "date"):
        return {"type": "string"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "list":
        return {"type": "array", "items": {"type": "string" if param.value_type == "string" else "number"}}
    if kind == "bands":
        return {"type": "object", "required": ["edges", "rates"],
                "properties": {"edges": {"type": "array", "items": {"type": "number"}},
                               "rates": {"type": "array", "items": {"type": "number"}}}}
    keys = sorted({k for v in param.versions if isinstance(v.value, dict) for k in v.value})
    item = {"type": "string" if param.value_type == "string" else "number"}
    return {"type": "object", "additionalProperties": False, "properties": {k: item for k in keys}}


def situation_schema(policy: Policy) -> dict:
    """A JSON Schema (draft 2020-12) of a situation for this policy: an integrator validates a
    request with it before sending. The server checks more (links to ids, limits, dates in the
    period); a situation this schema refuses is always refused by the server too."""
    entities = {}
    for entity in policy.model.entities.values():
        props = {"id": ID_SCHEMA, **{name: _field_schema(policy, entity.name, name) for name in entity.variables}}
        entities[entity.name] = {"type": "array", "maxItems": LIMITS.rows, "description": entity.label.en,
                                 "items": {"type": "object", "required": ["id"], "additionalProperties": False,
                                           "properties": props}}
    outputs = sorted(f"{e.name}.{v}" for e in policy.model.entities.values() for v in e.variables)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"medpay:{policy.id}@{policy.meta.version}/situation",
        "title": f"{policy.meta.name.zh} {policy.meta.name.en} — situation",
        "type": "object", "additionalProperties": False, "required": ["period"],
        "properties": {
            "period": PERIOD_SCHEMA,
            "parameters": {"type": "object", "additionalProperties": False,
                           "properties": {n: _parameter_schema(p) for n, p in policy.parameters.items()}},
            "entities": {"type": "object", "additionalProperties": False, "properties": entities},
            "outputs": {"type": "array", "items": {"enum": outputs}},
        },
    }

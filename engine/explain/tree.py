"""A readable tree of how one value was computed, from a run's trace (计算过程树)."""

from __future__ import annotations

import re

NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".")
    return str(value)


def _child_key(trace: dict, key: str, input_name: str) -> str | None:
    """The trace key of an input that is itself a computed value on the same row."""
    entity, rid, _ = key.split(".", 2)
    if not NAME.match(input_name) or "." in input_name:
        return None
    candidate = f"{entity}.{rid}.{input_name}"
    return candidate if candidate in trace and trace[candidate].get("formula") else None


def render_tree(trace: dict, key: str, depth: int = 0, seen: set | None = None, max_depth: int = 8) -> str:
    """Value, formula, clause and inputs, expanding inputs computed on the same row."""
    seen = seen or set()
    node = trace[key]
    pad = "    " * depth
    label = node.get("label") or {}
    clause = node.get("source") and f"[{node['source']}]" or (node.get("assumed") and f"[assumed: {node['assumed']}]") or ""
    lines = [f"{pad}{key} = {_fmt(node['value'])}  {label.get('zh', '')} {clause}".rstrip()]
    if node.get("formula"):
        lines.append(f"{pad}    = {node['formula']}")
    elif node.get("note"):
        lines.append(f"{pad}    ({node['note']})")
    for name, value in (node.get("inputs") or {}).items():
        child = _child_key(trace, key, name)
        if child and child not in seen and depth < max_depth:
            seen.add(child)
            lines.append(render_tree(trace, child, depth + 1, seen, max_depth))
        else:
            lines.append(f"{pad}    · {name} = {_fmt(value)}")
    return "\n".join(lines)

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
    params = node.get("parameters") or {}
    for name, value in (node.get("inputs") or {}).items():
        child = _child_key(trace, key, name)
        if child and child not in seen and depth < max_depth:
            seen.add(child)
            lines.append(render_tree(trace, child, depth + 1, seen, max_depth))
            continue
        where = params.get(name, {})
        clause = f"  [{where['note']}]" if where.get("overridden") else \
            f"  [{where['source']}]" if where.get("source") else \
            (f"  [assumed: {where['assumed']}]" if where.get("assumed") else "")
        lines.append(f"{pad}    · {name} = {_fmt(value)}{clause}")
        above = (node.get("parents") or {}).get(name)
        if above in trace and above not in seen and trace[above].get("formula") and depth < max_depth:
            seen.add(above)
            lines.append(render_tree(trace, above, depth + 2, seen, max_depth))
        for part in (node.get("children") or {}).get(name, []):
            if part in trace and part not in seen and depth < max_depth:
                seen.add(part)
                lines.append(render_tree(trace, part, depth + 2, seen, max_depth))
    return "\n".join(lines)


def _clause(item: dict) -> str:
    if item.get("source"):
        return f"[{item['source']}]"
    return f"[assumed: {item['assumed']}]" if item.get("assumed") else ""


def render_explanation(node: dict, depth: int = 0) -> str:
    """The text of one value's explanation (engine.explain.cone): value, formula, clause, then each
    input — nested explanations indented, and for aggregations the count, the sum and the child
    rows that contribute most, each with the key that explains it in turn."""
    pad = "    " * depth
    label = node.get("label") or {}
    lines = [f"{pad}{node['key']} = {_fmt(node['value'])}  {label.get('zh', '')} {_clause(node)}".rstrip()]
    if node.get("formula"):
        lines.append(f"{pad}    = {node['formula']}")
    elif node.get("note"):
        lines.append(f"{pad}    ({node['note']})")
    for item in node.get("inputs") or []:
        where = f"  ({item['key']})" if item.get("kind") == "parent" and item.get("key") else ""
        lines.append(f"{pad}    · {item['text']} = {_fmt(item['value'])}{where}  {_clause(item)}".rstrip())
        if item.get("explanation"):
            lines.append(render_explanation(item["explanation"], depth + 2))
        if item.get("children"):
            lines.extend(_children_lines(item["children"], pad + "        "))
    return "\n".join(lines)


def _children_lines(summary: dict, pad: str) -> list[str]:
    """An aggregation's child rows: count and sum, then the largest, each explainable in turn."""
    what = summary["expression"] or summary["entity"]
    where = f" where {summary['where']}" if summary.get("where") else ""
    lines = [f"{pad}{summary['count']:,} {summary['entity']} rows{where}, sum of {what} = {_fmt(summary['sum'])}"
             f" / 下级 {summary['count']:,} 行，合计 {_fmt(summary['sum'])}"]
    if summary["top"] and summary["count"] > summary["shown"]:
        lines.append(f"{pad}the {summary['shown']} largest / 最大的 {summary['shown']} 行:")
    for child in summary["top"]:
        name = child.get("key") or f"{summary['entity']}.{child['id']}: {what}"
        lines.append(f"{pad}  {name} = {_fmt(child['value'])}")
    return lines

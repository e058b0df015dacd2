"""YAML loaded with the line and column of every value kept (带位置的 YAML 读取)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import Diagnostic, Location, PolicyError

Path = tuple[Any, ...]


@dataclass
class SourceText:
    """A YAML document's data plus where each value stood in the file."""

    file: str
    text: str
    data: Any
    nodes: dict[Path, Node] = field(default_factory=dict)

    def location(self, path: Path, offset: int | None = None) -> Location:
        """Location of the value at `path`; with `offset`, of that character inside a string value."""
        node = self._nearest(path)
        dotted = path_text(path)
        if node is None:
            return Location(self.file, None, None, dotted)
        line, col = node.start_mark.line, node.start_mark.column
        if offset is not None and isinstance(node, ScalarNode):
            line, col = self._char_position(node, offset)
        lines = self.text.splitlines()
        excerpt = lines[line] if 0 <= line < len(lines) else None
        return Location(self.file, line + 1, col + 1, dotted, excerpt)

    def key_location(self, path: Path) -> Location:
        """Location of the mapping key that names `path` (for unknown or duplicate keys)."""
        parent = self.nodes.get(tuple(path[:-1]))
        if isinstance(parent, MappingNode):
            for key_node, _ in parent.value:
                if key_node.value == path[-1]:
                    lines = self.text.splitlines()
                    ln = key_node.start_mark.line
                    return Location(self.file, ln + 1, key_node.start_mark.column + 1, path_text(path),
                                    lines[ln] if ln < len(lines) else None)
        return self.location(path)

    def _nearest(self, path: Path) -> Node | None:
        path = tuple(path)
        while path not in self.nodes and path:
            path = path[:-1]
        return self.nodes.get(path)

    def _char_position(self, node: ScalarNode, offset: int) -> tuple[int, int]:
        """Map a character offset in a scalar's value to its line and column in the file.

        Non-blank characters of the value appear in the same order in the file text,
        whatever the scalar style (plain, quoted, literal `|` or folded `>`), so the k-th
        non-blank character of the value is the k-th non-blank one of the node's span.
        """
        value = node.value
        offset = max(0, min(offset, len(value)))
        k = sum(1 for ch in value[:offset] if not ch.isspace())
        at_end = offset >= len(value) or value[offset:].strip() == ""
        start, end = node.start_mark.index, node.end_mark.index
        if node.style in ("|", ">"):
            start = self.text.index("\n", start) + 1 if "\n" in self.text[start:end] else start
        elif node.style in ("'", '"'):
            start += 1
        seen, last = 0, start
        for i in range(start, end):
            if not self.text[i].isspace():
                if seen == k and not at_end:
                    return self._line_col(i)
                seen += 1
                last = i
        return self._line_col(last + 1 if at_end else last)

    def _line_col(self, index: int) -> tuple[int, int]:
        before = self.text[:index]
        line = before.count("\n")
        return line, index - (before.rfind("\n") + 1)


def path_text(path: Path) -> str:
    """('variables', 'claim', 'points') → 'variables.claim.points'; list indices as [i]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    """Turns composed YAML nodes into plain data, recording each node's path."""

    def __init__(self, source: SourceText):
        self.source = source
        self.constructor = SafeConstructor()
        self.problems: list[Diagnostic] = []

    def build(self, node: Node, path: Path) -> Any:
        self.source.nodes[path] = node
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if isinstance(key, (int, float)) and not isinstance(key, bool):
                    key = str(key)
                if key in out:
                    lines = self.source.text.splitlines()
                    ln = key_node.start_mark.line
                    self.problems.append(Diagnostic(
                        "duplicate_key", f"'{key}' is given twice; the second one would silently win",
                        f"“{key}”出现了两次；请删除或合并其中一个",
                        Location(self.source.file, ln + 1, key_node.start_mark.column + 1,
                                 path_text((*path, key)), lines[ln] if ln < len(lines) else None)))
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def load_yaml(text: str, file: str) -> SourceText:
    """Parse YAML text; raise PolicyError with positions on syntax errors or duplicate keys."""
    source = SourceText(file, text, None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        lines = text.splitlines()
        line = mark.line if mark else 0
        problem = err.problem or "invalid YAML"
        raise PolicyError([Diagnostic(
            "yaml_syntax",
            f"the file is not valid YAML: {problem}"
            + (f" ({err.context})" if err.context else "")
            + ". Check the indentation (spaces, not tabs) and that every 'key: value' has its colon.",
            "文件不是有效的 YAML：请检查缩进（用空格，不用制表符）以及每个“键: 值”是否有冒号。",
            Location(file, line + 1, (mark.column + 1) if mark else 1, "",
                     lines[line] if line < len(lines) else None))]) from None
    if root is None:
        raise PolicyError([Diagnostic("empty_file", "the policy file is empty", "政策文件为空",
                                      Location(file, 1, 1))])
    builder = _Builder(source)
    source.data = builder.build(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    return source

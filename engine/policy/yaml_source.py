"""YAML loaded with the line and column of every value kept (带位置的 YAML 读取)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import Scanner

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

    def text_as_written(self, path: Path, value: str) -> str:
        """A string value with the line breaks of the file kept for folded `>` blocks.

        YAML folds a `>` block into one line, so a `# note` in a formula would swallow every
        line after it; with the breaks kept the note ends at its line. Other styles keep `value`.
        """
        node = self.nodes.get(tuple(path))
        if not (isinstance(node, ScalarNode) and node.style == ">" and "#" in value):
            return value
        start, end = node.start_mark.index, node.end_mark.index
        start = self.text.index("\n", start) + 1 if "\n" in self.text[start:end] else start
        return "\n".join(line.strip() for line in self.text[start:end].splitlines()).strip() + "\n"

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
        non-blank character of the value is the k-th non-blank one of the node's span
        (an escape such as \\" or '' counting as the one character it stands for).
        """
        value = node.value
        offset = max(0, min(offset, len(value)))
        k = sum(1 for ch in value[:offset] if not ch.isspace())
        at_end = offset >= len(value) or value[offset:].strip() == ""
        start, end = node.start_mark.index, node.end_mark.index
        if node.style in ("|", ">"):
            start = self.text.index("\n", start) + 1 if "\n" in self.text[start:end] else start
        elif node.style in ("'", '"'):
            start, end = start + 1, end - 1
        positions = list(self._non_blank(node.style, start, end))
        if not positions:
            return self._line_col(start)
        if at_end:
            return self._line_col(positions[-1] + 1)
        return self._line_col(positions[min(k, len(positions) - 1)])

    def _non_blank(self, style: str | None, start: int, end: int):
        """File index of each non-blank character of a scalar's value, in order."""
        text, i = self.text, start
        while i < end:
            ch = text[i]
            if style == '"' and ch == "\\" and i + 1 < end:
                code = text[i + 1]
                if code in Scanner.ESCAPE_CODES:
                    width = Scanner.ESCAPE_CODES[code]
                    try:
                        char = chr(int(text[i + 2:i + 2 + width], 16))
                    except ValueError:
                        char = "?"
                    step = 2 + width
                else:
                    char, step = Scanner.ESCAPE_REPLACEMENTS.get(code, " " if code.isspace() else code), 2
                if not char.isspace():
                    yield i
                i += step
                continue
            if style == "'" and ch == "'" and text[i + 1:i + 2] == "'":
                yield i
                i += 2
                continue
            if not ch.isspace():
                yield i
            i += 1

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
                key = self.scalar(key_node, (*path, key_node.value)) if isinstance(key_node, ScalarNode) \
                    else self.constructor.construct_object(key_node, deep=True)
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
        return self.scalar(node, path)

    def scalar(self, node: Node, path: Path) -> Any:
        """A scalar's value. One that looks like a date but is none (2024-13-01) is reported
        with its position, and kept as text, instead of stopping the loader."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except ValueError as err:
            lines = self.source.text.splitlines()
            ln = node.start_mark.line
            if node.tag.endswith(":timestamp"):
                code, en = "bad_date", f"'{node.value}' is not a valid date; write it as YYYY-MM-DD, e.g. 2024-01-01"
                zh = f"“{node.value}”不是有效日期；请写作 YYYY-MM-DD，例如 2024-01-01"
            else:
                code, en, zh = "bad_value", f"'{node.value}' cannot be read ({err})", f"无法读取“{node.value}”"
            self.problems.append(Diagnostic(code, en, zh, Location(
                self.source.file, ln + 1, node.start_mark.column + 1, path_text(path),
                lines[ln] if ln < len(lines) else None)))
            return node.value


def load_yaml(text: str, file: str) -> SourceText:
    """Parse YAML text; raise PolicyError with positions on syntax errors or duplicate keys."""
    source = SourceText(file, text, None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as err:
        before = text[:err.position]
        line, col = before.count("\n"), err.position - (before.rfind("\n") + 1)
        raise PolicyError([Diagnostic(
            "bad_character", f"the file contains a control character (code {err.character:#x}) that YAML does not allow; "
            "delete it (it often comes from copying out of another program)",
            f"文件中含有 YAML 不允许的控制字符（编码 {err.character:#x}）；请删除（常见于从其他程序复制的文字）",
            Location(file, line + 1, col + 1, "", text.splitlines()[line] if text.splitlines() else ""))]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        lines = text.splitlines()
        line = mark.line if mark else 0
        problem = err.problem or "invalid YAML"
        if "mapping values are not allowed" in problem:
            lines = text.splitlines()
            line = mark.line if mark else 0
            raise PolicyError([Diagnostic(
                "colon_in_value", "a ': ' inside a value makes YAML read a new key; put the whole value in quotes",
                "值中含有“: ”会被当作新的键；请给整个值加引号",
                Location(file, line + 1, (mark.column + 1) if mark else 1, "",
                         lines[line] if line < len(lines) else None))]) from None
        if "'\\t'" in problem:
            en = "a tab character is used here: YAML indentation must use spaces, not tabs"
            zh = "此处使用了制表符（Tab）：YAML 缩进只能用空格，不能用制表符"
        else:
            en = ("the file is not valid YAML here: check the indentation (spaces, not tabs) and that every "
                  f"'key: value' has its colon (YAML reports: {problem}"
                  + (f", {err.context}" if err.context else "") + ")")
            zh = "文件在此处不是有效的 YAML：请检查缩进（用空格，不用制表符）以及每个“键: 值”是否有冒号"
        raise PolicyError([Diagnostic(
            "yaml_syntax", en, zh,
            Location(file, line + 1, (mark.column + 1) if mark else 1, "",
                     lines[line] if line < len(lines) else None))]) from None
    except yaml.YAMLError as err:  # any other reader or scanner complaint
        raise PolicyError([Diagnostic("yaml_syntax", f"the file is not valid YAML: {err}",
                                      "文件不是有效的 YAML", Location(file, 1, 1))]) from None
    if root is None:
        raise PolicyError([Diagnostic("empty_file", "the policy file is empty", "政策文件为空",
                                      Location(file, 1, 1))])
    builder = _Builder(source)
    source.data = builder.build(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    return source

"""YAML loaded with the line and column of every value kept (带位置的 YAML 读取)."""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.scanner import Scanner

from engine import settings
from engine.errors import Diagnostic, Location, PolicyError

Path = tuple[Any, ...]

# libyaml when present: the pure-Python parser costs ~6 s per MB of policy text
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXCERPT_CHARS = 240  # a longer line is cut in a diagnostic's excerpt (or left out past this column)


def excerpt_of(line: str | None, column: int) -> str | None:
    """The file line quoted under a diagnostic: whole when short; cut when long, none when the column is far in."""
    if line is None or len(line) <= EXCERPT_CHARS:
        return line
    return line[:EXCERPT_CHARS] + " …" if column < EXCERPT_CHARS else None


def shown(value: Any, limit: int = 60) -> str:
    """A value as quoted in a message, cut to `limit` characters."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class SourceText:
    """A YAML document's data plus where each value stood in the file."""

    file: str
    text: str
    data: Any
    nodes: dict[Path, Node] = field(default_factory=dict)
    _lines: list[str] | None = field(default=None, repr=False, compare=False)
    _starts: list[int] | None = field(default=None, repr=False, compare=False)

    def line(self, index: int) -> str | None:
        """The 0-based line `index` of the text (split once, then reused by every diagnostic)."""
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[index] if 0 <= index < len(self._lines) else None

    def at(self, line: int, column: int, dotted: str = "") -> Location:
        """A Location from a 0-based line and column, with the file line as excerpt."""
        return Location(self.file, line + 1, column + 1, dotted, excerpt_of(self.line(line), column + 1))

    def location(self, path: Path, offset: int | None = None) -> Location:
        """Location of the value at `path`; with `offset`, of that character inside a string value."""
        node = self._nearest(path)
        dotted = path_text(path)
        if node is None:
            return Location(self.file, None, None, dotted)
        line, col = node.start_mark.line, node.start_mark.column
        if offset is not None and isinstance(node, ScalarNode):
            line, col = self._char_position(node, offset)
        return self.at(line, col, dotted)

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
                    return self.at(key_node.start_mark.line, key_node.start_mark.column, path_text(path))
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
        """0-based line and column of a character index (binary search over the line starts)."""
        if self._starts is None:
            self._starts = [0, *(m.end() for m in re.finditer("\n", self.text))]
        line = bisect_right(self._starts, index) - 1
        return line, index - self._starts[line]


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
                if not isinstance(key_node, ScalarNode):
                    self.problem(key_node, path, "complex_key", "a key must be a plain name, not a list or a "
                                 "set of entries", "键必须是简单的名称，不能是列表或映射")
                    continue
                key = self.scalar(key_node, (*path, key_node.value))
                if isinstance(key, (int, float)) and not isinstance(key, bool):
                    key = str(key)
                if key in out:
                    self.problem(key_node, (*path, key), "duplicate_key",
                                 f"'{shown(key)}' is given twice; the second one would silently win",
                                 f"“{shown(key)}”出现了两次；请删除或合并其中一个")
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def problem(self, node: Node, path: Path, code: str, en: str, zh: str) -> None:
        """Record a diagnostic at a node's start."""
        mark = node.start_mark
        self.problems.append(Diagnostic(code, en, zh, self.source.at(mark.line, mark.column, path_text(path))))

    def scalar(self, node: Node, path: Path) -> Any:
        """A scalar's value. One that looks like a date but is none (2024-13-01), or a number
        that is not finite (1e400, .nan, .inf), is reported with its position, and kept as
        text, instead of stopping the loader."""
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ValueError as err:
            if node.tag.endswith(":timestamp"):
                self.problem(node, path, "bad_date",
                             f"'{shown(node.value)}' is not a valid date; write it as YYYY-MM-DD, e.g. 2024-01-01",
                             f"“{shown(node.value)}”不是有效日期；请写作 YYYY-MM-DD，例如 2024-01-01")
            else:
                self.problem(node, path, "bad_value", f"'{shown(node.value)}' cannot be read ({shown(err, 80)})",
                             f"无法读取“{shown(node.value)}”")
            return node.value
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, path, "not_finite", f"'{shown(node.value)}' is not a finite number "
                         "(infinity and NaN cannot be used; write an ordinary number)",
                         f"“{shown(node.value)}”不是有限数值（不能使用无穷大或 NaN；请写普通数字）")
            return node.value
        return value


def _refuse(text: str, file: str, mark: Any, code: str, en: str, zh: str) -> PolicyError:
    source = SourceText(file, text, None)
    return PolicyError([Diagnostic(code, en, zh, source.at(mark.line, mark.column))])


def check_events(text: str, file: str) -> None:
    """Refuse anchors, aliases, tags, too deep nesting and too many values, from the parser's
    event stream, before any node is built: an alias bomb is refused before it is expanded."""
    limits = settings.LIMITS
    depth = nodes = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refuse(text, file, event.start_mark, "yaml_alias",
                          "YAML anchors (&name) and aliases (*name) are not allowed in a policy file; "
                          "write each value out in full",
                          "政策文件中不允许使用 YAML 锚点（&名称）和别名（*名称）；请完整写出每个值")
        if getattr(event, "tag", None) is not None:
            raise _refuse(text, file, event.start_mark, "yaml_tag",
                          f"YAML tags ({shown(event.tag, 40)}) are not allowed in a policy file; write the value "
                          "plainly, in quotes if it is a text",
                          "政策文件中不允许使用 YAML 标签（!…）；请直接写值，文字可加引号")
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > limits.policy_depth:
                raise _refuse(text, file, event.start_mark, "too_deep",
                              f"the file nests lists and entries more than {limits.policy_depth} levels deep "
                              "(MEDPAY_MAX_POLICY_DEPTH)",
                              f"文件中列表与映射嵌套超过 {limits.policy_depth} 层（MEDPAY_MAX_POLICY_DEPTH）")
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        if isinstance(event, NodeEvent):
            nodes += 1
            if nodes > limits.policy_nodes:
                raise _refuse(text, file, event.start_mark, "too_many_values",
                              f"the file holds more than {limits.policy_nodes} values (MEDPAY_MAX_POLICY_NODES)",
                              f"文件中的值超过 {limits.policy_nodes} 个（MEDPAY_MAX_POLICY_NODES）")


def _check_characters(text: str, file: str) -> None:
    """Refuse a character YAML does not allow (a control character, a lone surrogate) at its position."""
    bad = Reader.NON_PRINTABLE.search(text)
    if bad is None:
        return
    source = SourceText(file, text, None)
    line, col = source._line_col(bad.start())
    code = ord(bad.group())
    raise PolicyError([Diagnostic(
        "bad_character", f"the file contains a control character (code {code:#x}) that YAML does not allow; "
        "delete it (it often comes from copying out of another program)",
        f"文件中含有 YAML 不允许的控制字符（编码 {code:#x}）；请删除（常见于从其他程序复制的文字）",
        Location(file, line + 1, col + 1, "", excerpt_of(source.line(line), col + 1) or ""))])


def _syntax_error(text: str, file: str, err: yaml.MarkedYAMLError) -> PolicyError:
    mark = err.problem_mark or err.context_mark
    index, line, col = (mark.index, mark.line, mark.column) if mark else (0, 0, 0)
    problem = err.problem or "invalid YAML"
    if "mapping values are not allowed" in problem:
        return _refuse(text, file, mark or yaml.Mark(file, 0, 0, 0, None, None), "colon_in_value",
                       "a ': ' inside a value makes YAML read a new key; put the whole value in quotes",
                       "值中含有“: ”会被当作新的键；请给整个值加引号")
    if "'\\t'" in problem or text[index:index + 1] == "\t":
        en = "a tab character is used here: YAML indentation must use spaces, not tabs"
        zh = "此处使用了制表符（Tab）：YAML 缩进只能用空格，不能用制表符"
    else:
        en = ("the file is not valid YAML here: check the indentation (spaces, not tabs) and that every "
              f"'key: value' has its colon (YAML reports: {problem}" + (f", {err.context}" if err.context else "") + ")")
        zh = "文件在此处不是有效的 YAML：请检查缩进（用空格，不用制表符）以及每个“键: 值”是否有冒号"
    source = SourceText(file, text, None)
    return PolicyError([Diagnostic("yaml_syntax", en, zh, source.at(line, col))])


def load_yaml(text: str, file: str) -> SourceText:
    """Parse YAML text; raise PolicyError with positions on syntax errors, duplicate keys, aliases or excess."""
    _check_characters(text, file)
    source = SourceText(file, text, None)
    try:
        check_events(text, file)
        root = yaml.compose(text, Loader=LOADER)
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(text, file, err) from None
    except yaml.YAMLError as err:  # any other reader or scanner complaint
        raise PolicyError([Diagnostic("yaml_syntax", f"the file is not valid YAML: {shown(err, 200)}",
                                      "文件不是有效的 YAML", Location(file, 1, 1))]) from None
    if root is None:
        raise PolicyError([Diagnostic("empty_file", "the policy file is empty", "政策文件为空",
                                      Location(file, 1, 1))])
    builder = _Builder(source)
    source.data = builder.build(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    return source

"""Parameter values and tables: percent text, category maps, band tables, CSV (参数值与查找表)."""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from engine import settings
from engine.errors import Diagnostic
from engine.model.model import label_of
from engine.model.spec import text_of
from engine.policy.spec import Parameter, ParameterVersion, Table
from engine.policy.yaml_source import SourceText, shown

PERCENT = re.compile(r"^\s*(-?\d[\d_]*(\.\d+)?)\s*%\s*$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ValueProblem(Exception):
    """A parameter value that cannot be used; the loader locates it."""

    def __init__(self, en: str, zh: str, sub: tuple = ()):
        self.en, self.zh, self.sub = en, zh, sub
        super().__init__(en)


def number(value: Any) -> float:
    """5, 0.05 or '5%' → float; anything else, or a number that is not finite or too large, is a problem."""
    if isinstance(value, bool):
        raise ValueProblem(f"'{value}' is a yes/no value, a number is needed", f"“{value}”是是/否值，此处需要数字")
    if isinstance(value, (int, float)):
        return _bounded(value, value)
    if isinstance(value, str):
        m = PERCENT.match(value)
        if m:
            return _bounded(float(m.group(1).replace("_", "")) / 100.0, value)
        try:
            result = float(value.replace("_", ""))
        except ValueError:
            pass
        else:
            return _bounded(result, value)
    raise ValueProblem(f"'{shown(value)}' is not a number (write 300, 0.05 or 5%)",
                       f"“{shown(value)}”不是数字（可写作 300、0.05 或 5%）")


def _bounded(result: float | int, written: Any) -> float:
    """A number as float, refused when it is not finite (nan, inf, 1e400) or beyond MEDPAY_MAX_AMOUNT."""
    limit = settings.LIMITS.amount
    try:
        out = float(result)
    except OverflowError:  # an integer too large for a float
        out = math.inf
    if not math.isfinite(out):
        raise ValueProblem(f"'{shown(written)}' is not a finite number; write an ordinary number",
                           f"“{shown(written)}”不是有限数值；请写普通数字")
    if abs(out) > limit:
        raise ValueProblem(f"'{shown(written)}' is larger than {limit:g} (MEDPAY_MAX_AMOUNT)",
                           f"“{shown(written)}”超过 {limit:g}（MEDPAY_MAX_AMOUNT）")
    return out


def infer_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "bands" if "edges" in value or "rates" in value else "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dt.date) or isinstance(value, str) and ISO_DATE.match(value.strip()):
        return "date"
    if isinstance(value, str) and not PERCENT.match(value):
        try:
            float(value)
        except ValueError:
            # text that starts like a number ("100点", "1,000") is a mistyped number: say so here,
            # not later as a text in a formula
            return "number" if re.match(r"\s*-?\d", value) else "string"
    return "number"


def normalize(kind: str, value: Any) -> Any:
    """Bring a raw YAML value to its runtime form for the parameter's kind."""
    if kind == "number":
        return number(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueProblem(f"'{value}' must be true or false", f"“{value}”应为 true 或 false")
        return value
    if kind == "string":
        return str(value)
    if kind == "date":
        return date_value(value)
    if kind == "list":
        return list_value(value)
    if kind == "map":
        if not isinstance(value, dict) or not value:
            raise ValueProblem("a parameter by category needs 'category: value' entries",
                               "分类参数需要“类别: 值”形式的条目")
        out = {}
        for key, item in value.items():
            try:
                out[_key(key)] = number(item) if not isinstance(item, str) or PERCENT.match(item) else item
            except ValueProblem as err:
                raise ValueProblem(err.en, err.zh, (key,)) from None
        return out
    return bands(value)


def date_value(value: Any) -> dt.date:
    """A date parameter: a YAML date or its text YYYY-MM-DD."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and ISO_DATE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueProblem(f"'{shown(value)}' is not a date (write YYYY-MM-DD, e.g. 2024-07-01)",
                       f"“{shown(value)}”不是日期（应写作 YYYY-MM-DD，例如 2024-07-01）")


def list_value(value: Any) -> list:
    """A list parameter: numbers (5, 0.05, 5%) or texts, all of one kind; codes are texts in quotes."""
    if not isinstance(value, list) or not value:
        raise ValueProblem("a list parameter needs a list of values, e.g. [\"3708\", \"3709\"] or [1, 2]",
                           "列表参数需要一组值，例如 [\"3708\", \"3709\"] 或 [1, 2]")
    texts = [isinstance(v, str) and not PERCENT.match(v) for v in value]
    out: list = []
    for i, item in enumerate(value):
        if isinstance(item, (list, dict)) or item is None or isinstance(item, bool):
            raise ValueProblem(f"'{shown(item)}' cannot be an item of a list: write a number or a text",
                               f"“{shown(item)}”不能作为列表的一项：请写数字或文本", (i,))
        if any(texts) and not texts[i]:
            raise ValueProblem(f"'{shown(item)}' is a number in a list of texts: write every item in quotes "
                               f"(\"{shown(item)}\"); a code such as 0101 must be quoted",
                               f"“{shown(item)}”是数字，而列表中其他项是文本：请给每一项加引号（\"{shown(item)}\"）；"
                               f"0101 这样的编码必须加引号", (i,))
        try:
            out.append(str(item) if texts[i] else number(item))
        except ValueProblem as err:
            raise ValueProblem(err.en, err.zh, (i,)) from None
    return out


def item_type(kind: str, value: Any) -> str:
    """The type of a list's items, or of a map's values: text or number."""
    items = value if kind == "list" else value.values() if kind == "map" else ()
    return "string" if any(isinstance(v, str) for v in items) else "number"


def _key(key: Any) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def bands(value: Any) -> dict:
    """{edges: [...], rates: [...]} with increasing edges and one more rate than edges."""
    if not isinstance(value, dict) or set(value) - {"edges", "rates"} or "rates" not in value:
        raise ValueProblem("a band table needs 'edges' (band limits) and 'rates' (one per band)",
                           "分段表需要“edges”（分段点）和“rates”（每段一个比例）")
    edges_raw, rates_raw = value.get("edges", []) or [], value["rates"] or []
    edges = []
    for i, e in enumerate(edges_raw):
        try:
            edges.append(number(e))
        except ValueProblem as err:
            raise ValueProblem(err.en, err.zh, ("edges", i)) from None
    for i in range(1, len(edges)):
        if not edges[i] > edges[i - 1]:
            raise ValueProblem(f"band edges must increase: {edges_raw[i]} does not come after {edges_raw[i - 1]}",
                               f"分段点必须递增：{edges_raw[i]} 不大于 {edges_raw[i - 1]}", ("edges", i))
    rates = []
    for i, r in enumerate(rates_raw):
        try:
            rates.append(number(r))
        except ValueProblem as err:
            raise ValueProblem(err.en, err.zh, ("rates", i)) from None
    if len(rates) != len(edges) + 1:
        raise ValueProblem(f"{len(edges)} edges make {len(edges) + 1} bands, but {len(rates)} rates are given",
                           f"{len(edges)} 个分段点构成 {len(edges) + 1} 段，但给出了 {len(rates)} 个比例", ("rates",))
    return {"edges": edges, "rates": rates}


def build_parameter(name: str, spec: dict, source: SourceText, start: dt.date,
                    problems: list[Diagnostic]) -> Parameter | None:
    """A Parameter from its YAML entry; problems are appended, None when unusable."""
    path = ("parameters", name)
    raw_versions = spec.get("values")
    if raw_versions is None:
        if "value" not in spec:
            problems.append(Diagnostic("missing_value", f"parameter '{name}' needs 'value' or 'values'",
                                       f"参数“{name}”缺少 value 或 values", source.key_location(path)))
            return None
        raw_versions = [{"from": start, "value": spec["value"], "_path": (*path, "value")}]
    else:
        raw_versions = [{**v, "_path": (*path, "values", i, "value")} for i, v in enumerate(raw_versions)]
    kind = spec.get("type") or infer_kind(raw_versions[0]["value"])
    versions = []
    for raw in raw_versions:
        try:
            value = normalize(kind, raw["value"])
        except ValueProblem as err:
            problems.append(Diagnostic("bad_value", f"parameter '{name}': {err.en}", f"参数“{name}”：{err.zh}",
                                       source.location((*raw["_path"], *err.sub))))
            return None
        start_date = raw["from"] if isinstance(raw["from"], dt.date) else dt.date.fromisoformat(str(raw["from"]))
        versions.append(ParameterVersion(start_date, value, raw.get("source")))
    starts = [v.start for v in versions]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        problems.append(Diagnostic("version_order", f"parameter '{name}': values must be listed by increasing 'from' date",
                                   f"参数“{name}”：各取值须按 from 日期递增排列", source.location((*path, "values"))))
        return None
    if not (spec.get("source") or spec.get("assumed") or all(v.source for v in versions)):
        problems.append(Diagnostic("missing_provenance",
                                   f"parameter '{name}' must cite its clause (source: 四（四）2) or say why it is assumed (assumed: …)",
                                   f"参数“{name}”必须注明条款出处（source）或说明假设理由（assumed）",
                                   source.key_location(path)))
    types = {item_type(kind, v.value) for v in versions}
    if kind == "list" and len(types) > 1:
        problems.append(Diagnostic("bad_value", f"parameter '{name}': every version must list the same kind of "
                                   "values (all texts or all numbers)",
                                   f"参数“{name}”：各版本列表的取值类型必须一致（都是文本或都是数字）",
                                   source.location((*path, "values"))))
        return None
    value_type = "string" if "string" in types else "number"
    return Parameter(name=name, label=label_of(spec.get("label")), kind=kind, versions=versions,
                     unit=spec.get("unit", ""), source=spec.get("source"), assumed=text_of(spec.get("assumed")),
                     note=text_of(spec.get("note")), path=path, value_type=value_type)


class TableUnavailable(Exception):
    """A table file that cannot be used; the message never quotes the file's content."""

    def __init__(self, code: str, en: str, zh: str):
        self.code, self.en, self.zh = code, en, zh
        super().__init__(en)


TableReader = Callable[[Path], str]  # resolved path of a table file → its text, or TableUnavailable


def disk_tables(file: Path) -> str:
    """Read a table file from disk, refusing one larger than MEDPAY_MAX_TABLE_BYTES or not UTF-8."""
    limit = settings.LIMITS.table_bytes
    data = None
    try:  # no blocking on a FIFO, no following a link swapped in after the path was checked
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                data = fh.read(limit + 1)
    except OSError:
        pass
    if data is None:
        raise TableUnavailable("table_missing", "not found next to the policy", "找不到文件")
    if len(data) > limit:
        raise TableUnavailable("table_too_large", f"the file is larger than {limit} bytes (MEDPAY_MAX_TABLE_BYTES)",
                               f"文件超过 {limit} 字节（MEDPAY_MAX_TABLE_BYTES）")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableUnavailable("table_encoding", "the file is not UTF-8 text; save it as CSV UTF-8",
                               "文件不是 UTF-8 文本；请另存为 CSV UTF-8 格式") from None


def served_tables(texts: dict[Path, str]) -> TableReader:
    """A reader that serves only the given table texts (keyed by resolved path) and reads no file."""
    def read(file: Path) -> str:
        if file not in texts:
            raise TableUnavailable("table_not_served",
                                   "it is not a table of the policies this service serves; here a draft may only "
                                   "use those (check it with `medpay validate` next to its table, or publish the "
                                   "table first)",
                                   "它不是本服务已加载政策所用的表；此处的草稿只能使用这些表（可在表所在文件夹用 "
                                   "medpay validate 检查，或先发布该表）")
        return texts[file]
    return read


def table_budget(reader: TableReader) -> TableReader:
    """`reader`, with all the table files of one policy together kept within MEDPAY_MAX_TABLE_BYTES
    and MEDPAY_MAX_TABLE_ROWS (one file named by several tables counts each time: it is parsed each time)."""
    used = {"bytes": 0, "rows": 0}

    def read(file: Path) -> str:
        limits = settings.LIMITS
        text = reader(file)
        used["bytes"] += len(text.encode("utf-8"))
        used["rows"] += max(0, len(_data_lines(text)) - 1)
        if used["bytes"] > limits.table_bytes:
            raise TableUnavailable("table_too_large", f"the policy's table files together are larger than "
                                   f"{limits.table_bytes} bytes (MEDPAY_MAX_TABLE_BYTES)",
                                   f"政策的表文件合计超过 {limits.table_bytes} 字节（MEDPAY_MAX_TABLE_BYTES）")
        if used["rows"] > limits.table_rows:
            raise TableUnavailable("table_too_large", f"the policy's table files together have more than "
                                   f"{limits.table_rows} rows (MEDPAY_MAX_TABLE_ROWS)",
                                   f"政策的表文件合计超过 {limits.table_rows} 行（MEDPAY_MAX_TABLE_ROWS）")
        return text
    return read


def table_path(written: str, base_dir: Path) -> Path:
    """The file a policy's `tables.<t>.file` names, which must lie inside `base_dir`/tables.

    Absolute paths, `..` and links leading out of that folder raise TableUnavailable; whether
    the file exists is for the reader to say.
    """
    folder = (base_dir / "tables").resolve()
    suggestion = f"tables/{shown(PurePosixPath(written.replace(chr(92), '/')).name or 'name.csv', 60)}"
    outside = TableUnavailable(
        "table_outside", f"a table file must be in the tables/ folder next to the policy, written as a path "
        f"relative to the policy: put the CSV there and write file: {suggestion}",
        f"表文件必须放在政策文件旁的 tables/ 文件夹中，并写相对路径：请把 CSV 放到该文件夹，写作 file: {suggestion}")
    parts = PurePosixPath(written).parts
    if (not written or any(ord(c) < 32 for c in written) or PurePosixPath(written).is_absolute()
            or ".." in parts or "\\" in written):
        raise outside
    try:
        file = (base_dir / written).resolve()
    except (OSError, RuntimeError, ValueError):  # a name too long, a link loop
        raise outside from None
    if not file.is_relative_to(folder) or file == folder:
        raise outside
    return file


def read_table(name: str, spec: dict, base_dir: Path, source: SourceText,
               problems: list[Diagnostic], reader: TableReader = disk_tables) -> Table | None:
    """Read a CSV lookup table from the policy's tables/ folder through `reader`; numbers become
    floats, other cells stay text. Lines starting with # are notes."""
    path = ("tables", name)
    written = str(spec["file"])

    def fail(code: str, en: str, zh: str, at: tuple = (*path, "file")) -> None:
        problems.append(Diagnostic(code, f"table '{name}': {en}", f"表“{name}”：{zh}", source.location(at)))

    try:
        file = table_path(written, base_dir)
        text = reader(file)
        header, rows = _csv_rows(text)
    except TableUnavailable as err:
        if err.code == "table_missing":
            fail("table_missing", f"file {shown(written)} not found next to the policy", f"找不到文件 {shown(written)}")
        else:
            fail(err.code, f"file {shown(written)}: {err.en}", f"文件 {shown(written)}：{err.zh}")
        return None
    missing = [k for k in spec["key"] if k not in header]
    if missing:
        fail("table_key", f"key column {shown(missing[0])} is not in the header line of {shown(written)}",
             f"键列 {shown(missing[0])} 不在文件 {shown(written)} 的表头中", (*path, "key"))
        return None
    try:
        columns, index = _columns(header, rows, list(spec["key"]))
    except TableUnavailable as err:
        fail(err.code, f"{shown(written)}: {err.en}", f"{shown(written)}：{err.zh}")
        return None
    if not (spec.get("source") or spec.get("assumed")):
        problems.append(Diagnostic("missing_provenance",
                                   f"table '{name}' must cite its clause (source: …) or say why it is assumed (assumed: …)",
                                   f"表“{name}”必须注明条款出处（source）或说明假设理由（assumed）",
                                   source.key_location(path)))
    return Table(name=name, label=label_of(spec.get("label")), key=list(spec["key"]), columns=columns,
                 file=written, source=spec.get("source"), assumed=text_of(spec.get("assumed")),
                 note=text_of(spec.get("note")), index=index, path=str(file), text=text)


def _csv_rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of each data row, within the row, column and cell limits."""
    limits = settings.LIMITS
    lines = _data_lines(text)
    if len(lines) - 1 > limits.table_rows:
        raise TableUnavailable("table_too_large", f"the file has more than {limits.table_rows} rows "
                               "(MEDPAY_MAX_TABLE_ROWS)", f"文件超过 {limits.table_rows} 行（MEDPAY_MAX_TABLE_ROWS）")
    parsed = []
    for at, line in lines:
        try:
            cells = next(csv.reader([line]))
        except csv.Error as err:
            if "field limit" in str(err):  # a cell longer than the csv module takes
                cells = [line]
            else:
                raise TableUnavailable("table_csv", f"line {at} cannot be read as CSV (check its quotes)",
                                       f"第 {at} 行无法按 CSV 读取（请检查引号）") from None
        if len(cells) > limits.table_columns:
            raise TableUnavailable("table_too_large", f"line {at} has more than {limits.table_columns} "
                                   "columns (MEDPAY_MAX_TABLE_COLUMNS)",
                                   f"第 {at} 行超过 {limits.table_columns} 列（MEDPAY_MAX_TABLE_COLUMNS）")
        if any(len(c) > limits.table_cell_chars for c in cells):
            raise TableUnavailable("table_too_large", f"line {at} has a cell longer than "
                                   f"{limits.table_cell_chars} characters (MEDPAY_MAX_TABLE_CELL_CHARS)",
                                   f"第 {at} 行有单元格超过 {limits.table_cell_chars} 个字符"
                                   "（MEDPAY_MAX_TABLE_CELL_CHARS）")
        parsed.append((at, cells))
    if not parsed:
        return [], []
    return parsed[0][1], parsed[1:]


def _data_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the header and data lines: blank lines and # notes left out."""
    return [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.startswith("#")]


def _columns(header: list[str], rows: list[tuple[int, list[str]]], key: list[str]) -> tuple[dict, dict]:
    """Value columns and the key index; a repeated key or a non-finite number is refused by its line."""
    if len(set(header)) != len(header):
        raise TableUnavailable("table_header", "two columns of the header line have the same name",
                               "表头中有两列同名")
    positions = {c: i for i, c in enumerate(header)}
    columns: dict[str, list[Any]] = {c: [] for c in header if c not in key}
    index: dict[tuple, int] = {}
    first_line: dict[tuple, int] = {}
    for i, (line, cells) in enumerate(rows):
        cells = cells + [""] * (len(header) - len(cells))
        values = [_cell(c, line, n + 1) for n, c in enumerate(cells[:len(header)])]
        row_key = tuple(_key(values[positions[k]]) for k in key)
        if row_key in index:
            raise TableUnavailable("table_duplicate", f"lines {first_line[row_key]} and {line} have the same key",
                                   f"第 {first_line[row_key]} 行与第 {line} 行的键相同")
        index[row_key], first_line[row_key] = i, line
        for col in columns:
            columns[col].append(values[positions[col]])
    return columns, index


def _cell(text: str | None, line: int = 0, column: int = 0) -> Any:
    text = (text or "").strip()
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise TableUnavailable("not_finite", f"line {line}, column {column} holds a number that is not finite "
                               "(nan, inf or too large)", f"第 {line} 行第 {column} 列的数值不是有限数（nan、inf 或过大）")
    return value

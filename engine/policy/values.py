"""Parameter values and tables: percent text, category maps, band tables, CSV (参数值与查找表)."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic
from engine.model.model import label_of
from engine.policy.spec import Parameter, ParameterVersion, Table
from engine.policy.yaml_source import SourceText

PERCENT = re.compile(r"^\s*(-?\d[\d_]*(\.\d+)?)\s*%\s*$")


class ValueProblem(Exception):
    """A parameter value that cannot be used; the loader locates it."""

    def __init__(self, en: str, zh: str, sub: tuple = ()):
        self.en, self.zh, self.sub = en, zh, sub
        super().__init__(en)


def number(value: Any) -> float:
    """5, 0.05 or '5%' → float; anything else is a problem."""
    if isinstance(value, bool):
        raise ValueProblem(f"'{value}' is a yes/no value, a number is needed", f"“{value}”是是/否值，此处需要数字")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = PERCENT.match(value)
        if m:
            return float(m.group(1).replace("_", "")) / 100.0
        try:
            return float(value.replace("_", ""))
        except ValueError:
            pass
    raise ValueProblem(f"'{value}' is not a number (write 300, 0.05 or 5%)",
                       f"“{value}”不是数字（可写作 300、0.05 或 5%）")


def infer_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "bands" if "edges" in value or "rates" in value else "map"
    if isinstance(value, bool):
        return "bool"
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
    value_type = "number"
    if kind == "map":
        value_type = "string" if any(isinstance(v, str) for ver in versions for v in ver.value.values()) else "number"
    return Parameter(name=name, label=label_of(spec.get("label")), kind=kind, versions=versions,
                     unit=spec.get("unit", ""), source=spec.get("source"), assumed=spec.get("assumed"),
                     note=spec.get("note"), path=path, value_type=value_type)


def read_table(name: str, spec: dict, base_dir: Path, source: SourceText,
               problems: list[Diagnostic]) -> Table | None:
    """Read a CSV lookup table; numbers become floats, other cells stay text. Lines starting with # are notes."""
    path = ("tables", name)
    file = (base_dir / spec["file"]).resolve()
    if not file.is_file():
        problems.append(Diagnostic("table_missing", f"table '{name}': file {spec['file']} not found next to the policy",
                                   f"表“{name}”：找不到文件 {spec['file']}", source.location((*path, "file"))))
        return None
    lines = [ln for ln in file.read_text(encoding="utf-8-sig").splitlines() if ln.strip() and not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    header = list(rows[0].keys()) if rows else next(csv.reader(lines[:1]), [])
    missing = [k for k in spec["key"] if k not in header]
    if missing:
        problems.append(Diagnostic("table_key", f"table '{name}': key column {missing[0]} is not in {spec['file']} "
                                   f"(columns: {', '.join(header)})",
                                   f"表“{name}”：键列 {missing[0]} 不在文件 {spec['file']} 中", source.location((*path, "key"))))
        return None
    columns: dict[str, list[Any]] = {c: [] for c in header if c not in spec["key"]}
    index: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        key = tuple(_key(_cell(row[k])) for k in spec["key"])
        if key in index:
            problems.append(Diagnostic("table_duplicate", f"table '{name}': key {', '.join(key)} appears twice in {spec['file']}",
                                       f"表“{name}”：键 {', '.join(key)} 在 {spec['file']} 中重复", source.location((*path, "file"))))
            return None
        index[key] = i
        for col in columns:
            columns[col].append(_cell(row[col]))
    if not (spec.get("source") or spec.get("assumed")):
        problems.append(Diagnostic("missing_provenance",
                                   f"table '{name}' must cite its clause (source: …) or say why it is assumed (assumed: …)",
                                   f"表“{name}”必须注明条款出处（source）或说明假设理由（assumed）",
                                   source.key_location(path)))
    return Table(name=name, label=label_of(spec.get("label")), key=list(spec["key"]), columns=columns,
                 file=spec["file"], source=spec.get("source"), assumed=spec.get("assumed"),
                 note=spec.get("note"), index=index)


def _cell(text: str | None) -> Any:
    text = (text or "").strip()
    try:
        return float(text)
    except ValueError:
        return text

"""Structure check of a policy file against its JSON Schema, with readable messages (结构校验)."""

from __future__ import annotations

import datetime as dt
import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.errors import Diagnostic
from engine.policy.yaml_source import SourceText, shown

SCHEMA_FILE = Path(__file__).with_name("policy.schema.json")


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def json_safe(data: Any) -> Any:
    """YAML dates become ISO strings so that the schema can check them."""
    if isinstance(data, dict):
        return {str(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, list):
        return [json_safe(v) for v in data]
    if isinstance(data, (dt.date, dt.datetime)):
        return data.isoformat()[:10]
    return data


def schema_diagnostics(source: SourceText) -> list[Diagnostic]:
    """Every structural fault of the file, each located at its key or value."""
    errors = sorted(validator().iter_errors(json_safe(source.data)), key=lambda e: list(e.absolute_path))
    return [_diagnostic(source, err) for err in _leaf_errors(errors)]


def _is_text(err: ValidationError) -> bool:
    """The error is about a note or a reason (`$defs/text`: a string or `{zh, en}`)."""
    return err.validator == "anyOf" and err.schema == validator().schema["$defs"]["text"]


def _leaf_errors(errors: list[ValidationError]) -> list[ValidationError]:
    out = []
    for err in errors:
        if _is_text(err):
            out.append(err)
        elif err.context:  # anyOf / oneOf: report the most specific alternative
            out.append(min(err.context, key=lambda e: (-len(e.absolute_path), e.validator != "type")))
        else:
            out.append(err)
    return out


def _diagnostic(source: SourceText, err: ValidationError) -> Diagnostic:
    path = tuple(err.absolute_path)
    where = shown(".".join(str(p) for p in path), 120) or "the top level"
    kind = err.validator
    if _is_text(err):
        return _text_diagnostic(source, path, where, err.instance)
    if kind == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        key = extra[0] if extra else "?"
        named = shown(key)
        hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        tip_en = f"; did you mean '{hint[0]}'?" if hint else f"; allowed here: {', '.join(allowed)}"
        tip_zh = f"；是否应为“{hint[0]}”？" if hint else f"；此处允许：{', '.join(allowed)}"
        if isinstance(err.instance, dict) and err.instance.get(key, "") is None and not hint:
            return Diagnostic("comma_in_braces", f"'{named}' became a key of its own: inside {{ }} a ',' starts a "
                              "new entry; put text that contains a comma in quotes",
                              f"“{named}”被当成了单独的键：在 {{ }} 中逗号表示新条目；含逗号的文字请加引号",
                              source.key_location((*path, key)))
        return Diagnostic("unknown_key", f"'{named}' is not a known key in {where}{tip_en} "
                          "(if it belongs one level up or down, check its indentation)",
                          f"“{named}”不是 {where} 中的有效键{tip_zh}（如应在上一级或下一级，请检查缩进）",
                          source.key_location((*path, key)))
    if kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return Diagnostic("missing_key", f"{where} needs '{missing}'", f"{where} 缺少“{missing}”",
                          source.key_location(path) if path else source.location(path))
    if kind == "type":
        want = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        return Diagnostic("wrong_type", f"{where} must be {_TYPE_EN.get(want, want)}, not {_describe(err.instance)}",
                          f"{where} 应为{_TYPE_ZH.get(want, want)}", source.location(path))
    if kind == "enum":
        return Diagnostic("bad_choice", f"{where} must be one of {', '.join(map(str, err.validator_value))}",
                          f"{where} 只能取 {', '.join(map(str, err.validator_value))} 之一", source.location(path))
    if kind == "pattern":
        is_date = "\\d{4}" in err.validator_value
        is_key = "propertyNames" in err.relative_schema_path
        what_en = "a date written YYYY-MM-DD" if is_date else "a lowercase English name (letters, digits, _)"
        what_zh = "YYYY-MM-DD 格式的日期" if is_date else "小写英文名称（字母、数字、下划线）"
        loc = source.key_location((*path, err.instance)) if is_key else source.location(path)
        return Diagnostic("bad_format", f"{where}: '{shown(err.instance)}' must be {what_en}",
                          f"{where}：“{shown(err.instance)}”应为{what_zh}", loc)
    if kind == "minLength":
        return Diagnostic("empty_value", f"{where} must not be empty", f"{where} 不能为空", source.location(path))
    if kind == "minItems":
        return Diagnostic("empty_list", f"{where} needs at least one entry", f"{where} 至少需要一项",
                          source.location(path))
    return Diagnostic("schema", f"{where}: {shown(err.message, 200)}", f"{where}：结构不符合要求（{shown(err.message, 200)}）",
                      source.location(path))


def _text_diagnostic(source: SourceText, path: tuple, where: str, value: Any) -> Diagnostic:
    """A note or a reason that is neither a text nor `{zh: …, en: …}`: say which part is wrong."""
    if isinstance(value, dict):
        extra = [str(k) for k in value if k not in ("zh", "en")]
        missing = [k for k in ("zh", "en") if not (isinstance(value.get(k), str) and value.get(k))]
        fault_en = (f"'{shown(extra[0])}' is not a language (write zh and en)" if extra
                    else f"its {' and '.join(missing)} text is missing or empty")
        fault_zh = (f"“{shown(extra[0])}”不是语言键（应为 zh 和 en）" if extra
                    else f"缺少 {'、'.join(missing)} 文本或为空")
    else:
        fault_en = f"it is {'empty' if value == '' else _describe(value)}"
        fault_zh = f"当前为{_describe_zh(value)}"
    return Diagnostic("bad_text", f"{where} must be written in both languages, {{zh: …, en: …}} "
                      f"(or as one plain text): {fault_en}",
                      f"{where} 应写成中英文两种语言 {{zh: …, en: …}}（或一段文字）：{fault_zh}", source.location(path))


def _describe_zh(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "映射" if isinstance(value, dict) else "列表"
    return "空" if value in (None, "") else f"“{shown(value)}”"


_TYPE_EN = {"object": "a set of 'key: value' entries", "array": "a list", "string": "a text",
            "number": "a number", "boolean": "true or false", "null": "empty",
            "string or number or boolean": "a formula"}
_TYPE_ZH = {"object": "“键: 值”形式的映射", "array": "列表", "string": "文本", "number": "数字",
            "boolean": "true 或 false", "null": "空", "string or number or boolean": "公式"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a set of entries"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return f"'{shown(value)}'"

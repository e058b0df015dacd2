"""Plausibility warnings: values a policy may hold but can hardly mean (合理性提示).

A policy with such a value still loads; each finding is a `Diagnostic` of severity `warning`
at the value's line. What is judged comes only from what the policy declares: a parameter's
`unit` (ratio), its kind (date, band table) and the notice's own dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from engine.errors import Diagnostic, Location
from engine.policy.spec import Parameter, Policy
from engine.policy.yaml_source import SourceText

RATIO_UNITS = ("ratio",)
FAR_YEARS = 5  # a date more than this many years before or after the notice's dates is doubtful


def warnings_of(policy: Policy, source: SourceText | None) -> list[Diagnostic]:
    """Every plausibility warning of a loaded policy, in file order of the things judged."""
    found = list(_notice_dates(policy, source))
    window = notice_window(policy)
    for param in policy.parameters.values():
        found += _ratios(param, source)
        found += _bands(param, source)
        found += _dates(param, source, window)
    return found


def notice_window(policy: Policy) -> tuple[dt.date, dt.date]:
    """The notice's own dates, earliest and latest: issue date, start and end of force."""
    meta = policy.meta
    dates = [d for d in (meta.issued, meta.effective_from, meta.effective_to) if d is not None]
    return min(dates), max(dates)


def _warning(code: str, en: str, zh: str, source: SourceText | None, path: tuple) -> Diagnostic:
    loc = source.location(path) if source is not None else Location(None, None, None, ".".join(map(str, path)))
    return Diagnostic(code, en, zh, loc, severity="warning")


def _notice_dates(policy: Policy, source: SourceText | None) -> Iterator[Diagnostic]:
    meta = policy.meta
    if meta.issued and meta.issued > meta.effective_from:
        yield _warning("issued_after_start",
                       f"the notice is issued on {meta.issued} but takes effect earlier, on {meta.effective_from}: "
                       "check both dates (a notice in force before it is issued is rare)",
                       f"发布日期 {meta.issued} 晚于生效日期 {meta.effective_from}：请核对两个日期（先生效后发布的情况少见）",
                       source, ("policy", "issued"))


def _version_paths(param: Parameter, source: SourceText | None) -> list[tuple]:
    """The YAML path of each version's value: `value`, or `values[i].value`."""
    base = param.path or ("parameters", param.name)
    if source is not None and (*base, "values") in source.nodes:
        return [(*base, "values", i, "value") for i in range(len(param.versions))]
    return [(*base, "value")] * len(param.versions)


def _ratio_items(value: Any, kind: str) -> Iterator[tuple[tuple, float]]:
    """(sub-path, number) of every ratio a value holds: itself, a map's or a list's numbers."""
    if kind == "number" and isinstance(value, float):
        yield (), value
    elif kind == "map":
        yield from (((k,), v) for k, v in value.items() if isinstance(v, float))
    elif kind == "list":
        yield from (((i,), v) for i, v in enumerate(value) if isinstance(v, float))
    elif kind == "bands":
        yield from ((("rates", i), r) for i, r in enumerate(value["rates"]))


def _ratios(param: Parameter, source: SourceText | None) -> Iterator[Diagnostic]:
    """A ratio above 1 (100%) or below 0."""
    if param.unit not in RATIO_UNITS:
        return
    for version, path in zip(param.versions, _version_paths(param, source), strict=True):
        for sub, number in _ratio_items(version.value, param.kind):
            if 0.0 <= number <= 1.0:
                continue
            shown = f"{number:g} ({number * 100:g}%)"
            side_en, side_zh = ("above 1 (100%)", "大于 1（100%）") if number > 1 else ("below 0", "小于 0")
            yield _warning("ratio_out_of_range",
                           f"parameter '{param.name}' is a ratio (unit: ratio) but {shown} is {side_en}: "
                           f"did you mean {number / 100:g} ({number:g}%)?" if number > 1 else
                           f"parameter '{param.name}' is a ratio (unit: ratio) but {shown} is {side_en}",
                           f"参数“{param.name}”是比例（unit: ratio），但 {shown} {side_zh}"
                           + (f"：是否应为 {number / 100:g}（{number:g}%）？" if number > 1 else ""),
                           source, (*path, *sub))


def _bands(param: Parameter, source: SourceText | None) -> Iterator[Diagnostic]:
    """A band table with a band that holds nothing: one band only, or a first edge at or below 0
    (bands start at 0, so the first band would be empty)."""
    if param.kind != "bands":
        return
    for version, path in zip(param.versions, _version_paths(param, source), strict=True):
        edges = version.value["edges"]
        if not edges:
            yield _warning("single_band",
                           f"parameter '{param.name}' is a band table with no edges, so one band only: "
                           "write the rate as a number, or add the edges",
                           f"参数“{param.name}”是没有分段点的分段表（只有一段）：请直接写比例，或补上分段点",
                           source, path)
        elif edges[0] <= 0:
            yield _warning("empty_band",
                           f"parameter '{param.name}': the first band runs from 0 to {edges[0]:g}, so it is empty "
                           f"and its rate {version.value['rates'][0]:g} never applies: check the edges",
                           f"参数“{param.name}”：第一段为 0 至 {edges[0]:g}，是空段，其比例 "
                           f"{version.value['rates'][0]:g} 永远不会适用：请核对分段点",
                           source, (*path, "edges", 0))


def _far(date: dt.date, window: tuple[dt.date, dt.date]) -> bool:
    low, high = window
    return date < low.replace(year=low.year - FAR_YEARS) or date > _years_after(high, FAR_YEARS)


def _years_after(date: dt.date, years: int) -> dt.date:
    try:
        return date.replace(year=date.year + years)
    except ValueError:  # 29 February
        return date.replace(year=date.year + years, day=28)


def _dates(param: Parameter, source: SourceText | None,
           window: tuple[dt.date, dt.date]) -> Iterator[Diagnostic]:
    """A version starting, or a date value, more than FAR_YEARS years from the notice's dates."""
    low, high = window
    paths = _version_paths(param, source)
    for version, path in zip(param.versions, paths, strict=True):
        checks = [(version.start, (*path[:-1], "from"))] if len(path) > 2 and path[-3] == "values" else []
        if param.kind == "date":
            checks.append((version.value, path))
        for date, where in checks:
            if _far(date, window):
                yield _warning("date_far_from_notice",
                               f"parameter '{param.name}': {date} is more than {FAR_YEARS} years from the "
                               f"notice's dates ({low} to {high}): check the year",
                               f"参数“{param.name}”：{date} 与通知日期（{low} 至 {high}）相差超过 {FAR_YEARS} 年："
                               "请核对年份", source, where)

"""A settlement period: a year, a month, a day or an explicit range (结算期间)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import InputFault, SituationError


@dataclass
class Period:
    start: dt.date
    end: dt.date
    text: str

    def overlaps(self, start: dt.date, end: dt.date | None) -> bool:
        return start <= self.end and (end is None or end >= self.start)


def parse_period(value: Any, path: str = "period") -> Period:
    """'2024', '2024-06', '2024-06-30' or {start, end}."""
    try:
        if isinstance(value, dict):
            start, end = dt.date.fromisoformat(value["start"]), dt.date.fromisoformat(value["end"])
            if end < start:
                raise ValueError
            return Period(start, end, f"{start}/{end}")
        text = str(value)
        if re.fullmatch(r"\d{4}", text):
            return Period(dt.date(int(text), 1, 1), dt.date(int(text), 12, 31), text)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            y, m = map(int, text.split("-"))
            nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
            return Period(dt.date(y, m, 1), nxt - dt.timedelta(days=1), text)
        day = dt.date.fromisoformat(text)
        return Period(day, day, text)
    except (ValueError, KeyError, TypeError):
        raise SituationError([InputFault(path, "period must be a year (\"2024\"), a month (\"2024-06\") "
                                         "or {\"start\": \"2024-01-01\", \"end\": \"2024-12-31\"}",
                                         "period 应为年份（\"2024\"）、月份（\"2024-06\"）或 {\"start\", \"end\"}")]) from None

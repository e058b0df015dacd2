"""Locates the grammar (package data beside this module) and builds the LALR parser once (语法文件与解析器)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lark import Lark

GRAMMAR_FILE = Path(__file__).with_name("medpay.lark")  # package data: works from an installed wheel


@cache
def lark_parser() -> Lark:
    """The shared Lark LALR parser for formulas."""
    return Lark(GRAMMAR_FILE.read_text(encoding="utf-8"), parser="lalr",
                propagate_positions=True, maybe_placeholders=True)

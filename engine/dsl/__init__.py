"""The formula language: parse, then check into a typed tree (公式语言：解析、检查)."""

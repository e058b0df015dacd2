"""The formula language: parse → check → compile (公式语言：解析、检查、编译)."""

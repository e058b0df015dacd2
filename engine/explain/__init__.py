"""Explanations: how each value was computed, with its clause (计算过程说明)."""

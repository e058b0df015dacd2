"""Columnar evaluation of a plan over a population (列式求值)."""

"""Batch settlement of a city-year from files, and synthetic city-years (批量结算)."""

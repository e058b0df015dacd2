"""Benchmarks of medpay (性能基准): `python bench/run.py`; see bench/README.md."""

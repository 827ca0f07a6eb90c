"""Benchmarks and load tests: `python -m bench --quick` (see docs/benchmarks.md)."""

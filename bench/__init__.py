"""Benchmarks of the QVC serving path (see bench/README.md)."""

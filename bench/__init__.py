"""Benchmarks: `make bench` (never part of `make test`; a smoke of each runs there)."""
